"""Structured output across dialects, through the real SDKs: the format reaches every upstream.

An OpenAI client's ``response_format`` becomes Anthropic's ``output_config.format`` and Gemini's
``responseMimeType`` + ``responseSchema``; an Anthropic client's ``output_config.format`` becomes
OpenAI's ``response_format``. The sim answers a structured request with JSON matching the schema,
so the SDKs' own parsing shows the round trip worked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pydantic
import pytest

from integration.harness import KestrelHandle, running_kestrel
from kestrel.sim.testing import SimHandle, running_sim


class Country(pydantic.BaseModel):
    code: str


class City(pydantic.BaseModel):
    # nested and optional fields: $defs/$ref and an anyOf with null in the SDK's schema
    name: str
    population: int
    country: Country
    nickname: str | None = None


CITY = City(name="sim", population=0, country=Country(code="sim"), nickname="sim")
"""What the sim's minimal instance of the schema reads as (every property is required in strict mode)."""
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "rank": {"type": "integer"}},
    "required": ["city", "rank"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with running_sim() as handle:
        yield handle


def _kestrel(sim: SimHandle, tmp: Path, provider: str, model_map: dict[str, str]):  # type: ignore[no-untyped-def]
    account = {"id": provider, "provider": provider, "base_url": sim.url, "api_key": f"sk-{provider}"}
    return running_kestrel(tmp, accounts=[{**account, "model_map": model_map}])


@pytest.fixture(scope="module")
def over_anthropic(sim: SimHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KestrelHandle]:
    with _kestrel(sim, tmp_path_factory.mktemp("a"), "anthropic", {"gpt-*": "claude-sonnet-4-6"}) as handle:
        yield handle


@pytest.fixture(scope="module")
def over_gemini(sim: SimHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KestrelHandle]:
    with _kestrel(sim, tmp_path_factory.mktemp("g"), "gemini", {"gpt-*": "gemini-2.5-pro"}) as handle:
        yield handle


@pytest.fixture(scope="module")
def over_openai(sim: SimHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KestrelHandle]:
    with _kestrel(sim, tmp_path_factory.mktemp("o"), "openai", {"claude-*": "gpt-5"}) as handle:
        yield handle


def _upstream_body(sim: SimHandle) -> dict[str, Any]:
    return dict(json.loads(sim.requests()[-1]["body"]))


def _openai(kestrel: KestrelHandle) -> openai.OpenAI:
    return openai.OpenAI(base_url=kestrel.url + "/v1", api_key="k", max_retries=0)


# -- an OpenAI client's response_format -----------------------------------------------------------


def test_openai_parse_over_anthropic_gets_its_object(over_anthropic: KestrelHandle, sim: SimHandle) -> None:
    sim.reset()
    completion = _openai(over_anthropic).chat.completions.parse(
        model="gpt-5", messages=[{"role": "user", "content": "Tell me about Paris."}], response_format=City
    )
    assert completion.choices[0].message.parsed == CITY
    sent = _upstream_body(sim)
    assert sim.requests()[-1]["path"] == "/v1/messages" and sent["model"] == "claude-sonnet-4-6"
    assert sent["output_config"]["format"]["type"] == "json_schema"
    schema = sent["output_config"]["format"]["schema"]  # the SDK's strict schema, as it wrote it
    assert schema["additionalProperties"] is False and schema["$defs"]["Country"]["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "population", "country", "nickname"}
    assert "response_format" not in sent


def test_openai_parse_stream_over_anthropic(over_anthropic: KestrelHandle, sim: SimHandle) -> None:
    sim.reset()
    with _openai(over_anthropic).chat.completions.stream(
        model="gpt-5", messages=[{"role": "user", "content": "Tell me about Paris."}], response_format=City
    ) as stream:
        completion = stream.get_final_completion()
    assert completion.choices[0].message.parsed == CITY
    assert _upstream_body(sim)["stream"] is True


def test_openai_json_mode_over_anthropic_is_left_off(over_anthropic: KestrelHandle, sim: SimHandle) -> None:
    """Anthropic has no "any JSON object": the format is not sent and the client's prompt (which
    OpenAI's JSON mode makes say "JSON") is what asks for it."""
    sim.reset()
    completion = _openai(over_anthropic).chat.completions.create(
        model="gpt-5",
        messages=[{"role": "user", "content": "Paris as JSON"}],
        response_format={"type": "json_object"},
    )
    assert completion.choices[0].message.content
    assert "output_config" not in _upstream_body(sim)


def test_openai_parse_over_gemini_gets_its_object(over_gemini: KestrelHandle, sim: SimHandle) -> None:
    sim.reset()
    completion = _openai(over_gemini).chat.completions.parse(
        model="gpt-5", messages=[{"role": "user", "content": "Tell me about Paris."}], response_format=City
    )
    assert completion.choices[0].message.parsed == CITY
    assert sim.requests()[-1]["path"] == "/v1beta/models/gemini-2.5-pro:generateContent"
    generation = _upstream_body(sim)["generationConfig"]
    assert generation["responseMimeType"] == "application/json"
    assert generation["responseSchema"] == {  # sanitized: $ref inlined, titles and additionalProperties gone
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING"},
            "population": {"type": "INTEGER"},
            "country": {"type": "OBJECT", "properties": {"code": {"type": "STRING"}}, "required": ["code"]},
            "nickname": {"type": "STRING", "nullable": True},
        },
        "required": ["name", "population", "country", "nickname"],
    }


def test_openai_json_mode_over_gemini(over_gemini: KestrelHandle, sim: SimHandle) -> None:
    sim.reset()
    completion = _openai(over_gemini).chat.completions.create(
        model="gpt-5",
        messages=[{"role": "user", "content": "Paris as JSON"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(completion.choices[0].message.content or "") == {}
    generation = _upstream_body(sim)["generationConfig"]
    assert generation["responseMimeType"] == "application/json" and "responseSchema" not in generation


# -- an Anthropic client's output_config.format ---------------------------------------------------


def test_anthropic_output_config_over_openai_is_a_json_schema(over_openai: KestrelHandle, sim: SimHandle) -> None:
    sim.reset()
    client = anthropic.Anthropic(base_url=over_openai.url, api_key="k", max_retries=0)
    message = client.messages.create(
        model="claude-sonnet-4-6",
        max_tokens=300,
        messages=[{"role": "user", "content": "The best city?"}],
        output_config={"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "low"},
    )
    assert message.content[0].type == "text"
    assert json.loads(message.content[0].text) == {"city": "sim", "rank": 0}
    sent = _upstream_body(sim)
    assert sim.requests()[-1]["path"] == "/v1/chat/completions" and sent["model"] == "gpt-5"
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "response", "schema": SCHEMA}}
    assert "output_config" not in sent


def test_anthropic_legacy_output_format_over_openai(over_openai: KestrelHandle, sim: SimHandle) -> None:
    sim.reset()
    client = anthropic.Anthropic(base_url=over_openai.url, api_key="k", max_retries=0)
    with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=300,
        messages=[{"role": "user", "content": "The best city?"}],
        extra_body={"output_format": {"type": "json_schema", "schema": SCHEMA}},
    ) as stream:
        text = stream.get_final_text()
    assert json.loads(text) == {"city": "sim", "rank": 0}
    sent = _upstream_body(sim)
    assert sent["response_format"]["json_schema"]["schema"] == SCHEMA and "output_format" not in sent
