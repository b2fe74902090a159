"""``SchedulerService``: rotation, stickiness, the bounded wait, and the Exhausted answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from kestrel.common.config import AccountConfig
from kestrel.scheduler import (
    AccountState,
    Completion,
    Exhausted,
    ExhaustedReason,
    Lease,
    LeaseClient,
    LeaseRequest,
    MemoryStore,
    Outcome,
    SchedulerService,
)
from kestrel.scheduler.store import Claim

from .factories import ManualClock, account, settings

MODEL = "claude-sonnet-4-5"
OK = Completion(Outcome.SUCCESS, 200)


def service(
    accounts: Sequence[AccountConfig],
    clock: ManualClock | None = None,
    recheck_s: float = 30.0,
    **overrides: float,
) -> SchedulerService:
    # A long recheck proves that waits end on events and timers, not on polling.
    return SchedulerService(
        accounts,
        settings(**overrides),
        MemoryStore(),
        clock=clock or time.time,
        recheck_s=recheck_s,
    )


async def lease_of(scheduler: SchedulerService, **fields: Any) -> Lease:
    result = await scheduler.acquire(LeaseRequest("req", MODEL, **fields))
    assert isinstance(result, Lease), result
    return result


def test_the_service_is_a_lease_client() -> None:
    client: LeaseClient = service([account("a")])
    assert client is not None


async def test_no_account_serves_the_model() -> None:
    scheduler = service([account("a", models=("claude-*",))])
    result = await scheduler.acquire(LeaseRequest("r", "gpt-4o", max_wait_s=5))
    assert result == Exhausted(ExhaustedReason.NO_ACCOUNT)


async def test_all_tried() -> None:
    scheduler = service([account("a"), account("b"), account("c", models=("gpt-*",))])
    result = await scheduler.acquire(
        LeaseRequest("r", MODEL, exclude_accounts=frozenset({"a", "b"}), max_wait_s=5)
    )
    assert result == Exhausted(
        ExhaustedReason.ALL_TRIED, 0.0, (AccountState("a", "tried"), AccountState("b", "tried"))
    )


async def test_lease_fields() -> None:
    scheduler = service([account("a")], lease_ttl_seconds=120)
    first, second = await lease_of(scheduler), await lease_of(scheduler)
    assert (first.account_id, first.model, first.ttl_s, first.sticky) == ("a", MODEL, 120, False)
    assert len(first.lease_id) == 32 and int(first.lease_id, 16) >= 0
    assert first.lease_id != second.lease_id


async def test_rotates_away_from_a_rate_limited_account() -> None:
    clock = ManualClock()
    scheduler = service([account("a"), account("b", priority=1)], clock)
    lease = await lease_of(scheduler)
    assert lease.account_id == "a"
    await scheduler.complete(lease, Completion(Outcome.RATE_LIMITED, 429, retry_after_s=20))
    assert (await lease_of(scheduler)).account_id == "b"
    # A cooldown is per model: the same account still serves another one.
    other = await scheduler.acquire(LeaseRequest("r", "claude-haiku-4-5"))
    assert isinstance(other, Lease) and other.account_id == "a"
    clock.advance(20)
    assert (await lease_of(scheduler)).account_id == "a"


async def test_server_errors_back_off_and_auth_errors_block() -> None:
    clock = ManualClock()
    scheduler = service([account("a"), account("b", priority=1), account("c", priority=2)], clock)
    await scheduler.complete(await lease_of(scheduler), Completion(Outcome.OVERLOADED, 529))
    lease = await lease_of(scheduler)
    assert lease.account_id == "b"
    await scheduler.complete(lease, Completion(Outcome.AUTH_ERROR, 401))
    result = await scheduler.acquire(LeaseRequest("r", "claude-haiku-4-5"))
    assert isinstance(result, Lease) and result.account_id == "c"  # backoff and auth: all models
    clock.advance(1.0)  # first backoff step is the 1 s base
    assert (await lease_of(scheduler)).account_id == "a"


async def test_client_errors_and_cancellations_leave_the_account_healthy() -> None:
    scheduler = service([account("a"), account("b", priority=1)], ManualClock())
    await scheduler.complete(await lease_of(scheduler), Completion(Outcome.CLIENT_ERROR, 400))
    await scheduler.complete(await lease_of(scheduler), Completion(Outcome.CANCELLED))
    assert (await lease_of(scheduler)).account_id == "a"


async def test_a_session_sticks_while_healthy_and_moves_when_its_account_cools() -> None:
    clock = ManualClock()
    scheduler = service([account("a"), account("b")], clock)
    first = await lease_of(scheduler, session_id="s1")
    assert (first.account_id, first.sticky) == ("a", False)
    await scheduler.complete(first, Completion(Outcome.SUCCESS, 200, session_id="s1"))

    # Another request makes "a" the busier account, and "b" is the least recently used:
    # only the binding keeps the session on "a".
    busy = await lease_of(scheduler, exclude_accounts=frozenset({"b"}))
    assert busy.account_id == "a"
    again = await lease_of(scheduler, session_id="s1")
    assert (again.account_id, again.sticky) == ("a", True)
    await scheduler.complete(again, Completion(Outcome.RATE_LIMITED, 429, session_id="s1"))

    moved = await lease_of(scheduler, session_id="s1")
    assert (moved.account_id, moved.sticky) == ("b", False)
    await scheduler.complete(moved, Completion(Outcome.SUCCESS, 200, session_id="s1"))
    clock.advance(60)  # "a" has recovered, but the session now lives on "b"
    stays = await lease_of(scheduler, session_id="s1")
    assert (stays.account_id, stays.sticky) == ("b", True)


async def test_a_failed_attempt_does_not_move_the_session() -> None:
    scheduler = service([account("a"), account("b")], ManualClock())
    bound = await lease_of(scheduler, session_id="s1")
    await scheduler.complete(bound, Completion(Outcome.SUCCESS, 200, session_id="s1"))
    other = await lease_of(scheduler, session_id="s1", exclude_accounts=frozenset({"a"}))
    assert other.account_id == "b"
    await scheduler.complete(other, Completion(Outcome.SERVER_ERROR, 500, session_id="s1"))
    assert (await lease_of(scheduler, session_id="s1")).account_id == "a"


async def test_nearly_drained_accounts_are_used_last() -> None:
    scheduler = service([account("a"), account("b")], ManualClock())
    drained = {
        "anthropic-ratelimit-tokens-limit": "1000",
        "anthropic-ratelimit-tokens-remaining": "1",
    }
    await scheduler.complete(
        await lease_of(scheduler), Completion(Outcome.SUCCESS, 200, rate_limit_headers=drained)
    )
    held = await lease_of(scheduler)
    assert held.account_id == "b"
    assert (await lease_of(scheduler)).account_id == "b"  # b: 1 in flight, still above the limit


async def test_a_crashed_caller_gives_its_slot_back_after_the_lease_ttl() -> None:
    clock = ManualClock()
    scheduler = service([account("a", max_concurrency=1)], clock, lease_ttl_seconds=60)
    lease = await lease_of(scheduler)
    assert isinstance(await scheduler.acquire(LeaseRequest("r", MODEL)), Exhausted)
    clock.advance(30)
    assert await scheduler.renew(lease)
    clock.advance(59)
    assert isinstance(await scheduler.acquire(LeaseRequest("r", MODEL)), Exhausted)
    clock.advance(1)
    assert not await scheduler.renew(lease)
    assert (await lease_of(scheduler)).account_id == "a"


async def test_completing_twice_or_for_an_unknown_account_is_harmless() -> None:
    scheduler = service([account("a", max_concurrency=1)], ManualClock())
    lease = await lease_of(scheduler)
    await scheduler.complete(lease, OK)
    await scheduler.complete(lease, OK)
    await scheduler.complete(Lease("x", "ghost", MODEL), Completion(Outcome.AUTH_ERROR, 401))
    held = await lease_of(scheduler)
    assert isinstance(await scheduler.acquire(LeaseRequest("r", MODEL)), Exhausted)
    await scheduler.complete(held, OK)


async def test_full_without_waiting_answers_at_once() -> None:
    scheduler = service([account("a", max_concurrency=1)])
    await lease_of(scheduler)
    started = time.monotonic()
    result = await scheduler.acquire(LeaseRequest("r", MODEL))
    assert time.monotonic() - started < 0.3
    assert result == Exhausted(ExhaustedReason.ALL_BUSY, 0.0, (AccountState("a", "full"),))


async def test_the_wait_ends_as_soon_as_a_lease_is_released() -> None:
    scheduler = service([account("a", max_concurrency=1)])
    held = await lease_of(scheduler)

    async def release_soon() -> None:
        await asyncio.sleep(0.05)
        await scheduler.complete(held, OK)

    started = time.monotonic()
    releaser = asyncio.create_task(release_soon())
    result = await scheduler.acquire(LeaseRequest("r", MODEL, max_wait_s=5))
    elapsed = time.monotonic() - started
    await releaser
    assert isinstance(result, Lease) and result.account_id == "a"
    assert 0.04 < elapsed < 0.5


async def test_each_release_wakes_one_more_waiter() -> None:
    scheduler = service([account("a", max_concurrency=1)])
    held = await lease_of(scheduler)
    waiters = [
        asyncio.create_task(scheduler.acquire(LeaseRequest(f"r{i}", MODEL, max_wait_s=5)))
        for i in range(2)
    ]
    await asyncio.sleep(0.02)
    await scheduler.complete(held, OK)
    done, pending = await asyncio.wait(waiters, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1 and len(pending) == 1
    first = done.pop().result()
    assert isinstance(first, Lease)
    await scheduler.complete(first, OK)
    second = await asyncio.wait_for(pending.pop(), 0.5)
    assert isinstance(second, Lease)


async def test_the_wait_ends_when_a_cooldown_expires() -> None:
    scheduler = service([account("a")])
    lease = await lease_of(scheduler)
    await scheduler.complete(lease, Completion(Outcome.RATE_LIMITED, 429, retry_after_s=0.2))
    started = time.monotonic()
    result = await scheduler.acquire(LeaseRequest("r", MODEL, max_wait_s=5))
    elapsed = time.monotonic() - started
    assert isinstance(result, Lease)
    assert 0.15 < elapsed < 0.6


async def test_exhausted_with_retry_after_once_the_wait_is_over() -> None:
    scheduler = service([account("a"), account("b")])
    await scheduler.complete(
        await lease_of(scheduler), Completion(Outcome.RATE_LIMITED, 429, retry_after_s=30)
    )
    # "b" backs off for 1 s with an attempt still in flight, whose success could clear it.
    in_flight = await lease_of(scheduler)
    await scheduler.complete(await lease_of(scheduler), Completion(Outcome.SERVER_ERROR, 500))
    assert in_flight.account_id == "b"
    started = time.monotonic()
    result = await scheduler.acquire(LeaseRequest("r", MODEL, max_wait_s=0.2))
    elapsed = time.monotonic() - started
    assert 0.15 < elapsed < 0.6
    assert isinstance(result, Exhausted)
    assert result.reason is ExhaustedReason.ALL_BUSY
    assert 0.5 < result.retry_after_s <= 0.85  # b's 1 s backoff ends first
    states = {s.account_id: s for s in result.accounts}
    assert states["a"].state == "cooling" and 29 < states["a"].free_in_s <= 30
    assert states["b"].state == "backoff"


async def test_no_wait_when_nothing_can_free_up_before_the_deadline() -> None:
    scheduler = service([account("a"), account("b")])
    await scheduler.complete(
        await lease_of(scheduler), Completion(Outcome.RATE_LIMITED, 429, retry_after_s=30)
    )
    await scheduler.complete(await lease_of(scheduler), Completion(Outcome.AUTH_ERROR, 401))
    started = time.monotonic()
    result = await scheduler.acquire(LeaseRequest("r", MODEL, max_wait_s=5))
    assert time.monotonic() - started < 0.3
    assert isinstance(result, Exhausted)
    assert 29 < result.retry_after_s <= 30


async def test_the_settings_cap_how_long_a_request_may_wait() -> None:
    scheduler = service([account("a", max_concurrency=1)], max_wait_seconds=0.1)
    await lease_of(scheduler)
    started = time.monotonic()
    result = await scheduler.acquire(LeaseRequest("r", MODEL, max_wait_s=60))
    assert isinstance(result, Exhausted)
    assert time.monotonic() - started < 0.5


class RefusingStore(MemoryStore):
    """A store that says every account is free but never grants: the policy/store race."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def try_acquire(
        self, claims: Sequence[Claim], model: str, lease_id: str, ttl_s: float, now: float
    ) -> str | None:
        self.attempts += 1
        return None


@pytest.mark.parametrize("max_wait", [0.0, 0.2])
async def test_a_lost_race_never_spins(max_wait: float) -> None:
    store = RefusingStore()
    scheduler = SchedulerService([account("a")], settings(), store, recheck_s=0.1)
    result = await scheduler.acquire(LeaseRequest("r", MODEL, max_wait_s=max_wait))
    assert result == Exhausted(ExhaustedReason.ALL_BUSY, 0.0, (AccountState("a", "full"),))
    assert store.attempts <= 2 + 2 * int(max_wait / 0.1)


class FeedStore(MemoryStore):
    """A memory store with a change feed (as Redis has) that fails once, then relays ``pokes``."""

    def __init__(self) -> None:
        super().__init__()
        self.subscriptions = 0
        self.pokes: asyncio.Queue[str] = asyncio.Queue()

    async def changes(self) -> AsyncIterator[str]:
        self.subscriptions += 1
        if self.subscriptions == 1:
            raise ConnectionError("feed down")
        yield ""
        while True:
            yield await self.pokes.get()


async def test_a_change_feed_wakes_waiters_and_is_followed_again_after_it_fails() -> None:
    store = FeedStore()
    scheduler = SchedulerService([account("a", max_concurrency=1)], settings(), store, recheck_s=0.5)
    try:
        held = await lease_of(scheduler)
        waiter = asyncio.create_task(scheduler.acquire(LeaseRequest("r", MODEL, max_wait_s=5)))
        while store.subscriptions < 2:  # the first attempt failed; the retry comes a recheck later
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        # Another replica frees the slot: nothing in this process says so, only the feed.
        assert await store.release("a", held.lease_id, time.time())
        started = time.monotonic()
        store.pokes.put_nowait("a")
        result = await asyncio.wait_for(waiter, 1)
        assert isinstance(result, Lease)
        assert time.monotonic() - started < 0.25
    finally:
        await scheduler.aclose()
    assert store.subscriptions == 2


class _SlowReplyStore(MemoryStore):
    """Grants at once, like a Redis script, but its reply takes a while to come back."""

    remote = True

    async def try_acquire(self, claims: Any, model: str, lease_id: str, ttl_s: float, now: float) -> str | None:
        granted = await super().try_acquire(claims, model, lease_id, ttl_s, now)
        await asyncio.sleep(0.05)
        return granted


async def test_a_grant_that_lands_after_the_caller_left_is_given_back() -> None:
    store = _SlowReplyStore()
    svc = SchedulerService([account("a", max_concurrency=1)], settings(), store, recheck_s=30.0)
    waiting = asyncio.ensure_future(svc.acquire(LeaseRequest("r1", MODEL)))
    await asyncio.sleep(0.01)  # the grant is on its way
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.sleep(0.1)  # the grant landed, and was released
    lease = await svc.acquire(LeaseRequest("r2", MODEL))
    assert isinstance(lease, Lease), "the only slot was returned, not held until its TTL"
