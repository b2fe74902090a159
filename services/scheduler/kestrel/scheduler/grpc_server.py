"""The scheduler's gRPC entrypoint: ``kestrel.v1.Scheduler`` served on top of any ``LeaseClient``.

Thin on purpose: each method decodes (``wire``), calls the service, encodes. What it adds is what
only the transport knows about:

- **The caller's deadline.** An ``Acquire`` may hold for its bounded wait; the wait is cut to the
  time the caller has left minus ``deadline_margin_s``, so the answer (a lease, or "exhausted,
  retry at T") always arrives before the caller gives up. A wait that outlived the caller would
  hold a lease nobody receives.
- **Leases nobody received.** If the call still ends cancelled (caller gone, deadline hit in the
  last milliseconds, or a drain past its grace), a lease granted for it is completed as
  ``CANCELLED`` in the background rather than held until its TTL.
- **Errors.** A request the wire layer rejects is ``INVALID_ARGUMENT``; anything the service
  raises is logged and answered ``INTERNAL`` (the edge then tries another replica).
- **Health.** The standard ``grpc.health.v1`` service answers ``SERVING`` for the whole server
  (``""``) and for ``kestrel.v1.Scheduler``, and ``NOT_SERVING`` from the moment a drain starts.

``serve`` starts a server; ``SchedulerServer.stop`` drains it: health goes ``NOT_SERVING``, new
calls are refused (edges fail over to another replica on ``UNAVAILABLE``), calls in flight finish
for up to the grace period and are then cancelled, and the server closes (health watches too).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from kestrel.v1 import scheduler_pb2, scheduler_pb2_grpc

from . import wire
from .contract import Completion, Exhausted, Lease, LeaseClient, LeaseRequest, Outcome

__all__ = [
    "DEADLINE_MARGIN_S",
    "SERVER_OPTIONS",
    "SERVICE_NAME",
    "SchedulerServer",
    "SchedulerServicer",
    "serve",
    "within_deadline",
]

_log = logging.getLogger(__name__)

SERVICE_NAME: str = scheduler_pb2.DESCRIPTOR.services_by_name["Scheduler"].full_name
"""``kestrel.v1.Scheduler``: the name health checks may ask about."""

DEADLINE_MARGIN_S = 0.1
"""Time kept back from the caller's deadline for the answer to travel: encoding, the network, and
a busy event loop on either end."""

SERVER_OPTIONS: tuple[tuple[str, Any], ...] = (
    # Edges ping every 30 s, idle or not (see the client), to find dead connections before a
    # request does; the default policy (5 min, no pings without calls) would answer with GOAWAY.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    # The server pings too, so a vanished edge does not pin a connection for hours.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    # gRPC sets SO_REUSEPORT by default: a second process on the same port would silently share
    # the traffic instead of failing to start.
    ("grpc.so_reuseport", 0),
)


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServicer):
    """``kestrel.v1.Scheduler`` over a ``LeaseClient``: decode, call, encode."""

    def __init__(self, service: LeaseClient, deadline_margin_s: float = DEADLINE_MARGIN_S) -> None:
        self._service = service
        self._margin = deadline_margin_s
        # Acquires whose callers went away, and the completions that give their leases back. Held
        # here because the loop keeps only weak references to tasks, and awaited by ``settle``.
        self._abandoned: set[asyncio.Future[Any]] = set()
        self._refusing = False
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def Acquire(
        self, request: scheduler_pb2.AcquireRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.AcquireResponse:
        async with self._serving(context, "Acquire"):
            lease_request = within_deadline(
                wire.decode_acquire_request(request), context.time_remaining(), self._margin
            )
            result = await self._acquire_or_give_back(lease_request)
        return wire.encode_acquire_response(result)

    async def Renew(
        self, request: scheduler_pb2.RenewRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.RenewResponse:
        async with self._serving(context, "Renew"):
            ok = await self._service.renew(wire.decode_renew_request(request))
        return wire.encode_renew_response(ok)

    async def Complete(
        self, request: scheduler_pb2.CompleteRequest, context: grpc.aio.ServicerContext
    ) -> scheduler_pb2.CompleteResponse:
        async with self._serving(context, "Complete"):
            lease, completion = wire.decode_complete_request(request)
            await self._service.complete(lease, completion)
        return scheduler_pb2.CompleteResponse()

    def refuse_new_calls(self) -> None:
        """Answer every call from now on with ``UNAVAILABLE``, which sends edges to another replica."""
        self._refusing = True

    async def idle(self) -> None:
        """Return once no scheduler call is in flight (health checks do not count)."""
        await self._idle.wait()

    async def settle(self) -> None:
        """Wait until every abandoned acquire has ended and its lease, if any, is given back."""
        while self._abandoned:
            await asyncio.gather(*self._abandoned, return_exceptions=True)

    async def _acquire_or_give_back(self, request: LeaseRequest) -> Lease | Exhausted:
        """``acquire``, giving back a lease that was granted for a call that ended meanwhile.

        gRPC cancels the handler when the caller's deadline passes or the caller goes away, and
        ``ServicerContext.cancelled()`` does not report either, so the handler's own cancellation
        is the only signal. The acquire runs as its own task so that a lease it grants in that
        last instant (or in a store call that cannot be interrupted) is still seen, and released
        as ``CANCELLED`` rather than held until its TTL.
        """
        attempt = asyncio.ensure_future(self._service.acquire(request))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            attempt.cancel()
            self._keep(attempt)
            attempt.add_done_callback(self._give_back_if_granted)
            raise

    def _give_back_if_granted(self, attempt: asyncio.Future[Lease | Exhausted]) -> None:
        if attempt.cancelled() or attempt.exception() is not None:
            return
        lease = attempt.result()
        if isinstance(lease, Lease):
            _log.info("the caller of an acquire went away; releasing lease %s", lease.lease_id)
            self._keep(asyncio.ensure_future(self._give_back(lease)))

    async def _give_back(self, lease: Lease) -> None:
        try:
            await self._service.complete(lease, Completion(Outcome.CANCELLED))
        except Exception:  # the lease then expires by its TTL; nothing else to do
            _log.exception("could not release lease %s of a caller that went away", lease.lease_id)

    @contextlib.asynccontextmanager
    async def _serving(self, context: grpc.aio.ServicerContext, method: str) -> AsyncIterator[None]:
        """Refuse the call while draining, count it in flight, and map errors to status codes."""
        if self._refusing:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "scheduler replica is draining")
        # Counted until gRPC has sent the status, not until the handler returns: the drain must not
        # cut an answer that is written but not yet delivered.
        self._active += 1
        self._idle.clear()
        context.add_done_callback(self._call_ended)
        try:
            yield
        except wire.WireError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception:
            _log.exception("scheduler %s failed", method)
            await context.abort(grpc.StatusCode.INTERNAL, f"scheduler {method} failed")

    def _call_ended(self, _context: grpc.aio.ServicerContext) -> None:
        self._active -= 1
        if not self._active:
            self._idle.set()

    def _keep(self, future: asyncio.Future[Any]) -> None:
        self._abandoned.add(future)
        future.add_done_callback(self._abandoned.discard)


def within_deadline(request: LeaseRequest, time_remaining: float | None, margin_s: float) -> LeaseRequest:
    """``request`` with its wait cut so the answer can still reach a caller that has a deadline."""
    if time_remaining is None:
        return request
    allowed = max(0.0, time_remaining - margin_s)
    if request.max_wait_s <= allowed:
        return request
    return dataclasses.replace(request, max_wait_s=allowed)


class SchedulerServer:
    """A running scheduler gRPC server: where it listens, and a graceful stop."""

    def __init__(
        self,
        server: grpc.aio.Server,
        servicer: SchedulerServicer,
        health_servicer: health.aio.HealthServicer,
        host: str,
        port: int,
    ) -> None:
        self._server = server
        self._servicer = servicer
        self._health = health_servicer
        self.host = host
        self.port = port
        self._stopping: asyncio.Future[None] | None = None

    @property
    def address(self) -> str:
        """``host:port`` as an edge would dial it (the bound port when ``listen`` asked for 0)."""
        return f"{self.host}:{self.port}"

    async def stop(self, grace_s: float = 10.0) -> None:
        """Drain: ``NOT_SERVING``, refuse new calls, let calls in flight finish for ``grace_s``.

        Returns as soon as the last scheduler call in flight has ended. Calls still running after
        ``grace_s`` are cancelled (the edge sees ``UNAVAILABLE`` and fails over); an ``Acquire``
        cut short that way keeps no lease. A second call (a second SIGTERM) waits for the first
        drain rather than starting another.
        """
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._drain(grace_s))
        await asyncio.shield(self._stopping)

    async def _drain(self, grace_s: float) -> None:
        await self._health.enter_graceful_shutdown()
        self._servicer.refuse_new_calls()
        # Only scheduler calls get the grace: a health Watch stream never ends by itself and would
        # hold a graceful server stop for all of it. So the servicer refuses and counts, and the
        # server is stopped once, with no grace, when its calls are done. (Overlapping
        # `Server.stop` calls crash grpcio 1.85 in C, hence exactly one.)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._servicer.idle(), grace_s)
        await self._server.stop(0)
        await self._servicer.settle()

    async def wait_for_termination(self) -> None:
        """Return once the server has stopped."""
        await self._server.wait_for_termination()


async def serve(
    service: LeaseClient,
    listen: str,
    *,
    options: Sequence[tuple[str, Any]] = SERVER_OPTIONS,
    deadline_margin_s: float = DEADLINE_MARGIN_S,
) -> SchedulerServer:
    """Start serving ``service`` on ``listen`` (``host:port``; port 0 picks a free one).

    Raises ``OSError`` when the address cannot be bound. No TLS: the scheduler is meant to be
    reachable only inside the cluster (put a mesh in front of it for mTLS).
    """
    host, _, _ = listen.rpartition(":")
    server = grpc.aio.server(options=list(options))
    servicer = SchedulerServicer(service, deadline_margin_s)
    scheduler_pb2_grpc.add_SchedulerServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    await health_servicer.set(health.OVERALL_HEALTH, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        port = server.add_insecure_port(listen)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {listen!r}: {exc}") from None
    await server.start()
    return SchedulerServer(server, servicer, health_servicer, host or "127.0.0.1", port)
