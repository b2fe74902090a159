"""Structured output (``Request.response_format``) on every upstream: golden bodies per codec.

OpenAI takes ``response_format`` (``json_object`` or ``json_schema``), Anthropic
``output_config.format`` (a ``json_schema`` only), Gemini ``responseMimeType`` plus a sanitized
``responseSchema``. Each codec's module docstring says what it does with what it cannot express.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from kestrel.edge.canonical import (
    Message,
    Request,
    ResponseFormat,
    Text,
    ThinkingConfig,
    Tool,
    ToolChoice,
    ToolChoiceKind,
)
from kestrel.edge.formats import anthropic as anthropic_json
from kestrel.edge.providers.anthropic import AnthropicCodec
from kestrel.edge.providers.capabilities import BUILTIN_CATALOG
from kestrel.edge.providers.gemini import GeminiCodec
from kestrel.edge.providers.openai import OpenAICodec
from kestrel.edge.providers.presets import DEEPSEEK, MISTRAL, OPENAI

CITY = {
    "$defs": {"Country": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}},
    "type": "object",
    "title": "City",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "title": "Name"},
        "population": {"type": "integer", "exclusiveMinimum": 0},
        "country": {"$ref": "#/$defs/Country"},
    },
    "required": ["name", "population", "country"],
}
"""Shaped as Pydantic writes a model with a nested one: ``$defs``, ``$ref``, titles, a bound."""
CITY_FOR_GEMINI = {
    "type": "OBJECT",
    "properties": {
        "name": {"type": "STRING"},
        "population": {"type": "INTEGER", "minimum": 1},
        "country": {"type": "OBJECT", "properties": {"code": {"type": "STRING"}}, "required": ["code"]},
    },
    "required": ["name", "population", "country"],
}

BASE = Request(model="m", messages=(Message("user", (Text("Paris, as JSON"),)),), max_tokens=100)
SCHEMA_FROM_OPENAI = ResponseFormat("json_schema", CITY, "City", True, "a city")
SCHEMA_FROM_ANTHROPIC = ResponseFormat("json_schema", CITY)
JSON_MODE = ResponseFormat("json_object")


def asking(response_format: ResponseFormat | None, **changes: Any) -> Request:
    return dataclasses.replace(BASE, response_format=response_format, **changes)


def openai_body(request: Request, codec: OpenAICodec | None = None) -> dict[str, Any]:
    return orjson.loads((codec or OpenAICodec()).encode(request, "gpt-x").body)


def anthropic_body(request: Request, model: str = "claude-sonnet-4-6") -> dict[str, Any]:
    return orjson.loads(AnthropicCodec().encode(request, model).body)


def gemini_generation(request: Request, codec: GeminiCodec | None = None) -> dict[str, Any]:
    return orjson.loads((codec or GeminiCodec()).encode(request, "gemini-2.5-pro").body).get("generationConfig", {})


# -- OpenAI-compatible ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        (None, None),
        (JSON_MODE, {"type": "json_object"}),
        (
            SCHEMA_FROM_OPENAI,
            {
                "type": "json_schema",
                "json_schema": {"name": "City", "description": "a city", "schema": CITY, "strict": True},
            },
        ),
        # an Anthropic client names no schema and says nothing of strictness: OpenAI's default
        (SCHEMA_FROM_ANTHROPIC, {"type": "json_schema", "json_schema": {"name": "response", "schema": CITY}}),
        (ResponseFormat("json_schema", None, "free"), {"type": "json_schema", "json_schema": {"name": "free"}}),
    ],
)
def test_openai_gets_response_format(response_format: ResponseFormat | None, expected: dict[str, Any] | None) -> None:
    body = openai_body(asking(response_format))
    assert body.get("response_format") == expected
    assert body["messages"] == [{"role": "user", "content": "Paris, as JSON"}]


def test_a_stray_extra_never_overrides_the_canonical_format() -> None:
    request = asking(JSON_MODE, extra={"response_format": {"type": "text"}, "seed": 3})
    body = openai_body(request)
    assert body["response_format"] == {"type": "json_object"} and body["seed"] == 3


def test_mistral_takes_json_schema_too() -> None:
    body = openai_body(asking(SCHEMA_FROM_OPENAI), OpenAICodec(MISTRAL))
    assert body["response_format"]["type"] == "json_schema"


def test_a_service_without_json_schema_gets_json_mode_and_the_schema_in_the_system_prompt() -> None:
    assert not DEEPSEEK.accepts_json_schema and OPENAI.accepts_json_schema
    codec = OpenAICodec(DEEPSEEK)
    body = openai_body(asking(SCHEMA_FROM_ANTHROPIC, system=(Text("Be brief."),)), codec)
    assert body["response_format"] == {"type": "json_object"}
    system = body["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("Be brief.\n\nAnswer with a JSON object")
    assert orjson.loads(system["content"].split("JSON Schema:\n", 1)[1]) == CITY
    alone = openai_body(asking(ResponseFormat("json_schema")), codec)
    assert alone["messages"][0] == {"role": "system", "content": "Answer with a JSON object."}
    # JSON mode itself needs no words of ours: the client had to say "JSON" already
    plain = openai_body(asking(JSON_MODE), codec)
    assert plain["response_format"] == {"type": "json_object"} and plain["messages"][0]["role"] == "user"


# -- Anthropic ------------------------------------------------------------------------------------


def test_anthropic_gets_output_config_format() -> None:
    body = anthropic_body(asking(SCHEMA_FROM_OPENAI))
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": CITY}}


def test_anthropic_format_sits_next_to_effort_and_the_rest_of_output_config() -> None:
    thinking = ThinkingConfig(True, 0, "high")
    body = anthropic_body(asking(SCHEMA_FROM_ANTHROPIC, thinking=thinking, extra={"output_config": {"x": 1}}))
    assert body["output_config"] == {"x": 1, "format": {"type": "json_schema", "schema": CITY}, "effort": "high"}
    assert body["thinking"] == {"type": "adaptive"}


@pytest.mark.parametrize("response_format", [None, JSON_MODE, ResponseFormat("json_schema", None, "free")])
def test_anthropic_leaves_off_what_it_cannot_express(response_format: ResponseFormat | None) -> None:
    """JSON mode (any object) has no Anthropic form, nor a schema-less ``json_schema``."""
    assert "output_config" not in anthropic_body(asking(response_format))


def test_an_openai_clients_schema_reaches_anthropic_and_reads_back() -> None:
    parsed = anthropic_json.parse_request(anthropic_body(asking(SCHEMA_FROM_OPENAI)))
    assert parsed.response_format == SCHEMA_FROM_ANTHROPIC  # name, strict and description have no field
    assert "output_config" not in parsed.extra


# -- Gemini ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", [GeminiCodec(), GeminiCodec(BUILTIN_CATALOG)], ids=["unknown", "catalog"])
@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        (None, {}),
        (JSON_MODE, {"responseMimeType": "application/json"}),
        (SCHEMA_FROM_OPENAI, {"responseMimeType": "application/json", "responseSchema": CITY_FOR_GEMINI}),
        (SCHEMA_FROM_ANTHROPIC, {"responseMimeType": "application/json", "responseSchema": CITY_FOR_GEMINI}),
        # no properties to constrain: JSON mode alone (Gemini refuses an OBJECT without properties)
        (ResponseFormat("json_schema", {"type": "object"}), {"responseMimeType": "application/json"}),
        (ResponseFormat("json_schema", {"type": "array", "items": {}}), {"responseMimeType": "application/json"}),
        (ResponseFormat("json_schema"), {"responseMimeType": "application/json"}),
    ],
)
def test_gemini_gets_a_mime_type_and_a_sanitized_schema(
    codec: GeminiCodec, response_format: ResponseFormat | None, expected: dict[str, Any]
) -> None:
    generation = gemini_generation(asking(response_format), codec)
    assert {k: v for k, v in generation.items() if k.startswith("response")} == expected
    assert generation["maxOutputTokens"] == 100


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        (None, False),
        (ToolChoice(ToolChoiceKind.AUTO), False),
        (ToolChoice(ToolChoiceKind.ANY), False),
        (ToolChoice(ToolChoiceKind.TOOL, "lookup"), False),
        (ToolChoice(ToolChoiceKind.NONE), True),
    ],
)
def test_gemini_leaves_the_format_off_while_a_function_may_be_called(choice: ToolChoice | None, sent: bool) -> None:
    """Gemini 2.5: "Function calling with a response mime type: 'application/json' is unsupported"."""
    tools = (Tool("lookup", "", {"type": "object", "properties": {"q": {"type": "string"}}}),)
    generation = gemini_generation(asking(SCHEMA_FROM_OPENAI, tools=tools, tool_choice=choice))
    assert ("responseMimeType" in generation) is sent
    assert ("responseSchema" in generation) is sent
