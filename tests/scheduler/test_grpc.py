"""The scheduler over real gRPC on loopback: server, health, deadlines, drain, and edge failover."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator, Sequence

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kestrel.common.serving import free_port
from kestrel.edge.clients import GrpcLeaseClient
from kestrel.edge.clients.scheduler import RETRY_AFTER_S
from kestrel.edge.errors import GatewayError, SchedulerUnavailable
from kestrel.scheduler import (
    Completion,
    Exhausted,
    ExhaustedReason,
    Lease,
    LeaseClient,
    LeaseRequest,
    MemoryStore,
    Outcome,
    SchedulerService,
    wire,
)
from kestrel.scheduler.grpc_server import SERVICE_NAME, SchedulerServer, serve, within_deadline
from kestrel.v1 import scheduler_pb2 as pb
from kestrel.v1 import scheduler_pb2_grpc

from .factories import ManualClock, account, settings

MODEL = "claude-sonnet-4-5"
OK = Completion(Outcome.SUCCESS, 200)


def scheduler(*accounts: str, clock: ManualClock | None = None, max_concurrency: int = 16) -> SchedulerService:
    return SchedulerService(
        [account(a, priority=i, max_concurrency=max_concurrency) for i, a in enumerate(accounts)],
        settings(),
        MemoryStore(),
        clock=clock or time.time,
        recheck_s=30.0,
    )


class Servers:
    """Starts scheduler servers on free loopback ports and stops whatever is left at the end."""

    def __init__(self) -> None:
        self.started: list[SchedulerServer] = []
        self.clients: list[GrpcLeaseClient] = []

    async def start(self, service: LeaseClient) -> SchedulerServer:
        server = await serve(service, "127.0.0.1:0")
        self.started.append(server)
        return server

    def client(self, addresses: Sequence[str], timeout_s: float = 2.0) -> GrpcLeaseClient:
        client = GrpcLeaseClient(addresses, timeout_s)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        for server in self.started:
            await server.stop(0)


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    started = Servers()
    yield started
    await started.close()


@pytest.fixture
def dead_address() -> str:
    """Nothing listens there: connections are refused."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def hung_address() -> Iterator[str]:
    """A socket that accepts connections and never says a word, like a frozen process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


async def acquire_raw(address: str, message: pb.AcquireRequest, timeout: float | None = None) -> pb.AcquireResponse:
    async with grpc.aio.insecure_channel(address) as channel:
        return await scheduler_pb2_grpc.SchedulerStub(channel).Acquire(message, timeout=timeout)


async def lease_of(client: LeaseClient, **fields: object) -> Lease:
    result = await client.acquire(LeaseRequest("req", MODEL, **fields))  # type: ignore[arg-type]
    assert isinstance(result, Lease), result
    return result


# -- the server ---------------------------------------------------------------------------------


async def test_the_health_service_answers_serving(servers: Servers) -> None:
    server = await servers.start(scheduler("a"))
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=1)
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_over_grpc_the_answers_are_the_in_process_answers(servers: Servers) -> None:
    async def transcript(client: LeaseClient, clock: ManualClock) -> list[object]:
        seen: list[object] = []

        async def acquire(**fields: object) -> Lease | Exhausted:
            result = await client.acquire(LeaseRequest("r", MODEL, **fields))  # type: ignore[arg-type]
            seen.append(result if isinstance(result, Exhausted) else (result.account_id, result.sticky, result.ttl_s))
            return result

        first = await acquire(session_id="s")
        assert isinstance(first, Lease)
        await client.complete(first, Completion(Outcome.SUCCESS, 200, session_id="s"))
        sticky = await acquire(session_id="s")
        assert isinstance(sticky, Lease)
        await client.complete(sticky, Completion(Outcome.RATE_LIMITED, 429, retry_after_s=12.5, session_id="s"))
        rotated = await acquire(session_id="s")
        assert isinstance(rotated, Lease)
        await client.complete(rotated, Completion(Outcome.OVERLOADED, 529))
        clock.advance(0.5)
        await acquire(max_wait_s=0)
        await acquire(exclude_accounts=frozenset({"a", "b"}))
        clock.advance(12)
        await acquire(session_id="s")
        return seen

    local_clock, remote_clock = ManualClock(), ManualClock()
    local = await transcript(scheduler("a", "b", clock=local_clock), local_clock)
    server = await servers.start(scheduler("a", "b", clock=remote_clock))
    remote = await transcript(servers.client([server.address]), remote_clock)
    assert remote == local
    assert local[:3] == [("a", False, 600.0), ("a", True, 600.0), ("b", False, 600.0)]
    assert isinstance(local[3], Exhausted) and local[3].reason is ExhaustedReason.ALL_BUSY
    assert local[3].retry_after_s == 0.5  # b's first backoff step (1 s) ends before a's 12.5 s
    assert isinstance(local[4], Exhausted) and local[4].reason is ExhaustedReason.ALL_TRIED


async def test_an_acquire_never_waits_past_the_callers_deadline(servers: Servers) -> None:
    service = scheduler("a", max_concurrency=1)
    server = await servers.start(service)
    await lease_of(service)
    started = time.monotonic()
    reply = await acquire_raw(server.address, pb.AcquireRequest(request_id="r", model=MODEL, max_wait_ms=5000), 0.5)
    elapsed = time.monotonic() - started
    assert 0.3 < elapsed < 0.5  # the wait was cut to the deadline minus the margin, and answered
    assert wire.decode_acquire_response(reply).reason is ExhaustedReason.ALL_BUSY  # type: ignore[union-attr]


def test_the_wait_is_cut_to_the_time_left_minus_the_margin() -> None:
    request = LeaseRequest("r", MODEL, max_wait_s=5)
    assert within_deadline(request, None, 0.1) is request
    assert within_deadline(request, 10, 0.1) is request
    assert within_deadline(request, 0.5, 0.1).max_wait_s == pytest.approx(0.4)
    assert within_deadline(request, 0.05, 0.1).max_wait_s == 0


async def test_invalid_arguments_are_refused(servers: Servers) -> None:
    server = await servers.start(scheduler("a"))
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = scheduler_pb2_grpc.SchedulerStub(channel)
        calls = [
            stub.Acquire(pb.AcquireRequest(request_id="r"), timeout=1),
            stub.Renew(pb.RenewRequest(lease_id="l"), timeout=1),
            stub.Complete(pb.CompleteRequest(lease_id="l", account_id="a", model=MODEL), timeout=1),
        ]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


class Broken:
    """A ``LeaseClient`` whose store is gone."""

    async def acquire(self, request: LeaseRequest) -> Lease | Exhausted:
        raise ConnectionError("store unreachable")

    async def renew(self, lease: Lease) -> bool:
        raise ConnectionError("store unreachable")

    async def complete(self, lease: Lease, completion: Completion) -> None:
        raise ConnectionError("store unreachable")


async def test_a_failing_service_is_internal_and_the_edge_moves_on(servers: Servers) -> None:
    broken, working = await servers.start(Broken()), await servers.start(scheduler("a"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await acquire_raw(broken.address, pb.AcquireRequest(request_id="r", model=MODEL), 1)
    assert caught.value.code() is grpc.StatusCode.INTERNAL
    client = servers.client([broken.address, working.address])
    assert [(await lease_of(client)).account_id for _ in range(3)] == ["a"] * 3


async def test_serving_on_a_taken_port_fails_loudly(servers: Servers) -> None:
    server = await servers.start(scheduler("a"))
    with pytest.raises(OSError, match="cannot listen"):
        await serve(scheduler("a"), server.address)


# -- the drain ------------------------------------------------------------------------------


async def test_a_drain_goes_not_serving_refuses_new_calls_and_lets_acquires_finish(servers: Servers) -> None:
    service = scheduler("a", max_concurrency=1)
    server = await servers.start(service)
    held = await lease_of(service)
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        waiting = asyncio.ensure_future(
            scheduler_pb2_grpc.SchedulerStub(channel).Acquire(
                pb.AcquireRequest(request_id="r", model=MODEL, max_wait_ms=3000), timeout=5
            )
        )
        await asyncio.sleep(0.1)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.ensure_future(server.stop(grace_s=3))
        assert (await asyncio.wait_for(watch.read(), 1)).status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await acquire_raw(server.address, pb.AcquireRequest(request_id="late", model=MODEL), 1)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        await service.complete(held, OK)  # frees the slot the in-flight acquire waits for
        reply = await asyncio.wait_for(waiting, 1)
        assert reply.WhichOneof("result") == "lease"
        await asyncio.wait_for(stopping, 1)


async def test_a_drain_past_its_grace_cancels_the_wait_and_grants_nothing(servers: Servers) -> None:
    service = scheduler("a", max_concurrency=1)
    server = await servers.start(service)
    held = await lease_of(service)
    waiting = asyncio.ensure_future(
        acquire_raw(server.address, pb.AcquireRequest(request_id="r", model=MODEL, max_wait_ms=5000), 5)
    )
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await server.stop(grace_s=0.2)
    assert time.monotonic() - started < 1
    with pytest.raises(grpc.aio.AioRpcError) as cut:
        await waiting
    assert cut.value.code() is grpc.StatusCode.UNAVAILABLE  # the edge fails over on this
    await service.complete(held, OK)
    assert (await lease_of(service)).account_id == "a"  # nothing was granted to the cut call


async def test_stopping_twice_at_once_is_one_drain(servers: Servers) -> None:
    server = await servers.start(scheduler("a"))
    await asyncio.wait_for(asyncio.gather(server.stop(grace_s=1), server.stop(grace_s=0)), 2)
    with pytest.raises(grpc.aio.AioRpcError):
        await acquire_raw(server.address, pb.AcquireRequest(request_id="r", model=MODEL), 0.5)


class LateGranter:
    """Grants a lease only after the caller's deadline, and cannot be interrupted doing it."""

    def __init__(self, inner: SchedulerService) -> None:
        self.inner = inner
        self.completed: list[Completion] = []

    async def acquire(self, request: LeaseRequest) -> Lease | Exhausted:
        result = await self.inner.acquire(request)
        with contextlib.suppress(asyncio.CancelledError):  # a store call that finishes regardless
            await asyncio.sleep(0.4)
        return result

    async def renew(self, lease: Lease) -> bool:
        return await self.inner.renew(lease)

    async def complete(self, lease: Lease, completion: Completion) -> None:
        self.completed.append(completion)
        await self.inner.complete(lease, completion)


async def test_a_lease_granted_for_a_caller_that_went_away_is_given_back(servers: Servers) -> None:
    service = scheduler("a", max_concurrency=1)
    late = LateGranter(service)
    server = await servers.start(late)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await acquire_raw(server.address, pb.AcquireRequest(request_id="r", model=MODEL), 0.1)
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    for _ in range(50):
        if late.completed:
            break
        await asyncio.sleep(0.02)
    assert late.completed == [Completion(Outcome.CANCELLED)]
    assert (await lease_of(service)).account_id == "a"


async def test_a_caller_that_cancels_its_wait_leaves_no_lease_behind(servers: Servers) -> None:
    service = scheduler("a", max_concurrency=1)
    server = await servers.start(service)
    client = servers.client([server.address])
    held = await lease_of(client)
    waiter = asyncio.ensure_future(client.acquire(LeaseRequest("r", MODEL, max_wait_s=5)))
    await asyncio.sleep(0.1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.sleep(0.05)
    await client.complete(held, OK)
    assert (await lease_of(client)).account_id == "a"


# -- the edge's client: failover ------------------------------------------------------------


async def test_acquires_fail_over_when_a_replica_stops(servers: Servers) -> None:
    service = scheduler("a")
    first, second = await servers.start(service), await servers.start(service)
    client = servers.client([first.address, second.address], timeout_s=0.5)
    for _ in range(4):
        await client.complete(await lease_of(client), OK)
    await first.stop(0)
    started = time.monotonic()
    for _ in range(6):
        await client.complete(await lease_of(client), OK)
    assert time.monotonic() - started < 1


async def test_no_replica_answering_is_a_quick_503(dead_address: str, hung_address: str) -> None:
    client = GrpcLeaseClient([dead_address, hung_address], timeout_s=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(SchedulerUnavailable) as caught:
            await client.acquire(LeaseRequest("r", MODEL, max_wait_s=0.2))
        assert time.monotonic() - started < 0.2 + 0.3 + 0.3  # the wait, plus one timeout per replica
    finally:
        await client.aclose()
    error = caught.value
    assert isinstance(error, GatewayError)
    assert (error.status, error.kind, error.retry_after_s) == (503, "overloaded_error", RETRY_AFTER_S)
    assert "127.0.0.1" not in error.message  # the client is not told about the cluster's insides


async def test_a_frozen_replica_costs_one_timeout_then_is_tried_last(servers: Servers, hung_address: str) -> None:
    working = await servers.start(scheduler("a"))
    client = servers.client([hung_address, working.address], timeout_s=0.3)
    started = time.monotonic()
    await client.complete(await lease_of(client), OK)
    assert time.monotonic() - started < 0.3 + 0.3
    started = time.monotonic()
    for _ in range(4):
        await client.complete(await lease_of(client), OK)
    assert time.monotonic() - started < 0.3


class Recording(SchedulerService):
    def __init__(self) -> None:
        super().__init__([account("a")], settings(), MemoryStore())
        self.completed: list[Completion] = []

    async def complete(self, lease: Lease, completion: Completion) -> None:
        self.completed.append(completion)
        await super().complete(lease, completion)


@pytest.mark.parametrize("broken", ["dead", "hung"])
async def test_complete_is_retried_on_the_next_replica(
    servers: Servers, dead_address: str, hung_address: str, broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    service = Recording()
    working = await servers.start(service)
    lease = await lease_of(service)
    client = servers.client([dead_address if broken == "dead" else hung_address, working.address], timeout_s=0.3)
    completion = Completion(Outcome.RATE_LIMITED, 429, retry_after_s=3, session_id="s")
    with caplog.at_level(logging.WARNING):
        await client.complete(lease, completion)  # the broken replica is first in turn
    assert service.completed == [completion]
    assert not caplog.records


async def test_a_complete_nobody_takes_is_logged_without_secrets_and_dropped(
    dead_address: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = GrpcLeaseClient([dead_address], timeout_s=0.3)
    headers = {"anthropic-ratelimit-tokens-remaining": "secret-ish-7d1c"}
    try:
        with caplog.at_level(logging.WARNING):
            await client.complete(Lease("l1", "acct", MODEL), Completion(Outcome.SUCCESS, rate_limit_headers=headers))
            assert await client.renew(Lease("l1", "acct", MODEL)) is False
    finally:
        await client.aclose()
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "l1" in text and "acct" in text and "TTL" in text
    assert "secret-ish" not in text


async def test_a_closed_client_answers_like_an_unreachable_cluster(servers: Servers) -> None:
    server = await servers.start(scheduler("a"))
    client = GrpcLeaseClient([server.address], timeout_s=0.3)
    lease = await lease_of(client)
    await client.aclose()
    with pytest.raises(SchedulerUnavailable):
        await client.acquire(LeaseRequest("r", MODEL))
    await client.complete(lease, OK)  # logged, not raised


def test_the_client_needs_addresses_and_a_timeout() -> None:
    with pytest.raises(ValueError, match="address"):
        GrpcLeaseClient([], 1)
    with pytest.raises(ValueError, match="timeout"):
        GrpcLeaseClient(["127.0.0.1:1"], 0)
