"""GeminiCodec: request encoding, schema sanitizing, stream transcripts, round trips, errors."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kestrel.edge.assemble import assemble as collect
from kestrel.edge.canonical import (
    BlockStart,
    BlockStop,
    CacheControl,
    Event,
    Image,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
    Request,
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
from kestrel.edge.providers.gemini import DUMMY_SIGNATURE, GeminiCodec, estimate_tokens, upstream_name
from kestrel.edge.providers.gemini_schema import ALLOWED_KEYS, TYPES, function_parameters, sanitize_schema
from kestrel.edge.providers.gemini_stream import usage_from

# -- a Claude Code-like request ---------------------------------------------------------------

BASH = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "command": {"type": "string", "description": "The command to run"},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 600000},
        "run_in_background": {"type": "boolean", "default": False},
    },
    "required": ["command"],
}
TODO = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "todos": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "content": {"type": "string", "minLength": 1},
                    "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                    "priority": {"anyOf": [{"const": "high"}, {"const": "low"}]},
                    "id": {"type": "integer", "exclusiveMinimum": 0},
                },
                "required": ["content", "status", "id", "activeForm"],
            },
        },
        "env": {
            "type": "object",
            "description": "Variables",
            "propertyNames": {"pattern": "^[A-Z_]+$"},
            "additionalProperties": {"type": "string"},
        },
        "mode": {"const": "fast", "default": "fast", "examples": ["fast"]},
        "when": {"type": ["string", "null"], "format": "date-time"},
        "path": {"type": "string", "format": "uri"},
    },
    "required": ["todos"],
}
TODO_SANITIZED = {
    "type": "OBJECT",
    "properties": {
        "todos": {
            "type": "ARRAY",
            "items": {
                "type": "OBJECT",
                "properties": {
                    "content": {"type": "STRING", "minLength": 1},
                    "status": {"type": "STRING", "enum": ["pending", "in_progress", "completed"]},
                    "priority": {"type": "STRING", "enum": ["high", "low"]},
                    "id": {"type": "INTEGER", "minimum": 1},
                },
                "required": ["content", "status", "id"],
            },
        },
        "env": {"description": "Variables"},
        "mode": {"type": "STRING", "enum": ["fast"]},
        "when": {"type": "STRING", "format": "date-time", "nullable": True},
        "path": {"type": "STRING"},
    },
    "required": ["todos"],
}
READ = {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}
LONG = "mcp__some-server__" + "a" * 60
LONG_WIRE = LONG[:55] + "_" + hashlib.sha256(LONG.encode()).hexdigest()[:8]

CLAUDE_CODE = Request(
    model="claude-sonnet-4-5",
    stream=True,
    max_tokens=32000,
    temperature=1.0,
    system=(
        Text("x-anthropic-billing-header: cc_version=2.1.3.abc; cc_entrypoint=cli; cch=00000;"),
        Text("You are Claude Code, Anthropic's official CLI for Claude.", cache=CacheControl()),
        Text("Be brief."),
    ),
    messages=(
        Message("user", (Text("List the files", cache=CacheControl()),)),
        Message(
            "assistant", (Thinking("I should run ls", "gemini:SIG-1"), ToolUse("toolu_01", "Bash", {"command": "ls"}))
        ),
        Message("user", (ToolResult("toolu_01", (Text("a.py\nb.py"),)), Text("Now read both"))),
        Message("system", (Text("Reminder: be careful"),)),
        Message(
            "assistant",
            (
                Thinking("an Anthropic thought", "EqQBCkYIBxgCKkD-anthropic"),
                Text("Reading."),
                ToolUse("toolu_02", "Read", {"file_path": "a.py"}),
                ToolUse("toolu_03", "Read", {"file_path": "b.py"}),
            ),
        ),
        Message(
            "user",
            (
                ToolResult("toolu_02", (Text("print(1)"),)),
                ToolResult("toolu_03", (Text("no such file"),), is_error=True),
            ),
        ),
    ),
    tools=(
        Tool("Bash", "Run a command", BASH),
        Tool("Read", "Read a file", READ),
        Tool("TodoWrite", "", TODO),
        Tool(LONG, "x"),
    ),
    tool_choice=ToolChoice(ToolChoiceKind.AUTO),
    thinking=ThinkingConfig(enabled=True, budget_tokens=31999),
)
CLAUDE_CODE_BODY = {
    "systemInstruction": {
        "parts": [{"text": "You are Claude Code, Anthropic's official CLI for Claude.\n\nBe brief."}]
    },
    "contents": [
        {"role": "user", "parts": [{"text": "List the files"}]},
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "Bash", "args": {"command": "ls"}, "id": "toolu_01"},
                    "thoughtSignature": "SIG-1",
                }
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "Bash", "id": "toolu_01", "response": {"result": "a.py\nb.py"}}},
                {"text": "Now read both"},
                {"text": "<system>\nReminder: be careful\n</system>"},
            ],
        },
        {
            "role": "model",
            "parts": [
                {"text": "Reading."},
                {
                    "functionCall": {"name": "Read", "args": {"file_path": "a.py"}, "id": "toolu_02"},
                    "thoughtSignature": DUMMY_SIGNATURE,
                },
                {"functionCall": {"name": "Read", "args": {"file_path": "b.py"}, "id": "toolu_03"}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "Read", "id": "toolu_02", "response": {"result": "print(1)"}}},
                {"functionResponse": {"name": "Read", "id": "toolu_03", "response": {"error": "no such file"}}},
            ],
        },
    ],
    "tools": [
        {
            "functionDeclarations": [
                {
                    "name": "Bash",
                    "description": "Run a command",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {
                            "command": {"type": "STRING", "description": "The command to run"},
                            "timeout": {"type": "NUMBER", "minimum": 0, "maximum": 600000},
                            "run_in_background": {"type": "BOOLEAN"},
                        },
                        "required": ["command"],
                    },
                },
                {
                    "name": "Read",
                    "description": "Read a file",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"file_path": {"type": "STRING"}},
                        "required": ["file_path"],
                    },
                },
                {"name": "TodoWrite", "parameters": TODO_SANITIZED},
                {"name": LONG_WIRE, "description": "x"},
            ]
        }
    ],
    "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    "generationConfig": {
        "maxOutputTokens": 32000,
        "temperature": 1.0,
        "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 24576},
    },
}


def test_encode_claude_code_request_golden() -> None:
    encoded = GeminiCodec().encode(CLAUDE_CODE, "gemini-2.5-pro")
    assert encoded.path == "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    assert encoded.headers == ((b"content-type", b"application/json"),)
    assert orjson.loads(encoded.body) == CLAUDE_CODE_BODY


def test_encode_non_streaming_path_options_and_tool_choice() -> None:
    request = Request(
        model="m",
        messages=(Message("user", (Text("hi"), Image("image/png", "iVBOR"), Image(url="https://x/y.png"))),),
        top_p=0.9,
        top_k=40,
        stop_sequences=("a", "b", "c", "d", "e", "f"),
        tools=(Tool("Bash", "", BASH),),
        tool_choice=ToolChoice(ToolChoiceKind.TOOL, "Bash"),
        thinking=ThinkingConfig(enabled=True),
    )
    encoded = GeminiCodec().encode(request, "models/gemini-2.5-flash")
    body = orjson.loads(encoded.body)
    assert encoded.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert body["contents"][0]["parts"] == [
        {"text": "hi"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://x/y.png"}},
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["Bash"]}}
    assert body["generationConfig"] == {
        "topP": 0.9,
        "topK": 40,
        "stopSequences": ["a", "b", "c", "d", "e"],
        "thinkingConfig": {"includeThoughts": True, "thinkingBudget": -1},
    }
    assert "systemInstruction" not in body


def test_signature_on_text_parts_and_orphan_results() -> None:
    request = Request(
        model="m",
        messages=(
            Message("assistant", (Text("Done."), Thinking("", "gemini:SIG-T"))),
            Message("assistant", (Thinking("t", "gemini:SIG-U"), Text("Next."))),
            Message("user", (ToolResult("toolu_gone", (Text("late"),)),)),
        ),
    )
    body = orjson.loads(GeminiCodec().encode(request, "m").body)
    assert body["contents"] == [
        {
            "role": "model",
            "parts": [
                {"text": "Done."},
                {"text": "", "thoughtSignature": "SIG-T"},
                {"text": "Next.", "thoughtSignature": "SIG-U"},
            ],
        },
        {"role": "user", "parts": [{"text": "[result of tool call toolu_gone]\nlate"}]},
    ]


def test_signed_thinking_blocks_in_a_row_each_keep_their_signature() -> None:
    """A signed thought part and then a signed call (decoded as two signed thinking blocks, the
    client dropping the call's own copy): the earlier signature used to be overwritten by the later
    one and lost; it goes back on an empty text part of its own."""
    request = Request(
        model="m",
        messages=(
            Message("user", (Text("go"),)),
            Message(
                "assistant",
                (
                    Thinking("plan", "gemini:SIG-1"),
                    Thinking("", "gemini:SIG-2"),
                    ToolUse("c1", "Read", {}),
                    Thinking("", "gemini:SIG-3"),
                    Thinking("", "gemini:SIG-4"),
                ),
            ),
        ),
    )
    body = orjson.loads(GeminiCodec().encode(request, "m").body)
    assert body["contents"][1] == {
        "role": "model",
        "parts": [
            {"text": "", "thoughtSignature": "SIG-1"},
            {"functionCall": {"name": "Read", "args": {}, "id": "c1"}, "thoughtSignature": "SIG-2"},
            {"text": "", "thoughtSignature": "SIG-3"},
            {"text": "", "thoughtSignature": "SIG-4"},
        ],
    }


@pytest.mark.parametrize(
    ("name", "wire"),
    [("Bash", "Bash"), ("mcp__srv__do.it-now", "mcp__srv__do.it-now"), (LONG, LONG_WIRE)],
)
def test_upstream_names(name: str, wire: str) -> None:
    assert upstream_name(name) == wire


def test_invalid_characters_are_replaced_and_hashed() -> None:
    wire = upstream_name("9 tools/run")
    assert wire.startswith("_9_tools_run_") and len(wire) == len("_9_tools_run_") + 8
    assert upstream_name("a/b") != upstream_name("a.b")


# -- schema sanitizer -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (
            {"$defs": {"P": {"type": "object", "properties": {"x": {"type": "string"}}}}, "$ref": "#/$defs/P"},
            {"type": "OBJECT", "properties": {"x": {"type": "STRING"}}},
        ),
        (  # recursive: the inner ref becomes "any"
            {
                "definitions": {"N": {"type": "object", "properties": {"next": {"$ref": "#/definitions/N"}}}},
                "$ref": "#/definitions/N",
            },
            {"type": "OBJECT", "properties": {"next": {}}},
        ),
        (
            {
                "allOf": [
                    {"properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "integer"}}},
                ]
            },
            {"type": "OBJECT", "properties": {"a": {"type": "STRING"}, "b": {"type": "INTEGER"}}, "required": ["a"]},
        ),
        (
            {"anyOf": [{"type": "integer"}, {"type": "null"}], "description": "n"},
            {"type": "INTEGER", "description": "n", "nullable": True},
        ),
        ({"type": ["integer", "string"]}, {"anyOf": [{"type": "INTEGER"}, {"type": "STRING"}]}),
        ({"oneOf": [{"type": "string"}, {}]}, {}),
        ({"type": "integer", "exclusiveMaximum": 10, "minimum": 2}, {"type": "INTEGER", "minimum": 2, "maximum": 9}),
        ({"type": "number", "exclusiveMinimum": True, "minimum": 1}, {"type": "NUMBER", "minimum": 1}),
        ({"const": 3}, {"type": "INTEGER"}),
        ({"enum": ["a", None]}, {"type": "STRING", "nullable": True, "enum": ["a"]}),
        ({"type": "array"}, {"type": "ARRAY", "items": {"type": "STRING"}}),
        ({"type": "string", "pattern": "^a", "title": "T", "format": "email"}, {"type": "STRING"}),
        (True, {}),
    ],
)
def test_sanitize_cases(schema: Any, expected: dict[str, Any]) -> None:
    assert sanitize_schema(schema) == expected
    assert sanitize_schema(expected) == expected


def test_function_parameters_omitted_without_properties() -> None:
    assert function_parameters({"type": "object", "properties": {}}) is None
    assert function_parameters({"type": "object", "additionalProperties": {"type": "string"}}) is None
    assert function_parameters(TODO) == TODO_SANITIZED


_NAMES = st.sampled_from(["a", "b", "type", "const", "properties", "$ref"])
_LEAF = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-5, 5, allow_nan=False) | st.text(max_size=3)
_SCALAR_KEYS: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(["string", "number", "integer", "boolean", "array", "object", "null", "OBJECT", "weird"])
    | st.lists(st.sampled_from(["string", "null", "integer", "object", "array"]), max_size=3),
    "description": st.text(max_size=3),
    "format": st.sampled_from(["date-time", "uri", "int32", "float", "enum"]),
    "enum": st.lists(_LEAF, max_size=3),
    "const": _LEAF,
    "nullable": st.booleans(),
    "minimum": _LEAF,
    "exclusiveMinimum": _LEAF,
    "exclusiveMaximum": _LEAF,
    "minItems": _LEAF,
    "maxLength": _LEAF,
    "required": st.lists(_NAMES, max_size=3) | _LEAF,
    "$schema": st.just("http://json-schema.org/draft-07/schema#"),
    "$id": st.just("x"),
    "$ref": st.sampled_from(["#/$defs/a", "#/definitions/b", "#/nope", "#", "other.json"]),
    "title": st.text(max_size=2),
    "default": _LEAF,
    "examples": st.lists(_LEAF, max_size=2),
    "pattern": st.just("^x$"),
    "additionalProperties": st.booleans(),
    "propertyNames": st.just({"pattern": "^[a-z]+$"}),
}


def _schemas() -> st.SearchStrategy[Any]:
    def nest(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        keys = {
            **_SCALAR_KEYS,
            "properties": st.dictionaries(_NAMES, children, max_size=3),
            "items": children | st.lists(children, max_size=2),
            "anyOf": st.lists(children, max_size=3),
            "oneOf": st.lists(children, max_size=2),
            "allOf": st.lists(children, max_size=2),
            "additionalProperties": children,
            "patternProperties": st.dictionaries(st.just("^x"), children, max_size=1),
            "$defs": st.dictionaries(st.sampled_from(["a", "c"]), children, max_size=2),
            "definitions": st.dictionaries(st.just("b"), children, max_size=1),
        }
        return st.fixed_dictionaries({}, optional=keys)

    return st.recursive(st.booleans() | st.fixed_dictionaries({}, optional=_SCALAR_KEYS), nest, max_leaves=25)


def _check(node: dict[str, Any]) -> None:
    assert set(node) <= ALLOWED_KEYS, set(node) - ALLOWED_KEYS
    kind = node.get("type")
    assert kind is None or kind in TYPES
    if "enum" in node:
        assert kind == "STRING" and node["enum"] and all(isinstance(v, str) for v in node["enum"])
    if kind == "OBJECT":
        assert node.get("properties")
    if "properties" in node:
        assert kind == "OBJECT"
        for child in node["properties"].values():
            _check(child)
    if "required" in node:
        assert node["required"] and set(node["required"]) <= set(node["properties"])
        assert len(set(node["required"])) == len(node["required"])
    if kind == "ARRAY":
        _check(node["items"])
    for branch in node.get("anyOf", []):
        assert branch
        _check(branch)


@settings(max_examples=200, deadline=None)
@given(_schemas())
def test_sanitizer_emits_only_gemini_keywords_and_is_idempotent(schema: Any) -> None:
    cleaned = sanitize_schema(schema)
    _check(cleaned)
    assert sanitize_schema(cleaned) == cleaned
    params = function_parameters(schema)
    assert params is None or (params["type"] == "OBJECT" and params["properties"])


# -- stream transcripts -----------------------------------------------------------------------

MODEL = "gemini-2.5-pro"


def _chunk(
    parts: list[dict[str, Any]] | None = None, finish: str = "", usage: dict[str, int] | None = None, rid: str = "r1"
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts or []}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": MODEL, "responseId": rid}
    if usage is not None:
        chunk["usageMetadata"] = usage
    return chunk


def _sse(chunks: list[dict[str, Any]], sep: bytes = b"\r\n\r\n") -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + sep for c in chunks)


def _tool_id(rid: str, n: int) -> str:
    return "toolu_" + hashlib.sha256(f"{rid}:{n}".encode()).hexdigest()[:24]


STREAM_REQUEST = Request(
    model="claude-x",
    messages=(Message("user", (Text("Hi there, list my files"),)),),
    tools=(Tool("Bash", "", BASH), Tool("Read", "", READ), Tool(LONG, "x")),
)
ESTIMATE = estimate_tokens(STREAM_REQUEST)

TEXT = [
    _chunk([{"text": "Héllo "}], usage={"promptTokenCount": 11, "totalTokenCount": 11}),
    _chunk([{"text": "日本 🦊"}], "STOP", {"promptTokenCount": 11, "candidatesTokenCount": 9, "totalTokenCount": 20}),
]
TEXT_EVENTS: list[Event] = [
    MessageStart("msg_r1", MODEL, Usage(input_tokens=11)),
    BlockStart(0, Text("")),
    TextDelta(0, "Héllo "),
    TextDelta(0, "日本 🦊"),
    BlockStop(0),
    MessageDelta(StopReason.END_TURN, None, Usage(11, 9)),
    MessageStop(),
]
THOUGHTS_THEN_CALL = [
    _chunk(
        [{"text": "Let me look", "thought": True}],
        usage={"promptTokenCount": 100, "cachedContentTokenCount": 40},
        rid="r2",
    ),
    _chunk([{"text": " at the fîles.", "thought": True}], rid="r2"),
    _chunk(
        [{"functionCall": {"name": "Bash", "args": {"command": "ls -la"}}, "thoughtSignature": "SIG-A"}],
        "STOP",
        {
            "promptTokenCount": 100,
            "cachedContentTokenCount": 40,
            "candidatesTokenCount": 12,
            "thoughtsTokenCount": 30,
            "totalTokenCount": 142,
        },
        rid="r2",
    ),
]
THOUGHTS_THEN_CALL_EVENTS: list[Event] = [
    MessageStart("msg_r2", MODEL, Usage(input_tokens=60, cache_read_input_tokens=40)),
    BlockStart(0, Thinking("")),
    ThinkingDelta(0, "Let me look"),
    ThinkingDelta(0, " at the fîles."),
    SignatureDelta(0, "gemini:SIG-A"),
    BlockStop(0),
    BlockStart(1, ToolUse(_tool_id("r2", 0), "Bash", {}, "SIG-A")),
    ToolInputDelta(1, '{"command":"ls -la"}'),
    BlockStop(1),
    MessageDelta(StopReason.TOOL_USE, None, Usage(60, 42, 40, 0, 30)),
    MessageStop(),
]
PARALLEL = [
    _chunk(
        [
            {"text": "Reading both."},
            {"functionCall": {"id": "c1", "name": "Read", "args": {"path": "a"}}, "thoughtSignature": "SIG-P"},
            {"functionCall": {"id": "c2", "name": LONG_WIRE, "args": {}}},
        ],
        "STOP",
        {"promptTokenCount": 5, "candidatesTokenCount": 7, "totalTokenCount": 12},
    )
]
PARALLEL_EVENTS: list[Event] = [
    MessageStart("msg_r1", MODEL, Usage(input_tokens=5)),
    BlockStart(0, Text("")),
    TextDelta(0, "Reading both."),
    BlockStop(0),
    BlockStart(1, Thinking("")),
    SignatureDelta(1, "gemini:SIG-P"),
    BlockStop(1),
    BlockStart(2, ToolUse("c1", "Read", {}, "SIG-P")),
    ToolInputDelta(2, '{"path":"a"}'),
    BlockStop(2),
    BlockStart(3, ToolUse("c2", LONG, {})),
    ToolInputDelta(3, "{}"),
    BlockStop(3),
    MessageDelta(StopReason.TOOL_USE, None, Usage(5, 7)),
    MessageStop(),
]
SIGNED_TEXT = [_chunk([{"text": "Done."}]), _chunk([{"text": "", "thoughtSignature": "SIG-T"}], "STOP")]
SIGNED_TEXT_EVENTS: list[Event] = [
    MessageStart("msg_r1", MODEL, Usage(input_tokens=ESTIMATE)),
    BlockStart(0, Text("")),
    TextDelta(0, "Done."),
    BlockStop(0),
    BlockStart(1, Thinking("")),
    SignatureDelta(1, "gemini:SIG-T"),
    BlockStop(1),
    MessageDelta(StopReason.END_TURN, None, Usage(ESTIMATE)),
    MessageStop(),
]
MAX_TOKENS = [
    _chunk([{"text": "abc"}], "MAX_TOKENS", {"promptTokenCount": 4, "candidatesTokenCount": 2, "thoughtsTokenCount": 6})
]
MAX_TOKENS_EVENTS: list[Event] = [
    MessageStart("msg_r1", MODEL, Usage(input_tokens=4)),
    BlockStart(0, Text("")),
    TextDelta(0, "abc"),
    BlockStop(0),
    MessageDelta(StopReason.MAX_TOKENS, None, Usage(4, 8, reasoning_tokens=6)),
    MessageStop(),
]
SAFETY = [_chunk([{"text": "Sure, "}]), _chunk([], "SAFETY", {"promptTokenCount": 4, "candidatesTokenCount": 2})]
SAFETY_EVENTS: list[Event] = [
    MessageStart("msg_r1", MODEL, Usage(input_tokens=ESTIMATE)),
    BlockStart(0, Text("")),
    TextDelta(0, "Sure, "),
    BlockStop(0),
    MessageDelta(StopReason.REFUSAL, None, Usage(4, 2)),
    MessageStop(),
]
BLOCKED = [
    {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
    }
]
BLOCKED_EVENTS: list[Event] = [
    MessageStart("msg_" + "?", "claude-x", Usage(input_tokens=7)),
    MessageDelta(StopReason.REFUSAL, None, Usage(7)),
    MessageStop(),
]
TRANSCRIPTS = {
    "text": (TEXT, TEXT_EVENTS),
    "thoughts_then_call": (THOUGHTS_THEN_CALL, THOUGHTS_THEN_CALL_EVENTS),
    "parallel": (PARALLEL, PARALLEL_EVENTS),
    "signed_text": (SIGNED_TEXT, SIGNED_TEXT_EVENTS),
    "max_tokens": (MAX_TOKENS, MAX_TOKENS_EVENTS),
    "safety": (SAFETY, SAFETY_EVENTS),
}


def _decode(raw: bytes, cuts: list[int] | None = None, request: Request = STREAM_REQUEST) -> list[Event]:
    decoder = GeminiCodec().stream_decoder(request)
    bounds = [0, *sorted(cuts or []), len(raw)]
    events: list[Event] = []
    for start, end in itertools.pairwise(bounds):
        events += decoder.feed(raw[start:end])
    return events + decoder.finish()


@pytest.mark.parametrize("name", sorted(TRANSCRIPTS))
def test_transcript(name: str) -> None:
    chunks, expected = TRANSCRIPTS[name]
    assert _decode(_sse(chunks)) == expected


def test_prompt_blocked_is_a_refusal() -> None:
    events = _decode(_sse(BLOCKED))
    assert events[1:] == BLOCKED_EVENTS[1:]
    assert isinstance(events[0], MessageStart) and events[0].usage == Usage(input_tokens=7)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_chunking_gives_the_same_events(data: st.DataObject) -> None:
    chunks, expected = TRANSCRIPTS[data.draw(st.sampled_from(sorted(TRANSCRIPTS)))]
    raw = _sse(chunks, data.draw(st.sampled_from([b"\r\n\r\n", b"\n\n"])))
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=20))
    assert _decode(raw, cuts) == expected


def test_byte_by_byte() -> None:
    raw = _sse(THOUGHTS_THEN_CALL)
    assert _decode(raw, list(range(len(raw)))) == _decode(raw)


def test_cut_stream_reports_an_error() -> None:
    raw = _sse(TEXT[:1]) + b'data: {"candidates":[{"content":{"parts":[{"text":"trunc'
    events = _decode(raw)
    assert events[-1] == StreamError("api_error", "Gemini stream ended before a finishReason")
    assert not any(isinstance(e, MessageStop) for e in events)
    assert _decode(b"") == [StreamError("api_error", "Gemini stream ended before a finishReason")]


def test_first_chunk_without_usage_gets_an_estimate() -> None:
    events = _decode(_sse([_chunk([{"text": "x"}], "STOP")]))
    assert isinstance(events[0], MessageStart) and events[0].usage.input_tokens == ESTIMATE > 0
    assert estimate_tokens(Request(model="m", messages=(Message("user", (Text("Hello world!"),)),))) == 3
    assert estimate_tokens(Request(model="m", messages=(Message("user", (Image("image/png", "x"),)),))) == 258


def test_error_chunk_mid_stream() -> None:
    raw = _sse([TEXT[0], {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}])
    events = _decode(raw)
    assert events[-1] == StreamError("overloaded_error", "The model is overloaded.")
    assert events.count(events[-1]) == 1


def test_usage_checks_against_total() -> None:
    meta = {
        "promptTokenCount": 100,
        "cachedContentTokenCount": 30,
        "candidatesTokenCount": 20,
        "thoughtsTokenCount": 50,
        "totalTokenCount": 170,
    }
    usage = usage_from(meta)
    assert usage == Usage(input_tokens=70, output_tokens=70, cache_read_input_tokens=30, reasoning_tokens=50)
    assert usage.prompt_tokens + usage.output_tokens == meta["totalTokenCount"]
    # a chunk that left out candidatesTokenCount: the total still adds up
    assert usage_from({"promptTokenCount": 10, "totalTokenCount": 25}).output_tokens == 15


def test_decode_response_whole_body() -> None:
    body = orjson.dumps({**PARALLEL[0], "candidates": [{**PARALLEL[0]["candidates"][0]}]})
    codec = GeminiCodec()
    codec.encode(STREAM_REQUEST, MODEL)  # learns the shortened name
    response = codec.decode_response(body)
    assert response.stop_reason is StopReason.TOOL_USE
    assert response.content == (
        Text("Reading both."),
        Thinking("", "gemini:SIG-P"),
        ToolUse("c1", "Read", {"path": "a"}, "SIG-P"),
        ToolUse("c2", LONG, {}),
    )
    assert response.usage == Usage(5, 7)
    assert response == collect(_decode(_sse(PARALLEL)))


# -- round trip -------------------------------------------------------------------------------


@pytest.mark.parametrize("client_keeps_tool_signature", [True, False])
def test_round_trip_keeps_the_signature_and_pairs_the_response(client_keeps_tool_signature: bool) -> None:
    codec = GeminiCodec()
    turn = collect(_decode(_sse(THOUGHTS_THEN_CALL)))
    call = turn.content[1]
    assert isinstance(call, ToolUse) and call.signature == "SIG-A"
    content = turn.content
    if not client_keeps_tool_signature:  # an Anthropic-dialect client has no field for it on tool_use
        content = (content[0], dataclasses.replace(call, signature=""))
    follow_up = dataclasses.replace(
        STREAM_REQUEST,
        messages=(
            *STREAM_REQUEST.messages,
            Message("assistant", content),
            Message("user", (ToolResult(call.id, (Text("a.py"),)),)),
        ),
    )
    body = orjson.loads(codec.encode(follow_up, MODEL).body)
    assert body["contents"][-2] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "Bash", "args": {"command": "ls -la"}, "id": call.id},
                "thoughtSignature": "SIG-A",
            }
        ],
    }
    assert body["contents"][-1] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "Bash", "id": call.id, "response": {"result": "a.py"}}}],
    }


def test_round_trip_restores_and_reshortens_long_names() -> None:
    turn = collect(_decode(_sse(PARALLEL)))
    follow_up = dataclasses.replace(
        STREAM_REQUEST,
        messages=(
            *STREAM_REQUEST.messages,
            Message("assistant", turn.content),
            Message("user", (ToolResult("c1", (Text("A"),)), ToolResult("c2", (Text("B"),)))),
        ),
    )
    body = orjson.loads(GeminiCodec().encode(follow_up, MODEL).body)
    model_parts, user_parts = body["contents"][-2]["parts"], body["contents"][-1]["parts"]
    assert model_parts[1] == {
        "functionCall": {"name": "Read", "args": {"path": "a"}, "id": "c1"},
        "thoughtSignature": "SIG-P",
    }
    assert model_parts[2] == {"functionCall": {"name": LONG_WIRE, "args": {}, "id": "c2"}}
    assert [p["functionResponse"]["name"] for p in user_parts] == ["Read", LONG_WIRE]


# -- errors -----------------------------------------------------------------------------------


def _error(code: int, status: str, message: str = "m", details: list[dict[str, Any]] | None = None) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "status": status, "details": details or []}})


@pytest.mark.parametrize(
    ("status", "body", "kind", "mapped", "retry"),
    [
        (
            429,
            _error(
                429,
                "RESOURCE_EXHAUSTED",
                details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "22s"}],
            ),
            "rate_limit_error",
            429,
            22.0,
        ),
        (
            429,
            _error(
                429,
                "RESOURCE_EXHAUSTED",
                details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}],
            ),
            "rate_limit_error",
            429,
            1.5,
        ),
        (400, _error(400, "INVALID_ARGUMENT"), "invalid_request_error", 400, 0.0),
        (
            400,
            _error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid.",
                [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
            ),
            "authentication_error",
            401,
            0.0,
        ),
        (401, _error(401, "UNAUTHENTICATED"), "authentication_error", 401, 0.0),
        (403, _error(403, "PERMISSION_DENIED"), "permission_error", 403, 0.0),
        (404, _error(404, "NOT_FOUND"), "not_found_error", 404, 0.0),
        (500, _error(500, "INTERNAL"), "api_error", 500, 0.0),
        (503, _error(503, "UNAVAILABLE"), "overloaded_error", 503, 0.0),
        (504, _error(504, "DEADLINE_EXCEEDED"), "timeout_error", 504, 0.0),
        (502, b"<html>Bad Gateway</html>", "api_error", 502, 0.0),
        (429, b"[" + _error(429, "RESOURCE_EXHAUSTED") + b"]", "rate_limit_error", 429, 0.0),
    ],
)
def test_decode_error(status: int, body: bytes, kind: str, mapped: int, retry: float) -> None:
    failure = GeminiCodec().decode_error(status, [], body)
    assert (failure.kind, failure.status, failure.retry_after_s) == (kind, mapped, retry)
    assert failure.message


def test_retry_after_header_when_no_retry_info() -> None:
    failure = GeminiCodec().decode_error(429, [(b"Retry-After", b"7")], _error(429, "RESOURCE_EXHAUSTED"))
    assert failure.retry_after_s == 7.0


def test_last_event_without_blank_line_still_counts() -> None:
    raw = _sse(TEXT).rstrip(b"\r\n")
    assert _decode(raw) == TEXT_EVENTS


def test_system_of_only_the_billing_header_sends_no_instruction() -> None:
    request = Request(
        model="m",
        system=(Text("x-anthropic-billing-header: cc_version=1; cch=0;"),),
        messages=(Message("user", (Text("hi"),)),),
    )
    assert orjson.loads(GeminiCodec().encode(request, "m").body) == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}]
    }


def test_exponential_refs_stay_cheap() -> None:
    defs = {
        f"d{i}": {
            "type": "object",
            "properties": {"a": {"$ref": f"#/$defs/d{i + 1}"}, "b": {"$ref": f"#/$defs/d{i + 1}"}},
        }
        for i in range(40)
    }
    started = time.perf_counter()
    cleaned = sanitize_schema({"$defs": defs, "$ref": "#/$defs/d0"})
    assert time.perf_counter() - started < 5
    assert cleaned["type"] == "OBJECT"
    _check(cleaned)
