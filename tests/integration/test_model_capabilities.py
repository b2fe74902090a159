"""Claude Code's request (32000 output tokens, thinking on) over an OpenAI account serving a model
that takes neither: the capability table makes it fit; without an entry the simulator, holding the
model to gpt-4o's real limits, refuses it as OpenAI would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from integration.harness import running_kestrel
from kestrel.edge.canonical import Message, Request, Text, ThinkingConfig
from kestrel.edge.providers.openai import OpenAICodec
from kestrel.edge.testing.stream_validators import validate_anthropic_sse
from kestrel.sim.config import DEFAULT_MODELS, ModelInfo, SimConfig
from kestrel.sim.testing import SimHandle, running_sim

CAP = 16384
CLAUDE_CODE: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 32000,
    "thinking": {"type": "enabled", "budget_tokens": 10000},
    "system": "You are Claude Code.",
    "messages": [{"role": "user", "content": "Say hello"}],
}
CANONICAL = Request(
    model="claude-sonnet-4-6",
    system=(Text("You are Claude Code."),),
    messages=(Message("user", (Text("Say hello"),)),),
    max_tokens=32000,
    thinking=ThinkingConfig(enabled=True, budget_tokens=10000),
)
"""``CLAUDE_CODE`` as the edge reads it."""


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    limited = (
        ModelInfo("gpt-4o", "GPT-4o", max_tokens=CAP, reasoning=False),
        ModelInfo("acme-chat", "Acme Chat", max_tokens=CAP, reasoning=False),  # no built-in entry
    )
    with running_sim(SimConfig(models=(*DEFAULT_MODELS, *limited))) as handle:
        yield handle


def over_openai(sim: SimHandle, tmp: Path, upstream_model: str, **config: Any):  # type: ignore[no-untyped-def]
    account = {
        "id": "openai-1",
        "provider": "openai",
        "base_url": sim.url,
        "api_key": "sk-openai",
        "model_map": {"claude-*": upstream_model},
    }
    return running_kestrel(tmp, accounts=[account], **config)


def claude_code(url: str) -> anthropic.types.Message:
    client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
    with client.messages.stream(**CLAUDE_CODE) as stream:  # 32000 tokens: the SDK insists on a stream
        return stream.get_final_message()


def test_claude_code_over_a_non_reasoning_model_succeeds(sim: SimHandle, tmp_path: Path) -> None:
    sim.reset()
    with over_openai(sim, tmp_path, "gpt-4o") as kestrel:
        message = claude_code(kestrel.url)
    assert message.stop_reason == "end_turn"
    assert message.content[-1].type == "text" and message.content[-1].text
    assert message.usage.output_tokens > 0
    sent = json.loads(sim.requests()[-1]["body"])
    assert sent["model"] == "gpt-4o"
    assert sent["max_completion_tokens"] == CAP
    assert "reasoning_effort" not in sent and "reasoning" not in sent


def test_without_a_capability_entry_the_same_request_is_refused(sim: SimHandle, tmp_path: Path) -> None:
    sim.reset()
    with over_openai(sim, tmp_path, "acme-chat") as kestrel, pytest.raises(anthropic.BadRequestError) as info:
        claude_code(kestrel.url)
    assert "reasoning_effort" in str(info.value)
    sent = json.loads(sim.requests()[-1]["body"])
    assert sent["model"] == "acme-chat"
    assert (sent["max_completion_tokens"], sent["reasoning_effort"]) == (32000, "medium")
    # the same refusal straight from the simulator, for gpt-4o encoded with no model facts …
    raw = OpenAICodec().encode(CANONICAL, "gpt-4o").body
    response = httpx.post(sim.url + "/v1/chat/completions", content=raw, headers={"authorization": "Bearer k"})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Unrecognized request argument supplied: reasoning_effort"
    # … and the output cap behind it once reasoning is out of the way
    body = {k: v for k, v in json.loads(raw).items() if k != "reasoning_effort"}
    response = httpx.post(sim.url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer k"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "max_completion_tokens"


def test_a_routing_models_entry_makes_an_unknown_model_fit(sim: SimHandle, tmp_path: Path) -> None:
    """The entry the previous test lacked, written in the config: the same request now succeeds."""
    sim.reset()
    models = {"acme-*": {"max_output_tokens": CAP, "thinking": "none"}}
    with over_openai(sim, tmp_path, "acme-chat", routing={"models": models}) as kestrel:
        message = claude_code(kestrel.url)
    assert message.stop_reason == "end_turn" and message.content[-1].text
    sent = json.loads(sim.requests()[-1]["body"])
    assert sent["model"] == "acme-chat"
    assert sent["max_completion_tokens"] == CAP and "reasoning_effort" not in sent


# -- same dialect, but routing changed the model ---------------------------------------------


def over_anthropic(sim: SimHandle, tmp: Path):  # type: ignore[no-untyped-def]
    account = {
        "id": "anthropic-1",
        "base_url": sim.url,
        "api_key": "sk-anthropic",
        "model_map": {"claude-opus-4-8": "claude-opus-4-1"},
    }
    return running_kestrel(tmp, accounts=[account])


def test_a_mapped_model_that_would_refuse_the_body_gets_it_fitted(sim: SimHandle, tmp_path: Path) -> None:
    """Opus 4.8 takes 64000 output tokens, Opus 4.1 (where model_map sends it) 32000: forwarding the
    body as is would be a 400, so it is fitted; a body within the limit is still passed through."""
    sim.reset()
    body = {**CLAUDE_CODE, "model": "claude-opus-4-8", "max_tokens": 64000, "stream": True}
    direct = httpx.post(
        sim.url + "/v1/messages",
        json={**body, "model": "claude-opus-4-1"},
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert direct.status_code == 400 and "max_tokens" in direct.json()["error"]["message"]
    with over_anthropic(sim, tmp_path) as kestrel:
        fitted = httpx.post(kestrel.url + "/v1/messages", json=body, headers={"x-api-key": "k"}, timeout=30)
        assert fitted.status_code == 200, fitted.text
        validate_anthropic_sse(fitted.content)
        sent = json.loads(sim.requests()[-1]["body"])
        assert (sent["model"], sent["max_tokens"]) == ("claude-opus-4-1", 32000)
        assert sent["thinking"] == {"type": "enabled", "budget_tokens": 10000}
        assert sent["system"] == [{"type": "text", "text": "You are Claude Code."}]

        within = json.dumps({**body, "max_tokens": 16000}).encode()
        passed = httpx.post(kestrel.url + "/v1/messages", content=within, headers={"x-api-key": "k"}, timeout=30)
        assert passed.status_code == 200
        forwarded = sim.requests()[-1]["body"].encode()
        assert forwarded == within.replace(b'"model": "claude-opus-4-8"', b'"model":"claude-opus-4-1"')
