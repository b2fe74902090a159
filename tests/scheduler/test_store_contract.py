"""The ``SchedulerStore`` contract, run against every adapter.

Add an adapter by appending an async context manager factory to ``STORE_FACTORIES``; every test
here then runs against it too. A factory gets the pytest request, so only the adapters that need a
server ask for one (``redis_url`` starts or finds a Redis; see ``tests/servers.py``). Times are
explicit ``now`` values, so no test sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from kestrel.scheduler.leases import Backoff, Effect
from kestrel.scheduler.ratelimits import Quota
from kestrel.scheduler.store import Claim, MemoryStore, RedisStore, SchedulerStore, Settlement

NOW = 1_700_000_000.0
MODEL = "claude-x"


@contextlib.asynccontextmanager
async def memory_store(request: pytest.FixtureRequest) -> AsyncIterator[SchedulerStore]:
    yield MemoryStore()


@contextlib.asynccontextmanager
async def redis_store(request: pytest.FixtureRequest) -> AsyncIterator[SchedulerStore]:
    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    client = aioredis.Redis.from_url(url)
    try:
        yield RedisStore(client, prefix)
    finally:
        await client.aclose()


StoreFactory = Callable[[pytest.FixtureRequest], contextlib.AbstractAsyncContextManager[SchedulerStore]]

STORE_FACTORIES: list[Any] = [
    pytest.param(memory_store, id="memory"),
    pytest.param(redis_store, id="redis"),
]


@pytest.fixture(params=STORE_FACTORIES)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SchedulerStore]:
    factory: StoreFactory = request.param
    async with factory(request) as adapter:
        yield adapter


async def in_flight(store: SchedulerStore, account_id: str, now: float, model: str = MODEL) -> int:
    snapshot = await store.snapshot([account_id], model, "", now)
    return snapshot.accounts[account_id].in_flight


async def test_concurrent_acquires_never_exceed_max_concurrency(store: SchedulerStore) -> None:
    claims = [Claim("a", 3)]

    async def attempt(n: int) -> str | None:
        await asyncio.sleep(0)
        return await store.try_acquire(claims, MODEL, f"lease-{n}", 60, NOW)

    granted = await asyncio.gather(*(attempt(n) for n in range(50)))
    assert granted.count("a") == 3
    assert granted.count(None) == 47
    assert await in_flight(store, "a", NOW) == 3


async def test_acquire_falls_through_to_the_next_claim(store: SchedulerStore) -> None:
    claims = [Claim("a", 1), Claim("b", 1)]
    assert await store.try_acquire(claims, MODEL, "l1", 60, NOW) == "a"
    assert await store.try_acquire(claims, MODEL, "l2", 60, NOW) == "b"
    assert await store.try_acquire(claims, MODEL, "l3", 60, NOW) is None


async def test_acquire_marks_the_account_used(store: SchedulerStore) -> None:
    await store.try_acquire([Claim("a", 2)], MODEL, "l1", 60, NOW + 7)
    snapshot = await store.snapshot(["a", "b"], MODEL, "", NOW + 7)
    assert snapshot.accounts["a"].last_used == NOW + 7
    assert snapshot.accounts["b"].last_used == 0.0


async def test_release_frees_the_slot_once(store: SchedulerStore) -> None:
    assert await store.try_acquire([Claim("a", 1)], MODEL, "l1", 60, NOW) == "a"
    assert await store.try_acquire([Claim("a", 1)], MODEL, "l2", 60, NOW) is None
    assert not await store.release("b", "l1", NOW)  # a lease is released by its own account
    assert await store.release("a", "l1", NOW)
    assert not await store.release("a", "l1", NOW)
    assert await in_flight(store, "a", NOW) == 0
    assert await store.try_acquire([Claim("a", 1)], MODEL, "l3", 60, NOW) == "a"


async def test_an_expired_lease_frees_its_slot(store: SchedulerStore) -> None:
    await store.try_acquire([Claim("a", 1)], MODEL, "l1", 10, NOW)
    assert await in_flight(store, "a", NOW + 9.9) == 1
    assert await in_flight(store, "a", NOW + 10) == 0
    assert await store.try_acquire([Claim("a", 1)], MODEL, "l2", 10, NOW + 10) == "a"
    assert not await store.renew("a", "l1", 10, NOW + 10)
    assert not await store.release("a", "l1", NOW + 10)
    assert await in_flight(store, "a", NOW + 10) == 1


async def test_renew_extends_a_live_lease(store: SchedulerStore) -> None:
    await store.try_acquire([Claim("a", 1)], MODEL, "l1", 10, NOW)
    assert await store.renew("a", "l1", 10, NOW + 5)
    assert await in_flight(store, "a", NOW + 12) == 1
    assert await in_flight(store, "a", NOW + 15) == 0
    assert not await store.renew("a", "unknown", 10, NOW)


async def test_sticky_binding_lasts_its_ttl_per_model(store: SchedulerStore) -> None:
    await store.bind_session("s1", MODEL, "a", 100, NOW)
    assert (await store.snapshot(["a"], MODEL, "s1", NOW + 99)).sticky_account == "a"
    assert (await store.snapshot(["a"], "other-model", "s1", NOW + 1)).sticky_account is None
    assert (await store.snapshot(["a"], MODEL, "s2", NOW + 1)).sticky_account is None
    assert (await store.snapshot(["a"], MODEL, "", NOW + 1)).sticky_account is None
    assert (await store.snapshot(["a"], MODEL, "s1", NOW + 100)).sticky_account is None


async def test_rebinding_moves_the_session_and_restarts_its_ttl(store: SchedulerStore) -> None:
    await store.bind_session("s1", MODEL, "a", 100, NOW)
    await store.bind_session("s1", MODEL, "b", 100, NOW + 50)
    assert (await store.snapshot(["a", "b"], MODEL, "s1", NOW + 120)).sticky_account == "b"


async def test_cooldown_applies_to_one_model_and_only_extends(store: SchedulerStore) -> None:
    await store.apply("a", MODEL, Effect(cool_until=NOW + 30), NOW)
    await store.apply("a", MODEL, Effect(cool_until=NOW + 5), NOW)
    snapshot = await store.snapshot(["a"], MODEL, "", NOW)
    assert snapshot.accounts["a"].cooling_until == NOW + 30
    other = await store.snapshot(["a"], "other-model", "", NOW)
    assert other.accounts["a"].cooling_until == 0.0
    assert await store.try_acquire([Claim("a", 5)], MODEL, "l1", 60, NOW + 29) is None
    assert await store.try_acquire([Claim("a", 5)], "other-model", "l2", 60, NOW) == "a"
    assert await store.try_acquire([Claim("a", 5)], MODEL, "l3", 60, NOW + 30) == "a"


async def test_backoff_counts_consecutive_failures_until_success(store: SchedulerStore) -> None:
    backoff = Effect(backoff=Backoff(1.0, 60.0))
    for _ in range(3):
        await store.apply("a", MODEL, backoff, NOW)
    view = (await store.snapshot(["a"], "any-model", "", NOW)).accounts["a"]
    assert view.consecutive_errors == 3
    assert view.backoff_until == NOW + 4.0  # 1 * 2**(3-1)
    assert await store.try_acquire([Claim("a", 5)], "any-model", "l1", 60, NOW + 3) is None

    await store.apply("a", MODEL, Effect(clear_errors=True), NOW + 3)
    view = (await store.snapshot(["a"], MODEL, "", NOW + 3)).accounts["a"]
    assert (view.consecutive_errors, view.backoff_until) == (0, 0.0)
    await store.apply("a", MODEL, backoff, NOW + 3)
    view = (await store.snapshot(["a"], MODEL, "", NOW + 3)).accounts["a"]
    assert (view.consecutive_errors, view.backoff_until) == (1, NOW + 4.0)


async def test_auth_block_and_quota_reading(store: SchedulerStore) -> None:
    quota = Quota(0.02, NOW + 40)
    await store.apply("a", MODEL, Effect(auth_until=NOW + 300), NOW)
    await store.apply("b", MODEL, Effect(clear_errors=True, quota=quota), NOW)
    snapshot = await store.snapshot(["a", "b"], MODEL, "", NOW)
    assert snapshot.accounts["a"].auth_until == NOW + 300
    assert snapshot.accounts["b"].quota == quota
    assert (await store.snapshot(["b"], "other-model", "", NOW)).accounts["b"].quota is None
    claims = [Claim("a", 5), Claim("b", 5)]
    assert await store.try_acquire(claims, MODEL, "l1", 60, NOW + 299) == "b"


async def test_an_empty_effect_changes_nothing(store: SchedulerStore) -> None:
    before = await store.snapshot(["a"], MODEL, "", NOW)
    await store.apply("a", MODEL, Effect(), NOW)
    assert await store.snapshot(["a"], MODEL, "", NOW) == before


async def test_a_lease_id_is_granted_once(store: SchedulerStore) -> None:
    assert await store.try_acquire([Claim("a", 5)], MODEL, "l1", 60, NOW) == "a"
    with pytest.raises(ValueError):
        await store.try_acquire([Claim("a", 5)], MODEL, "l1", 60, NOW)
    assert await in_flight(store, "a", NOW) == 1


async def test_a_new_quota_reading_replaces_the_old_one(store: SchedulerStore) -> None:
    await store.apply("a", MODEL, Effect(quota=Quota(0.5, NOW + 100)), NOW)
    await store.apply("a", MODEL, Effect(quota=Quota(0.9, NOW + 10)), NOW + 1)
    assert (await store.snapshot(["a"], MODEL, "", NOW + 1)).accounts["a"].quota == Quota(0.9, NOW + 10)


async def test_ids_with_separators_do_not_collide(store: SchedulerStore) -> None:
    await store.apply("a", "b:c", Effect(cool_until=NOW + 30), NOW)
    await store.bind_session("s:1", "m", "a", 100, NOW)
    assert (await store.snapshot(["a:b"], "c", "", NOW)).accounts["a:b"].cooling_until == 0.0
    assert (await store.snapshot(["a"], "1:m", "s", NOW)).sticky_account is None
    assert (await store.snapshot(["a"], "m", "s:1", NOW)).sticky_account == "a"


async def test_settle_releases_applies_and_binds_in_one_call(store: SchedulerStore) -> None:
    assert await store.try_acquire([Claim("a", 1)], MODEL, "l1", 60, NOW) == "a"
    quota = Quota(0.5, NOW + 40)
    effect = Effect(cool_until=NOW + 30, clear_errors=True, quota=quota)
    await store.settle(Settlement("a", "l1", MODEL, effect, session_id="s1", sticky_ttl_s=120), NOW)
    snapshot = await store.snapshot(["a"], MODEL, "s1", NOW + 1)
    assert snapshot.accounts["a"].in_flight == 0
    assert snapshot.accounts["a"].cooling_until == NOW + 30
    assert snapshot.accounts["a"].quota == quota
    assert snapshot.sticky_account == "a"
    assert (await store.snapshot(["a"], MODEL, "s1", NOW + 121)).sticky_account is None
    assert not await store.release("a", "l1", NOW), "already released by settle"


async def test_settle_without_outcome_or_session_only_releases(store: SchedulerStore) -> None:
    assert await store.try_acquire([Claim("a", 1)], MODEL, "l1", 60, NOW) == "a"
    before = await store.snapshot(["a"], MODEL, "s1", NOW)
    await store.settle(Settlement("a", "l1", MODEL), NOW)
    await store.settle(Settlement("a", "l-unknown", MODEL, Effect()), NOW)  # an unknown lease: harmless
    after = await store.snapshot(["a"], MODEL, "s1", NOW)
    assert after.accounts["a"].in_flight == 0
    assert after.sticky_account is None
    assert after.accounts["a"].cooling_until == before.accounts["a"].cooling_until


async def test_redis_settle_survives_flushed_scripts(redis_url: str, redis_prefix: str) -> None:
    """After a Redis restart the scripts are gone: settle still does all three steps."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        store = RedisStore(client, redis_prefix)
        assert await store.try_acquire([Claim("a", 1)], MODEL, "l1", 60, NOW) == "a"
        await client.script_flush()
        await store.settle(Settlement("a", "l1", MODEL, Effect(cool_until=NOW + 30), "s1", 60), NOW)
        snapshot = await store.snapshot(["a"], MODEL, "s1", NOW)
        assert (snapshot.accounts["a"].in_flight, snapshot.accounts["a"].cooling_until) == (0, NOW + 30)
        assert snapshot.sticky_account == "a"
    finally:
        await client.aclose()
