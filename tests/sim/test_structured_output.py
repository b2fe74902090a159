"""Structured output on every API of the sim: accepted fields, JSON answers, the refusals it copies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pydantic
import pytest

from kestrel.sim._instance import instance
from kestrel.sim.testing import SimHandle

CITY = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "population": {"type": "integer"},
        "coastal": {"type": "boolean"},
        "mayor": {"type": ["string", "null"]},
        "districts": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "population", "coastal", "mayor", "districts"],
    "additionalProperties": False,
}
CITY_ANSWER = {"name": "sim", "population": 0, "coastal": False, "mayor": "sim", "districts": []}
GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"
KEY = {"x-goog-api-key": "g-test"}


class City(pydantic.BaseModel):
    name: str
    population: int
    nickname: str | None = None


@pytest.fixture(scope="module")
def oai_sdk(sim_server: SimHandle) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim_server.url + "/v1", api_key="sk-test", max_retries=0) as client:
        yield client


# -- the JSON the sim answers with ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ({}, {}),
        (CITY, CITY_ANSWER),
        ({"type": "OBJECT", "properties": {"n": {"type": "NUMBER"}}, "required": ["n"]}, {"n": 0}),  # Gemini's
        ({"properties": {"a": {"const": 3}, "b": {"enum": ["x", "y"]}}, "required": ["a", "b"]}, {"a": 3, "b": "x"}),
        (
            {
                "$defs": {"P": {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}}}},
                "type": "object",
                "properties": {"p": {"$ref": "#/$defs/P"}, "q": {"anyOf": [{"type": "null"}, {"type": "integer"}]}},
                "required": ["p", "q"],
            },
            {"p": {}, "q": 0},
        ),
        (
            {"type": "array", "minItems": 2, "items": {"type": "string", "minLength": 5, "maxLength": 6}},
            ["simmm", "simmm"],
        ),
        ({"type": "integer", "exclusiveMinimum": 0}, 1),
        ({"type": "number", "maximum": -2.5}, -2.5),
        ({"allOf": [{"properties": {"a": {"type": "boolean"}}, "required": ["a"]}]}, {"a": False}),
        ({"$defs": {"N": {"$ref": "#/$defs/N"}}, "$ref": "#/$defs/N"}, None),  # a cycle ends in null
    ],
)
def test_a_minimal_instance_matches_the_schema(schema: dict[str, Any], value: Any) -> None:
    assert instance(schema) == value


# -- Anthropic ------------------------------------------------------------------------------------


def test_anthropic_output_config_format_answers_json(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="claude-sim",
        max_tokens=300,
        messages=[{"role": "user", "content": "A city, please."}],
        output_config={"format": {"type": "json_schema", "schema": CITY}},
    )
    assert json.loads(message.content[0].text) == CITY_ANSWER  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"


def test_anthropic_legacy_output_format_and_a_stream(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="claude-sim",
        max_tokens=300,
        messages=[{"role": "user", "content": "A city, please."}],
        extra_body={"output_format": {"type": "json_schema", "schema": CITY}},
    ) as stream:
        text = stream.get_final_text()
    assert json.loads(text) == CITY_ANSWER


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"output_config": {"format": {"type": "json_object"}}}, "output_config.format.type: Input should be"),
        ({"output_config": {"format": {"type": "json_schema"}}}, "output_config.format.schema: Field required"),
        ({"output_format": {"type": "json_schema", "schema": []}}, "output_format.schema: Input should be a valid"),
        ({"output_config": "json"}, "output_config: Input should be a valid dictionary"),
    ],
)
def test_anthropic_refuses_a_malformed_format(sim: SimHandle, fields: dict[str, Any], message: str) -> None:
    body = {"model": "claude-sim", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], **fields}
    response = sim.http.post("/v1/messages", json=body, headers={"x-api-key": "sk-test"})
    assert response.status_code == 400 and message in response.json()["error"]["message"]


def test_anthropic_markers_and_scripts_still_win(client: anthropic.Anthropic, sim: SimHandle) -> None:
    ask = {
        "model": "claude-sim",
        "max_tokens": 300,
        "output_config": {"format": {"type": "json_schema", "schema": CITY}},
    }
    marked = client.messages.create(messages=[{"role": "user", "content": "[[sim:text not json]]"}], **ask)  # type: ignore[arg-type]
    assert marked.content[0].text == "not json"  # type: ignore[union-attr]
    sim.script(['{"scripted": true}'])
    scripted = client.messages.create(messages=[{"role": "user", "content": "x"}], **ask)  # type: ignore[arg-type]
    assert scripted.content[0].text == '{"scripted": true}'  # type: ignore[union-attr]


# -- OpenAI ---------------------------------------------------------------------------------------


def test_openai_sdk_parse_gets_a_pydantic_object(sim: SimHandle, oai_sdk: openai.OpenAI) -> None:
    completion = oai_sdk.chat.completions.parse(
        model="gpt-sim", messages=[{"role": "user", "content": "A city"}], response_format=City
    )
    city = completion.choices[0].message.parsed
    assert isinstance(city, City) and city == City(name="sim", population=0, nickname="sim")
    sent = json.loads(sim.requests()[-1]["body"])["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["strict"] is True


def test_openai_json_mode_answers_an_object_when_the_prompt_says_json(sim: SimHandle, oai_sdk: openai.OpenAI) -> None:
    completion = oai_sdk.chat.completions.create(
        model="gpt-sim",
        messages=[{"role": "user", "content": "Reply in JSON."}],
        response_format={"type": "json_object"},
        stream=False,
    )
    assert json.loads(completion.choices[0].message.content or "") == {}
    text = oai_sdk.chat.completions.create(
        model="gpt-sim", messages=[{"role": "user", "content": "hi"}], response_format={"type": "text"}
    )
    assert "You said: hi" in (text.choices[0].message.content or "")


def test_openai_json_schema_streams_as_json(sim: SimHandle, oai_sdk: openai.OpenAI) -> None:
    stream = oai_sdk.chat.completions.create(
        model="gpt-sim",
        messages=[{"role": "user", "content": "A city"}],
        response_format={"type": "json_schema", "json_schema": {"name": "City", "schema": CITY}},
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert json.loads(text) == CITY_ANSWER


@pytest.mark.parametrize(
    ("response_format", "message"),
    [
        ({"type": "json_object"}, "'messages' must contain the word 'json' in some form"),
        ({"type": "yaml"}, "Invalid value: 'yaml'"),
        ({"type": "json_schema"}, "Missing required parameter: 'response_format.json_schema'."),
        ({"type": "json_schema", "json_schema": {"schema": {}}}, "'response_format.json_schema.name'"),
        ({"type": "json_schema", "json_schema": {"name": "a b"}}, "does not match pattern"),
        (
            {"type": "json_schema", "json_schema": {"name": "C", "strict": True, "schema": {**CITY, "required": []}}},
            "Invalid schema for response_format 'C': In context=(), 'required' is required to be supplied and to be "
            "an array including every key in properties. Missing 'name'.",
        ),
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "C",
                    "strict": True,
                    "schema": {
                        "type": "object",
                        "properties": {"p": {"type": "object", "properties": {}, "required": []}},
                        "required": ["p"],
                        "additionalProperties": False,
                    },
                },
            },
            "In context=('properties', 'p'), 'additionalProperties' is required to be supplied and to be false.",
        ),
    ],
)
def test_openai_refuses_what_openai_refuses(
    sim: SimHandle, oai_sdk: openai.OpenAI, response_format: dict[str, Any], message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai_sdk.chat.completions.create(
            model="gpt-sim",
            messages=[{"role": "user", "content": "a city"}],
            response_format=response_format,  # type: ignore[arg-type]
        )
    assert message in caught.value.message


# -- Gemini ---------------------------------------------------------------------------------------


def _generate(sim: SimHandle, generation: dict[str, Any], **fields: Any) -> Any:
    body = {"contents": [{"role": "user", "parts": [{"text": "A city"}]}], "generationConfig": generation, **fields}
    return sim.http.post(GEMINI, headers=KEY, json=body)


def _text(response: Any) -> str:
    assert response.status_code == 200, response.text
    return "".join(p["text"] for p in response.json()["candidates"][0]["content"]["parts"])


def test_gemini_response_schema_answers_json(sim: SimHandle) -> None:
    schema = {"type": "OBJECT", "properties": {"name": {"type": "STRING"}}, "required": ["name"]}
    assert json.loads(_text(_generate(sim, {"responseMimeType": "application/json", "responseSchema": schema}))) == {
        "name": "sim"
    }
    assert json.loads(_text(_generate(sim, {"responseMimeType": "application/json"}))) == {}
    as_json_schema = {"response_mime_type": "application/json", "response_json_schema": CITY}  # snake_case too
    assert json.loads(_text(_generate(sim, as_json_schema))) == CITY_ANSWER
    assert "You said" in _text(_generate(sim, {"responseMimeType": "text/plain"}))


def test_gemini_refuses_json_schema_keywords_in_a_response_schema(sim: SimHandle) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "string"}}, "additionalProperties": False}
    response = _generate(sim, {"responseMimeType": "application/json", "responseSchema": schema})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "Unknown name \"additionalProperties\" at 'generation_config.response_schema'" in message


@pytest.mark.parametrize(("mode", "status"), [(None, 400), ("AUTO", 400), ("ANY", 400), ("NONE", 200)])
def test_gemini_refuses_json_while_a_function_may_be_called(sim: SimHandle, mode: str | None, status: int) -> None:
    tools = [
        {
            "functionDeclarations": [
                {"name": "lookup", "parameters": {"type": "OBJECT", "properties": {"q": {"type": "STRING"}}}}
            ]
        }
    ]
    extra: dict[str, Any] = {"tools": tools}
    if mode is not None:
        extra["toolConfig"] = {"functionCallingConfig": {"mode": mode}}
    response = _generate(sim, {"responseMimeType": "application/json"}, **extra)
    assert response.status_code == status, response.text
    if status == 400:
        assert "Function calling with a response mime type: 'application/json' is unsupported" in response.text
