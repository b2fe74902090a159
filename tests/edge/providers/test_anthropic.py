from email.utils import formatdate
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kestrel.edge.assemble import assemble
from kestrel.edge.canonical import (
    BlockStart,
    BlockStop,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    Request,
    SignatureDelta,
    StopReason,
    StreamError,
    Text,
    TextDelta,
    Thinking,
    ThinkingConfig,
    ThinkingDelta,
    ToolChoice,
    ToolChoiceKind,
    ToolInputDelta,
    ToolUse,
    Usage,
)
from kestrel.edge.errors import UpstreamUnavailable
from kestrel.edge.providers.anthropic import AnthropicCodec, fit_request
from kestrel.edge.providers.base import Codec

CODEC = AnthropicCodec()
REQUEST = Request(model="gpt-alias", messages=(Message("user", (Text("hi"),)),), max_tokens=100, stream=True)


def test_the_codec_fits_the_seam() -> None:
    codec: Codec = CODEC
    assert codec.kind == "anthropic"


def test_encode_writes_a_messages_request() -> None:
    encoded = CODEC.encode(REQUEST, "claude-sonnet-4-6")
    assert encoded.path == "/v1/messages"
    assert dict(encoded.headers) == {b"content-type": b"application/json", b"anthropic-version": b"2023-06-01"}
    assert orjson.loads(encoded.body) == {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "stream": True,
    }
    assert orjson.loads(CODEC.encode(Request("m", ()), "x").body)["stream"] is False


def test_encode_fills_max_tokens_and_keeps_only_anthropic_extras() -> None:
    request = Request("m", (), extra={"seed": 7, "n": 1, "context_management": {"edits": []}, "service_tier": "auto"})
    body = orjson.loads(AnthropicCodec(default_max_tokens=4096).encode(request, "claude").body)
    assert body["max_tokens"] == 4096
    assert {k: body[k] for k in ("context_management", "service_tier")} == {
        "context_management": {"edits": []},
        "service_tier": "auto",
    }
    assert "seed" not in body and "n" not in body


def test_encode_drops_what_anthropic_would_refuse() -> None:
    messages = (
        Message(
            "assistant", (Thinking("unsigned reasoning from another API"), Text(""), ToolUse("t", "f", {}, "gem-sig"))
        ),
        Message("assistant", (Text(""),)),
        Message("user", (Thinking("signed", "sig"),)),
    )
    request = Request("m", messages, thinking=ThinkingConfig(True, 500), temperature=1.7, top_k=40, top_p=0.5)
    body = orjson.loads(CODEC.encode(request, "claude").body)
    assert body["messages"] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "thinking", "thinking": "signed", "signature": "sig"}]},
    ]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["max_tokens"] == 8192 + 500
    assert "temperature" not in body and "top_k" not in body and "top_p" not in body


def test_a_forced_tool_turns_thinking_off_and_a_hot_temperature_is_clamped() -> None:
    forced = ToolChoice(ToolChoiceKind.TOOL, "f")
    fitted = fit_request(
        Request("m", (), thinking=ThinkingConfig(True, 2048), tool_choice=forced, temperature=1.5), "c"
    )
    assert (fitted.thinking, fitted.temperature, fitted.model) == (ThinkingConfig(), 1.0, "c")
    small = fit_request(Request("m", (), max_tokens=800, thinking=ThinkingConfig(True, 4000)), "c")
    assert small.thinking == ThinkingConfig()


def test_decode_response_reads_a_message_and_refuses_garbage() -> None:
    body = (
        b'{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[{"type":"text","text":"hi"}],'
        b'"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}'
    )
    response = CODEC.decode_response(body)
    assert (response.content, response.usage) == ((Text("hi"),), Usage(3, 1))
    with pytest.raises(UpstreamUnavailable, match="malformed message"):
        CODEC.decode_response(b"<html>oops</html>")


RECORDED = (Path(__file__).parent / "recordings" / "anthropic_stream.sse").read_bytes()
"""A stream as Anthropic sends it: thinking, a server tool (skipped), cited text, a tool call."""

EXPECTED = [
    MessageStart("msg_01", "claude-x", Usage(25, 1, 2048, 0)),
    Ping(),
    BlockStart(0, Thinking("", "")),
    ThinkingDelta(0, "Let me check 🦀"),
    SignatureDelta(0, "EqQB=="),
    BlockStop(0),
    BlockStart(1, Text("")),
    TextDelta(1, "Héllo 日本"),
    BlockStop(1),
    BlockStart(2, ToolUse("toolu_01", "get_weather", {})),
    ToolInputDelta(2, '{"city": "Par'),
    ToolInputDelta(2, 'is \\u00e9"}'),
    BlockStop(2),
    MessageDelta(StopReason.TOOL_USE, None, Usage(25, 89, 2048, 0)),
    MessageStop(),
]


def decode(*chunks: bytes) -> list:
    decoder = CODEC.stream_decoder(REQUEST)
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    return events + decoder.finish()


def test_a_recorded_stream_decodes_into_canonical_events() -> None:
    assert decode(RECORDED) == EXPECTED
    assert assemble(EXPECTED).content[2] == ToolUse("toolu_01", "get_weather", {"city": "Paris é"})


def _split(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(raw) + 1) for c in cuts})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


@given(st.lists(st.integers(min_value=0), max_size=40), st.booleans())
def test_any_rechunking_yields_the_same_events(cuts: list[int], crlf: bool) -> None:
    raw = RECORDED.replace(b"\n", b"\r\n") if crlf else RECORDED
    assert decode(*_split(raw, cuts)) == EXPECTED


def test_byte_at_a_time_through_multibyte_characters() -> None:
    assert decode(*(RECORDED[i : i + 1] for i in range(len(RECORDED)))) == EXPECTED


def test_a_stream_cut_before_message_stop_ends_with_an_error() -> None:
    cut = RECORDED[: RECORDED.index(b"event: message_delta")]
    events = decode(cut)
    assert events[:-1] == EXPECTED[:-2]
    assert events[-1] == StreamError("api_error", "upstream stream ended before message_stop")
    assert decode(b"") == [StreamError("api_error", "upstream stream ended before message_stop")]
    mid_frame = RECORDED[: RECORDED.index(b"event: message_delta") + 40]
    assert decode(mid_frame)[-1] == StreamError("api_error", "upstream stream ended before message_stop")


def test_a_last_event_without_its_blank_line_still_counts() -> None:
    assert decode(RECORDED.rstrip(b"\n")) == EXPECTED


def test_an_error_event_ends_the_stream() -> None:
    raw = RECORDED[: RECORDED.index(b"event: content_block_stop")]
    raw += b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    raw += b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    events = decode(raw)
    assert events[-1] == StreamError("overloaded_error", "Overloaded")
    assert not any(isinstance(e, BlockStop) for e in events)


def test_malformed_event_data_becomes_an_error() -> None:
    events = decode(RECORDED[:300] + b"\n\nevent: content_block_delta\ndata: {broken\n\n" + RECORDED)
    assert isinstance(events[-1], StreamError) and "malformed" in events[-1].message
    assert sum(isinstance(e, StreamError) for e in events) == 1


def test_a_second_message_start_and_unknown_events_are_dropped() -> None:
    start = RECORDED[: RECORDED.index(b"event: ping")]
    assert decode(start + start + b'event: future\ndata: {"type":"future"}\n\n' + RECORDED[len(start) :]) == EXPECTED


def test_the_decoder_names_its_states() -> None:
    decoder = CODEC.stream_decoder(REQUEST)
    assert decoder.state == "state_before_start"
    decoder.feed(RECORDED[:400])
    assert decoder.state == "state_streaming"
    decoder.feed(RECORDED[400:])
    assert decoder.state == "state_done"


def error(status: int, body: bytes, *headers: tuple[bytes, bytes]) -> tuple[str, str, float]:
    failure = AnthropicCodec(clock=lambda: 1_000_000.0).decode_error(status, list(headers), body)
    assert failure.status == status
    return failure.kind, failure.message, failure.retry_after_s


ENVELOPE = (
    b'{"type":"error","error":{"type":"rate_limit_error",'
    b'"message":"Number of request tokens has exceeded your per-minute rate limit"},"request_id":"req_1"}'
)


def test_decode_error_reads_the_envelope_and_retry_after() -> None:
    assert error(429, ENVELOPE, (b"Retry-After", b"17")) == (
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
        17.0,
    )
    assert error(429, ENVELOPE, (b"retry-after-ms", b"1500"), (b"retry-after", b"2"))[2] == 1.5
    date = formatdate(1_000_030.0, usegmt=True).encode()
    assert error(429, ENVELOPE, (b"retry-after", date))[2] == pytest.approx(30.0)
    assert error(429, ENVELOPE, (b"retry-after", b"soon"))[2] == 0.0


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (
            529,
            b'{"type":"error","error":{"type":"api_error","message":"Overloaded"}}',
            "overloaded_error",
            "Overloaded",
        ),
        (529, b"", "overloaded_error", "upstream answered HTTP 529"),
        (
            502,
            b"<html><body>Bad gateway</body></html>",
            "api_error",
            "upstream answered HTTP 502: <html><body>Bad gateway",
        ),
        (401, b'{"error": "nope"}', "authentication_error", "upstream answered HTTP 401"),
        (413, b"too big", "request_too_large", "too big"),
        (418, b"[]", "invalid_request_error", "HTTP 418"),
        (504, b"", "timeout_error", "HTTP 504"),
    ],
)
def test_decode_error_without_a_usable_envelope_goes_by_status(
    status: int, body: bytes, kind: str, message: str
) -> None:
    found_kind, found_message, _ = error(status, body)
    assert found_kind == kind
    assert message in found_message


def test_thinking_signed_by_another_provider_is_not_sent_to_anthropic() -> None:
    import orjson

    from kestrel.edge.canonical import Message, Request, Text, Thinking
    from kestrel.edge.providers.anthropic import AnthropicCodec

    request = Request(
        model="m",
        max_tokens=100,
        messages=(
            Message("user", (Text("hi"),)),
            Message("assistant", (Thinking("gemini thought", "gemini:abc"), Thinking("mine", "EqQB"), Text("hello"))),
            Message("user", (Text("again"),)),
        ),
    )
    sent = orjson.loads(AnthropicCodec().encode(request, "claude-x").body)
    kinds = [(b["type"], b.get("signature")) for b in sent["messages"][1]["content"]]
    assert kinds == [("thinking", "EqQB"), ("text", None)]
