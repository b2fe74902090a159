"""The scheduler's state port: leases, health, quota readings and sticky sessions.

Every method takes ``now`` (wall-clock epoch seconds) from the caller instead of reading a clock,
so tests can drive time and all replicas compare instants on one scale. Each method must be atomic
on its own: in memory that holds because no method awaits inside; in Redis each is one script.
The one that matters most is ``try_acquire``: it re-checks eligibility and takes the slot in one
step, so two replicas that both saw "one slot left" cannot both get it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..leases import Effect, Snapshot


@dataclass(frozen=True, slots=True)
class Claim:
    """An account offered to ``try_acquire``, with the concurrency cap the store must enforce."""

    account_id: str
    max_concurrency: int


@dataclass(frozen=True, slots=True)
class Settlement:
    """What completing an attempt writes: the lease freed, the outcome learnt, the session bound."""

    account_id: str
    lease_id: str
    model: str
    effect: Effect | None = None
    """The outcome's effect; None (or an empty one) changes nothing."""
    session_id: str = ""
    """Bind (session, model) to the account; empty: no binding."""
    sticky_ttl_s: float = 0.0


class SchedulerStore(Protocol):
    """State shared by every scheduler replica. Times are epoch seconds; TTLs are seconds."""

    async def snapshot(
        self, account_ids: Sequence[str], model: str, session_id: str, now: float
    ) -> Snapshot:
        """Views of ``account_ids`` for ``model`` and the account (session, model) is bound to.

        Leases past their expiry do not count as in flight. An empty ``session_id`` has no
        binding.
        """
        ...

    async def try_acquire(
        self, claims: Sequence[Claim], model: str, lease_id: str, ttl_s: float, now: float
    ) -> str | None:
        """Grant ``lease_id`` on the first claim still eligible (``leases.block_of``); its id.

        Granting counts the lease in flight until it is released or ``now + ttl_s`` passes, and
        marks the account used at ``now``. None when no claim is eligible any more.
        """
        ...

    async def renew(self, account_id: str, lease_id: str, ttl_s: float, now: float) -> bool:
        """Push a live lease's expiry to ``now + ttl_s``; False when it expired or is unknown."""
        ...

    async def release(self, account_id: str, lease_id: str, now: float) -> bool:
        """Stop counting the lease in flight; False when it had expired or was released already."""
        ...

    async def apply(self, account_id: str, model: str, effect: Effect, now: float) -> None:
        """Apply an outcome's ``Effect`` to the account (and the model, for cooldowns/quota)."""
        ...

    async def bind_session(
        self, session_id: str, model: str, account_id: str, ttl_s: float, now: float
    ) -> None:
        """Bind (session, model) to the account until ``now + ttl_s``, replacing any binding."""
        ...

    async def settle(self, settlement: Settlement, now: float) -> None:
        """``release``, then ``apply``, then ``bind_session``, as ``settlement`` says: completing
        an attempt in one call, so a remote store makes one round trip. Each step stays atomic on
        its own (as when called alone); the three together need not be."""
        ...
