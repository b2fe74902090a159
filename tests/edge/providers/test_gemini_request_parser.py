"""``testing/gemini_request.py``: Gemini request bodies read back into canonical requests.

The round-trip property in ``test_roundtrip_properties.py`` drives the parser with what the encoder
writes; these pin its own rules on hand-written bodies, including shapes the encoder never sends.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kestrel.edge.canonical import (
    Document,
    Image,
    Message,
    Request,
    Text,
    Thinking,
    ThinkingConfig,
    Tool,
    ToolChoice,
    ToolChoiceKind,
    ToolResult,
    ToolUse,
)
from kestrel.edge.providers.gemini import DUMMY_SIGNATURE, GeminiCodec, upstream_name
from kestrel.edge.testing.gemini_request import parse_request

LONG = "mcp__github__" + "create_pull_request_review_comment_" * 3
LONG_WIRE = upstream_name(LONG)
READ_PARAMETERS = {"type": "OBJECT", "properties": {"path": {"type": "STRING"}}, "required": ["path"]}


def _parse(body: dict[str, Any], **kwargs: Any) -> Request:
    return parse_request(orjson.dumps(body), model="gemini-x", stream=False, **kwargs)


def test_a_whole_request() -> None:
    body = {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Read a.py"}]},
            {
                "role": "model",
                "parts": [
                    {"text": "Reading."},
                    {"functionCall": {"id": "c1", "name": "Read", "args": {"path": "a.py"}}},
                    {"functionCall": {"id": "c2", "name": LONG_WIRE, "args": {}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"id": "c1", "name": "Read", "response": {"result": "print(1)"}}},
                    {"functionResponse": {"id": "c2", "name": LONG_WIRE, "response": {"error": "denied"}}},
                    {"text": "<system>\nBe careful\n</system>"},
                ],
            },
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {"name": "Read", "description": "Read a file", "parameters": READ_PARAMETERS},
                    {"name": LONG_WIRE},
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [LONG_WIRE]}},
        "generationConfig": {
            "maxOutputTokens": 1000,
            "temperature": 0.5,
            "topP": 0.9,
            "topK": 40,
            "stopSequences": ["END"],
            "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 2048},
        },
    }
    request = parse_request(orjson.dumps(body), model="gemini-x", stream=True, names=["Read", LONG])
    assert request == Request(
        model="gemini-x",
        stream=True,
        system=(Text("Be brief."),),
        messages=(
            Message("user", (Text("Read a.py"),)),
            Message(
                "assistant",
                (Text("Reading."), ToolUse("c1", "Read", {"path": "a.py"}), ToolUse("c2", LONG, {})),
            ),
            Message(
                "user",
                (
                    ToolResult("c1", (Text("print(1)"),)),
                    ToolResult("c2", (Text("denied"),), is_error=True),
                    Text("<system>\nBe careful\n</system>"),
                ),
            ),
        ),
        tools=(Tool("Read", "Read a file", READ_PARAMETERS), Tool(LONG)),
        tool_choice=ToolChoice(ToolChoiceKind.TOOL, LONG),
        max_tokens=1000,
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        stop_sequences=("END",),
        thinking=ThinkingConfig(True, 2048),
    )


def test_without_the_original_names_the_wire_names_stay() -> None:
    body = {
        "contents": [{"role": "model", "parts": [{"functionCall": {"id": "c", "name": LONG_WIRE, "args": {}}}]}],
        "tools": [{"functionDeclarations": [{"name": LONG_WIRE}]}],
    }
    request = _parse(body, names=["Read"])
    assert request.messages[0].content == (ToolUse("c", LONG_WIRE, {}),)
    assert request.tools == (Tool(LONG_WIRE),)
    assert request.tool_choice is None


def test_signatures_read_like_the_gemini_decoder_writes_them() -> None:
    """A signed part is preceded by a signed empty thinking block; a call also keeps its own copy,
    raw; an empty text part carrying only a signature is just that block; a thought part keeps its
    text; user parts have no signatures to read."""
    body = {
        "contents": [
            {
                "role": "model",
                "parts": [
                    {"text": "plan", "thought": True, "thoughtSignature": "S0"},
                    {"text": "Done.", "thoughtSignature": "S1"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}, "thoughtSignature": "S2"},
                    {"functionCall": {"id": "c1", "name": "Read", "args": {}}, "thoughtSignature": DUMMY_SIGNATURE},
                    {"functionCall": {"id": "c2", "name": "Read", "args": {}}},
                    {"text": "", "thoughtSignature": "S3"},
                    {"text": ""},
                ],
            },
            {"role": "user", "parts": [{"text": "ok", "thoughtSignature": "S4"}]},
        ]
    }
    assert _parse(body).messages == (
        Message(
            "assistant",
            (
                Thinking("plan", "gemini:S0"),
                Thinking("", "gemini:S1"),
                Text("Done."),
                Thinking("", "gemini:S2"),
                Image("image/png", "iVBOR"),
                Thinking("", "gemini:" + DUMMY_SIGNATURE),
                ToolUse("c1", "Read", {}, DUMMY_SIGNATURE),
                ToolUse("c2", "Read", {}),
                Thinking("", "gemini:S3"),
            ),
        ),
        Message("user", (Text("ok"),)),
    )


def test_media_parts() -> None:
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"inlineData": {"mimeType": "image/webp", "data": "UklG"}},
                    {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
                    {"fileData": {"mimeType": "image/png", "fileUri": "https://x/y.png"}},
                    {"fileData": {"mimeType": "application/pdf", "fileUri": "https://x/doc.pdf"}},
                ],
            }
        ]
    }
    assert _parse(body).messages[0].content == (
        Image("image/webp", "UklG"),
        Document("application/pdf", "JVBE"),
        Image("image/png", url="https://x/y.png"),
        Document("application/pdf", url="https://x/doc.pdf"),
    )


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ({"result": "ok"}, ToolResult("c", (Text("ok"),))),
        ({"result": ""}, ToolResult("c", ())),
        ({"error": "boom"}, ToolResult("c", (Text("boom"),), is_error=True)),
        ({"output": {"n": 1}}, ToolResult("c", (Text('{"output":{"n":1}}'),))),
        ({"result": {"n": 1}}, ToolResult("c", (Text('{"n":1}'),))),
        ({}, ToolResult("c", ())),
    ],
)
def test_function_responses(response: dict[str, Any], expected: ToolResult) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"functionResponse": {"id": "c", "name": "f", "response": response}}]}]
    }
    assert _parse(body).messages[0].content == (expected,)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, ThinkingConfig()),
        ({"includeThoughts": True, "thinkingBudget": -1}, ThinkingConfig(True, 0)),
        ({"includeThoughts": True}, ThinkingConfig(True, 0)),
        ({"includeThoughts": True, "thinkingBudget": 24576}, ThinkingConfig(True, 24576)),
        ({"thinkingBudget": 0}, ThinkingConfig()),
    ],
)
def test_thinking_config(config: dict[str, Any] | None, expected: ThinkingConfig) -> None:
    body: dict[str, Any] = {"contents": [], "generationConfig": {}}
    if config is not None:
        body["generationConfig"]["thinkingConfig"] = config
    assert _parse(body).thinking == expected


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"mode": "AUTO"}, ToolChoice(ToolChoiceKind.AUTO)),
        ({"mode": "NONE"}, ToolChoice(ToolChoiceKind.NONE)),
        ({"mode": "ANY"}, ToolChoice(ToolChoiceKind.ANY)),
        ({"mode": "ANY", "allowedFunctionNames": ["Read"]}, ToolChoice(ToolChoiceKind.TOOL, "Read")),
        ({"mode": "ANY", "allowedFunctionNames": ["Read", "Bash"]}, ToolChoice(ToolChoiceKind.ANY)),
        ({}, None),
    ],
)
def test_tool_config(config: dict[str, Any], expected: ToolChoice | None) -> None:
    body = {"contents": [], "toolConfig": {"functionCallingConfig": config}}
    assert _parse(body).tool_choice == expected


def test_reading_what_the_encoder_wrote_encodes_to_the_same_body() -> None:
    """Signatures in every placement, a billing block, a mid-conversation system message, a long
    name, an orphan result: read back and encoded again, the body is byte for byte the same."""
    request = Request(
        model="claude-x",
        system=(Text("x-anthropic-billing-header: cc_version=1;"), Text("Be brief.")),
        messages=(
            Message("user", (Text("go"), Image(url="https://x/y.png"))),
            Message(
                "assistant",
                (
                    Thinking("plan", "gemini:S1"),
                    Thinking("", "gemini:S2"),
                    Text("Calling."),
                    Thinking("not Gemini's", "EqQBanthropic"),
                    ToolUse("c1", LONG, {"a": [1, "é"]}),
                    ToolUse("c2", "Read", {"path": "a"}, "S3"),
                    Thinking("", "gemini:S4"),
                ),
            ),
            Message("system", (Text("Reminder"),)),
            Message(
                "user",
                (
                    ToolResult("c1", (Text("one"), Image("image/png", "iVBOR"))),
                    ToolResult("c2", (Text("two"),), is_error=True),
                    ToolResult("gone", (Text("late"),)),
                ),
            ),
        ),
        tools=(Tool(LONG, "long", {"type": "object"}), Tool("Read", "", {"type": "object", "properties": {}})),
        tool_choice=ToolChoice(ToolChoiceKind.TOOL, LONG),
        max_tokens=100,
        stop_sequences=("a", "b", "c", "d", "e", "f"),
        thinking=ThinkingConfig(True, 0),
        stream=True,
    )
    encoded = GeminiCodec().encode(request, "gemini-x")
    parsed = parse_request(encoded.body, model="gemini-x", stream=True, names=[LONG, "Read"])
    assert GeminiCodec().encode(parsed, "gemini-x") == encoded
    assert [t.name for t in parsed.tools] == [LONG, "Read"]
    assert parsed.system == (Text("Be brief."),)
    assert parsed.messages[-1].content == (
        ToolResult("c1", (Text("one"),)),
        ToolResult("c2", (Text("two"),), is_error=True),
        Text("<system>\nReminder\n</system>"),
        Image("image/png", "iVBOR"),
        Text("[result of tool call gone]\nlate"),
    )
