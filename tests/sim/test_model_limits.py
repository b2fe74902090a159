"""Per-model limits: each API refuses what the real one would, in its own envelope; others pass."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kestrel.sim.config import DEFAULT_MODELS, ConfigError, ModelInfo, SimConfig, config_from_mapping
from kestrel.sim.testing import SimHandle, running_sim

GPT_4O = ModelInfo("gpt-4o", "GPT-4o", max_tokens=16384, reasoning=False)
GPT_5 = ModelInfo("gpt-5", "GPT-5", max_tokens=128_000)
GEMINI_25 = ModelInfo("gemini-2.5-flash", "Gemini 2.5 Flash", max_tokens=65536, thinking_levels=False)
GEMINI_3 = ModelInfo("gemini-3-pro-preview", "Gemini 3 Pro", max_tokens=65536)
CLAUDE_HAIKU_35 = ModelInfo("claude-3-5-haiku-20241022", "Claude Haiku 3.5", max_tokens=8192, reasoning=False)


@pytest.fixture(scope="module")
def limited() -> Iterator[SimHandle]:
    models = (*DEFAULT_MODELS, GPT_4O, GPT_5, GEMINI_25, GEMINI_3, CLAUDE_HAIKU_35)
    with running_sim(SimConfig(models=models)) as handle:
        yield handle


def chat(sim: SimHandle, **body: Any) -> httpx.Response:
    payload = {"messages": [{"role": "user", "content": "hi"}], **body}
    return httpx.post(sim.url + "/v1/chat/completions", json=payload, headers={"authorization": "Bearer k"})


def messages(sim: SimHandle, **body: Any) -> httpx.Response:
    payload = {"messages": [{"role": "user", "content": "hi"}], **body}
    return httpx.post(sim.url + "/v1/messages", json=payload, headers={"x-api-key": "k"})


def generate(sim: SimHandle, model: str, generation: dict[str, Any]) -> httpx.Response:
    payload = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": generation}
    url = f"{sim.url}/v1beta/models/{model}:generateContent"
    return httpx.post(url, json=payload, headers={"x-goog-api-key": "k"})


# -- OpenAI ---------------------------------------------------------------------------------------


def test_reasoning_effort_on_a_non_reasoning_model_is_refused_like_gpt_4o(limited: SimHandle) -> None:
    response = chat(limited, model="gpt-4o", reasoning_effort="medium")
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "Unrecognized request argument supplied: reasoning_effort",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    assert chat(limited, model="gpt-4o", reasoning_effort="none").status_code == 400  # any value
    assert chat(limited, model="gpt-5", reasoning_effort="high").status_code == 200


@pytest.mark.parametrize("field", ["max_completion_tokens", "max_tokens"])
def test_max_tokens_above_the_model_cap_is_refused_naming_the_field(limited: SimHandle, field: str) -> None:
    response = chat(limited, model="gpt-4o", **{field: 32000})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == (
        f"{field} is too large: 32000. This model supports at most 16384 completion tokens, whereas you provided 32000."
    )
    assert (error["type"], error["param"]) == ("invalid_request_error", field)
    assert chat(limited, model="gpt-4o", **{field: 16384}).status_code == 200


def test_a_request_without_max_tokens_and_unknown_models_are_not_checked(limited: SimHandle) -> None:
    assert chat(limited, model="gpt-4o").status_code == 200  # the sim's own default is never refused
    assert chat(limited, model="some-local-model", max_tokens=10**6, reasoning_effort="high").status_code == 200


# -- Anthropic ------------------------------------------------------------------------------------


def test_anthropic_max_tokens_above_the_cap_gets_the_real_message(limited: SimHandle) -> None:
    response = messages(limited, model="claude-3-5-haiku-20241022", max_tokens=32000)
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == (
        "max_tokens: 32000 > 8192, which is the maximum allowed number of output tokens for claude-3-5-haiku-20241022"
    )
    assert messages(limited, model="claude-3-5-haiku-20241022", max_tokens=8192).status_code == 200
    assert messages(limited, model="claude-opus-4-1", max_tokens=32001).status_code == 400  # a default model
    assert messages(limited, model="claude-unlisted", max_tokens=500_000).status_code == 200


def test_count_tokens_is_not_held_to_the_output_cap(limited: SimHandle) -> None:
    body = {"model": "claude-3-5-haiku-20241022", "max_tokens": 99_999, "messages": [{"role": "user", "content": "x"}]}
    response = httpx.post(limited.url + "/v1/messages/count_tokens", json=body, headers={"x-api-key": "k"})
    assert response.status_code == 200


# -- Gemini ---------------------------------------------------------------------------------------


def test_gemini_max_output_tokens_above_the_cap_is_invalid_argument(limited: SimHandle) -> None:
    response = generate(limited, "gemini-2.5-flash", {"maxOutputTokens": 70000})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert "maxOutputTokens value of 70000" in error["message"]
    assert "from 1 (inclusive) to 65537 (exclusive)" in error["message"]
    assert generate(limited, "gemini-2.5-flash", {"maxOutputTokens": 65536}).status_code == 200


def test_gemini_thinking_level_only_where_the_model_takes_it(limited: SimHandle) -> None:
    level = {"thinkingConfig": {"includeThoughts": True, "thinkingLevel": "high"}}
    response = generate(limited, "gemini-2.5-flash", level)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Thinking level is not supported for this model."
    assert generate(limited, "gemini-3-pro-preview", level).status_code == 200
    budget = {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024}}
    assert generate(limited, "gemini-2.5-flash", budget).status_code == 200


# -- config ---------------------------------------------------------------------------------------


def test_defaults_keep_every_default_model_permissive() -> None:
    assert all(m.reasoning and m.thinking_levels for m in DEFAULT_MODELS)
    info = ModelInfo("x", "x")
    assert (info.max_tokens, info.reasoning, info.thinking_levels) == (64_000, True, True)


def test_yaml_models_take_the_limit_fields() -> None:
    config = config_from_mapping(
        {"models": [{"id": "gpt-4o", "max_tokens": 16384, "reasoning": False}, {"id": "g", "thinking_levels": False}]}
    )
    assert config.models[0] == ModelInfo("gpt-4o", "gpt-4o", max_tokens=16384, reasoning=False)
    assert config.models[1].thinking_levels is False


@pytest.mark.parametrize(
    "entry",
    [
        {"id": "m", "max_tokens": 0},
        {"id": "m", "max_tokens": "lots"},
        {"id": "m", "reasoning": "no"},
        {"id": "m", "thinking_levels": 1},
        {"id": "m", "reasons": False},
    ],
)
def test_bad_model_limits_are_refused(entry: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        config_from_mapping({"models": [entry]})
