import copy
import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kestrel.edge.canonical import (
    CacheControl,
    Document,
    Image,
    Message,
    RedactedThinking,
    Request,
    ResponseFormat,
    StopReason,
    Text,
    Thinking,
    ThinkingConfig,
    Tool,
    ToolChoice,
    ToolChoiceKind,
    ToolResult,
    ToolUse,
    Usage,
)
from kestrel.edge.errors import InvalidRequest
from kestrel.edge.formats.anthropic import (
    KNOWN_FIELDS,
    Invalid,
    parse_request,
    parse_response,
    request_json,
    response_json,
)
from kestrel.edge.testing.canonical_strategies import ids, json_objects, texts

EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}
SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"file_path": {"type": "string"}, "limit": {"type": "integer", "exclusiveMinimum": 0}},
    "required": ["file_path"],
    "additionalProperties": False,
}

CLAUDE_CODE_BODY: dict[str, Any] = orjson.loads(
    (Path(__file__).parent / "recordings" / "claude_code_request.json").read_bytes()
)
"""Shaped like Claude Code 2.1 sends it: the attribution block first in ``system``, ``cache_control``
on system, tools, text, tool results, images and documents (5 minutes and 1 hour), thinking with its
signature, redacted thinking, MCP tools, a mid-conversation ``system`` entry, ``context_management``
and ``output_config``."""


def test_a_claude_code_body_survives_the_round_trip_exactly() -> None:
    body = copy.deepcopy(CLAUDE_CODE_BODY)
    assert request_json(parse_request(orjson.dumps(body))) == CLAUDE_CODE_BODY
    assert body == CLAUDE_CODE_BODY  # parsing did not mutate the client's body


def test_a_claude_code_body_reads_into_the_canonical_model() -> None:
    request = parse_request(CLAUDE_CODE_BODY)
    assert request.system[0] == Text("x-anthropic-billing-header: cc_version=2.1.3.a1b; cc_entrypoint=cli; cch=0;")
    assert request.system[1].cache == CacheControl("1h")
    assert [m.role for m in request.messages] == ["user", "assistant", "user", "system", "user"]
    assistant = request.messages[1].content
    assert assistant[0] == Thinking("The user wants a fix…", "EqQBCkYIBxgCKkDsig==")
    assert assistant[1] == RedactedThinking("EmwKAhgBEgyopaque")
    assert assistant[3] == ToolUse("toolu_01A", "Read", {"file_path": "/repo/a.py"})
    failed = request.messages[2].content[1]
    assert failed == ToolResult("toolu_01B", (Text("issue not found"),), True, CacheControl())
    attachments = request.messages[4].content
    assert attachments[0] == Image("image/png", "iVBORw0KGgo=", cache=CacheControl())
    assert attachments[1] == Image(url="https://example.com/shot.png")
    assert attachments[2] == Document("application/pdf", "JVBERi0x", "", "spec.pdf", "the product spec", CacheControl())
    assert attachments[3] == Document("text/plain", "notes")
    assert request.tools[0] == Tool("Read", "Reads a file from the local filesystem.", SCHEMA)
    assert request.tool_choice == ToolChoice(ToolChoiceKind.AUTO, "", disable_parallel=True)
    assert request.thinking == ThinkingConfig(enabled=True, budget_tokens=0, effort="high")
    assert request.user.startswith('{"device_id"')
    assert (request.max_tokens, request.stream, request.temperature) == (32000, True, 1)
    assert request.response_format == ResponseFormat("json_schema", {"type": "object"})
    assert request.extra == {"context_management": CLAUDE_CODE_BODY["context_management"], "service_tier": "auto"}


@pytest.mark.parametrize(
    ("sent", "normal"),
    [
        ({"system": "Be brief."}, {"system": [{"type": "text", "text": "Be brief."}]}),
        (
            {"messages": [{"role": "user", "content": "hi"}]},
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "42"}]}]},
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "42"}]}
                        ],
                    }
                ]
            },
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": ""}]}]},
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]},
        ),
        (
            {"system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "5m"}}]},
            {"system": [{"type": "text", "text": "s", "cache_control": EPHEMERAL}]},
        ),
        ({"thinking": {"type": "disabled"}, "stream": False}, {}),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2048, "display": "omitted"}},
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
        ),
        (
            {
                "tools": [
                    {"type": "web_search_20250305", "name": "web_search"},
                    {"type": "custom", "name": "f", "input_schema": {}, "strict": True},
                ]
            },
            {"tools": [{"name": "f", "input_schema": {}}]},
        ),
        (
            {"metadata": {"user_id": None}, "tool_choice": {"type": "any", "disable_parallel_tool_use": False}},
            {"tool_choice": {"type": "any"}},
        ),
        (  # the deprecated beta spelling of structured output comes back in the current one
            {"output_format": {"type": "json_schema", "schema": {"type": "object"}}},
            {"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
        ),
    ],
)
def test_equivalent_spellings_come_back_in_normal_form(sent: dict[str, Any], normal: dict[str, Any]) -> None:
    base = {"model": "m", "max_tokens": 5, "messages": []}
    assert request_json(parse_request({**base, **sent})) == {**base, **normal}


def _requests() -> st.SearchStrategy[Request]:
    cache = st.one_of(st.none(), st.sampled_from([CacheControl(), CacheControl("1h")]))
    text = st.builds(Text, texts(), cache, st.lists(json_objects(), max_size=2).map(tuple))
    image = st.one_of(
        st.builds(Image, st.sampled_from(["image/png", "image/jpeg"]), texts(1), st.just(""), cache),
        st.builds(Image, st.just(""), st.just(""), texts(1), cache),
    )
    document = st.one_of(
        st.builds(
            Document, st.sampled_from(["application/pdf", "text/plain"]), texts(), st.just(""), texts(), texts(), cache
        ),
        st.builds(Document, st.just(""), st.just(""), texts(1), texts(), texts(), cache),
    )
    part = st.one_of(text, image, document)
    block = st.one_of(
        part,
        st.builds(ToolUse, ids("toolu_"), texts(1), json_objects()),
        st.builds(ToolResult, ids("toolu_"), st.lists(part, max_size=3).map(tuple), st.booleans(), cache),
        st.builds(Thinking, texts(), texts()),
        st.builds(RedactedThinking, texts()),
    )
    message = st.builds(
        Message, st.sampled_from(["user", "assistant", "system"]), st.lists(block, max_size=4).map(tuple)
    )
    tool = st.builds(Tool, texts(1), texts(), json_objects(), cache)
    choice = st.one_of(
        st.none(),
        st.builds(
            ToolChoice,
            st.sampled_from([ToolChoiceKind.AUTO, ToolChoiceKind.ANY, ToolChoiceKind.NONE]),
            st.just(""),
            st.booleans(),
        ),
        st.builds(ToolChoice, st.just(ToolChoiceKind.TOOL), texts(1), st.booleans()),
    )
    effort = st.sampled_from(["", "low", "high"])
    thinking = st.one_of(
        st.builds(ThinkingConfig, st.just(False), st.just(0), effort),
        st.builds(ThinkingConfig, st.just(True), st.integers(0, 64000), effort),
    )
    unknown = st.dictionaries(texts(1, 12).filter(lambda k: k not in KNOWN_FIELDS), json_objects(), max_size=3)
    output_config = st.one_of(
        st.just({}),
        st.dictionaries(st.sampled_from(["format", "x"]), json_objects(), min_size=1).map(
            lambda d: {"output_config": d}
        ),
    )
    extra = st.builds(lambda a, b: {**a, **b}, unknown, output_config)
    number = st.one_of(st.none(), st.floats(0, 1))
    return st.builds(
        Request,
        model=texts(1),
        messages=st.lists(message, max_size=4).map(tuple),
        system=st.lists(text, max_size=3).map(tuple),
        max_tokens=st.one_of(st.none(), st.integers(0, 128_000)),
        stream=st.booleans(),
        temperature=number,
        top_p=number,
        top_k=st.one_of(st.none(), st.integers(0, 500)),
        stop_sequences=st.lists(texts(1), max_size=3).map(tuple),
        tools=st.lists(tool, max_size=3).map(tuple),
        tool_choice=choice,
        thinking=thinking,
        user=texts(),
        response_format=st.one_of(st.none(), st.builds(ResponseFormat, st.just("json_schema"), json_objects())),
        extra=extra,
    ).map(_one_format)


def _one_format(request: Request) -> Request:
    """A request as parsing gives it: a format in ``extra`` only when none was understood."""
    config = request.extra.get("output_config")
    if request.response_format is not None and isinstance(config, dict) and "format" in config:
        return dataclasses.replace(request, response_format=None)
    return request


@given(_requests())
def test_any_canonical_request_survives_json_and_back(request: Request) -> None:
    assert parse_request(orjson.dumps(request_json(request))) == request


BASE = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": None}, "model: Input should be a valid string"),
        ({"messages": None}, "messages: Input should be a valid list"),
        (
            {"messages": [{"role": "robot", "content": "x"}]},
            "messages.0.role: Input should be 'user', 'assistant' or 'system'",
        ),
        ({"messages": [{"role": "user"}]}, "messages.0.content: Field required"),
        ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages.0.content.0.type: Field required"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages.0.content.0.text: Field required"),
        (
            {
                "messages": [
                    {"role": "assistant", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search"}]}
                ]
            },
            "messages.0.content.0.type: 'server_tool_use' blocks cannot be translated",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}
                ]
            },
            "messages.0.content.0.source.type: Input should be 'base64' or 'url'",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "tool_use"}]}],
                    }
                ]
            },
            "messages.0.content.0.content.0.type: Input should be one of 'text', 'image', 'document'",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {"type": "forever"}}]}
                ]
            },
            "messages.0.content.0.cache_control.type",
        ),
        ({"system": [{"type": "image"}]}, "system.0.type: Input should be one of 'text'"),
        ({"tools": [{"name": "f"}]}, "tools.0.input_schema: Field required"),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice.name: Field required"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens: Field required"),
        ({"thinking": {"type": "maybe"}}, "thinking.type"),
        ({"max_tokens": "5"}, "max_tokens: Input should be a valid integer"),
        ({"max_tokens": -1}, "max_tokens: Input should be greater than or equal to 0"),
        ({"temperature": "hot"}, "temperature: Input should be a valid number"),
        ({"stream": "yes"}, "stream: Input should be a valid boolean"),
        ({"stop_sequences": ["a", 1]}, "stop_sequences.1: Input should be a valid string"),
    ],
)
def test_invalid_requests_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_request({**BASE, **change})
    assert message in caught.value.message
    assert (caught.value.status, caught.value.kind) == (400, "invalid_request_error")


SCHEMA_FORMAT = {"type": "json_schema", "schema": SCHEMA}


@pytest.mark.parametrize(
    ("fields", "expected", "extra"),
    [
        ({"output_config": {"format": SCHEMA_FORMAT}}, ResponseFormat("json_schema", SCHEMA), {}),
        (
            {"output_config": {"format": SCHEMA_FORMAT, "effort": "low", "x": 1}},
            ResponseFormat("json_schema", SCHEMA),
            {"output_config": {"x": 1}},
        ),
        ({"output_format": SCHEMA_FORMAT}, ResponseFormat("json_schema", SCHEMA), {}),
        (  # both spellings: the current one is understood, the other left for Anthropic to judge
            {"output_config": {"format": SCHEMA_FORMAT}, "output_format": {"type": "json_schema", "schema": {}}},
            ResponseFormat("json_schema", SCHEMA),
            {"output_format": {"type": "json_schema", "schema": {}}},
        ),
        # shapes it does not know stay in extra exactly as sent
        ({"output_config": {"format": None}}, None, {"output_config": {"format": None}}),
        ({"output_config": {"format": {"type": "xml"}}}, None, {"output_config": {"format": {"type": "xml"}}}),
        (
            {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA, "name": "n"}}},
            None,
            {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA, "name": "n"}}},
        ),
        ({"output_format": {"type": "json_schema"}}, None, {"output_format": {"type": "json_schema"}}),
    ],
)
def test_structured_output_reads_into_the_response_format(
    fields: dict[str, Any], expected: ResponseFormat | None, extra: dict[str, Any]
) -> None:
    request = parse_request({**BASE, **fields})
    assert (request.response_format, request.extra) == (expected, extra)
    assert parse_request(request_json(request)) == request


@pytest.mark.parametrize(
    ("raw", "message"), [(b"{nope", "not valid JSON"), (b"[]", "body: Input should be a valid dictionary")]
)
def test_unreadable_bodies_are_invalid_requests(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_request(raw)


RESPONSE_BODY = {
    "id": "msg_01X",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-6",
    "content": [
        {"type": "thinking", "thinking": "check the file", "signature": "EqQB=="},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Hi é", "citations": [{"type": "char_location", "cited_text": "x"}]},
        {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"path": "a.py"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 2048,
        "output_tokens": 40,
    },
}


def test_a_response_survives_the_round_trip_exactly() -> None:
    response = parse_response(orjson.dumps(RESPONSE_BODY))
    assert response.usage == Usage(12, 40, 2048, 5)
    assert response.stop_reason is StopReason.TOOL_USE
    assert response_json(response) == RESPONSE_BODY


def test_reading_a_response_skips_what_has_no_canonical_form() -> None:
    body = {
        **RESPONSE_BODY,
        "content": [
            {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
            {"type": "text", "text": "ok"},
        ],
        "stop_reason": "something_new",
        "usage": {
            **RESPONSE_BODY["usage"],
            "cache_creation": {"ephemeral_5m_input_tokens": 5},
            "service_tier": "standard",
        },
    }
    response = parse_response(body)
    assert response.content == (Text("ok"),)
    assert response.stop_reason is StopReason.END_TURN
    assert response.usage == Usage(12, 40, 2048, 5)


@pytest.mark.parametrize("raw", [b"<html>502</html>", b'{"id": "m"}', b'{"id": 1, "content": []}'])
def test_malformed_responses_raise_invalid(raw: bytes) -> None:
    with pytest.raises(Invalid):
        parse_response(raw)
