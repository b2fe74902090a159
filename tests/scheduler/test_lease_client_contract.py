"""One behaviour suite for every ``LeaseClient``: the in-process service and the gRPC round trip.

The edge only knows the ``LeaseClient`` contract, so whatever it sees in ``kestrel up`` it must see
in cluster mode: the same accounts, reasons, retry-after times and stickiness. Each test runs
against ``SchedulerService`` called directly and against ``GrpcLeaseClient`` → ``grpc_server`` →
the same kind of service. Times use a manual clock behind the service, so the numbers compared are
exact; only the bounded-wait tests use short real waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

import pytest

from kestrel.common.config import AccountConfig
from kestrel.edge.clients import GrpcLeaseClient
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
from kestrel.scheduler.grpc_server import serve

from .factories import ManualClock, account, settings

MODEL = "claude-sonnet-4-5"
OK = Completion(Outcome.SUCCESS, 200)


class Build(Protocol):
    def __call__(
        self, accounts: Sequence[AccountConfig], clock: ManualClock | None = None, **overrides: float
    ) -> Awaitable[LeaseClient]: ...


@pytest.fixture(params=["in_process", "grpc"])
async def build(request: pytest.FixtureRequest) -> AsyncIterator[Build]:
    """Makes a ``LeaseClient`` over a fresh ``SchedulerService`` with a ``MemoryStore``."""
    cleanups: list[Callable[[], Awaitable[Any]]] = []

    async def make(
        accounts: Sequence[AccountConfig], clock: ManualClock | None = None, **overrides: float
    ) -> LeaseClient:
        # A long recheck: waits must end on events and timers on both sides of the wire.
        service = SchedulerService(
            accounts, settings(**overrides), MemoryStore(), clock=clock or time.time, recheck_s=30.0
        )
        cleanups.append(service.aclose)
        if request.param == "in_process":
            return service
        server = await serve(service, "127.0.0.1:0")
        client = GrpcLeaseClient([server.address], timeout_s=2.0)
        cleanups.append(lambda: server.stop(0))
        cleanups.append(client.aclose)
        return client

    yield make
    for cleanup in reversed(cleanups):
        await cleanup()


async def lease_of(client: LeaseClient, **fields: Any) -> Lease:
    result = await client.acquire(LeaseRequest("req", MODEL, **fields))
    assert isinstance(result, Lease), result
    return result


async def test_lease_fields(build: Build) -> None:
    client = await build([account("a")], lease_ttl_seconds=120)
    first, second = await lease_of(client), await lease_of(client)
    assert (first.account_id, first.model, first.ttl_s, first.sticky) == ("a", MODEL, 120, False)
    assert len(first.lease_id) == 32 and first.lease_id != second.lease_id


async def test_no_account_serves_the_model(build: Build) -> None:
    client = await build([account("a", models=("claude-*",))])
    assert await client.acquire(LeaseRequest("r", "gpt-4o", max_wait_s=5)) == Exhausted(ExhaustedReason.NO_ACCOUNT)


async def test_all_tried(build: Build) -> None:
    client = await build([account("a"), account("b"), account("c", models=("gpt-*",))])
    result = await client.acquire(LeaseRequest("r", MODEL, exclude_accounts=frozenset({"a", "b"}), max_wait_s=5))
    assert result == Exhausted(
        ExhaustedReason.ALL_TRIED, 0.0, (AccountState("a", "tried"), AccountState("b", "tried"))
    )


async def test_rotates_away_from_a_rate_limited_account_per_model(build: Build) -> None:
    clock = ManualClock()
    client = await build([account("a"), account("b", priority=1)], clock)
    lease = await lease_of(client)
    assert lease.account_id == "a"
    await client.complete(lease, Completion(Outcome.RATE_LIMITED, 429, retry_after_s=20))
    assert (await lease_of(client)).account_id == "b"
    other = await client.acquire(LeaseRequest("r", "claude-haiku-4-5"))
    assert isinstance(other, Lease) and other.account_id == "a"
    clock.advance(20)
    assert (await lease_of(client)).account_id == "a"


async def test_exhausted_carries_the_reason_retry_after_and_account_states(build: Build) -> None:
    clock = ManualClock()
    client = await build([account("a"), account("b", priority=1)], clock)
    await client.complete(await lease_of(client), Completion(Outcome.RATE_LIMITED, 429, retry_after_s=30))
    await client.complete(await lease_of(client), Completion(Outcome.AUTH_ERROR, 401))
    clock.advance(0.25)
    result = await client.acquire(LeaseRequest("r", MODEL, max_wait_s=5))
    assert result == Exhausted(
        ExhaustedReason.ALL_BUSY,
        29.75,
        (AccountState("a", "cooling", 29.75), AccountState("b", "auth", 299.75)),
    )


async def test_a_session_sticks_while_healthy_and_moves_when_its_account_cools(build: Build) -> None:
    clock = ManualClock()
    client = await build([account("a"), account("b")], clock)
    first = await lease_of(client, session_id="s1")
    assert (first.account_id, first.sticky) == ("a", False)
    await client.complete(first, Completion(Outcome.SUCCESS, 200, session_id="s1"))
    busy = await lease_of(client, exclude_accounts=frozenset({"b"}))
    assert busy.account_id == "a"
    again = await lease_of(client, session_id="s1")
    assert (again.account_id, again.sticky) == ("a", True)
    await client.complete(again, Completion(Outcome.RATE_LIMITED, 429, session_id="s1"))
    moved = await lease_of(client, session_id="s1")
    assert (moved.account_id, moved.sticky) == ("b", False)


async def test_rate_limit_headers_reach_the_scheduler(build: Build) -> None:
    client = await build([account("a"), account("b")], ManualClock())
    drained = {"anthropic-ratelimit-tokens-limit": "1000", "anthropic-ratelimit-tokens-remaining": "1"}
    await client.complete(await lease_of(client), Completion(Outcome.SUCCESS, 200, rate_limit_headers=drained))
    assert (await lease_of(client)).account_id == "b"
    assert (await lease_of(client)).account_id == "b"


async def test_renew_extends_a_live_lease_and_refuses_an_expired_one(build: Build) -> None:
    clock = ManualClock()
    client = await build([account("a", max_concurrency=1)], clock, lease_ttl_seconds=60)
    lease = await lease_of(client)
    clock.advance(30)
    assert await client.renew(lease) is True
    clock.advance(59)
    assert isinstance(await client.acquire(LeaseRequest("r", MODEL)), Exhausted)
    clock.advance(1)
    assert await client.renew(lease) is False
    assert (await lease_of(client)).account_id == "a"


async def test_completing_twice_or_for_an_unknown_account_is_harmless(build: Build) -> None:
    client = await build([account("a", max_concurrency=1)], ManualClock())
    lease = await lease_of(client)
    await client.complete(lease, OK)
    await client.complete(lease, OK)
    await client.complete(Lease("x", "ghost", MODEL), Completion(Outcome.AUTH_ERROR, 401))
    await lease_of(client)
    assert isinstance(await client.acquire(LeaseRequest("r", MODEL)), Exhausted)


async def test_the_bounded_wait_ends_when_a_lease_is_released(build: Build) -> None:
    client = await build([account("a", max_concurrency=1)])
    held = await lease_of(client)

    async def release_soon() -> None:
        await asyncio.sleep(0.05)
        await client.complete(held, OK)

    started = time.monotonic()
    releaser = asyncio.create_task(release_soon())
    result = await client.acquire(LeaseRequest("r", MODEL, max_wait_s=5))
    await releaser
    assert isinstance(result, Lease)
    assert 0.04 < time.monotonic() - started < 0.5


async def test_the_bounded_wait_answers_exhausted_when_it_runs_out(build: Build) -> None:
    client = await build([account("a", max_concurrency=1)])
    await lease_of(client)
    started = time.monotonic()
    result = await client.acquire(LeaseRequest("r", MODEL, max_wait_s=0.2))
    assert 0.15 < time.monotonic() - started < 0.6
    assert result == Exhausted(ExhaustedReason.ALL_BUSY, 0.0, (AccountState("a", "full"),))
