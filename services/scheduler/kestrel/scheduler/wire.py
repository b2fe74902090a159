"""Contract dataclasses ⇄ ``kestrel.v1.scheduler`` protobuf messages, in both directions.

The gRPC server and the edge's gRPC client both go through here, so the two ends cannot disagree
on a unit or a default. Every field crosses; the one loss is precision: durations travel as whole
milliseconds (``uint32``). Each duration is rounded in the direction that is safe for its reader:

- ``retry_after`` and ``free_in`` round *up* (``ceil``): a caller told to come back later must
  never be told to come back early, or it retries into the same wall.
- ``ttl`` rounds *down*: a lease must never look longer-lived than the scheduler will keep it.
- ``max_wait`` rounds to the nearest millisecond: the caller's own deadline bounds it anyway.

Values outside ``uint32``/``uint64`` are clamped instead of raising: a stray negative usage count
must not make a ``Complete`` unsendable (that would leave the account's slot held until the lease
TTL). Decoding is strict: a message that leaves out what the scheduler needs (a model, a lease id,
a known outcome) raises ``WireError``, which the server answers with ``INVALID_ARGUMENT``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from kestrel.v1 import scheduler_pb2 as pb

from .contract import (
    AccountState,
    Completion,
    Exhausted,
    ExhaustedReason,
    Lease,
    LeaseRequest,
    Outcome,
    Usage,
)

__all__ = [
    "UINT32_MAX",
    "WireError",
    "ceil_ms",
    "decode_acquire_request",
    "decode_acquire_response",
    "decode_complete_request",
    "decode_exhausted",
    "decode_lease",
    "decode_renew_request",
    "decode_renew_response",
    "encode_acquire_request",
    "encode_acquire_response",
    "encode_complete_request",
    "encode_exhausted",
    "encode_lease",
    "encode_renew_request",
    "encode_renew_response",
    "floor_ms",
    "round_ms",
    "seconds",
]

UINT32_MAX = 2**32 - 1
_UINT64_MAX = 2**64 - 1
# Float noise: 0.001 * 1000 is 1.0000000000000002 on some paths. Anything within a nanosecond of a
# whole millisecond counts as that millisecond, so a value that came off the wire goes back on it
# unchanged; the error this allows is far below anything a scheduler can act on.
_NOISE_MS = 1e-6


class WireError(ValueError):
    """A message is missing a field the other end needs, or carries a value it cannot mean."""


# -- durations ------------------------------------------------------------------------------


def ceil_ms(seconds_: float) -> int:
    """Seconds → whole milliseconds, rounded up: never shortens a retry-after.

    A positive duration stays positive (at least 1 ms): 0 on the wire means "unknown".
    """
    return _to_ms(seconds_, lambda ms: max(1, math.ceil(ms - _NOISE_MS)))


def floor_ms(seconds_: float) -> int:
    """Seconds → whole milliseconds, rounded down: never lengthens a TTL."""
    return _to_ms(seconds_, lambda ms: math.floor(ms + _NOISE_MS))


def round_ms(seconds_: float) -> int:
    """Seconds → the nearest whole millisecond."""
    return _to_ms(seconds_, round)


def seconds(ms: int) -> float:
    """Milliseconds off the wire → seconds."""
    return ms / 1000


def _to_ms(seconds_: float, rounding: Callable[[float], int]) -> int:
    if not seconds_ > 0:  # negatives and NaN
        return 0
    ms = seconds_ * 1000
    return UINT32_MAX if ms >= UINT32_MAX else min(rounding(ms), UINT32_MAX)


def _uint(value: int, top: int) -> int:
    return min(max(value, 0), top)


# -- Acquire --------------------------------------------------------------------------------


def encode_acquire_request(request: LeaseRequest) -> pb.AcquireRequest:
    return pb.AcquireRequest(
        request_id=request.request_id,
        model=request.model,
        session_id=request.session_id,
        client_key_id=request.client_key_id,
        # Sorted: the set has no order, and a stable message is easier to compare and to log.
        exclude_accounts=sorted(request.exclude_accounts),
        max_wait_ms=round_ms(request.max_wait_s),
    )


def decode_acquire_request(message: pb.AcquireRequest) -> LeaseRequest:
    if not message.model:
        raise WireError("AcquireRequest.model is required")
    return LeaseRequest(
        request_id=message.request_id,
        model=message.model,
        session_id=message.session_id,
        client_key_id=message.client_key_id,
        exclude_accounts=frozenset(message.exclude_accounts),
        max_wait_s=seconds(message.max_wait_ms),
    )


def encode_lease(lease: Lease) -> pb.Lease:
    return pb.Lease(
        lease_id=lease.lease_id,
        account_id=lease.account_id,
        model=lease.model,
        sticky=lease.sticky,
        ttl_ms=floor_ms(lease.ttl_s),
    )


def decode_lease(message: pb.Lease) -> Lease:
    _require_identity("Lease", message.lease_id, message.account_id, message.model)
    return Lease(
        lease_id=message.lease_id,
        account_id=message.account_id,
        model=message.model,
        sticky=message.sticky,
        ttl_s=seconds(message.ttl_ms),
    )


def encode_exhausted(exhausted: Exhausted) -> pb.Exhausted:
    return pb.Exhausted(
        reason=exhausted.reason.value,
        retry_after_ms=ceil_ms(exhausted.retry_after_s),
        accounts=[
            pb.AccountState(account_id=a.account_id, state=a.state, free_in_ms=ceil_ms(a.free_in_s))
            for a in exhausted.accounts
        ],
    )


def decode_exhausted(message: pb.Exhausted) -> Exhausted:
    try:
        reason = ExhaustedReason(message.reason)
    except ValueError:
        raise WireError(f"Exhausted.reason {message.reason} is not a known reason") from None
    return Exhausted(
        reason=reason,
        retry_after_s=seconds(message.retry_after_ms),
        accounts=tuple(
            AccountState(account_id=a.account_id, state=a.state, free_in_s=seconds(a.free_in_ms))
            for a in message.accounts
        ),
    )


def encode_acquire_response(result: Lease | Exhausted) -> pb.AcquireResponse:
    if isinstance(result, Lease):
        return pb.AcquireResponse(lease=encode_lease(result))
    return pb.AcquireResponse(exhausted=encode_exhausted(result))


def decode_acquire_response(message: pb.AcquireResponse) -> Lease | Exhausted:
    which = message.WhichOneof("result")
    if which == "lease":
        return decode_lease(message.lease)
    if which == "exhausted":
        return decode_exhausted(message.exhausted)
    raise WireError("AcquireResponse carries neither a lease nor an exhausted answer")


# -- Renew ----------------------------------------------------------------------------------


def encode_renew_request(lease: Lease) -> pb.RenewRequest:
    return pb.RenewRequest(lease_id=lease.lease_id, account_id=lease.account_id, model=lease.model)


def decode_renew_request(message: pb.RenewRequest) -> Lease:
    """The lease's identity. ``sticky`` and ``ttl_s`` do not travel: renewing never reads them."""
    _require_identity("RenewRequest", message.lease_id, message.account_id, message.model)
    return Lease(lease_id=message.lease_id, account_id=message.account_id, model=message.model)


def encode_renew_response(ok: bool, ttl_s: float = 0.0) -> pb.RenewResponse:
    """``ttl_s`` 0 means "not reported": ``LeaseClient.renew`` only answers yes or no."""
    return pb.RenewResponse(ok=ok, ttl_ms=floor_ms(ttl_s))


def decode_renew_response(message: pb.RenewResponse) -> bool:
    return message.ok


# -- Complete -------------------------------------------------------------------------------


def encode_complete_request(lease: Lease, completion: Completion) -> pb.CompleteRequest:
    usage = completion.usage
    return pb.CompleteRequest(
        lease_id=lease.lease_id,
        account_id=lease.account_id,
        model=lease.model,
        session_id=completion.session_id,
        outcome=completion.outcome.value,
        http_status=_uint(completion.http_status, UINT32_MAX),
        retry_after_ms=ceil_ms(completion.retry_after_s),
        rate_limit_headers=completion.rate_limit_headers,
        usage=pb.Usage(
            input_tokens=_uint(usage.input_tokens, _UINT64_MAX),
            output_tokens=_uint(usage.output_tokens, _UINT64_MAX),
            cache_creation_input_tokens=_uint(usage.cache_creation_input_tokens, _UINT64_MAX),
            cache_read_input_tokens=_uint(usage.cache_read_input_tokens, _UINT64_MAX),
        ),
    )


def decode_complete_request(message: pb.CompleteRequest) -> tuple[Lease, Completion]:
    """The lease's identity (as in ``decode_renew_request``) and the completion."""
    _require_identity("CompleteRequest", message.lease_id, message.account_id, message.model)
    try:
        outcome = Outcome(message.outcome)
    except ValueError:
        raise WireError(f"CompleteRequest.outcome {message.outcome} is not a known outcome") from None
    usage = message.usage
    completion = Completion(
        outcome=outcome,
        http_status=message.http_status,
        retry_after_s=seconds(message.retry_after_ms),
        rate_limit_headers=dict(message.rate_limit_headers),
        usage=Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_creation_input_tokens=usage.cache_creation_input_tokens,
            cache_read_input_tokens=usage.cache_read_input_tokens,
        ),
        session_id=message.session_id,
    )
    lease = Lease(lease_id=message.lease_id, account_id=message.account_id, model=message.model)
    return lease, completion


def _require_identity(what: str, lease_id: str, account_id: str, model: str) -> None:
    fields = (("lease_id", lease_id), ("account_id", account_id), ("model", model))
    missing = [name for name, value in fields if not value]
    if missing:
        raise WireError(f"{what}: {', '.join(missing)} required")
