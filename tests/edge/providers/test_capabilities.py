"""The per-model capability table: resolution, fitting, and what each codec sends per model family."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from kestrel.common.config import config_from_dict
from kestrel.edge.canonical import Message, Request, Text, ThinkingConfig
from kestrel.edge.providers.anthropic import AnthropicCodec, fit_request
from kestrel.edge.providers.capabilities import (
    BUILTIN,
    BUILTIN_CATALOG,
    UNKNOWN,
    ModelCaps,
    ModelCatalog,
    effort_of,
    fit_to_model,
    nearest_effort,
)
from kestrel.edge.providers.gemini import GeminiCodec
from kestrel.edge.providers.openai import OpenAICodec
from kestrel.edge.providers.presets import GROQ, OPENROUTER, XAI
from kestrel.edge.providers.registry import catalog_for, codec_for

CLAUDE_CODE = Request(
    model="claude-sonnet-4-6",
    system=(Text("You are Claude Code."),),
    messages=(Message("user", (Text("fix the bug"),)),),
    max_tokens=32000,
    temperature=1.0,
    stop_sequences=("</done>",),
    thinking=ThinkingConfig(enabled=True, budget_tokens=10000),
    stream=True,
)
"""What Claude Code sends (the parts that matter here): 32000 output tokens, thinking on."""

PLAIN = Request(model="m", messages=(Message("user", (Text("hi"),)),))


def thinking(budget: int = 0, effort: str = "", enabled: bool = True) -> Request:
    return dataclasses.replace(PLAIN, thinking=ThinkingConfig(enabled, budget, effort))


def openai_body(request: Request, model: str, codec: OpenAICodec | None = None) -> dict[str, Any]:
    return orjson.loads((codec or OpenAICodec(catalog=BUILTIN_CATALOG)).encode(request, model).body)


def gemini_generation(request: Request, model: str, catalog: ModelCatalog = BUILTIN_CATALOG) -> dict[str, Any]:
    return orjson.loads(GeminiCodec(catalog).encode(request, model).body).get("generationConfig", {})


def anthropic_body(request: Request, model: str) -> dict[str, Any]:
    return orjson.loads(AnthropicCodec(catalog=BUILTIN_CATALOG).encode(request, model).body)


# -- resolution ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "pattern"),
    [
        ("gpt-4o", "gpt-4o*"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o*"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # an exact name beats every glob
        ("gpt-5-mini", "gpt-5*"),
        ("gpt-5-chat-latest", "gpt-5-chat*"),  # more literal characters beat fewer
        ("gpt-5.1", "gpt-5.1*"),
        ("o3-mini", "o3*"),
        ("o1-mini", "o1-mini*"),
        ("gemini-2.5-flash", "gemini-2.5-flash*"),
        ("gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite*"),
        ("gemini-3-pro-preview", "gemini-3*"),
        ("gemini-3-flash-preview", "gemini-3*-flash*"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1*"),
        ("claude-opus-4-20250514", "claude-opus-4-2025*"),
        ("claude-sonnet-4-5", "claude-sonnet-4*"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku*"),
    ],
)
def test_the_most_specific_builtin_pattern_wins(model: str, pattern: str) -> None:
    assert BUILTIN_CATALOG.caps(model) == dict(BUILTIN)[pattern]


def test_names_are_matched_case_insensitively_without_prefixes() -> None:
    gpt_4o = dict(BUILTIN)["gpt-4o*"]
    assert BUILTIN_CATALOG.caps("GPT-4o") == gpt_4o
    assert BUILTIN_CATALOG.caps("openai/gpt-4o") == gpt_4o  # OpenRouter's vendor prefix
    assert BUILTIN_CATALOG.caps("models/gemini-2.5-pro") == dict(BUILTIN)["gemini-2.5-pro*"]


def test_a_tie_in_specificity_goes_to_the_first_listed() -> None:
    first, second = ModelCaps(max_output_tokens=1), ModelCaps(max_output_tokens=2)
    catalog = ModelCatalog(builtin=[("a*c", first), ("ab*", second)])
    assert catalog.caps("abc") == first
    catalog = ModelCatalog(builtin=[("ab*", second), ("a*c", first)])
    assert catalog.caps("abc") == second


@pytest.mark.parametrize("model", ["mystery-model", "llama-3.3-70b-versatile", "claude-opus-4-8", "gpt-oss-120b"])
def test_unknown_models_are_unknown(model: str) -> None:
    assert BUILTIN_CATALOG.caps(model) is UNKNOWN


def test_config_entries_override_field_by_field_and_by_their_own_specificity() -> None:
    catalog = ModelCatalog(
        {
            "gpt-4o*": {"max_output_tokens": 8000},
            "gpt-4o-mini*": {"sampling": False},
            "my-local-model": {"max_output_tokens": 4096, "thinking": "none"},
            "o3*": ModelCaps(max_output_tokens=5),  # a whole ModelCaps replaces every field
        }
    )
    assert catalog.caps("gpt-4o") == ModelCaps(max_output_tokens=8000, thinking="none")
    # the more specific config entry wins over gpt-4o*, and lays over the built-in gpt-4o* entry
    assert catalog.caps("gpt-4o-mini") == ModelCaps(max_output_tokens=16384, thinking="none", sampling=False)
    assert catalog.caps("my-local-model") == ModelCaps(max_output_tokens=4096, thinking="none")
    assert catalog.caps("o3-mini") == ModelCaps(max_output_tokens=5)
    assert catalog.caps("gpt-5") == BUILTIN_CATALOG.caps("gpt-5")  # untouched by the config
    assert catalog.caps("something-else") is UNKNOWN


def test_catalog_from_the_routing_config() -> None:
    config = config_from_dict(
        {
            "routing": {
                "models": {
                    "gemini-2.5-pro*": {"thinking_budget": [1024, 8192]},
                    "acme-chat": {"max_output_tokens": 16384, "thinking": "none", "efforts": ["low"]},
                }
            }
        }
    )
    catalog = catalog_for(config.routing)
    assert catalog.caps("gemini-2.5-pro") == dataclasses.replace(
        BUILTIN_CATALOG.caps("gemini-2.5-pro"), thinking_budget=(1024, 8192)
    )
    assert catalog.caps("acme-chat") == ModelCaps(max_output_tokens=16384, thinking="none", efforts=("low",))
    assert catalog_for(config_from_dict({}).routing) is BUILTIN_CATALOG


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_tokens": 1}, "unknown field"),
        ({"thinking": "maybe"}, "thinking must be one of"),
        ({"thinking_budget": (10, 1)}, "thinking_budget"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
    ],
)
def test_bad_overrides_are_refused_when_the_catalog_is_built(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelCatalog({"m": fields})


def test_builtin_entries_are_valid_and_distinct() -> None:
    patterns = [pattern for pattern, _ in BUILTIN]
    assert len(patterns) == len(set(patterns))
    for _, caps in BUILTIN:
        assert caps != UNKNOWN
        assert caps.thinking != "effort" or caps.efforts
        assert caps.thinking != "none" or not caps.efforts


# -- fit_to_model ----------------------------------------------------------------------------------


def test_fitting_to_an_unknown_model_changes_nothing() -> None:
    assert fit_to_model(CLAUDE_CODE, UNKNOWN) is CLAUDE_CODE


def test_fitting_clamps_output_drops_refused_settings_and_clamps_the_budget() -> None:
    caps = ModelCaps(max_output_tokens=16384, thinking_budget=(128, 8000), sampling=False, stop_sequences=False)
    fitted = fit_to_model(dataclasses.replace(CLAUDE_CODE, top_p=0.9, top_k=40), caps)
    assert fitted.max_tokens == 16384
    assert fitted.thinking == ThinkingConfig(True, 8000)
    assert (fitted.temperature, fitted.top_p, fitted.top_k, fitted.stop_sequences) == (None, None, None, ())
    assert fit_to_model(thinking(50), caps).thinking == ThinkingConfig(True, 128)  # up, never off
    assert fit_to_model(thinking(0), caps).thinking == ThinkingConfig(True, 0)  # adaptive stays adaptive
    assert fit_to_model(PLAIN, caps).max_tokens is None  # encoders fill their own defaults


def test_fitting_a_model_without_thinking_drops_it_and_keeps_the_rest() -> None:
    fitted = fit_to_model(dataclasses.replace(CLAUDE_CODE, max_tokens=100), ModelCaps(thinking="none"))
    assert fitted.thinking == ThinkingConfig()
    assert (fitted.max_tokens, fitted.temperature, fitted.stop_sequences) == (100, 1.0, ("</done>",))


@pytest.mark.parametrize(
    ("config", "allowed", "expected"),
    [
        (ThinkingConfig(True, 0), ("low", "medium", "high"), "medium"),
        (ThinkingConfig(True, 4096), ("low", "medium", "high"), "low"),
        (ThinkingConfig(True, 10000), ("low", "high"), "high"),  # medium: a tie goes up
        (ThinkingConfig(True, 31999), ("low", "high"), "high"),
        (ThinkingConfig(True, 0, "minimal"), ("none", "low", "medium", "high"), "low"),
        (ThinkingConfig(True, 0, "minimal"), ("minimal", "low"), "minimal"),
        (ThinkingConfig(True, 0, "max"), ("low", "medium", "high"), "high"),
        (ThinkingConfig(True, 0, "odd"), ("low", "medium", "high"), "medium"),
        (ThinkingConfig(True, 0, "high"), (), "high"),
    ],
)
def test_effort_mapping(config: ThinkingConfig, allowed: tuple[str, ...], expected: str) -> None:
    assert nearest_effort(effort_of(config), allowed) == expected


# -- OpenAI ------------------------------------------------------------------------------------


def test_claude_code_to_gpt_4o_has_no_reasoning_and_a_capped_output() -> None:
    assert openai_body(CLAUDE_CODE, "gpt-4o") == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are Claude Code."},
            {"role": "user", "content": "fix the bug"},
        ],
        "max_completion_tokens": 16384,
        "temperature": 1.0,
        "stop": ["</done>"],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_claude_code_to_gpt_5_gets_an_effort_and_no_sampling_or_stop() -> None:
    body = openai_body(dataclasses.replace(CLAUDE_CODE, top_p=0.9), "gpt-5")
    assert body["reasoning_effort"] == "medium"
    assert body["max_completion_tokens"] == 32000
    assert not {"temperature", "top_p", "stop"} & body.keys()


@pytest.mark.parametrize(
    ("model", "request_", "effort"),
    [
        ("o3-mini", thinking(2000), "low"),
        ("o4-mini", thinking(31999), "high"),
        ("gpt-5", thinking(0, "minimal"), "minimal"),
        ("gpt-5.1", thinking(0, "minimal"), "low"),  # 5.1 has none/low/…: minimal moves up on a tie
        ("gpt-5.2", thinking(0, "xhigh"), "xhigh"),
    ],
)
def test_effort_models_get_their_own_values(model: str, request_: Request, effort: str) -> None:
    assert openai_body(request_, model)["reasoning_effort"] == effort


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4.1-mini", "gpt-5-chat-latest", "o1-mini"])
def test_models_without_effort_never_get_it(model: str) -> None:
    assert "reasoning_effort" not in openai_body(thinking(8000, "high"), model)
    assert "reasoning" not in openai_body(thinking(8000), model, OpenAICodec(OPENROUTER, BUILTIN_CATALOG))


def test_an_effort_model_gets_it_even_from_a_preset_that_sends_none() -> None:
    catalog = ModelCatalog({"grok-3-mini": {"thinking": "effort", "efforts": ["low", "high"]}})
    body = openai_body(thinking(10000), "grok-3-mini", OpenAICodec(XAI, catalog))
    assert body["reasoning_effort"] == "high"
    assert "reasoning_effort" not in openai_body(thinking(10000), "grok-4", OpenAICodec(XAI, catalog))
    body = openai_body(thinking(2000), "openai/gpt-5", OpenAICodec(OPENROUTER, BUILTIN_CATALOG))
    assert body["reasoning"] == {"effort": "low"}  # the preset's field, the model's values


@pytest.mark.parametrize("preset", [None, GROQ, XAI, OPENROUTER])
@pytest.mark.parametrize("model", ["mystery-model", "llama-3.3-70b-versatile"])
def test_unknown_models_encode_exactly_as_without_a_catalog(preset: Any, model: str) -> None:
    with_catalog = OpenAICodec(*(() if preset is None else (preset,)), catalog=BUILTIN_CATALOG)
    without = OpenAICodec(*(() if preset is None else (preset,)))
    assert with_catalog.encode(CLAUDE_CODE, model) == without.encode(CLAUDE_CODE, model)


# -- Gemini ------------------------------------------------------------------------------------


def test_claude_code_to_gemini_2_5_pro_keeps_a_budget_in_its_range() -> None:
    assert gemini_generation(CLAUDE_CODE, "gemini-2.5-pro") == {
        "maxOutputTokens": 32000,
        "temperature": 1.0,
        "stopSequences": ["</done>"],
        "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 10000},
    }
    big = dataclasses.replace(CLAUDE_CODE, max_tokens=100_000, thinking=ThinkingConfig(True, 50_000))
    generation = gemini_generation(big, "gemini-2.5-pro")
    assert generation["maxOutputTokens"] == 65536
    assert generation["thinkingConfig"]["thinkingBudget"] == 32768  # 2.5 Pro's top, not the 24576 of Flash
    assert gemini_generation(thinking(50), "gemini-2.5-pro")["thinkingConfig"]["thinkingBudget"] == 128


@pytest.mark.parametrize(
    ("model", "request_", "thinking_config"),
    [
        ("gemini-2.5-flash", thinking(30000), {"includeThoughts": True, "thinkingBudget": 24576}),
        ("gemini-2.5-flash", thinking(0), {"includeThoughts": True, "thinkingBudget": -1}),
        ("gemini-2.5-flash-lite", thinking(100), {"includeThoughts": True, "thinkingBudget": 512}),
        # thinking off: said where the model can stop thinking, left to the model where it cannot
        ("gemini-2.5-flash", PLAIN, {"thinkingBudget": 0}),
        ("gemini-2.5-flash-lite", PLAIN, {"thinkingBudget": 0}),
        ("gemini-2.5-pro", PLAIN, None),
        ("gemini-3-pro-preview", PLAIN, None),
        ("gemini-2.5-flash-image", thinking(2000), None),
    ],
)
def test_gemini_budgets_per_model(model: str, request_: Request, thinking_config: Any) -> None:
    assert gemini_generation(request_, model).get("thinkingConfig") == thinking_config


@pytest.mark.parametrize(
    ("model", "request_", "level"),
    [
        ("gemini-3-pro-preview", thinking(2000), "low"),
        ("gemini-3-pro-preview", thinking(4096), "low"),
        ("gemini-3-pro-preview", thinking(10000), "high"),  # Claude Code's budget: medium → high
        ("gemini-3-pro-preview", thinking(31999), "high"),
        ("gemini-3-pro-preview", thinking(0, "minimal"), "low"),
        ("gemini-3-pro-preview", thinking(0, "medium"), "high"),
        ("gemini-3-flash-preview", thinking(10000), "medium"),
        ("gemini-3-flash-preview", thinking(0, "low"), "low"),
    ],
)
def test_gemini_3_gets_a_thinking_level_not_a_budget(model: str, request_: Request, level: str) -> None:
    assert gemini_generation(request_, model)["thinkingConfig"] == {"includeThoughts": True, "thinkingLevel": level}


def test_gemini_3_adaptive_leaves_the_level_to_the_model() -> None:
    assert gemini_generation(thinking(0), "gemini-3-pro-preview")["thinkingConfig"] == {"includeThoughts": True}


def test_gemini_unknown_models_encode_exactly_as_without_a_catalog() -> None:
    for model in ("gemini-1.5-pro", "gemma-3-27b-it", "mystery"):
        assert GeminiCodec(BUILTIN_CATALOG).encode(CLAUDE_CODE, model) == GeminiCodec().encode(CLAUDE_CODE, model)
    assert gemini_generation(thinking(30000), "mystery")["thinkingConfig"]["thinkingBudget"] == 24576


def test_gemini_sampling_and_level_from_the_config() -> None:
    catalog = ModelCatalog({"gemini-3*": {"sampling": False, "efforts": ["low", "medium", "high"]}})
    generation = gemini_generation(CLAUDE_CODE, "gemini-3-pro-preview", catalog)
    assert "temperature" not in generation
    assert generation["thinkingConfig"]["thinkingLevel"] == "medium"


# -- Anthropic ---------------------------------------------------------------------------------


def test_claude_3_5_haiku_gets_its_cap_and_no_thinking() -> None:
    body = anthropic_body(CLAUDE_CODE, "claude-3-5-haiku-20241022")
    assert body["max_tokens"] == 8192
    assert "thinking" not in body
    assert body["temperature"] == 1.0  # sampling is fine once thinking is off


def test_claude_opus_4_1_caps_output_and_fits_the_budget_below_it() -> None:
    big = dataclasses.replace(CLAUDE_CODE, max_tokens=64000, thinking=ThinkingConfig(True, 40000))
    body = anthropic_body(big, "claude-opus-4-1-20250805")
    assert body["max_tokens"] == 32000
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 31999}
    # a default max_tokens (OpenAI clients may send none) is capped as well
    unset = dataclasses.replace(big, max_tokens=None)
    fitted = fit_request(unset, "claude-opus-4-1", caps=BUILTIN_CATALOG.caps("claude-opus-4-1"))
    assert (fitted.max_tokens, fitted.thinking.budget_tokens) == (32000, 31999)


def test_claude_sonnet_4_keeps_claude_codes_request() -> None:
    body = anthropic_body(CLAUDE_CODE, "claude-sonnet-4-5")
    assert body["max_tokens"] == 32000
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 10000}


def test_an_effort_becomes_a_budget_on_claude_models_without_adaptive_thinking() -> None:
    """An OpenAI client's ``reasoning_effort`` is adaptive thinking plus an effort; Sonnet 4.5 takes
    neither (a 400), so it gets the effort's budget; Sonnet 4.6 takes both and keeps them."""
    effort = dataclasses.replace(CLAUDE_CODE, thinking=ThinkingConfig(True, 0, "high"))
    older = anthropic_body(effort, "claude-sonnet-4-5")
    assert older["thinking"] == {"type": "enabled", "budget_tokens": 24000}
    assert "output_config" not in older
    assert effort_of(ThinkingConfig(True, older["thinking"]["budget_tokens"])) == "high"
    newer = anthropic_body(effort, "claude-sonnet-4-6")
    assert newer["thinking"] == {"type": "adaptive"}
    assert newer["output_config"] == {"effort": "high"}
    assert newer["max_tokens"] == 32000
    small = dataclasses.replace(effort, max_tokens=8000)
    assert anthropic_body(small, "claude-haiku-4-5")["thinking"] == {"type": "enabled", "budget_tokens": 7999}


def test_anthropic_unknown_models_encode_exactly_as_without_a_catalog() -> None:
    for model in ("claude-opus-4-8", "glm-4.6"):
        assert AnthropicCodec(catalog=BUILTIN_CATALOG).encode(CLAUDE_CODE, model) == AnthropicCodec().encode(
            CLAUDE_CODE, model
        )


# -- registry --------------------------------------------------------------------------------


def test_codec_for_gives_every_codec_the_catalog() -> None:
    config = config_from_dict(
        {
            "accounts": [
                {"id": "o", "provider": "openai", "api_key": "k"},
                {"id": "g", "provider": "gemini", "api_key": "k"},
                {"id": "a", "provider": "anthropic", "api_key": "k"},
            ],
            "routing": {"models": {"acme": {"max_output_tokens": 10}}},
        }
    )
    for account in config.accounts:
        assert codec_for(account).catalog is BUILTIN_CATALOG  # type: ignore[attr-defined]
        catalog = catalog_for(config.routing)
        assert codec_for(account, catalog).catalog is catalog  # type: ignore[attr-defined]
    body = openai_body(dataclasses.replace(PLAIN, max_tokens=500), "acme", codec_for(config.accounts[0], catalog))  # type: ignore[arg-type]
    assert body["max_completion_tokens"] == 10
