"""Anthropic stream events as JSON and back (``formats/_anthropic_events.py``)."""

from typing import Any

import orjson
import pytest

from kestrel.edge.canonical import (
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    RedactedThinking,
    SignatureDelta,
    StopReason,
    StreamError,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolInputDelta,
    ToolUse,
    Usage,
)
from kestrel.edge.formats.anthropic import Invalid, event_json, frame, parse_event

EVENTS = [
    MessageStart("msg_1", "claude-x", Usage(25, 1, 3, 4)),
    BlockStart(0, Text("")),
    BlockStart(1, Thinking("", "")),
    BlockStart(2, ToolUse("toolu_1", "Read", {})),
    BlockStart(3, RedactedThinking("opaque")),
    TextDelta(0, "Hé"),
    ThinkingDelta(1, "hmm"),
    SignatureDelta(1, "sig"),
    ToolInputDelta(2, '{"a": "\\u00e9'),
    BlockStop(0),
    MessageDelta(StopReason.STOP_SEQUENCE, "</done>", Usage(25, 89, 3, 4)),
    MessageStop(),
    Ping(),
    StreamError("overloaded_error", "Overloaded"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_survives_json_and_back(event: Any) -> None:
    data = orjson.loads(frame(event_json(event)).split(b"data: ", 1)[1])
    assert parse_event(data) == event


def test_a_frame_is_named_after_its_type() -> None:
    assert frame({"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert event_json(MessageStart("m", "x", Usage(5)))["message"]["stop_reason"] is None


def test_message_delta_usage_is_read_over_the_start() -> None:
    data = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 9},
    }
    event = parse_event(data, Usage(25, 1, 3, 4))
    assert event == MessageDelta(StopReason.END_TURN, None, Usage(25, 9, 3, 4))


@pytest.mark.parametrize(
    "data",
    [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "citations_delta", "citation": {}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "server_tool_use", "id": "s"}},
        {"type": "brand_new_event"},
    ],
)
def test_events_without_canonical_form_read_as_none(data: dict[str, Any]) -> None:
    assert parse_event(data) is None


def test_a_known_event_missing_a_field_is_invalid() -> None:
    with pytest.raises(Invalid, match="index: Field required"):
        parse_event({"type": "content_block_stop"})
