"""The OpenAI client dialect: parsing requests, rendering bodies, streams and errors the SDK accepts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kestrel.edge.canonical import (
    BlockStart,
    BlockStop,
    Document,
    Event,
    Image,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    Request,
    Response,
    ResponseFormat,
    StopReason,
    StreamError,
    Text,
    TextDelta,
    Thinking,
    ThinkingConfig,
    ThinkingDelta,
    Tool,
    ToolChoice,
    ToolChoiceKind,
    ToolInputDelta,
    ToolResult,
    ToolUse,
    Usage,
)
from kestrel.edge.dialects.openai import (
    OpenAIStreamRenderer,
    parse_request,
    render_error,
    render_models,
    render_response,
)
from kestrel.edge.errors import InvalidRequest
from kestrel.edge.providers.openai import OpenAICodec
from kestrel.edge.testing.openai_stream import collect, validate_openai_sse


def body(**fields: Any) -> bytes:
    return orjson.dumps({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]} | fields)


# -- parsing --------------------------------------------------------------------------------------


def test_parse_golden_request() -> None:
    raw = body(
        messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO", "detail": "high"}},
                    {"type": "image_url", "image_url": {"url": "https://x/i.png"}},
                    {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
                ],
            },
            {
                "role": "assistant",
                "content": "",
                "reasoning_content": "plan",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": '{"c":"ls"}'}},
                    {"id": "call_2", "type": "function", "function": {"name": "Read", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "body"}]},
            {"role": "user", "content": "thanks"},
            {"role": "system", "content": "mid-conversation note"},
            {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        ],
        tools=[
            {"type": "function", "function": {"name": "Bash", "description": "run", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "Read"}},
        ],
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=10,
        max_completion_tokens=2000,
        stop="END",
        temperature=0.2,
        top_p=0.9,
        user="u-1",
        reasoning_effort="high",
        stream=True,
        stream_options={"include_usage": True},
        response_format={"type": "json_object"},
        seed=7,
    )
    assert parse_request(raw) == Request(
        model="gpt-x",
        system=(Text("You are helpful."), Text("Be brief.")),
        messages=(
            Message(
                "user",
                (
                    Text("look"),
                    Image("image/png", "iVBO"),
                    Image(url="https://x/i.png"),
                    Document("application/pdf", "JVBE", title="a.pdf"),
                ),
            ),
            Message(
                "assistant", (Thinking("plan"), ToolUse("call_1", "Bash", {"c": "ls"}), ToolUse("call_2", "Read", {}))
            ),
            Message(
                "user",
                (ToolResult("call_1", (Text("a.txt"),)), ToolResult("call_2", (Text("body"),)), Text("thanks")),
            ),
            Message("system", (Text("mid-conversation note"),)),
            Message("assistant", (Text("ok"),)),
        ),
        tools=(Tool("Bash", "run", {"type": "object"}), Tool("Read", "", {"type": "object", "properties": {}})),
        tool_choice=ToolChoice(ToolChoiceKind.ANY, disable_parallel=True),
        max_tokens=2000,
        stop_sequences=("END",),
        temperature=0.2,
        top_p=0.9,
        user="u-1",
        thinking=ThinkingConfig(enabled=True, effort="high"),
        stream=True,
        include_usage=True,
        response_format=ResponseFormat("json_object"),
        extra={"seed": 7},
    )


def test_trailing_tool_messages_and_tool_before_assistant_become_user_turns() -> None:
    parsed = parse_request(
        body(
            messages=[
                {"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "T", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "a", "content": ""},
                {"role": "assistant", "content": "next"},
                {"role": "tool", "tool_call_id": "b", "content": "late"},
            ]
        )
    )
    assert [m.role for m in parsed.messages] == ["assistant", "user", "assistant", "user"]
    assert parsed.messages[1].content == (ToolResult("a", ()),)
    assert parsed.messages[3].content == (ToolResult("b", (Text("late"),)),)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"tool_choice": "none"}, ToolChoice(ToolChoiceKind.NONE)),
        ({"tool_choice": "auto"}, ToolChoice(ToolChoiceKind.AUTO)),
        ({"tool_choice": {"type": "function", "function": {"name": "Bash"}}}, ToolChoice(ToolChoiceKind.TOOL, "Bash")),
        ({"parallel_tool_calls": False}, ToolChoice(disable_parallel=True)),
        ({"parallel_tool_calls": True}, None),
        ({}, None),
    ],
)
def test_tool_choice(fields: dict[str, Any], expected: ToolChoice | None) -> None:
    assert parse_request(body(**fields)).tool_choice == expected


def test_defaults_and_small_fields() -> None:
    parsed = parse_request(body(stop=["a", "b"], max_tokens=5, reasoning_effort="none", stream=True))
    assert (parsed.stop_sequences, parsed.max_tokens, parsed.thinking) == (("a", "b"), 5, ThinkingConfig())
    assert parsed.include_usage is False  # a stream without stream_options gets no usage chunk
    assert parse_request(body()).include_usage is True and parse_request(body()).max_tokens is None
    legacy = parse_request(
        body(functions=[{"name": "f", "parameters": {"type": "object"}}], function_call={"name": "f"})
    )
    assert legacy.tools == (Tool("f", "", {"type": "object"}),) and legacy.tool_choice == ToolChoice(
        ToolChoiceKind.TOOL, "f"
    )


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        (None, None),
        ({"type": "text"}, None),
        ({"type": "json_object"}, ResponseFormat("json_object")),
        (
            {"type": "json_schema", "json_schema": {"name": "City", "schema": SCHEMA, "strict": True}},
            ResponseFormat("json_schema", SCHEMA, "City", True),
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "c", "description": "a city", "schema": SCHEMA}},
            ResponseFormat("json_schema", SCHEMA, "c", None, "a city"),
        ),
        ({"type": "json_schema", "json_schema": {"name": "any"}}, ResponseFormat("json_schema", None, "any")),
    ],
)
def test_response_format_is_canonical_not_extra(
    response_format: dict[str, Any] | None, expected: ResponseFormat | None
) -> None:
    parsed = parse_request(body(response_format=response_format))
    assert parsed.response_format == expected
    assert "response_format" not in parsed.extra  # so an OpenAI upstream does not get it twice


def test_a_json_schema_request_encodes_back_as_it_came() -> None:
    sent = {"type": "json_schema", "json_schema": {"name": "City", "schema": SCHEMA, "strict": True}}
    encoded = orjson.loads(OpenAICodec().encode(parse_request(body(response_format=sent)), "gpt-x").body)
    assert encoded["response_format"] == sent


def assistant_calling(arguments: str) -> bytes:
    call = {"id": "a", "function": {"name": "T", "arguments": arguments}}
    return body(messages=[{"role": "assistant", "tool_calls": [call]}])


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{nope", "not valid JSON"),
        (b"[]", "JSON object"),
        (orjson.dumps({"messages": [{"role": "user", "content": "x"}]}), "model"),
        (orjson.dumps({"model": "m", "messages": []}), "messages"),
        (body(messages=[{"role": "wizard", "content": "x"}]), r"messages\[0\]\.role"),
        (
            assistant_calling("{x"),
            r"messages\[0\]\.tool_calls\[0\]\.function\.arguments: is not valid JSON",
        ),
        (
            assistant_calling("[1]"),
            "must encode a JSON object",
        ),
        (body(messages=[{"role": "tool", "content": "x"}]), "tool_call_id"),
        (body(messages=[{"role": "user", "content": [{"type": "input_audio"}]}]), "not supported"),
        (body(messages=[{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]), "file_data"),
        (body(messages=[{"role": "user", "content": 5}]), "content"),
        (body(tool_choice="always"), "tool_choice"),
        (body(tools=[{"type": "custom", "custom": {"name": "x"}}]), "tools"),
        (body(n=2), "n: only 1"),
        (body(reasoning_effort="extreme"), "reasoning_effort"),
        (body(max_tokens=0), "max_tokens"),
        (body(temperature="hot"), "temperature"),
        (body(stop=[1]), "stop"),
        (body(stream="yes"), "stream"),
        (body(response_format={"type": "xml"}), "response_format.type"),
        (body(response_format={"type": "json_schema"}), r"response_format\.json_schema: an object"),
        (body(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": []}}), "schema"),
        (body(response_format={"type": "json_schema", "json_schema": {"name": 1}}), "json_schema.name"),
        (body(response_format={"type": "json_schema", "json_schema": {"strict": "yes"}}), "strict"),
    ],
)  # fmt: skip
def test_parse_rejects_bad_input_naming_the_field(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_request(raw)


def test_parse_then_encode_keeps_an_openai_conversation() -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "Bash", "arguments": '{"c":"ls"}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "a.txt"},
        {"role": "user", "content": "and?"},
    ]
    encoded = orjson.loads(OpenAICodec().encode(parse_request(body(messages=messages)), "gpt-x").body)
    assert encoded["messages"] == messages


# -- whole responses ------------------------------------------------------------------------------

USAGE = Usage(input_tokens=10, output_tokens=20, cache_read_input_tokens=30, cache_creation_input_tokens=5)
USAGE_JSON = {
    "prompt_tokens": 45,
    "completion_tokens": 20,
    "total_tokens": 65,
    "prompt_tokens_details": {"cached_tokens": 30},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


def test_render_response_with_tool_calls_only() -> None:
    response = Response(
        "msg_1", "claude-x", (ToolUse("toolu_1", "Bash", {"c": "é"}),), StopReason.TOOL_USE, usage=USAGE
    )
    assert orjson.loads(render_response(response, "gpt-x", created=5)) == {
        "id": "chatcmpl-msg_1",
        "object": "chat.completion",
        "created": 5,
        "model": "gpt-x",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {"id": "toolu_1", "type": "function", "function": {"name": "Bash", "arguments": '{"c":"é"}'}}
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": USAGE_JSON,
    }


def test_render_response_with_reasoning_and_text() -> None:
    response = Response(
        "chatcmpl-z", "m", (Thinking("hmm", "sig"), Text("Hel"), Text("lo")), StopReason.END_TURN, usage=Usage(1, 2)
    )
    rendered = orjson.loads(render_response(response, "gpt-x", created=5))
    assert rendered["id"] == "chatcmpl-z"
    assert rendered["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hello",
        "refusal": None,
        "reasoning_content": "hmm",
    }


@pytest.mark.parametrize(
    ("stop", "tools", "finish"),
    [
        (StopReason.END_TURN, False, "stop"),
        (StopReason.STOP_SEQUENCE, False, "stop"),
        (StopReason.PAUSE_TURN, False, "stop"),
        (StopReason.MAX_TOKENS, False, "length"),
        (StopReason.CONTEXT_WINDOW, False, "length"),
        (StopReason.REFUSAL, False, "content_filter"),
        (StopReason.TOOL_USE, True, "tool_calls"),
        (StopReason.END_TURN, True, "tool_calls"),
        (StopReason.MAX_TOKENS, True, "length"),
    ],
)
def test_finish_reason_mapping(stop: StopReason, tools: bool, finish: str) -> None:
    content = (ToolUse("t", "T", {}),) if tools else (Text("x"),)
    rendered = orjson.loads(render_response(Response("r", "m", content, stop), "gpt-x"))
    assert rendered["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize(
    ("status", "kind", "out_status", "etype", "code"),
    [
        (400, "invalid_request_error", 400, "invalid_request_error", None),
        (401, "authentication_error", 401, "invalid_request_error", "invalid_api_key"),
        (404, "not_found_error", 404, "invalid_request_error", "not_found"),
        (429, "rate_limit_error", 429, "rate_limit_exceeded", "rate_limit_exceeded"),
        (529, "overloaded_error", 503, "server_error", "overloaded"),
        (500, "api_error", 500, "server_error", None),
        (502, "something_new", 502, "server_error", None),
    ],
)
def test_render_error(status: int, kind: str, out_status: int, etype: str, code: str | None) -> None:
    got_status, raw = render_error(status, kind, "why")
    assert got_status == out_status
    assert orjson.loads(raw) == {"error": {"message": "why", "type": etype, "param": None, "code": code}}


def test_render_models() -> None:
    assert orjson.loads(render_models(["a", "b"], created=3)) == {
        "object": "list",
        "data": [
            {"id": "a", "object": "model", "created": 3, "owned_by": "kestrel"},
            {"id": "b", "object": "model", "created": 3, "owned_by": "kestrel"},
        ],
    }


# -- streams --------------------------------------------------------------------------------------

EVENTS: list[Event] = [
    MessageStart("msg_1", "claude-x", Usage(input_tokens=100)),
    BlockStart(0, Thinking("")),
    ThinkingDelta(0, "hm"),
    BlockStop(0),
    BlockStart(1, Text("")),
    TextDelta(1, "Hi"),
    BlockStop(1),
    Ping(),
    BlockStart(2, ToolUse("toolu_a", "Bash", {})),
    ToolInputDelta(2, '{"c": "echo \\"é\\""'),
    ToolInputDelta(2, "}"),
    BlockStop(2),
    BlockStart(3, ToolUse("toolu_b", "Read", {})),
    ToolInputDelta(3, '{"p": 1}'),
    BlockStop(3),
    MessageDelta(StopReason.TOOL_USE, None, USAGE),
    MessageStop(),
]


def frame(delta: dict[str, Any] | None, finish: str | None = None, **over: Any) -> bytes:
    chunk: dict[str, Any] = {"id": "chatcmpl-msg_1", "object": "chat.completion.chunk", "created": 5, "model": "gpt-x"}
    chunk["choices"] = (
        [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    )
    return b"data: " + orjson.dumps(chunk | {"usage": None} | over) + b"\n\n"


def call_start(index: int, call_id: str, name: str) -> dict[str, Any]:
    return {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}


def test_stream_renderer_golden_transcript() -> None:
    rendered = OpenAIStreamRenderer("gpt-x", include_usage=True, created=5).render_all(EVENTS)
    assert rendered == b"".join(
        [
            frame({"role": "assistant", "content": ""}),
            frame({"reasoning_content": "hm"}),
            frame({"content": "Hi"}),
            b": ping\n\n",
            frame({"tool_calls": [call_start(0, "toolu_a", "Bash")]}),
            frame({"tool_calls": [{"index": 0, "function": {"arguments": '{"c": "echo \\"é\\""'}}]}),
            frame({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}),
            frame({"tool_calls": [call_start(1, "toolu_b", "Read")]}),
            frame({"tool_calls": [{"index": 1, "function": {"arguments": '{"p": 1}'}}]}),
            frame({}, "tool_calls"),
            frame(None, usage=USAGE_JSON),
            b"data: [DONE]\n\n",
        ]
    )
    collected = collect(validate_openai_sse(rendered, include_usage=True))
    assert collected.tool_calls[0]["arguments"] == '{"c": "echo \\"é\\""}'
    assert collected.usage == USAGE_JSON


def test_stream_without_usage_and_a_mid_stream_error() -> None:
    renderer = OpenAIStreamRenderer("gpt-x", include_usage=False, created=5)
    rendered = renderer.render_all([*EVENTS[:6], StreamError("overloaded_error", "busy"), TextDelta(1, "late")])
    assert rendered.endswith(
        b'data: {"error":{"message":"busy","type":"server_error","param":null,"code":"overloaded"}}\n\n'
    )
    assert b"late" not in rendered and b"usage" not in rendered and renderer.closed
    assert collect(validate_openai_sse(rendered, include_usage=False)).content == "Hi"


def test_message_stop_without_delta_still_finishes() -> None:
    rendered = OpenAIStreamRenderer("gpt-x", include_usage=True).render_all([EVENTS[0], MessageStop()])
    chunks = validate_openai_sse(rendered, include_usage=True)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["prompt_tokens"] == 100


@st.composite
def event_sequences(draw: st.DrawFn) -> tuple[list[Event], dict[str, Any]]:
    """A valid canonical stream: blocks of every kind, tool arguments cut at random places."""
    events: list[Event] = [MessageStart("msg_h", "claude-x", Usage(input_tokens=draw(st.integers(0, 10**6))))]
    tools: list[str] = []
    texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
    for index in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["text", "thinking", "tool"]))
        if draw(st.booleans()):
            events.append(Ping())
        if kind == "tool":
            arguments = orjson.dumps(
                draw(st.dictionaries(texts, texts | st.integers(-(2**53), 2**53), max_size=3))
            ).decode()
            cuts = sorted(draw(st.sets(st.integers(1, max(1, len(arguments) - 1)), max_size=5)))
            pieces = [arguments[a:b] for a, b in zip([0, *cuts], [*cuts, len(arguments)], strict=True)]
            events.append(BlockStart(index, ToolUse(f"toolu_{index}", f"tool_{index}", {})))
            events.extend(ToolInputDelta(index, p) for p in pieces)
            tools.append(arguments)
        else:
            events.append(BlockStart(index, Text("") if kind == "text" else Thinking("")))
            for piece in draw(st.lists(texts, max_size=3)):
                events.append(TextDelta(index, piece) if kind == "text" else ThinkingDelta(index, piece))
        events.append(BlockStop(index))
    usage = Usage(*(draw(st.integers(0, 10**5)) for _ in range(4)))
    if draw(st.booleans()):
        events.append(StreamError(draw(st.sampled_from(["api_error", "overloaded_error"])), "x"))
    else:
        events += [MessageDelta(draw(st.sampled_from(list(StopReason))), None, usage), MessageStop()]
    return events, {"tools": tools, "usage": usage}


@settings(max_examples=200, deadline=None)
@given(sequence=event_sequences(), include_usage=st.booleans())
def test_renderer_output_always_validates(sequence: tuple[list[Event], dict[str, Any]], include_usage: bool) -> None:
    events, expected = sequence
    rendered = OpenAIStreamRenderer("gpt-x", include_usage).render_all(events)
    collected = collect(validate_openai_sse(rendered, include_usage))
    assert [c["arguments"] for c in collected.tool_calls] == expected["tools"]
    assert collected.content == "".join(e.text for e in events if isinstance(e, TextDelta))
    if include_usage and isinstance(events[-1], MessageStop):
        assert collected.usage is not None and collected.usage["prompt_tokens"] == expected["usage"].prompt_tokens


# -- the official SDK -----------------------------------------------------------------------------


def sdk(handler: Callable[[httpx2.Request], httpx2.Response]) -> openai.OpenAI:
    """The real ``openai`` client talking to ``handler`` in-process (it uses ``httpx2``)."""
    http_client = httpx2.Client(transport=httpx2.MockTransport(handler))
    return openai.OpenAI(api_key="k", base_url="http://kestrel/v1", http_client=http_client, max_retries=0)


def test_sdk_parses_a_rendered_completion() -> None:
    response = Response(
        "msg_1",
        "m",
        (Thinking("plan"), Text("Calling."), ToolUse("toolu_1", "Bash", {"c": "ls"})),
        StopReason.TOOL_USE,
        usage=USAGE,
    )
    rendered = render_response(response, "gpt-x")
    client = sdk(lambda request: httpx2.Response(200, content=rendered, headers={"content-type": "application/json"}))
    completion = client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Calling."
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert (call.id, call.function.name, orjson.loads(call.function.arguments)) == ("toolu_1", "Bash", {"c": "ls"})  # type: ignore[union-attr]
    assert completion.usage is not None and completion.usage.prompt_tokens == 45
    assert completion.usage.prompt_tokens_details.cached_tokens == 30  # type: ignore[union-attr]
    assert choice.message.model_extra == {"reasoning_content": "plan"}


def test_sdk_streams_and_accumulates_tool_calls() -> None:
    rendered = OpenAIStreamRenderer("gpt-x", include_usage=True).render_all(EVENTS)
    client = sdk(lambda request: httpx2.Response(200, content=rendered, headers={"content-type": "text/event-stream"}))
    messages: Any = [{"role": "user", "content": "hi"}]
    chunks = list(client.chat.completions.create(model="gpt-x", messages=messages, stream=True))
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 65
    with client.chat.completions.stream(model="gpt-x", messages=messages) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls" and message.content == "Hi"
    calls = [(c.id, c.function.name, orjson.loads(c.function.arguments)) for c in message.tool_calls or []]  # type: ignore[union-attr]
    assert calls == [("toolu_a", "Bash", {"c": 'echo "é"'}), ("toolu_b", "Read", {"p": 1})]


def test_sdk_raises_on_a_stream_error_and_on_an_error_body() -> None:
    rendered = OpenAIStreamRenderer("gpt-x", include_usage=False).render_all(
        [*EVENTS[:6], StreamError("api_error", "boom")]
    )
    client = sdk(lambda request: httpx2.Response(200, content=rendered, headers={"content-type": "text/event-stream"}))
    with pytest.raises(openai.APIError, match="boom"):
        list(client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=True))
    status, raw = render_error(429, "rate_limit_error", "slow down")
    limited = sdk(lambda request: httpx2.Response(status, content=raw, headers={"content-type": "application/json"}))
    with pytest.raises(openai.RateLimitError) as caught:
        limited.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "rate_limit_exceeded" and "slow down" in str(caught.value)
