"""The stream's wire form: every event the proto can hold survives a round trip unchanged."""

from __future__ import annotations

import dataclasses
import math
import re
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kestrel.common.event_codec import EventDecodeError, EventEncodeError, decode, encode
from kestrel.common.events import Attempt, RequestEvent
from kestrel.v1 import events_pb2

UINT32 = st.integers(0, 2**32 - 1)
UINT64 = st.integers(0, 2**64 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
DOUBLE = st.floats(allow_nan=True, allow_infinity=True)
TEXT = st.text()  # hypothesis leaves out lone surrogates by default: they are tested on their own

attempts = st.builds(Attempt, account_id=TEXT, model=TEXT, status=UINT32, error=TEXT, duration_ms=DOUBLE)
events = st.builds(
    RequestEvent,
    event_id=st.text(min_size=1),
    request_id=TEXT,
    started_at_ms=INT64,
    method=TEXT,
    path=TEXT,
    dialect=TEXT,
    duration_ms=DOUBLE,
    ttfb_ms=DOUBLE,
    client_key_id=TEXT,
    session_id=TEXT,
    requested_model=TEXT,
    served_model=TEXT,
    account_id=TEXT,
    status=UINT32,
    stream=st.booleans(),
    attempts=st.lists(attempts, max_size=5),
    input_tokens=UINT64,
    output_tokens=UINT64,
    cache_creation_input_tokens=UINT64,
    cache_read_input_tokens=UINT64,
    stop_reason=TEXT,
    error_type=TEXT,
    error_message=TEXT,
    user_agent=TEXT,
)


def exact(value: Any) -> Any:
    """A comparable form in which NaN equals NaN and -0.0 differs from 0.0, as bits do."""
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, bool | int | str):
        return (type(value).__name__, value)
    if isinstance(value, list):
        return [exact(v) for v in value]
    if dataclasses.is_dataclass(value):
        return {f.name: exact(getattr(value, f.name)) for f in dataclasses.fields(value)}
    raise TypeError(type(value))


@given(events)
def test_every_event_round_trips_exactly(event: RequestEvent) -> None:
    assert exact(decode(encode(event))) == exact(event)


@given(events)
def test_encoding_is_deterministic(event: RequestEvent) -> None:
    assert encode(decode(encode(event))) == encode(event)


def test_special_floats_keep_their_bits() -> None:
    event = RequestEvent("r", 0, event_id="e", duration_ms=-0.0, ttfb_ms=math.nan)
    event.attempts.append(Attempt("a", "m", duration_ms=math.inf))
    back = decode(encode(event))
    assert math.copysign(1.0, back.duration_ms) == -1.0
    assert math.isnan(back.ttfb_ms)
    assert back.attempts[0].duration_ms == math.inf


def test_a_default_event_round_trips() -> None:
    event = RequestEvent("req", 1)
    assert decode(encode(event)) == event


def test_lone_surrogates_become_replacement_characters() -> None:
    event = RequestEvent("r", 0, event_id="e", error_message="bad \udcff byte", user_agent="\ud83d\ude00")
    back = decode(encode(event))
    assert back.error_message == "bad \ufffd byte"
    assert back.user_agent == "\U0001f600"  # a pair split in two code points is joined again


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"status": -1}, "status"),
        ({"status": 2**32}, "status"),
        ({"input_tokens": 2**64}, "input_tokens"),
        ({"started_at_ms": 2**63}, "started_at_ms"),
        ({"duration_ms": "slow"}, "duration_ms"),
        ({"attempts": [Attempt("a", "m", status=-5)]}, "attempts[0].status"),
    ],
)
def test_values_the_proto_cannot_hold_are_refused_by_name(overrides: dict[str, Any], field: str) -> None:
    event = RequestEvent("r", 0, event_id="e")
    for name, value in overrides.items():
        setattr(event, name, value)
    with pytest.raises(EventEncodeError, match=rf"^{re.escape(field)} "):
        encode(event)


@pytest.mark.parametrize(
    "data",
    [
        b"",  # parses as an empty message: no event_id
        b"not protobuf at all",
        b"\xff\xff\xff\xff",
        b"\x08\x01",  # field 1 (event_id, a string) sent as a varint
        b'{"event_id": "e1", "request_id": "r1"}',
        events_pb2.Attempt(status=200).SerializeToString(),  # another message type, no event_id
    ],
)
def test_garbage_is_refused_with_a_decode_error(data: bytes) -> None:
    with pytest.raises(EventDecodeError):
        decode(data)


def test_decode_refuses_text() -> None:
    with pytest.raises(EventDecodeError, match="expected bytes"):
        decode("evt-1")  # type: ignore[arg-type]


def test_fields_from_a_newer_writer_are_skipped() -> None:
    data = encode(RequestEvent("r", 5, event_id="e")) + b"\xc8\x01\x07"  # field 25, varint 7
    assert decode(data) == RequestEvent("r", 5, event_id="e")


def test_decode_accepts_memoryview() -> None:
    event = RequestEvent("r", 5, event_id="e")
    assert decode(memoryview(encode(event))) == event
