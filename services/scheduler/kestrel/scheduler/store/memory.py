"""The in-memory ``SchedulerStore`` for ``kestrel up`` and tests: one process, one event loop.

No method awaits anything, so on a single event loop each call runs to completion before another
starts; that is all the atomicity ``try_acquire`` needs. Expired leases are reaped lazily, at the
start of every call, from a heap ordered by expiry: a caller that crashed without completing its
lease gives the slot back ``lease_ttl`` later without any background task.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from ..leases import AccountView, Effect, Snapshot, backoff_delay, block_of
from ..ratelimits import Quota
from .base import Claim, Settlement


@dataclass(slots=True)
class _Lease:
    account_id: str
    expires_at: float


@dataclass(slots=True)
class _Health:
    """Per-account state that does not depend on the model."""

    in_flight: int = 0
    backoff_until: float = 0.0
    consecutive_errors: int = 0
    auth_until: float = 0.0
    last_used: float = 0.0


class MemoryStore:
    """Scheduler state in dictionaries; implements ``SchedulerStore``."""

    remote = False
    """Grants complete without suspending: a cancelled caller cannot leave a grant behind."""

    def __init__(self) -> None:
        self._leases: dict[str, _Lease] = {}
        # (expires_at, lease_id); a renewal pushes a new entry and the stale one is skipped.
        self._expiries: list[tuple[float, str]] = []
        self._health: dict[str, _Health] = {}
        self._cooling: dict[tuple[str, str], float] = {}
        self._quota: dict[tuple[str, str], Quota] = {}
        # (session, model) -> (account, expires_at), in binding order. Every binding uses the
        # same sticky TTL, so the oldest entries expire first and pruning stops at a live one.
        self._sessions: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()

    async def snapshot(
        self, account_ids: Sequence[str], model: str, session_id: str, now: float
    ) -> Snapshot:
        self._reap(now)
        views = {account_id: self._view(account_id, model) for account_id in account_ids}
        return Snapshot(accounts=views, sticky_account=self._bound(session_id, model, now))

    async def try_acquire(
        self, claims: Sequence[Claim], model: str, lease_id: str, ttl_s: float, now: float
    ) -> str | None:
        self._reap(now)
        if lease_id in self._leases:
            raise ValueError(f"lease {lease_id!r} is already held")
        for claim in claims:
            if block_of(self._view(claim.account_id, model), claim.max_concurrency, now):
                continue
            health = self._health.setdefault(claim.account_id, _Health())
            health.in_flight += 1
            health.last_used = now
            self._leases[lease_id] = _Lease(claim.account_id, now + ttl_s)
            heapq.heappush(self._expiries, (now + ttl_s, lease_id))
            return claim.account_id
        return None

    async def renew(self, account_id: str, lease_id: str, ttl_s: float, now: float) -> bool:
        self._reap(now)
        lease = self._leases.get(lease_id)
        if lease is None or lease.account_id != account_id:
            return False
        lease.expires_at = now + ttl_s
        heapq.heappush(self._expiries, (lease.expires_at, lease_id))
        return True

    async def release(self, account_id: str, lease_id: str, now: float) -> bool:
        self._reap(now)
        lease = self._leases.get(lease_id)
        if lease is None or lease.account_id != account_id:
            return False
        self._drop(lease_id)
        return True

    async def apply(self, account_id: str, model: str, effect: Effect, now: float) -> None:
        if effect.empty:
            return
        health = self._health.setdefault(account_id, _Health())
        if effect.cool_until is not None:
            key = (account_id, model)
            self._cooling[key] = max(self._cooling.get(key, 0.0), effect.cool_until)
        if effect.backoff is not None:
            health.consecutive_errors += 1
            delay = backoff_delay(
                health.consecutive_errors, effect.backoff.base_s, effect.backoff.max_s
            )
            health.backoff_until = max(health.backoff_until, now + delay)
        if effect.clear_errors:
            health.consecutive_errors = 0
            health.backoff_until = 0.0
        if effect.auth_until is not None:
            health.auth_until = max(health.auth_until, effect.auth_until)
        if effect.quota is not None:
            self._quota[(account_id, model)] = effect.quota

    async def bind_session(
        self, session_id: str, model: str, account_id: str, ttl_s: float, now: float
    ) -> None:
        if not session_id:
            return
        key = (session_id, model)
        self._sessions[key] = (account_id, now + ttl_s)
        self._sessions.move_to_end(key)
        self._prune_sessions(now)

    async def settle(self, settlement: Settlement, now: float) -> None:
        await self.release(settlement.account_id, settlement.lease_id, now)
        if settlement.effect is not None:
            await self.apply(settlement.account_id, settlement.model, settlement.effect, now)
        await self.bind_session(
            settlement.session_id, settlement.model, settlement.account_id, settlement.sticky_ttl_s, now
        )

    def _view(self, account_id: str, model: str) -> AccountView:
        health = self._health.get(account_id) or _Health()
        return AccountView(
            in_flight=health.in_flight,
            cooling_until=self._cooling.get((account_id, model), 0.0),
            backoff_until=health.backoff_until,
            consecutive_errors=health.consecutive_errors,
            auth_until=health.auth_until,
            last_used=health.last_used,
            quota=self._quota.get((account_id, model)),
        )

    def _bound(self, session_id: str, model: str, now: float) -> str | None:
        if not session_id:
            return None
        entry = self._sessions.get((session_id, model))
        if entry is None:
            return None
        account_id, expires_at = entry
        return account_id if expires_at > now else None

    def _reap(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            _, lease_id = heapq.heappop(self._expiries)
            lease = self._leases.get(lease_id)
            if lease is not None and lease.expires_at <= now:
                self._drop(lease_id)

    def _drop(self, lease_id: str) -> None:
        lease = self._leases.pop(lease_id)
        self._health[lease.account_id].in_flight -= 1

    def _prune_sessions(self, now: float) -> None:
        while self._sessions:
            key, (_, expires_at) = next(iter(self._sessions.items()))
            if expires_at > now:
                return
            del self._sessions[key]
