"""``RedisStore`` as replicas see it: two stores on two clients share one state through Redis.

The contract suite (``test_store_contract.py``) already runs every ``SchedulerStore`` rule against
Redis; these tests cover what only a shared store has: replicas racing for slots, state one
replica writes and another reads, key expiry in real time, a Redis that lost its state, and
replicas waking each other's waiters.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from kestrel.scheduler import (
    Completion,
    Lease,
    LeaseRequest,
    MemoryStore,
    Outcome,
    RedisStore,
    SchedulerService,
)
from kestrel.scheduler.leases import Backoff, Effect
from kestrel.scheduler.ratelimits import Quota
from kestrel.scheduler.store import Claim

from .factories import account, settings

NOW = 1_700_000_000.0
MODEL = "claude-x"


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[tuple[aioredis.Redis, aioredis.Redis]]:
    """Two clients, one per replica: no connection or script cache is shared between them."""
    first, second = aioredis.Redis.from_url(redis_url), aioredis.Redis.from_url(redis_url)
    yield first, second
    await first.aclose()
    await second.aclose()


@pytest.fixture
def replicas(clients: tuple[aioredis.Redis, aioredis.Redis], redis_prefix: str) -> tuple[RedisStore, RedisStore]:
    return RedisStore(clients[0], redis_prefix), RedisStore(clients[1], redis_prefix)


async def keys_under(client: aioredis.Redis, prefix: str) -> dict[str, int]:
    """Live keys under ``prefix`` with their PTTL (-1: no expiry)."""
    found = {}
    async for key in client.scan_iter(match=prefix + "*", count=1000):
        ttl = await client.pttl(key)
        if ttl != -2:  # expired between SCAN and PTTL
            found[key.decode()] = ttl
    return found


async def test_two_replicas_never_exceed_max_concurrency_in_a_burst(
    replicas: tuple[RedisStore, RedisStore],
) -> None:
    claims = [Claim("a", 5), Claim("b", 3)]

    async def attempt(n: int) -> str | None:
        return await replicas[n % 2].try_acquire(claims, MODEL, f"lease-{n}", 60, NOW)

    granted = await asyncio.gather(*(attempt(n) for n in range(200)))
    assert (granted.count("a"), granted.count("b"), granted.count(None)) == (5, 3, 192)
    snapshot = await replicas[1].snapshot(["a", "b"], MODEL, "", NOW)
    assert (snapshot.accounts["a"].in_flight, snapshot.accounts["b"].in_flight) == (5, 3)


async def test_two_replicas_never_exceed_max_concurrency_under_churn(
    replicas: tuple[RedisStore, RedisStore],
) -> None:
    limit, holding, most = 4, 0, 0

    async def worker(n: int) -> int:
        nonlocal holding, most
        store, granted = replicas[n % 2], 0
        for i in range(15):
            lease_id = f"w{n}-{i}"
            if await store.try_acquire([Claim("a", limit)], MODEL, lease_id, 60, NOW) is None:
                continue
            # Counted from the grant's reply to the release's request: inside the span the slot is
            # held in Redis, so this count can never exceed what Redis allows.
            holding += 1
            most = max(most, holding)
            assert holding <= limit
            await asyncio.sleep(0.001)
            holding -= 1
            assert await store.release("a", lease_id, NOW)
            granted += 1
        return granted

    total = sum(await asyncio.gather(*(worker(n) for n in range(20))))
    assert total > limit and most > 1  # slots were reused, and held at the same time


async def test_state_written_by_one_replica_is_seen_by_the_other(
    replicas: tuple[RedisStore, RedisStore],
) -> None:
    one, other = replicas
    await one.apply("a", MODEL, Effect(cool_until=NOW + 30), NOW)
    await one.apply("b", MODEL, Effect(backoff=Backoff(1.0, 60.0)), NOW)
    await one.bind_session("s1", MODEL, "b", 100, NOW)
    snapshot = await other.snapshot(["a", "b"], MODEL, "s1", NOW + 0.5)
    assert snapshot.accounts["a"].cooling_until == NOW + 30
    assert snapshot.accounts["b"].backoff_until == NOW + 1
    assert snapshot.sticky_account == "b"
    claims = [Claim("a", 5), Claim("b", 5)]
    assert await other.try_acquire(claims, MODEL, "l1", 60, NOW + 0.5) is None
    assert await other.try_acquire(claims, MODEL, "l2", 60, NOW + 1) == "b"
    assert await one.release("b", "l2", NOW + 1)


async def test_a_lease_never_released_frees_its_slot_in_real_time(
    clients: tuple[aioredis.Redis, aioredis.Redis], redis_prefix: str
) -> None:
    one, other = (RedisStore(client, redis_prefix, expiry_slack_s=0.05) for client in clients)
    assert await one.try_acquire([Claim("a", 1)], MODEL, "crashed", 0.2, time.time()) == "a"
    assert await other.try_acquire([Claim("a", 1)], MODEL, "l1", 0.2, time.time()) is None
    await asyncio.sleep(0.25)
    assert await other.try_acquire([Claim("a", 1)], MODEL, "l2", 0.2, time.time()) == "a"
    await asyncio.sleep(0.35)  # l2 expired and the slack passed: the lease set itself is gone
    assert f"{redis_prefix}lease:a" not in await keys_under(clients[0], redis_prefix)


async def test_every_key_expires_so_nothing_grows_without_bound(
    clients: tuple[aioredis.Redis, aioredis.Redis], redis_prefix: str
) -> None:
    store = RedisStore(clients[0], redis_prefix, expiry_slack_s=0.05, idle_ttl_s=0.3)
    now = time.time()
    for n in range(200):  # leases nobody releases, on five accounts
        await store.try_acquire([Claim(f"acct-{n % 5}", 1000)], MODEL, f"l{n}", 0.2, now)
    for n in range(30):  # cooldowns and quota readings on many models, bindings of many sessions
        await store.apply("acct-0", f"model-{n}", Effect(cool_until=now + 0.2), now)
        await store.apply("acct-1", f"model-{n}", Effect(clear_errors=True, quota=Quota(0.5, now + 0.2)), now)
        await store.bind_session(f"session-{n}", MODEL, "acct-2", 0.2, now)
    await store.apply("acct-3", MODEL, Effect(backoff=Backoff(0.2, 0.2)), now)
    keys = await keys_under(clients[0], redis_prefix)
    assert len(keys) == 5 + 5 + 60 + 30  # lease sets, health hashes, model hashes, bindings
    assert all(ttl > 0 for ttl in keys.values()), keys
    # Health outlives its last block by the idle TTL; everything else only by the slack.
    assert max(ttl for key, ttl in keys.items() if ":health:" not in key) <= 250
    await asyncio.sleep(0.8)  # the longest: acct-3's health, 0.2 s backoff + 0.3 s idle
    assert await keys_under(clients[0], redis_prefix) == {}


async def test_a_redis_that_lost_its_state_forgets_leases_harmlessly(
    clients: tuple[aioredis.Redis, aioredis.Redis], redis_prefix: str
) -> None:
    scheduler = SchedulerService([account("a", max_concurrency=1)], settings(), RedisStore(clients[0], redis_prefix))
    held = await scheduler.acquire(LeaseRequest("r1", MODEL, session_id="s1"))
    assert isinstance(held, Lease)
    await clients[0].delete(*(await keys_under(clients[0], redis_prefix)))  # what a restart without persistence does
    again = await scheduler.acquire(LeaseRequest("r2", MODEL))
    assert isinstance(again, Lease)  # the forgotten lease no longer holds the only slot
    await scheduler.complete(held, Completion(Outcome.SUCCESS, 200, session_id="s1"))
    await scheduler.complete(again, Completion(Outcome.SUCCESS, 200))
    snapshot = await RedisStore(clients[1], redis_prefix).snapshot(["a"], MODEL, "s1", time.time())
    assert snapshot.accounts["a"].in_flight == 0
    assert snapshot.sticky_account == "a"  # the success bound the session again


async def test_a_waiter_wakes_when_another_replica_completes_a_lease(
    clients: tuple[aioredis.Redis, aioredis.Redis], redis_prefix: str
) -> None:
    accounts = [account("a", max_concurrency=1)]
    # A recheck far beyond the test's bounds: only the change feed can end the wait in time.
    one, other = (
        SchedulerService(accounts, settings(), RedisStore(client, redis_prefix), recheck_s=10.0) for client in clients
    )
    try:
        held = await one.acquire(LeaseRequest("r1", MODEL))
        assert isinstance(held, Lease)
        waiter = asyncio.create_task(other.acquire(LeaseRequest("r2", MODEL, max_wait_s=5)))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        started = time.monotonic()
        await one.complete(held, Completion(Outcome.SUCCESS, 200))
        result = await asyncio.wait_for(waiter, 2)
        assert isinstance(result, Lease) and result.account_id == "a"
        assert time.monotonic() - started < 0.5
    finally:
        await one.aclose()
        await other.aclose()


async def test_the_change_feed_says_when_it_listens_and_names_the_account(
    replicas: tuple[RedisStore, RedisStore],
) -> None:
    feed = replicas[1].changes()
    assert await asyncio.wait_for(anext(feed), 2) == ""
    await replicas[0].try_acquire([Claim("a", 1)], MODEL, "l1", 60, NOW)
    assert await replicas[0].release("a", "l1", NOW)
    await replicas[0].apply("b", MODEL, Effect(cool_until=NOW + 5), NOW)
    assert [await asyncio.wait_for(anext(feed), 2) for _ in range(2)] == ["a", "b"]
    await feed.aclose()


def random_ops(seed: int, steps: int, held: dict[str, str]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """A random sequence of store calls over a few accounts, models and sessions.

    ``held`` maps the lease ids granted so far to their accounts (the caller fills it in), so that
    most releases and renewals name a real lease, some of them expired already.
    """
    rng = random.Random(seed)
    accounts, models, sessions = ["a", "b", "c"], ["m1", "m2"], ["", "s1", "s2"]
    now = NOW
    for step in range(steps):
        now += rng.choice([0.0, 0.0, 0.5, 1.0, 3.0, 20.0])
        kind = rng.choice(["acquire", "acquire", "release", "renew", "apply", "bind", "snapshot"])
        if kind == "acquire":
            claims = [Claim(a, rng.randint(1, 3)) for a in rng.sample(accounts, rng.randint(1, 3))]
            yield kind, (claims, rng.choice(models), f"l{step}", rng.choice([1.0, 5.0, 60.0]), now)
        elif kind in ("release", "renew") and held:
            lease_id = rng.choice(list(held)[-4:])  # recent ones: mostly still live
            account_id = held[lease_id] if rng.random() < 0.8 else rng.choice(accounts)
            args = (account_id, lease_id) + ((rng.choice([1.0, 30.0]),) if kind == "renew" else ())
            yield kind, (*args, now)
        elif kind == "apply":
            effect = rng.choice(
                [
                    Effect(cool_until=now + rng.choice([0.5, 10.0, 40.0])),
                    Effect(backoff=Backoff(1.0, 8.0)),
                    Effect(clear_errors=True, quota=Quota(rng.random(), now + rng.choice([1.0, 30.0]))),
                    Effect(clear_errors=True),
                    Effect(auth_until=now + 15),
                ]
            )
            yield kind, (rng.choice(accounts), rng.choice(models), effect, now)
        elif kind == "bind":
            yield kind, (rng.choice(sessions), rng.choice(models), rng.choice(accounts), rng.choice([2.0, 50.0]), now)
        yield "snapshot", (accounts, rng.choice(models), rng.choice(sessions), now)


@pytest.mark.parametrize("seed", range(6))
async def test_redis_answers_exactly_as_memory_does(
    seed: int, clients: tuple[aioredis.Redis, aioredis.Redis], redis_prefix: str
) -> None:
    memory, shared = MemoryStore(), RedisStore(clients[0], redis_prefix)
    held: dict[str, str] = {}
    for kind, args in random_ops(seed, 150, held):
        method = {"acquire": "try_acquire", "bind": "bind_session"}.get(kind, kind)
        expected = await getattr(memory, method)(*args)
        assert await getattr(shared, method)(*args) == expected, (kind, args)
        if kind == "acquire" and expected is not None:
            held[args[2]] = expected
