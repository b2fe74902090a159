"""Each rule of the Anthropic stream validator, shown rejecting one broken stream."""

from typing import Any

import orjson
import pytest

from kestrel.edge.testing.stream_validators import AnthropicStreamViolation, validate_anthropic_sse

USAGE = {"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}
START = {
    "type": "message_start",
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-x",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": USAGE,
    },
}


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, **body: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": body}


def stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(reason: str = "end_turn", output: int = 89) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": None},
        "usage": {"output_tokens": output},
    }


END = {"type": "message_stop"}
PING = {"type": "ping"}
ERROR = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
TEXT = block_start(0, {"type": "text", "text": ""})
TOOL = block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}})


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


VALID = [
    START,
    PING,
    block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
    delta(0, type="thinking_delta", thinking="Let me check"),
    delta(0, type="signature_delta", signature="EqQB"),
    stop(0),
    block_start(1, {"type": "text", "text": ""}),
    delta(1, type="text_delta", text="Hello é"),
    delta(1, type="citations_delta", citation={"type": "char_location", "cited_text": "x"}),
    stop(1),
    block_start(2, {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}),
    delta(2, type="input_json_delta", partial_json='{"city": "Par'),
    delta(2, type="input_json_delta", partial_json='is"}'),
    stop(2),
    block_start(3, {"type": "redacted_thinking", "data": "opaque"}),
    stop(3),
    message_delta("tool_use"),
    message_delta("tool_use", 90),
    END,
]


def test_a_well_formed_stream_passes_and_comes_back_as_events() -> None:
    events = validate_anthropic_sse(sse(*VALID))
    assert [name for name, _ in events] == [e["type"] for e in VALID]
    assert events[7][1]["delta"]["text"] == "Hello é"


def test_pings_before_start_comments_crlf_and_an_error_only_stream_pass() -> None:
    raw = b": keepalive\n\n" + sse(PING, START, message_delta(), END).replace(b"\n", b"\r\n")
    assert len(validate_anthropic_sse(raw)) == 4
    validate_anthropic_sse(sse(ERROR))
    validate_anthropic_sse(sse(START, TEXT, delta(0, type="text_delta", text="partial"), ERROR))


def test_an_empty_tool_input_is_an_empty_object() -> None:
    validate_anthropic_sse(
        sse(START, TOOL, delta(0, type="input_json_delta", partial_json=""), stop(0), message_delta("tool_use"), END)
    )


BROKEN = {
    "frame not ended by a blank line": sse(START, message_delta(), END)[:-1],
    "data without an event name": sse(START, message_delta()) + b'data: {"type":"message_stop"}\n\n',
    "data that is not JSON": sse(START) + b"event: message_delta\ndata: {nope\n\n",
    "event name differs from data type": sse(START, message_delta())
    + b'event: message_stop\ndata: {"type":"ping"}\n\n',
    "event before message_start": sse(TEXT, stop(0), message_delta(), END),
    "second message_start": sse(START, START, message_delta(), END),
    "message_start with content": sse(
        {**START, "message": {**START["message"], "content": [{"type": "text"}]}}, message_delta(), END
    ),
    "message_start without usage": sse({**START, "message": {**START["message"], "usage": {}}}, message_delta(), END),
    "index not dense": sse(START, block_start(1, {"type": "text", "text": ""}), stop(1), message_delta(), END),
    "block starts while another is open": sse(
        START, TEXT, block_start(1, {"type": "text", "text": ""}), stop(1), message_delta(), END
    ),
    "start not empty": sse(START, block_start(0, {"type": "text", "text": "hi"}), stop(0), message_delta(), END),
    "delta before its start": sse(START, delta(0, type="text_delta", text="x"), message_delta(), END),
    "delta after its stop": sse(START, TEXT, stop(0), delta(0, type="text_delta", text="x"), message_delta(), END),
    "delta type does not match block": sse(
        START, TEXT, delta(0, type="input_json_delta", partial_json="{}"), stop(0), message_delta(), END
    ),
    "block stopped twice": sse(START, TEXT, stop(0), stop(0), message_delta(), END),
    "block open at message_delta": sse(START, TEXT, message_delta(), END),
    "content after message_delta": sse(START, message_delta(), TEXT, stop(0), END),
    "message_delta without output_tokens": sse(START, {**message_delta(), "usage": {"input_tokens": 3}}, END),
    "output_tokens going down": sse(START, message_delta(output=10), message_delta(output=9), END),
    "stop_reason missing": sse(START, {**message_delta(), "delta": {"stop_reason": None}}, END),
    "tool_use reported as end_turn": sse(START, TOOL, stop(0), message_delta("end_turn"), END),
    "tool arguments not a JSON object": sse(
        START, TOOL, delta(0, type="input_json_delta", partial_json='{"a":'), stop(0), message_delta("tool_use"), END
    ),
    "message_stop without message_delta": sse(START, END),
    "event after message_stop": sse(START, message_delta(), END, PING),
    "event after error": sse(START, ERROR, message_delta(), END),
    "error without its envelope": sse(START, {"type": "error", "message": "boom"}),
    "stream cut before the end": sse(START, TEXT, delta(0, type="text_delta", text="x")),
    "empty stream": b"",
    "unknown event type": sse(START, {"type": "message_pause"}, message_delta(), END),
}


REASONS = {
    "frame not ended by a blank line": "does not end with a blank line",
    "data without an event name": "without an event: name",
    "data that is not JSON": "not JSON",
    "event name differs from data type": "event name 'message_stop' but data type 'ping'",
    "event before message_start": "first event must be message_start",
    "second message_start": "second message_start",
    "message_start with content": "message.content must be",
    "message_start without usage": "message.usage needs",
    "index not dense": "dense",
    "block starts while another is open": "still open",
    "start not empty": "starts with text=''",
    "delta before its start": "never started",
    "delta after its stop": "not open",
    "delta type does not match block": "does not belong in a text block",
    "block stopped twice": "stopped twice",
    "block open at message_delta": "still open at message_delta",
    "content after message_delta": "content after message_delta",
    "message_delta without output_tokens": "output_tokens",
    "output_tokens going down": "went down",
    "stop_reason missing": "stop_reason must be one of",
    "tool_use reported as end_turn": "end_turn after a tool_use block",
    "tool arguments not a JSON object": "not a JSON object",
    "message_stop without message_delta": "without a message_delta",
    "event after message_stop": "after message_stop",
    "event after error": "after error",
    "error without its envelope": "error needs",
    "stream cut before the end": "without message_stop or error",
    "empty stream": "empty",
    "unknown event type": "unknown event type",
}


@pytest.mark.parametrize("rule", BROKEN)
def test_each_broken_rule_is_rejected_for_its_own_reason(rule: str) -> None:
    with pytest.raises(AnthropicStreamViolation) as caught:
        validate_anthropic_sse(BROKEN[rule])
    assert REASONS[rule] in str(caught.value)


def test_a_violation_is_an_assertion_error_naming_frame_and_rule() -> None:
    with pytest.raises(AssertionError, match=r"frame 3 \(content_block_stop\): block 0 stopped twice"):
        validate_anthropic_sse(BROKEN["block stopped twice"])
