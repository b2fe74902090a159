"""The OpenAI codec: request bodies, whole responses, streams as transcripts, and error answers."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kestrel.edge.canonical import (
    BlockStart,
    BlockStop,
    CacheControl,
    Document,
    Event,
    Image,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
    Request,
    ResponseFormat,
    SignatureDelta,
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
from kestrel.edge.dialects.openai import OpenAIStreamRenderer
from kestrel.edge.providers.openai import (
    OpenAICodec,
    OpenAIStreamDecoder,
    State,
    estimate_input_tokens,
    reasoning_effort,
    wire_tool_name,
)
from kestrel.edge.providers.presets import DEEPSEEK, GROQ, MISTRAL, OPENROUTER, PRESETS, XAI, preset
from kestrel.edge.testing.openai_stream import collect, validate_openai_sse

LONG = "mcp__a_very_long_server_name_for_testing__and_an_even_longer_tool_name_that_overflows"
WIRE_LONG = wire_tool_name(LONG)


def chat_request(**fields: Any) -> Request:
    base: dict[str, Any] = {
        "model": "claude-x",
        "messages": (Message("user", (Text("hi"),)),),
        "tools": (Tool(LONG, "a tool", {"type": "object", "properties": {"p": {"type": "string"}}}), Tool("Bash")),
    }
    return Request(**(base | fields))


def sse(*chunks: dict[str, Any] | str) -> bytes:
    """Frames as an upstream writes them; a string is a raw payload (``[DONE]``) or a ``:`` comment."""
    out = b""
    for chunk in chunks:
        if isinstance(chunk, dict):
            out += b"data: " + orjson.dumps(chunk) + b"\n\n"
        else:
            out += (chunk if chunk.startswith(":") else "data: " + chunk).encode() + b"\n\n"
    return out


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-u"}
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return body | {"choices": [choice]} | extra


def usage_chunk(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-u", "choices": []} | {
        "usage": usage
    }


def decode(raw: bytes, request: Request | None = None, preset_name: str = "openai") -> list[Event]:
    decoder = OpenAICodec(preset(preset_name)).stream_decoder(request or chat_request())
    return decoder.feed(raw) + decoder.finish()


# -- encoding -------------------------------------------------------------------------------------


def test_encode_golden_request_for_openai() -> None:
    request = chat_request(
        system=(Text("You are Claude Code.", cache=CacheControl()), Text("Be brief.")),
        messages=(
            Message("user", (Text("look"), Image("image/png", "iVBO"))),
            Message(
                "assistant",
                (
                    Thinking("hmm", "sig"),
                    Text("Calling."),
                    ToolUse("toolu_01", LONG, {"p": "é"}),
                    ToolUse("t2", "Bash", {}),
                ),
            ),
            Message(
                "user",
                (
                    Text("after"),
                    ToolResult("toolu_01", (Text("line 1"), Text("line 2"), Image(url="https://x/i.png"))),
                    ToolResult("t2", (), is_error=True),
                ),
            ),
        ),
        max_tokens=32000,
        temperature=0.5,
        top_k=40,
        stop_sequences=("a", "b", "c", "d", "e"),
        tool_choice=ToolChoice(ToolChoiceKind.TOOL, LONG, disable_parallel=True),
        thinking=ThinkingConfig(enabled=True, budget_tokens=10000),
        stream=True,
        user="user-1",
        response_format=ResponseFormat("json_object"),
        extra={"context_management": {"edits": []}, "response_format": {"type": "text"}},
    )
    encoded = OpenAICodec().encode(request, "gpt-5")
    assert encoded.path == "/v1/chat/completions"
    assert dict(encoded.headers)[b"content-type"] == b"application/json"
    assert orjson.loads(encoded.body) == {
        "model": "gpt-5",
        "messages": [
            {"role": "system", "content": "You are Claude Code.\n\nBe brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Calling.",
                "tool_calls": [
                    {"id": "toolu_01", "type": "function", "function": {"name": WIRE_LONG, "arguments": '{"p":"é"}'}},
                    {"id": "t2", "type": "function", "function": {"name": "Bash", "arguments": "{}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_01", "content": "line 1\nline 2"},
            {"role": "tool", "tool_call_id": "t2", "content": ""},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "https://x/i.png"}},
                    {"type": "text", "text": "after"},
                ],
            },
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": WIRE_LONG,
                    "description": "a tool",
                    "parameters": {"type": "object", "properties": {"p": {"type": "string"}}},
                },
            },
            {"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}},
        ],
        "tool_choice": {"type": "function", "function": {"name": WIRE_LONG}},
        "parallel_tool_calls": False,
        "max_completion_tokens": 32000,
        "temperature": 0.5,
        "stop": ["a", "b", "c", "d"],
        "reasoning_effort": "medium",
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "user-1",
        "response_format": {"type": "json_object"},
    }


def test_tool_results_come_first_and_text_only_users_are_strings() -> None:
    request = chat_request(messages=(Message("user", (Text("a"), ToolResult("x", (Text("r"),)), Text("b"))),), tools=())
    body = orjson.loads(OpenAICodec().encode(request, "m").body)
    assert body["messages"] == [
        {"role": "tool", "tool_call_id": "x", "content": "r"},
        {"role": "user", "content": "a\n\nb"},
    ]
    assert "tools" not in body and "tool_choice" not in body


def test_mid_conversation_system_and_documents() -> None:
    request = chat_request(
        messages=(
            Message("user", (Document("text/plain", "notes"), Document("application/pdf", "JVBE", title="a.pdf"))),
            Message("system", (Text("be careful"),)),
        ),
        tools=(),
    )
    messages = orjson.loads(OpenAICodec().encode(request, "m").body)["messages"]
    assert messages == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "notes"},
                {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
            ],
        },
        {"role": "system", "content": "be careful"},
    ]


@pytest.mark.parametrize(
    ("preset_name", "field"),
    [("openai", "max_completion_tokens"), ("groq", "max_tokens"), ("mistral", "max_tokens")],
)
def test_max_tokens_field_follows_the_preset(preset_name: str, field: str) -> None:
    body = orjson.loads(OpenAICodec(preset(preset_name)).encode(chat_request(max_tokens=99), "m").body)
    assert body[field] == 99
    assert {"max_tokens", "max_completion_tokens"} - {field} & body.keys() == set()


def test_mistral_gets_nine_character_ids_that_still_pair_and_no_unknown_fields() -> None:
    request = chat_request(
        messages=(
            Message("assistant", (ToolUse("toolu_01ABC", "Bash", {"c": 1}),)),
            Message("user", (ToolResult("toolu_01ABC", (Text("ok"),)),)),
        ),
        stream=True,
        user="u",
        tool_choice=ToolChoice(ToolChoiceKind.ANY, disable_parallel=True),
    )
    body = orjson.loads(OpenAICodec(MISTRAL).encode(request, "mistral-large-latest").body)
    call_id = body["messages"][0]["tool_calls"][0]["id"]
    assert re.fullmatch(r"[A-Za-z0-9]{9}", call_id)
    assert body["messages"][1]["tool_call_id"] == call_id
    assert body["tool_choice"] == "required"
    assert not {"stream_options", "user", "parallel_tool_calls", "max_completion_tokens"} & body.keys()


def test_deepseek_gets_reasoning_content_back_on_tool_turns() -> None:
    request = chat_request(
        messages=(
            Message("assistant", (Thinking("plan"), ToolUse("a", "Bash", {}))),
            Message("user", (ToolResult("a", (Text("ok"),)),)),
            Message("assistant", (ToolUse("b", "Bash", {}),)),
            Message("user", (ToolResult("b", (Text("ok"),)),)),
            Message("assistant", (Thinking("only thought"), Text("done"))),
        )
    )
    messages = orjson.loads(OpenAICodec(DEEPSEEK).encode(request, "deepseek-chat").body)["messages"]
    assistants = [m for m in messages if m["role"] == "assistant"]
    assert [m.get("reasoning_content") for m in assistants] == ["plan", "", "only thought"]
    plain = orjson.loads(OpenAICodec().encode(request, "m").body)["messages"]
    assert all("reasoning_content" not in m for m in plain)


def test_reasoning_is_asked_for_only_where_the_preset_says_how() -> None:
    request = chat_request(thinking=ThinkingConfig(enabled=True, budget_tokens=31999))
    assert orjson.loads(OpenAICodec(OPENROUTER).encode(request, "m").body)["reasoning"] == {"effort": "high"}
    for quiet in (XAI, GROQ, DEEPSEEK, MISTRAL):
        body = orjson.loads(OpenAICodec(quiet).encode(request, "m").body)
        assert "reasoning_effort" not in body and "reasoning" not in body


@pytest.mark.parametrize(
    ("thinking", "allowed", "expected"),
    [
        (ThinkingConfig(True, 0), ("low", "medium", "high"), "medium"),  # adaptive
        (ThinkingConfig(True, 1024), ("low", "medium", "high"), "low"),
        (ThinkingConfig(True, 4000), ("low", "medium", "high"), "low"),
        (ThinkingConfig(True, 10000), ("low", "medium", "high"), "medium"),
        (ThinkingConfig(True, 31999), ("low", "medium", "high"), "high"),
        (ThinkingConfig(True, 0, "minimal"), ("low", "medium", "high"), "low"),
        (ThinkingConfig(True, 0, "medium"), ("low", "high"), "high"),
        (ThinkingConfig(True, 0, "xhigh"), ("low", "medium", "high"), "high"),
    ],
)
def test_reasoning_effort_buckets(thinking: ThinkingConfig, allowed: tuple[str, ...], expected: str) -> None:
    assert reasoning_effort(thinking, allowed) == expected


def test_long_and_invalid_tool_names_are_shortened_deterministically() -> None:
    assert wire_tool_name("Bash") == "Bash"
    assert len(WIRE_LONG) == 64 and re.fullmatch(r"[A-Za-z0-9_-]+_[0-9a-f]{8}", WIRE_LONG)
    assert wire_tool_name(LONG) == WIRE_LONG
    assert re.fullmatch(r"my_tool_[0-9a-f]{8}", wire_tool_name("my.tool"))
    assert wire_tool_name("my.tool") != wire_tool_name("my:tool")


def test_presets_are_consistent() -> None:
    assert set(PRESETS) == {"openai", "groq", "xai", "mistral", "together", "deepseek", "openrouter", "vllm", "ollama"}
    assert preset("") is PRESETS["openai"]
    for p in PRESETS.values():
        assert p.base_url.startswith(("http://", "https://")) and not p.base_url.endswith("/")
        assert p.path.endswith("/chat/completions") and p.max_tokens_field in ("max_tokens", "max_completion_tokens")
    with pytest.raises(KeyError, match="unknown"):
        preset("nope")


def test_estimate_is_never_zero_for_a_prompt() -> None:
    assert estimate_input_tokens(chat_request(messages=(Message("user", (Text("hello world!"),)),), tools=())) == 3
    assert estimate_input_tokens(chat_request()) > 3
    assert estimate_input_tokens(chat_request(messages=(), tools=())) == 0


# -- whole responses ------------------------------------------------------------------------------


def completion(message: dict[str, Any], finish: str, usage: dict[str, Any] | None = None, **choice: Any) -> bytes:
    body = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-u",
        "choices": [{"index": 0, "message": {"role": "assistant"} | message, "finish_reason": finish} | choice],
    }
    if usage is not None:
        body["usage"] = usage
    return orjson.dumps(body)


def test_decode_response_golden() -> None:
    codec = OpenAICodec()
    codec.encode(chat_request(), "m")  # remembers the shortened name
    body = completion(
        {
            "reasoning_content": "think first",
            "content": "Here.",
            "tool_calls": [
                {"id": "functions.Bash:0", "type": "function", "function": {"name": "Bash", "arguments": '{"c":"ls"}'}},
                {"id": "call_2", "type": "function", "function": {"name": WIRE_LONG, "arguments": ""}},
            ],
        },
        "stop",
        {
            "prompt_tokens": 1000,
            "completion_tokens": 50,
            "total_tokens": 1050,
            "prompt_tokens_details": {"cached_tokens": 800},
            "completion_tokens_details": {"reasoning_tokens": 20},
        },
    )
    response = codec.decode_response(body)
    assert response.id == "chatcmpl-9" and response.model == "gpt-u"
    assert response.content == (
        Thinking("think first"),
        Text("Here."),
        ToolUse("functions_Bash_0", "Bash", {"c": "ls"}),
        ToolUse("call_2", LONG, {}),
    )
    assert response.stop_reason is StopReason.TOOL_USE  # upstream said stop, but tools were called
    assert response.usage == Usage(input_tokens=200, output_tokens=50, cache_read_input_tokens=800, reasoning_tokens=20)
    assert response.usage.prompt_tokens == 1000
    assert OpenAICodec().decode_response(body, chat_request()).content[3].name == LONG


@pytest.mark.parametrize(
    ("finish", "choice", "expected", "stop_sequence"),
    [
        ("stop", {}, StopReason.END_TURN, None),
        ("length", {}, StopReason.MAX_TOKENS, None),
        ("content_filter", {}, StopReason.REFUSAL, None),
        ("tool_calls", {}, StopReason.END_TURN, None),  # said tool_calls but called nothing
        ("function_call", {}, StopReason.END_TURN, None),
        ("something_new", {}, StopReason.END_TURN, None),
        ("stop", {"stop_reason": "###"}, StopReason.STOP_SEQUENCE, "###"),  # vLLM names the stop string
    ],
)
def test_finish_reasons(finish: str, choice: dict[str, Any], expected: StopReason, stop_sequence: str | None) -> None:
    response = OpenAICodec().decode_response(completion({"content": "x"}, finish, **choice))
    assert (response.stop_reason, response.stop_sequence) == (expected, stop_sequence)


def test_decode_response_edge_cases() -> None:
    codec = OpenAICodec()
    broken = completion(
        {"content": None, "tool_calls": [{"id": "c", "function": {"name": "Bash", "arguments": '{"a":'}}]}, "length"
    )
    response = codec.decode_response(broken)
    assert response.content == (ToolUse("c", "Bash", {"_raw_arguments": '{"a":'}),)
    assert response.usage == Usage()
    deepseek = completion({"content": "x"}, "stop", {"prompt_tokens": 10, "prompt_cache_hit_tokens": 4})
    assert codec.decode_response(deepseek).usage == Usage(input_tokens=6, cache_read_input_tokens=4)
    refusal = completion({"content": None, "refusal": "I can't."}, "stop")
    assert codec.decode_response(refusal).content == (Text("I can't."),)
    assert codec.decode_response(refusal).stop_reason is StopReason.REFUSAL
    with pytest.raises(ValueError, match="no choices"):
        codec.decode_response(b'{"choices": []}')


# -- streams --------------------------------------------------------------------------------------

TEXT_STREAM = sse(
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Hé"}),
    chunk({"content": "llo 日本 🎉"}),
    chunk(finish="stop"),
    usage_chunk(120, 7, cached=100),
    "[DONE]",
)


def test_text_stream_transcript() -> None:
    assert decode(TEXT_STREAM) == [
        MessageStart("chatcmpl-1", "gpt-u", Usage(input_tokens=estimate_input_tokens(chat_request()))),
        BlockStart(0, Text("")),
        TextDelta(0, "Hé"),
        TextDelta(0, "llo 日本 🎉"),
        BlockStop(0),
        MessageDelta(StopReason.END_TURN, None, Usage(input_tokens=20, output_tokens=7, cache_read_input_tokens=100)),
        MessageStop(),
    ]


def call_start(index: int, call_id: str, name: str, arguments: str = "") -> dict[str, Any]:
    return {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


ARGS_0 = ['{"command":', ' "echo \\"hi\\" \\u00e9\\n', '"}']
ARGS_1 = ['{"p": ', '"日本"}']

TOOL_STREAM = sse(
    chunk({"role": "assistant", "reasoning_content": ""}),
    chunk({"reasoning_content": "Let me "}),
    chunk({"reasoning_content": "think."}),
    chunk({"content": "Running."}),
    chunk({"tool_calls": [call_start(0, "call_a", "Bash")]}),
    *(chunk({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}) for a in ARGS_0),
    chunk({"tool_calls": [call_start(1, "call_b", WIRE_LONG, ARGS_1[0])]}),
    chunk({"tool_calls": [{"index": 1, "function": {"arguments": ARGS_1[1]}}]}),
    chunk(finish="stop"),  # some upstreams say stop after tool calls
    usage_chunk(50, 30),
    "[DONE]",
)


def test_reasoning_text_and_parallel_tool_calls_transcript() -> None:
    events = decode(TOOL_STREAM)
    assert events[1:] == [
        BlockStart(0, Thinking("")),
        ThinkingDelta(0, "Let me "),
        ThinkingDelta(0, "think."),
        BlockStop(0),
        BlockStart(1, Text("")),
        TextDelta(1, "Running."),
        BlockStop(1),
        BlockStart(2, ToolUse("call_a", "Bash", {})),
        *(ToolInputDelta(2, a) for a in ARGS_0),
        BlockStop(2),
        BlockStart(3, ToolUse("call_b", LONG, {})),
        *(ToolInputDelta(3, a) for a in ARGS_1),
        BlockStop(3),
        MessageDelta(StopReason.TOOL_USE, None, Usage(input_tokens=50, output_tokens=30)),
        MessageStop(),
    ]
    joined = "".join(e.partial_json for e in events if isinstance(e, ToolInputDelta) and e.index == 2)
    assert joined == '{"command": "echo \\"hi\\" \\u00e9\\n"}'  # untouched: still escaped as sent
    assert orjson.loads(joined) == {"command": 'echo "hi" é\n'}


def test_message_delta_is_held_until_usage_and_never_doubled() -> None:
    decoder = OpenAICodec().stream_decoder(chat_request())
    first = decoder.feed(sse(chunk({"content": "x"}), chunk(finish="length")))
    assert first[-1] == BlockStop(0) and decoder.state is State.AWAITING_USAGE
    last = decoder.feed(sse(usage_chunk(9, 2)))
    assert last == [MessageDelta(StopReason.MAX_TOKENS, None, Usage(9, 2)), MessageStop()]
    assert decoder.feed(sse("[DONE]")) == [] and decoder.finish() == []
    assert decoder.state is State.DONE


def test_usage_in_the_finish_chunk_is_used_at_done() -> None:
    raw = sse(
        chunk({"content": "x"}), chunk(finish="stop", usage={"prompt_tokens": 30, "completion_tokens": 3}), "[DONE]"
    )
    assert decode(raw)[-2] == MessageDelta(StopReason.END_TURN, None, Usage(30, 3))
    x_groq = {"usage": {"prompt_tokens": 8, "completion_tokens": 1}}
    groq = sse(chunk({"content": "x"}), chunk(finish="stop", x_groq=x_groq), "[DONE]")
    assert decode(groq)[-2].usage == Usage(8, 1)  # type: ignore[union-attr]


def test_missing_usage_is_estimated_not_zero() -> None:
    events = decode(sse(chunk({"content": "a" * 40}), chunk(finish="stop"), "[DONE]"))
    delta = events[-2]
    assert isinstance(delta, MessageDelta)
    assert delta.usage == Usage(input_tokens=estimate_input_tokens(chat_request()), output_tokens=10)
    assert isinstance(events[0], MessageStart) and events[0].usage.input_tokens > 0


def test_stream_cut_after_finish_reason_still_ends_the_message() -> None:
    events = decode(sse(chunk({"content": "x"}), chunk(finish="length")))
    assert events[-3:] == [
        BlockStop(0),
        MessageDelta(StopReason.MAX_TOKENS, None, Usage(estimate_input_tokens(chat_request()), 1)),
        MessageStop(),
    ]


def test_cut_stream_is_an_error() -> None:
    events = decode(sse(chunk({"content": "x"})) + b'data: {"id":"chatcmpl-1","choi')
    assert events[-1] == StreamError("api_error", "the upstream stream ended before the response was complete")
    assert decode(b"") == [StreamError("api_error", "the upstream stream ended before the response was complete")]


def test_error_frame_mid_stream() -> None:
    raw = sse(
        chunk({"content": "x"}),
        {"error": {"message": "The server had an error", "type": "server_error"}},
        chunk({"content": "ignored"}),
    )
    events = decode(raw)
    assert events[-1] == StreamError("api_error", "The server had an error")
    assert TextDelta(0, "ignored") not in events
    overloaded = decode(sse({"error": {"message": "busy", "code": 503}}))
    assert overloaded == [StreamError("overloaded_error", "busy")]
    assert decode(sse(chunk({"content": "x"})) + b"data: {nope\n\n")[-1].kind == "api_error"  # type: ignore[union-attr]


def test_comments_crlf_and_missing_trailing_blank_line() -> None:
    raw = TOOL_STREAM.replace(b"\n\n", b"\r\n\r\n")
    raw = b": OPENROUTER PROCESSING\r\n\r\n" + raw[: -len(b"\r\n\r\n")]  # ends right after [DONE]
    assert raw.endswith(b"data: [DONE]")
    assert decode(raw) == decode(TOOL_STREAM)


def test_ccr_thinking_with_signature_and_ollama_whole_tool_call() -> None:
    raw = sse(
        chunk({"thinking": {"content": "hm"}}),
        chunk({"thinking": {"signature": "SIG"}}),
        chunk({"tool_calls": [{"id": "c1", "function": {"name": "Bash", "arguments": {"c": 1}}}]}),
        chunk({"tool_calls": [{"id": "c2", "function": {"name": "Bash", "arguments": '{"c":2}'}}]}),
        chunk(finish="stop"),
        "[DONE]",
    )
    events = decode(raw)
    assert events[1:10] == [
        BlockStart(0, Thinking("")),
        ThinkingDelta(0, "hm"),
        SignatureDelta(0, "SIG"),
        BlockStop(0),
        BlockStart(1, ToolUse("c1", "Bash", {})),
        ToolInputDelta(1, '{"c":1}'),
        BlockStop(1),
        BlockStart(2, ToolUse("c2", "Bash", {})),
        ToolInputDelta(2, '{"c":2}'),
    ]
    assert events[-2].stop_reason is StopReason.TOOL_USE  # type: ignore[union-attr]


def test_interleaved_tool_fragments_are_reported_not_dropped() -> None:
    raw = sse(
        chunk({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "Bash", "arguments": "{"}}]}),
        chunk({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "Bash", "arguments": "{"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}),
    )
    assert decode(raw)[-1] == StreamError("api_error", "the upstream interleaved fragments of different tool calls")


def test_missing_tool_ids_are_generated_deterministically() -> None:
    raw = sse(chunk({"tool_calls": [{"index": 0, "function": {"name": "Bash", "arguments": "{}"}}]}), "[DONE]")
    start = decode(raw)[1]
    assert isinstance(start, BlockStart) and isinstance(start.block, ToolUse)
    assert re.fullmatch(r"toolu_[0-9a-f]{24}", start.block.id) and decode(raw)[1] == start


def _well_formed(events: list[Event]) -> None:
    """Every block opened once and stopped once, in order; the message ends exactly once."""
    open_blocks: list[int] = []
    stopped: set[int] = set()
    for event in events:
        if isinstance(event, BlockStart):
            assert not open_blocks and event.index not in stopped
            open_blocks.append(event.index)
        elif isinstance(event, BlockStop):
            assert open_blocks == [event.index]
            stopped.add(open_blocks.pop())
    assert sum(isinstance(e, MessageStop | StreamError) for e in events) == 1


@settings(max_examples=150, deadline=None)
@given(data=st.data(), transcript=st.sampled_from([TEXT_STREAM, TOOL_STREAM]))
def test_any_rechunking_gives_identical_events(data: st.DataObject, transcript: bytes) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, len(transcript) - 1), max_size=40)))
    pieces = [transcript[a:b] for a, b in zip([0, *cuts], [*cuts, len(transcript)], strict=True)]
    decoder = OpenAIStreamDecoder(chat_request())
    events = [e for piece in pieces for e in decoder.feed(piece)] + decoder.finish()
    assert events == decode(transcript)
    _well_formed(events)


def test_byte_by_byte_including_inside_utf8_characters() -> None:
    decoder = OpenAIStreamDecoder(chat_request())
    events = [e for i in range(len(TOOL_STREAM)) for e in decoder.feed(TOOL_STREAM[i : i + 1])] + decoder.finish()
    assert events == decode(TOOL_STREAM)


@st.composite
def upstream_streams(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str]]]:
    """A random but plausible upstream stream, and the (name, arguments) of each tool call in it."""
    texts = st.text(min_size=1, max_size=8)
    frames: list[dict[str, Any] | str] = [chunk({"role": "assistant", "content": ""})]
    calls: list[tuple[str, str]] = []
    for kind in draw(st.lists(st.sampled_from(["content", "reasoning_content", "tool"]), max_size=6)):
        if kind != "tool":
            frames.extend(chunk({kind: piece}) for piece in draw(st.lists(texts, min_size=1, max_size=3)))
            continue
        arguments = orjson.dumps(draw(st.dictionaries(texts, texts | st.booleans(), max_size=3))).decode()
        cuts = sorted(draw(st.sets(st.integers(1, max(1, len(arguments) - 1)), max_size=4)))
        pieces = [arguments[a:b] for a, b in zip([0, *cuts], [*cuts, len(arguments)], strict=True)]
        name = draw(st.sampled_from(["Bash", WIRE_LONG]))
        frames.append(chunk({"tool_calls": [call_start(len(calls), f"call_{len(calls)}", name, pieces[0])]}))
        frames.extend(chunk({"tool_calls": [{"index": len(calls), "function": {"arguments": p}}]}) for p in pieces[1:])
        calls.append((LONG if name == WIRE_LONG else name, arguments))
    frames.append(chunk(finish=draw(st.sampled_from(["stop", "tool_calls", "length"]))))
    if draw(st.booleans()):
        frames.append(usage_chunk(draw(st.integers(0, 10**6)), draw(st.integers(0, 10**5))))
    return sse(*frames, "[DONE]"), calls


@settings(max_examples=150, deadline=None)
@given(data=st.data(), generated=upstream_streams())
def test_generated_streams_survive_rechunking_and_rendering(
    data: st.DataObject, generated: tuple[bytes, list[tuple[str, str]]]
) -> None:
    raw, calls = generated
    cuts = sorted(data.draw(st.sets(st.integers(1, len(raw) - 1), max_size=30)))
    decoder = OpenAIStreamDecoder(chat_request())
    events = [e for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True) for e in decoder.feed(raw[a:b])]
    events += decoder.finish()
    assert events == decode(raw)
    _well_formed(events)
    starts = [e for e in events if isinstance(e, BlockStart) and isinstance(e.block, ToolUse)]
    joined = [
        "".join(d.partial_json for d in events if isinstance(d, ToolInputDelta) and d.index == s.index) for s in starts
    ]
    assert [(s.block.name, j) for s, j in zip(starts, joined, strict=True)] == calls  # type: ignore[union-attr]
    delta = events[-2]
    cut_by_length = b'"finish_reason":"length"' in raw
    assert isinstance(delta, MessageDelta) and (delta.stop_reason is StopReason.TOOL_USE) == (
        bool(calls) and not cut_by_length
    )
    assert delta.usage.prompt_tokens > 0
    # and an OpenAI client of the gateway sees exactly those calls, in a stream that validates
    collected = collect(validate_openai_sse(OpenAIStreamRenderer("gpt-x", True).render_all(events), True))
    assert [(c["name"], c["arguments"]) for c in collected.tool_calls] == calls


# -- errors ---------------------------------------------------------------------------------------


def failure(status: int, body: Any, **headers: str) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return OpenAICodec().decode_error(
        status, [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()], raw
    )


def test_rate_limit_errors_carry_the_wait() -> None:
    body = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}
    assert (failure(429, body, retry_after="7").kind, failure(429, body, retry_after="7").retry_after_s) == (
        "rate_limit_error",
        7.0,
    )
    assert failure(429, body, retry_after_ms="1500").retry_after_s == 1.5
    resets = failure(
        429,
        body,
        x_ratelimit_reset_requests="12ms",
        x_ratelimit_remaining_requests="5",
        x_ratelimit_reset_tokens="6m0s",
        x_ratelimit_remaining_tokens="0",
    )
    assert resets.retry_after_s == 360.0
    assert failure(429, body, x_ratelimit_reset_requests="1.5s").retry_after_s == 1.5
    assert failure(429, body).message == "Rate limit reached"


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error", "code": "invalid_api_key"}},
         "authentication_error", "Incorrect API key"),
        (400, {"error": {"message": "bad", "type": "invalid_request_error"}}, "invalid_request_error", "bad"),
        (402, {"error": {"message": "no credits", "code": 402}}, "billing_error", "no credits"),
        (404, {"error": "model 'x' not found"}, "not_found_error", "model 'x' not found"),
        (422, {"object": "error", "message": {"detail": [{"msg": "Extra inputs"}]}, "type": "invalid_request_error"},
         "invalid_request_error", '{"detail":[{"msg":"Extra inputs"}]}'),
        (500, {"error": {"message": "oops", "type": "server_error"}}, "api_error", "oops"),
        (502, b"<html>Bad gateway</html>", "api_error", "<html>Bad gateway</html>"),
        (503, {"error": {"message": "The engine is currently overloaded"}}, "overloaded_error",
         "The engine is currently overloaded"),
        (500, [{"error": {"message": "list shaped", "code": 500}}], "api_error", "list shaped"),
        (504, b"", "timeout_error", "upstream answered 504"),
    ],
)  # fmt: skip
def test_error_shapes(status: int, body: Any, kind: str, message: str) -> None:
    result = failure(status, body)
    assert (result.status, result.kind, result.message, result.retry_after_s) == (status, kind, message, 0.0)
