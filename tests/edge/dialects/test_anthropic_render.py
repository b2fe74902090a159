import dataclasses
from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kestrel.edge.assemble import assemble, events_of
from kestrel.edge.canonical import (
    BlockStart,
    BlockStop,
    Event,
    Image,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    RedactedThinking,
    Response,
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
from kestrel.edge.dialects.anthropic_render import (
    AnthropicStreamRenderer,
    json_object_completion,
    render_error,
    render_response,
)
from kestrel.edge.errors import RateLimited
from kestrel.edge.providers.anthropic import AnthropicStreamDecoder
from kestrel.edge.providers.base import UpstreamFailure
from kestrel.edge.testing.canonical_strategies import event_sequences, responses, usages
from kestrel.edge.testing.stream_validators import validate_anthropic_sse

RESPONSE = Response(
    "msg_1",
    "gpt-x",
    (Thinking("hmm é", "sig"), Text("Hello 日本"), ToolUse("call_1", "Read", {"path": "a.py"})),
    StopReason.TOOL_USE,
    None,
    Usage(10, 20, 30, 40),
)


def render(events: list[Event], **options: Any) -> list[tuple[str, dict[str, Any]]]:
    renderer = AnthropicStreamRenderer(new_id=lambda prefix: prefix + "gen", **options)
    raw = renderer.render_all(events) + renderer.finish()
    return validate_anthropic_sse(raw)


def compact(frames: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Frames as short tuples, so a transcript reads at a glance."""
    out: list[Any] = []
    for name, data in frames:
        if name == "content_block_start":
            out.append((name, data["index"], data["content_block"]))
        elif name == "content_block_delta":
            delta = data["delta"]
            out.append((delta["type"], data["index"], next(v for k, v in delta.items() if k != "type")))
        elif name == "content_block_stop":
            out.append(("stop", data["index"]))
        elif name == "message_start":
            out.append((name, data["message"]["id"], data["message"]["model"], data["message"]["usage"]))
        elif name == "message_delta":
            out.append((name, data["delta"]["stop_reason"], data["usage"]))
        elif name == "error":
            out.append((name, data["error"]["type"]))
        else:
            out.append(name)
    return out


def usage(input_tokens: int, output: int, read: int = 0, write: int = 0) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "output_tokens": output,
    }


def test_a_clean_stream_renders_as_anthropic_would_send_it() -> None:
    assert compact(render(events_of(RESPONSE, fragment=6))) == [
        ("message_start", "msg_1", "gpt-x", usage(10, 0, 30, 40)),
        ("content_block_start", 0, {"type": "thinking", "thinking": "", "signature": ""}),
        ("thinking_delta", 0, "hmm é"),
        ("signature_delta", 0, "sig"),
        ("stop", 0),
        ("content_block_start", 1, {"type": "text", "text": ""}),
        ("text_delta", 1, "Hello "),
        ("text_delta", 1, "日本"),
        ("stop", 1),
        ("content_block_start", 2, {"type": "tool_use", "id": "call_1", "name": "Read", "input": {}}),
        ("input_json_delta", 2, '{"path'),
        ("input_json_delta", 2, '":"a.p'),
        ("input_json_delta", 2, 'y"}'),
        ("stop", 2),
        ("message_delta", "tool_use", usage(10, 20, 30, 40)),
        "message_stop",
    ]


def test_frames_are_one_event_and_one_data_line_each() -> None:
    raw = AnthropicStreamRenderer().render(MessageStart("msg_1", "m", Usage(5)))
    assert raw == (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
        b'"role":"assistant","content":[],"model":"m","stop_reason":null,"stop_sequence":null,'
        b'"usage":{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}\n\n'
    )


def test_a_broken_decoder_transcript_is_repaired() -> None:
    """What a careless OpenAI-side decoder might emit, and what the client receives instead."""
    events: list[Event] = [
        Ping(),
        TextDelta(0, "Hi"),  # no MessageStart, no BlockStart
        BlockStart(1, ToolUse("", "Read", {})),  # text block still open, tool id missing
        SignatureDelta(7, "orphan"),  # a signature for no block
        BlockStart(2, ToolUse("call_2", "Grep", {})),
        ToolInputDelta(2, '{"pattern": "x'),  # cut mid-string
        ToolInputDelta(1, '{"late": true}'),  # arguments for a closed call: nowhere to go
        BlockStop(2),
        BlockStop(2),  # stopped twice
        MessageDelta(StopReason.END_TURN, None, Usage(0, 7)),  # tool called, yet "end_turn"
        MessageDelta(StopReason.END_TURN, None, Usage(120, 5, 30)),  # usage chunk after finish_reason
        MessageStop(),
        TextDelta(0, "after the end"),
    ]
    assert compact(render(events, model="gpt-x", estimate=Usage(100))) == [
        "ping",
        ("message_start", "msg_gen", "gpt-x", usage(100, 0)),
        ("content_block_start", 0, {"type": "text", "text": ""}),
        ("text_delta", 0, "Hi"),
        ("stop", 0),
        ("content_block_start", 1, {"type": "tool_use", "id": "toolu_gen", "name": "Read", "input": {}}),
        ("stop", 1),
        ("content_block_start", 2, {"type": "thinking", "thinking": "", "signature": ""}),
        ("signature_delta", 2, "orphan"),
        ("stop", 2),
        ("content_block_start", 3, {"type": "tool_use", "id": "call_2", "name": "Grep", "input": {}}),
        ("input_json_delta", 3, '{"pattern": "x'),
        ("input_json_delta", 3, '"}'),
        ("stop", 3),
        ("message_delta", "tool_use", usage(120, 7, 30)),
        "message_stop",
    ]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(event_sequences(), st.one_of(st.none(), usages()))
def test_whatever_the_decoder_emits_the_client_gets_a_valid_stream(events: list[Event], estimate: Usage | None) -> None:
    frames = render(events, estimate=estimate)
    starts = [d for n, d in frames if n == "message_start"]
    if starts and estimate is not None and estimate.prompt_tokens:
        assert sum(v for k, v in starts[0]["message"]["usage"].items() if k != "output_tokens") > 0


def _as_the_client_sees(response: Response) -> Response:
    called = any(isinstance(b, ToolUse) for b in response.content)
    stop = StopReason.TOOL_USE if called and response.stop_reason is StopReason.END_TURN else response.stop_reason
    content = tuple(dataclasses.replace(b, citations=()) if isinstance(b, Text) else b for b in response.content)
    return dataclasses.replace(response, content=content, stop_reason=stop)


@given(responses(), st.integers(0, 9))
def test_a_rendered_stream_decodes_back_to_the_same_message(response: Response, fragment: int) -> None:
    renderer = AnthropicStreamRenderer()
    raw = renderer.render_all(events_of(response, fragment=fragment))
    validate_anthropic_sse(raw)
    decoder = AnthropicStreamDecoder()
    # citations travel as citations_delta, which has no canonical event: compare without them
    assert assemble(decoder.feed(raw) + decoder.finish()) == _as_the_client_sees(response)


def test_multiple_deltas_merge_and_a_delta_without_input_keeps_the_start() -> None:
    frames = render([MessageStart("m", "x", Usage(50, 3, 10)), MessageDelta(StopReason.MAX_TOKENS, None, Usage(0, 2))])
    assert compact(frames)[-2] == ("message_delta", "max_tokens", usage(50, 3, 10))


def test_an_error_ends_the_stream_with_no_message_stop() -> None:
    events = [
        MessageStart("m", "x", Usage(5)),
        BlockStart(0, Text("")),
        TextDelta(0, "par"),
        StreamError("overloaded_error", "Overloaded"),
    ]
    frames = render([*events, TextDelta(0, "more"), MessageStop()])
    assert compact(frames)[-2:] == [("text_delta", 0, "par"), ("error", "overloaded_error")]


def test_a_stream_that_just_stops_ends_with_an_error_unless_it_was_finishing() -> None:
    assert compact(render([MessageStart("m", "x", Usage(5)), BlockStart(0, Text("hi"))]))[-1] == ("error", "api_error")
    assert compact(render([]))[-1] == ("error", "api_error")
    ending = compact(
        render(
            [
                MessageStart("m", "x", Usage(5)),
                BlockStart(0, Text("hi")),
                MessageDelta(StopReason.END_TURN, None, Usage(5, 2)),
            ]
        )
    )
    assert ending[-3:] == [("stop", 0), ("message_delta", "end_turn", usage(5, 2)), "message_stop"]


def test_signature_fragments_are_sent_once_right_before_the_stop() -> None:
    events = [
        BlockStart(0, Thinking("", "ab")),
        SignatureDelta(0, "cd"),
        ThinkingDelta(0, "thought"),
        SignatureDelta(0, "ef"),
        BlockStop(0),
        MessageStop(),
    ]
    assert compact(render(events))[1:5] == [
        ("content_block_start", 0, {"type": "thinking", "thinking": "", "signature": ""}),
        ("thinking_delta", 0, "thought"),
        ("signature_delta", 0, "abcdef"),
        ("stop", 0),
    ]


def test_whole_tool_input_at_the_start_is_sent_as_one_fragment() -> None:
    events = [BlockStart(0, ToolUse("c", "f", {"q": "é"})), ToolInputDelta(0, '{"q": "again"}'), MessageStop()]
    assert compact(render(events))[2:4] == [("input_json_delta", 0, '{"q":"é"}'), ("stop", 0)]


def test_tool_arguments_that_cannot_be_an_object_end_the_stream_with_an_error() -> None:
    events = [BlockStart(0, ToolUse("c", "f", {})), ToolInputDelta(0, '{"a": 1,'), BlockStop(0), MessageStop()]
    assert compact(render(events))[-1] == ("error", "api_error")


@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        ("", ""),
        ('{"a": 1}', ""),
        ('{"a": "b', '"}'),
        ('{"a": [1, {"b": "c\\', '\\"}]}'),
        ('{"a":', "null}"),
        ('{"a"', ":null}"),
        ('{"a": "}{"', "}"),
        ('{"a": 1,', None),
        ("[1, 2]", None),
        ('{"a": 1}}', None),
        ("null", None),
    ],
)
def test_json_object_completion(text: str, suffix: str | None) -> None:
    assert json_object_completion(text) == suffix
    if suffix is not None and text:
        assert isinstance(orjson.loads(text + suffix), dict)


def test_input_blocks_and_late_starts_are_ignored_and_states_have_names() -> None:
    renderer = AnthropicStreamRenderer(new_id=lambda prefix: prefix + "gen")
    assert renderer.state == "state_before_start"
    renderer.render(BlockStart(0, Image("image/png", "AAAA")))  # type: ignore[arg-type]
    assert renderer.state == "state_between_blocks"
    renderer.render(BlockStart(0, RedactedThinking("r")))
    assert renderer.state == "state_in_block"
    assert renderer.render(MessageStart("late", "x", Usage(9))) == b""
    renderer.render(MessageStop())
    assert renderer.done and renderer.render(Ping()) == b"" and renderer.finish() == b""


def test_render_response_writes_the_message_and_fixes_the_stop_reason() -> None:
    response = dataclasses.replace(RESPONSE, stop_reason=StopReason.END_TURN)
    body = orjson.loads(render_response(response))
    assert body["stop_reason"] == "tool_use"
    assert body["usage"] == usage(10, 20, 30, 40)
    assert body["content"][2] == {"type": "tool_use", "id": "call_1", "name": "Read", "input": {"path": "a.py"}}


def test_render_error_uses_the_anthropic_envelope_and_whole_seconds() -> None:
    rendered = render_error(RateLimited("every account is busy", retry_after_s=3), request_id="req_1")
    assert rendered.status == 429
    assert dict(rendered.headers) == {"content-type": "application/json", "retry-after": "3"}
    assert orjson.loads(rendered.body) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "every account is busy"},
        "request_id": "req_1",
    }
    upstream = render_error(UpstreamFailure(529, "overloaded_error", "Overloaded", 1.2))
    assert (upstream.status, dict(upstream.headers)["retry-after"]) == (529, "2")
    assert "request_id" not in orjson.loads(upstream.body)


# -- the official SDK reads what we write -----------------------------------------------------


class _Upstream:
    """An httpx2 transport (the SDK's HTTP client) answering every request with the body of the current example."""

    def __init__(self) -> None:
        self.body = b""
        self.streaming = False

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        kind = "text/event-stream" if self.streaming else "application/json"
        return httpx2.Response(200, headers={"content-type": kind}, content=self.body)


UPSTREAM = _Upstream()
CLIENT = anthropic.Anthropic(
    api_key="k", max_retries=0, http_client=httpx2.Client(transport=httpx2.MockTransport(UPSTREAM))
)


def _sdk_message(body: bytes, *, stream: bool) -> dict[str, Any]:
    UPSTREAM.body, UPSTREAM.streaming = body, stream
    args: dict[str, Any] = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        with CLIENT.messages.stream(**args) as events:
            message: Any = events.get_final_message()
    else:
        message = CLIENT.messages.create(**args)
    return message.model_dump(exclude_none=True)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(responses(), st.integers(0, 5))
def test_the_sdk_accumulates_a_rendered_stream_into_the_rendered_message(response: Response, fragment: int) -> None:
    streamed = AnthropicStreamRenderer().render_all(events_of(response, fragment=fragment))
    assert _sdk_message(streamed, stream=True) == _sdk_message(render_response(response), stream=False)


def test_the_sdk_accumulates_a_repaired_stream() -> None:
    events: list[Event] = [
        TextDelta(0, "Hi "),
        BlockStart(1, ToolUse("c", "Read", {"path": "é"})),
        MessageDelta(StopReason.END_TURN, None, Usage(3, 4)),
    ]
    renderer = AnthropicStreamRenderer(model="gpt-x", estimate=Usage(3))
    message = _sdk_message(renderer.render_all(events) + renderer.finish(), stream=True)
    assert message["content"] == [
        {"type": "text", "text": "Hi "},
        {"type": "tool_use", "id": "c", "name": "Read", "input": {"path": "é"}},
    ]
    assert (message["stop_reason"], message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (
        "tool_use",
        3,
        4,
    )


def test_the_sdk_raises_on_a_rendered_error() -> None:
    renderer = AnthropicStreamRenderer()
    raw = renderer.render_all([MessageStart("m", "x", Usage(1)), StreamError("overloaded_error", "Overloaded")])
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        _sdk_message(raw, stream=True)


def test_block_start_and_stop_alone_are_valid() -> None:
    frames = render([BlockStart(0, Text("")), BlockStop(0), BlockStop(0), MessageStop()])
    assert [name for name, _ in frames].count("content_block_stop") == 1


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(event_sequences())
def test_the_sdk_reads_whatever_the_renderer_made_of_a_broken_sequence(events: list[Event]) -> None:
    renderer = AnthropicStreamRenderer()
    raw = renderer.render_all(events) + renderer.finish()
    if validate_anthropic_sse(raw)[-1][0] == "error":
        with pytest.raises(anthropic.APIStatusError):
            _sdk_message(raw, stream=True)
    else:
        assert _sdk_message(raw, stream=True)["stop_reason"] is not None
