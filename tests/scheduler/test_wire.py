"""``wire``: contract ⇄ protobuf, through real serialized bytes, and the millisecond rounding."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kestrel.scheduler import (
    AccountState,
    Completion,
    Exhausted,
    ExhaustedReason,
    Lease,
    LeaseRequest,
    Outcome,
    Usage,
    wire,
)
from kestrel.v1 import scheduler_pb2 as pb

# Protobuf strings are UTF-8: anything but lone surrogates.
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
ids = text.filter(bool)
whole_ms = st.integers(0, wire.UINT32_MAX).map(wire.seconds)
uint64 = st.integers(0, 2**64 - 1)

lease_requests = st.builds(
    LeaseRequest,
    request_id=text,
    model=ids,
    session_id=text,
    client_key_id=text,
    exclude_accounts=st.frozensets(text, max_size=5),
    max_wait_s=whole_ms,
)
leases = st.builds(Lease, lease_id=ids, account_id=ids, model=ids, sticky=st.booleans(), ttl_s=whole_ms)
exhausted = st.builds(
    Exhausted,
    reason=st.sampled_from(ExhaustedReason),
    retry_after_s=whole_ms,
    accounts=st.lists(st.builds(AccountState, account_id=text, state=text, free_in_s=whole_ms), max_size=4).map(
        tuple
    ),
)
completions = st.builds(
    Completion,
    outcome=st.sampled_from(Outcome),
    http_status=st.integers(0, wire.UINT32_MAX),
    retry_after_s=whole_ms,
    rate_limit_headers=st.dictionaries(text, text, max_size=4),
    usage=st.builds(Usage, uint64, uint64, uint64, uint64),
    session_id=text,
)


def over_the_wire(message):  # type: ignore[no-untyped-def]
    """The message as the other end parses it."""
    return type(message).FromString(message.SerializeToString())


@given(lease_requests)
def test_lease_request_round_trips(request: LeaseRequest) -> None:
    assert wire.decode_acquire_request(over_the_wire(wire.encode_acquire_request(request))) == request


@given(st.one_of(leases, exhausted))
def test_acquire_results_round_trip(result: Lease | Exhausted) -> None:
    assert wire.decode_acquire_response(over_the_wire(wire.encode_acquire_response(result))) == result


@given(leases, completions)
def test_completions_round_trip_with_the_lease_identity(lease: Lease, completion: Completion) -> None:
    message = over_the_wire(wire.encode_complete_request(lease, completion))
    decoded_lease, decoded = wire.decode_complete_request(message)
    assert decoded == completion
    assert (decoded_lease.lease_id, decoded_lease.account_id, decoded_lease.model) == (
        lease.lease_id,
        lease.account_id,
        lease.model,
    )


@given(leases)
def test_renew_carries_the_lease_identity(lease: Lease) -> None:
    decoded = wire.decode_renew_request(over_the_wire(wire.encode_renew_request(lease)))
    assert decoded == Lease(lease.lease_id, lease.account_id, lease.model)


@pytest.mark.parametrize("ok", [True, False])
def test_renew_response(ok: bool) -> None:
    message = over_the_wire(wire.encode_renew_response(ok, 600.0))
    assert (wire.decode_renew_response(message), message.ttl_ms) == (ok, 600_000)


def test_exclusions_are_sent_sorted() -> None:
    message = wire.encode_acquire_request(LeaseRequest("r", "m", exclude_accounts=frozenset({"c", "a", "b"})))
    assert list(message.exclude_accounts) == ["a", "b", "c"]


# -- durations ------------------------------------------------------------------------------


@given(st.integers(0, wire.UINT32_MAX))
@example(1)
@example(7)
@example(100_003)
def test_whole_milliseconds_survive_every_rounding(ms: int) -> None:
    seconds = wire.seconds(ms)
    assert wire.ceil_ms(seconds) == wire.floor_ms(seconds) == wire.round_ms(seconds) == ms


@given(st.floats(min_value=0, max_value=wire.UINT32_MAX / 1000, allow_nan=False))
@example(0.0011)
@example(1e-12)
@example(29.9990001)
def test_ceil_never_shortens_and_floor_never_lengthens(seconds: float) -> None:
    up, down = wire.ceil_ms(seconds), wire.floor_ms(seconds)
    assert wire.seconds(up) >= seconds - 1e-9  # float noise only, below a nanosecond
    assert up - seconds * 1000 < 1 or up == 1
    assert wire.seconds(down) <= seconds + 1e-9
    assert seconds * 1000 - down < 1
    if seconds > 0:
        assert up >= 1, "a positive retry-after must not turn into 0, which means unknown"


def test_retry_after_rounds_up_to_the_next_millisecond() -> None:
    message = wire.encode_exhausted(
        Exhausted(ExhaustedReason.ALL_BUSY, 0.0011, (AccountState("a", "cooling", 29.9990001),))
    )
    assert (message.retry_after_ms, message.accounts[0].free_in_ms) == (2, 30_000)
    completion = Completion(Outcome.RATE_LIMITED, 429, retry_after_s=0.0005)
    assert wire.encode_complete_request(Lease("l", "a", "m"), completion).retry_after_ms == 1


def test_ttl_rounds_down_and_max_wait_to_nearest() -> None:
    assert wire.encode_lease(Lease("l", "a", "m", ttl_s=0.0019)).ttl_ms == 1
    assert wire.encode_acquire_request(LeaseRequest("r", "m", max_wait_s=0.0016)).max_wait_ms == 2


@pytest.mark.parametrize(
    ("seconds", "ms"),
    [(-1.0, 0), (math.nan, 0), (math.inf, wire.UINT32_MAX), (1e12, wire.UINT32_MAX), (-math.inf, 0)],
)
def test_durations_outside_uint32_are_clamped(seconds: float, ms: int) -> None:
    assert wire.ceil_ms(seconds) == wire.floor_ms(seconds) == wire.round_ms(seconds) == ms


def test_out_of_range_counts_are_clamped_so_a_completion_is_always_sendable() -> None:
    completion = Completion(Outcome.SUCCESS, http_status=-1, usage=Usage(input_tokens=-5, output_tokens=2**70))
    message = over_the_wire(wire.encode_complete_request(Lease("l", "a", "m"), completion))
    assert (message.http_status, message.usage.input_tokens, message.usage.output_tokens) == (0, 0, 2**64 - 1)


# -- what decoding refuses --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decode", "message", "complaint"),
    [
        (wire.decode_acquire_request, pb.AcquireRequest(request_id="r"), "model"),
        (wire.decode_acquire_response, pb.AcquireResponse(), "neither"),
        (wire.decode_acquire_response, pb.AcquireResponse(lease=pb.Lease(account_id="a", model="m")), "lease_id"),
        (wire.decode_exhausted, pb.Exhausted(), "reason 0"),
        (wire.decode_exhausted, pb.Exhausted(reason=99), "reason 99"),
        (wire.decode_renew_request, pb.RenewRequest(lease_id="l"), "account_id, model"),
        (wire.decode_complete_request, pb.CompleteRequest(lease_id="l", account_id="a"), "model"),
        (
            wire.decode_complete_request,
            pb.CompleteRequest(lease_id="l", account_id="a", model="m"),
            "outcome 0",
        ),
        (
            wire.decode_complete_request,
            pb.CompleteRequest(lease_id="l", account_id="a", model="m", outcome=42),
            "outcome 42",
        ),
    ],
)
def test_decoding_refuses_what_the_other_end_cannot_use(decode, message, complaint) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(wire.WireError, match=complaint):
        decode(message)
    assert issubclass(wire.WireError, ValueError)
