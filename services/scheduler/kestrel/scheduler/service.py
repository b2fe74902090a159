"""The scheduler service: the ``LeaseClient`` the edge calls, in process or behind gRPC.

It joins the pure policy (``leases``) to a state store (``store``): read a snapshot, let the
policy rank the eligible accounts, ask the store to grant the first one it still can. When none is
eligible it holds the caller, for at most the request's ``max_wait_s``, until something that could
change the answer happens: a lease released or an outcome applied in this process (an event), a
cooldown or backoff expiring (a timer), or ``recheck_s`` passing, which covers leases that expire
and state that other replicas change without telling this one. When nothing can free up before
the deadline (every account blocked past it, none merely full), it answers at once instead.

A store that is also a ``ChangeFeed`` (the Redis one) reports changes made by every replica: the
service follows it from its first wait until ``aclose``, and a waiter here wakes as soon as a
replica elsewhere frees a slot, instead of at the next ``recheck_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Protocol, runtime_checkable

from kestrel.common.config import AccountConfig, SchedulerConfig

from . import leases
from .contract import (
    Completion,
    Exhausted,
    ExhaustedReason,
    Lease,
    LeaseRequest,
    Outcome,
)
from .store.base import Claim, SchedulerStore, Settlement

# Wake a little after a cooldown ends so the re-check does not land just before it and loop once.
_WAKE_MARGIN_S = 0.001

_log = logging.getLogger(__name__)


@runtime_checkable
class ChangeFeed(Protocol):
    """An optional store capability: hear about changes that other replicas make.

    ``changes()`` yields once when it starts listening (changes before that were missed) and then
    once per lease released or outcome applied anywhere; the value (an account id, or ``""``) is
    a hint only. It may raise on connection loss; the follower starts it again.
    """

    def changes(self) -> AsyncIterator[str]: ...


class SchedulerService:
    """Grants account leases for attempts and learns from their outcomes; a ``LeaseClient``.

    ``clock`` returns wall-clock epoch seconds (``time.time``): rate-limit resets arrive as
    wall-clock instants and the state is shared by replicas on different hosts, where monotonic
    clocks mean nothing. Waiting itself uses the event loop's timers, so tests that replace the
    clock should still use short real durations for anything that waits.
    """

    def __init__(
        self,
        accounts: Sequence[AccountConfig],
        settings: SchedulerConfig,
        store: SchedulerStore,
        clock: Callable[[], float] = time.time,
        recheck_s: float = 1.0,
    ) -> None:
        self._accounts = tuple(accounts)
        self._known = frozenset(account.id for account in self._accounts)
        self._settings = settings
        self._store = store
        self._clock = clock
        self._recheck_s = recheck_s
        # Replaced on every change; a waiter holds the one current when it looked, so a change
        # that happens between its look and its wait still wakes it.
        self._changed = asyncio.Event()
        self._feed = store if isinstance(store, ChangeFeed) else None
        self._background: set[asyncio.Future[object]] = set()
        # A remote store can grant after the caller was cancelled; the memory store never suspends
        # mid-grant, so it needs no shield (and skips a task per acquire).
        self._shield_grants = getattr(store, "remote", True)
        self._follower: asyncio.Task[None] | None = None

    def serving(self, model: str) -> tuple[AccountConfig, ...]:
        """The configured accounts that serve ``model``, in configuration order."""
        return tuple(account for account in self._accounts if account.serves(model))

    async def acquire(self, request: LeaseRequest) -> Lease | Exhausted:
        """A lease on the best eligible account, waiting up to ``max_wait_s`` for one.

        ``max_wait_s`` is capped by ``max_wait_seconds`` from the settings, so no caller can hold
        a scheduler call open for longer than the operator allows.
        """
        candidates = self.serving(request.model)
        if not candidates:
            return Exhausted(ExhaustedReason.NO_ACCOUNT)
        ids = [account.id for account in candidates]
        by_id = {account.id: account for account in candidates}
        max_wait = min(max(request.max_wait_s, 0.0), self._settings.max_wait_seconds)
        deadline = self._clock() + max_wait
        lost_race = False
        while True:
            changed = self._changed
            now = self._clock()
            snapshot = await self._store.snapshot(ids, request.model, request.session_id, now)
            result = leases.choose(
                candidates, snapshot, request, self._settings.soft_limit_fraction, now
            )
            if isinstance(result, leases.Pick):
                lease = await self._grant(result, by_id, request.model, now)
                if lease is not None:
                    return lease
                # The store refused every account the snapshot offered: another caller took the
                # last slots in between. Look again at once, but only once before waiting, so a
                # store and policy that disagree can never spin.
                if not lost_race:
                    lost_race = True
                    continue
                result = leases.explain(
                    candidates, snapshot.accounts, request.exclude_accounts, now
                )
            lost_race = False
            if result.reason is not ExhaustedReason.ALL_BUSY:
                return result
            left = deadline - self._clock()
            if left <= 0 or not leases.worth_waiting(result, snapshot.accounts, left):
                return result
            timeout = min(left, self._recheck_s)
            if result.retry_after_s > 0:
                timeout = min(timeout, result.retry_after_s + _WAKE_MARGIN_S)
            self._follow_changes()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)

    async def renew(self, lease: Lease) -> bool:
        """Extend a lease by another ``lease_ttl_seconds``; False when it had already expired."""
        return await self._store.renew(
            lease.account_id, lease.lease_id, self._settings.lease_ttl_seconds, self._clock()
        )

    async def complete(self, lease: Lease, completion: Completion) -> None:
        """Free the lease's slot, learn from the outcome, and keep the session where it succeeded.

        Applied even when the lease had expired: what the upstream said about the account is still
        true. A success (re)binds (session, model) to the account, which is the only way a session
        moves: ``acquire`` prefers the bound account whenever it is eligible.
        """
        now = self._clock()
        settlement = Settlement(lease.account_id, lease.lease_id, lease.model)
        if lease.account_id in self._known:
            bind = completion.outcome is Outcome.SUCCESS and completion.session_id
            settlement = Settlement(
                lease.account_id,
                lease.lease_id,
                lease.model,
                effect=leases.effect_of(completion, self._settings, now),
                session_id=completion.session_id if bind else "",
                sticky_ttl_s=self._settings.sticky_ttl_seconds,
            )
        try:
            await self._store.settle(settlement, now)
        finally:
            self._notify()

    async def _grant(
        self,
        pick: leases.Pick,
        by_id: dict[str, AccountConfig],
        model: str,
        now: float,
    ) -> Lease | None:
        claims = [Claim(account_id, by_id[account_id].max_concurrency) for account_id in pick.order]
        lease_id = os.urandom(16).hex()
        ttl = self._settings.lease_ttl_seconds
        if not self._shield_grants:
            granted = await self._store.try_acquire(claims, model, lease_id, ttl, now)
        else:
            attempt = asyncio.ensure_future(self._store.try_acquire(claims, model, lease_id, ttl, now))
            try:
                granted = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                # The store may grant after our caller left: give that slot back, do not leak it.
                attempt.add_done_callback(lambda done: self._give_back(done, lease_id))
                raise
        if granted is None:
            return None
        return Lease(
            lease_id=lease_id,
            account_id=granted,
            model=model,
            sticky=granted == pick.sticky_account,
            ttl_s=ttl,
        )

    def _give_back(self, done: asyncio.Future[str | None], lease_id: str) -> None:
        if done.cancelled() or done.exception() is not None or done.result() is None:
            return
        account_id = done.result()
        assert account_id is not None
        released = asyncio.ensure_future(self._store.release(account_id, lease_id, self._clock()))
        self._background.add(released)
        released.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        """Stop following the store's changes (a no-op for a store without a feed)."""
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _follow_changes(self) -> None:
        """Start following the feed, lazily: only a service that ever waits needs it."""
        if self._feed is not None and (self._follower is None or self._follower.done()):
            self._follower = asyncio.create_task(self._follow(self._feed))

    async def _follow(self, feed: ChangeFeed) -> None:
        # Every message (including the first, "now listening") wakes the waiters to look again.
        # While the feed is down they still wake every recheck_s, so a retry at that pace loses
        # nothing but latency.
        while True:
            try:
                async for _ in feed.changes():
                    self._notify()
            except Exception as exc:
                _log.warning("scheduler change feed lost, retrying in %.1f s: %s", self._recheck_s, exc)
            await asyncio.sleep(self._recheck_s)
