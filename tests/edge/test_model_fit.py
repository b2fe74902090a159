"""Which passthrough bodies a re-routed model would refuse, read from the bytes alone."""

from __future__ import annotations

import orjson

from kestrel.edge.model_fit import fits_as_is
from kestrel.edge.providers.capabilities import BUILTIN_CATALOG, UNKNOWN, ModelCaps

CLAUDE_CODE = orjson.dumps(
    {
        "model": "claude-opus-4-8",
        "max_tokens": 32000,
        "thinking": {"type": "enabled", "budget_tokens": 10000},
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}]},
        ],
    }
)


def caps(model: str) -> ModelCaps:
    return BUILTIN_CATALOG.caps(model)


def test_a_body_within_every_limit_fits() -> None:
    assert fits_as_is("anthropic", CLAUDE_CODE, caps("claude-sonnet-4-5"))
    assert fits_as_is("anthropic", CLAUDE_CODE, caps("claude-opus-4-1"))  # 32000 is the cap itself


def test_unknown_models_and_dialects_always_fit() -> None:
    assert fits_as_is("anthropic", CLAUDE_CODE.replace(b"32000", b"999999"), UNKNOWN)
    assert fits_as_is("gemini", b"{}", caps("gpt-4o"))


def test_more_output_than_the_cap_does_not_fit() -> None:
    assert not fits_as_is("anthropic", CLAUDE_CODE.replace(b"32000", b"32001"), caps("claude-opus-4-1"))
    openai = orjson.dumps({"model": "x", "max_completion_tokens": 20000, "messages": []})
    assert not fits_as_is("openai", openai, caps("gpt-4o"))
    assert fits_as_is("openai", openai.replace(b"20000", b"16384"), caps("gpt-4o"))


def test_thinking_config_on_a_model_without_thinking_does_not_fit_but_thinking_blocks_do() -> None:
    small = CLAUDE_CODE.replace(b"32000", b"4000")
    assert not fits_as_is("anthropic", small, caps("claude-3-5-haiku"))
    history_only = orjson.dumps({**orjson.loads(small), "thinking": None})
    history_only = history_only.replace(b',"thinking":null', b"")
    assert b'"thinking":"hm"' in history_only
    assert fits_as_is("anthropic", history_only, caps("claude-3-5-haiku"))
    effort = orjson.dumps({"model": "x", "reasoning_effort": "low", "messages": []})
    assert not fits_as_is("openai", effort, caps("gpt-4.1"))
    assert fits_as_is("openai", effort, caps("o3"))


def test_adaptive_thinking_on_a_budget_only_model_does_not_fit() -> None:
    adaptive = CLAUDE_CODE.replace(b'{"type":"enabled","budget_tokens":10000}', b'{"type":"adaptive"}')
    assert not fits_as_is("anthropic", adaptive, caps("claude-sonnet-4-5"))
    assert fits_as_is("anthropic", adaptive, caps("claude-sonnet-4-6"))


def test_sampling_and_stop_where_refused_do_not_fit() -> None:
    sampled = orjson.dumps({"model": "x", "temperature": 0.2, "messages": []})
    stopped = orjson.dumps({"model": "x", "stop": ["END"], "messages": []})
    assert not fits_as_is("openai", sampled, caps("o3"))
    assert not fits_as_is("openai", stopped, caps("o3"))
    assert fits_as_is("openai", sampled, caps("gpt-4o"))
