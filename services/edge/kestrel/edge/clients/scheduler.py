"""``GrpcLeaseClient``: the edge's ``LeaseClient`` in cluster mode, over gRPC to the scheduler.

One ``grpc.aio`` channel per scheduler replica, opened on first use and kept. Each call starts at
the next replica in turn (spreading edges over replicas) with replicas that failed in the last
few seconds moved to the back, and fails over to the next replica when one cannot answer:

- ``UNAVAILABLE`` (refused, reset, draining), ``CANCELLED`` by the server, ``UNKNOWN`` or
  ``INTERNAL`` (that replica's fault, for instance its store connection): next replica.
- ``DEADLINE_EXCEEDED``: next replica for ``Renew`` and ``Complete``. Not for ``Acquire``: its
  deadline is the request's whole wait plus ``timeout_s``, so once it has passed, the caller's
  time is spent.
- Anything else (``INVALID_ARGUMENT``: a bug on this side) is not retried.

Deadlines: ``Acquire`` gets ``max_wait_s + timeout_s`` (the scheduler may hold it for the wait;
it cuts that wait to our deadline, see ``grpc_server``), and a failover only gets what is left of
the wait. ``Renew`` and ``Complete`` get ``timeout_s`` per replica.

**When no scheduler answers**, the edge fails fast: ``acquire`` raises ``SchedulerUnavailable``
(503, ``overloaded_error``, ``retry-after: 5``), rendered in the client's own dialect. It does not
fall back to choosing an account locally: the scheduler exists to enforce cluster-wide
concurrency limits, cooldowns after a 429 and sticky sessions, and an edge choosing on its own
would break all three at once, hammering accounts the cluster knows are cooling down. Clients
such as Claude Code and the SDKs retry a 503 with backoff, and a scheduler replica is back
within seconds of a restart.

``complete`` and ``renew`` never raise. A ``Complete`` is retried on each replica in turn; if none
takes it, a warning is logged (ids and outcome only: no headers, no credentials) and the lease is
left to expire by its TTL (``scheduler.lease_ttl_seconds``): its slot stays taken until then and
the outcome is lost. ``renew`` returns False when no replica confirms it; a stream carries on
regardless. Any gRPC error that leaves this module leaves as ``SchedulerUnavailable``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from kestrel.edge.errors import SchedulerUnavailable
from kestrel.scheduler import wire
from kestrel.scheduler.contract import Completion, Exhausted, Lease, LeaseRequest
from kestrel.v1 import scheduler_pb2_grpc

__all__ = ["RETRY_AFTER_S", "SUSPECT_S", "GrpcLeaseClient", "channel_options"]

_log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
"""The retry-after of a ``SchedulerUnavailable``: long enough for a replica to restart or for the
edge to reconnect, short enough that an agent's automatic retry lands after it."""

SUSPECT_S = 5.0
"""How long a replica that failed is tried last rather than in its turn."""

_Code = grpc.StatusCode
_REPLICA_FAULTS = frozenset({_Code.UNAVAILABLE, _Code.CANCELLED, _Code.UNKNOWN, _Code.INTERNAL})
_ACQUIRE_FAILOVER = _REPLICA_FAULTS
_SETTLE_FAILOVER = _REPLICA_FAULTS | {_Code.DEADLINE_EXCEEDED}

_Answer = TypeVar("_Answer")


def channel_options(timeout_s: float) -> list[tuple[str, Any]]:
    """Channel settings for one scheduler replica (the server's ``SERVER_OPTIONS`` accept them)."""
    connect_ms = max(50, int(timeout_s * 500))
    return [
        # Ping every 30 s even when idle: a replica that vanished without closing its connection
        # (node lost, network cut) is noticed within 40 s instead of by the next request's deadline.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # A connection attempt gives up after half of timeout_s (the default is 20 s): a replica
        # that never completes a handshake then fails with UNAVAILABLE, and the call moves on,
        # before the call's own deadline could end it as DEADLINE_EXCEEDED. A replica that comes
        # back is reconnected within 5 s (the default backoff grows to 2 min).
        ("grpc.min_reconnect_backoff_ms", connect_ms),
        ("grpc.initial_reconnect_backoff_ms", connect_ms),
        ("grpc.max_reconnect_backoff_ms", max(5_000, connect_ms)),
    ]


@dataclasses.dataclass(slots=True)
class _Replica:
    address: str
    channel: grpc.aio.Channel
    stub: scheduler_pb2_grpc.SchedulerStub
    suspect_until: float = 0.0


class GrpcLeaseClient:
    """A ``LeaseClient`` that asks scheduler replicas over gRPC and fails over between them."""

    def __init__(self, addresses: Sequence[str], timeout_s: float) -> None:
        if not addresses:
            raise ValueError("GrpcLeaseClient needs at least one scheduler address")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._addresses = tuple(addresses)
        self._timeout_s = timeout_s
        # Channels bind to the running event loop, so they are opened on first use, not here.
        self._replicas: list[_Replica] | None = None
        self._turn = 0
        self._closed = False

    @property
    def addresses(self) -> tuple[str, ...]:
        return self._addresses

    async def acquire(self, request: LeaseRequest) -> Lease | Exhausted:
        """A lease or an exhausted answer from the first replica that gives one.

        Raises ``SchedulerUnavailable`` when no replica answers.
        """
        wait_until = time.monotonic() + max(request.max_wait_s, 0.0)

        async def ask(replica: _Replica) -> Lease | Exhausted:
            # A failover only gets what is left of the caller's wait, never a fresh one.
            left = max(0.0, wait_until - time.monotonic())
            message = wire.encode_acquire_request(dataclasses.replace(request, max_wait_s=left))
            return wire.decode_acquire_response(await replica.stub.Acquire(message, timeout=left + self._timeout_s))

        failures: list[str] = []
        result = await self._first_answer(ask, _ACQUIRE_FAILOVER, failures)
        if result is None:
            _log.warning("scheduler acquire failed on every replica (%s)", _described(failures))
            raise SchedulerUnavailable(
                "the gateway's scheduler is unavailable; retry shortly", retry_after_s=RETRY_AFTER_S
            )
        return result

    async def renew(self, lease: Lease) -> bool:
        """Extend the lease; False when it had expired or no replica confirmed the renewal."""
        message = wire.encode_renew_request(lease)

        async def ask(replica: _Replica) -> bool:
            return wire.decode_renew_response(await replica.stub.Renew(message, timeout=self._timeout_s))

        failures: list[str] = []
        ok = await self._first_answer(ask, _SETTLE_FAILOVER, failures)
        if ok is None:
            _log.warning(
                "scheduler renew of lease %s failed on every replica (%s)", lease.lease_id, _described(failures)
            )
            return False
        return ok

    async def complete(self, lease: Lease, completion: Completion) -> None:
        """Report the outcome, on the next replica if one cannot take it; never raises."""
        message = wire.encode_complete_request(lease, completion)

        async def ask(replica: _Replica) -> bool:
            await replica.stub.Complete(message, timeout=self._timeout_s)
            return True

        failures: list[str] = []
        if await self._first_answer(ask, _SETTLE_FAILOVER, failures) is None:
            _log.warning(
                "scheduler complete of lease %s (account %s, model %s, outcome %s) failed on every replica"
                " (%s); the lease expires by its TTL",
                lease.lease_id,
                lease.account_id,
                lease.model,
                completion.outcome.name,
                _described(failures),
            )

    async def aclose(self) -> None:
        """Close every channel; calls after this fail as if no replica answered."""
        self._closed = True
        replicas, self._replicas = self._replicas, None
        for replica in replicas or ():
            await replica.channel.close()

    # -- failover ---------------------------------------------------------------------------

    def _in_turn(self) -> list[_Replica]:
        """Every replica, starting from the next in turn, those that failed lately last."""
        if self._closed:
            return []
        if self._replicas is None:
            self._replicas = [self._open(address) for address in self._addresses]
        replicas = self._replicas
        start = self._turn % len(replicas)
        self._turn += 1
        rotated = replicas[start:] + replicas[:start]
        now = time.monotonic()
        return sorted(rotated, key=lambda replica: replica.suspect_until > now)  # stable

    def _open(self, address: str) -> _Replica:
        channel = grpc.aio.insecure_channel(address, options=channel_options(self._timeout_s))
        return _Replica(address, channel, scheduler_pb2_grpc.SchedulerStub(channel))

    async def _first_answer(
        self,
        ask: Callable[[_Replica], Awaitable[_Answer]],
        failover: frozenset[grpc.StatusCode],
        failures: list[str],
    ) -> _Answer | None:
        """The first replica's answer, trying the next on a failure in ``failover``; None if none.

        Each failure is noted in ``failures`` for the caller's log line.
        """
        for replica in self._in_turn():
            try:
                answer = await ask(replica)
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else _Code.UNKNOWN
                failures.append(f"{replica.address}: {code.name}")
                if code in _SETTLE_FAILOVER:  # it did not answer, in time or at all
                    self._distrust(replica)
                if code not in failover:
                    return None
                continue
            except wire.WireError as exc:  # it speaks another version of the contract
                failures.append(f"{replica.address}: {exc}")
                self._distrust(replica)
                continue
            except grpc.aio.UsageError as exc:  # the channel was closed under us (aclose during a call)
                failures.append(f"{replica.address}: {exc}")
                return None
            replica.suspect_until = 0.0
            return answer
        return None

    @staticmethod
    def _distrust(replica: _Replica) -> None:
        replica.suspect_until = time.monotonic() + SUSPECT_S


def _described(failures: list[str]) -> str:
    return "; ".join(failures) or "no replica tried: the client is closed"
