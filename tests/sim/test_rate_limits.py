"""Rate limits over HTTP: 429 wording, integer retry-after, reset headers, window state."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

import anthropic
import httpx
import pytest

from kestrel.sim.config import KeyLimits
from kestrel.sim.testing import SimHandle

BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hi"}],
}


def _post(sim: SimHandle, key: str, body: dict[str, Any] = BODY) -> httpx.Response:
    return sim.http.post("/v1/messages", headers={"x-api-key": key}, json=body)


def test_429_after_the_request_limit(sim: SimHandle) -> None:
    sim.set_limits("sk-rl", KeyLimits(requests_per_window=2, window_s=60))
    first, second = _post(sim, "sk-rl"), _post(sim, "sk-rl")
    assert first.status_code == second.status_code == 200
    assert first.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert first.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert second.headers["anthropic-ratelimit-requests-remaining"] == "0"

    refused = _post(sim, "sk-rl")
    before = time.time()
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"]["type"] == "rate_limit_error"
    assert "would exceed the rate limit for your organization" in body["error"]["message"]
    assert "of 2 requests per minute" in body["error"]["message"]
    retry_after = refused.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60

    state = sim.key_state("sk-rl")
    reset_at = state["window"]["reset_at"]
    assert state["window"]["requests"] == 2
    reset_header = refused.headers["anthropic-ratelimit-requests-reset"]
    assert reset_header.endswith("Z")
    header_epoch = datetime.fromisoformat(reset_header.replace("Z", "+00:00")).timestamp()
    assert header_epoch == math.ceil(reset_at)  # never earlier than the real reset
    assert before + int(retry_after) >= reset_at - 1  # retry-after measured from the refusal


def test_window_reopens_after_window_s(sim: SimHandle) -> None:
    sim.set_limits("sk-fast", KeyLimits(requests_per_window=1, window_s=0.3))
    assert _post(sim, "sk-fast").status_code == 200
    assert _post(sim, "sk-fast").status_code == 429
    time.sleep(0.35)
    assert _post(sim, "sk-fast").status_code == 200


def test_input_token_limit_ignores_cache_reads(sim: SimHandle) -> None:
    system = [{"type": "text", "text": "r" * 4400, "cache_control": {"type": "ephemeral"}}]
    body = {**BODY, "system": system}
    sim.set_limits("sk-in", KeyLimits(input_tokens_per_window=1200))
    first = _post(sim, "sk-in", body)  # 1100 tokens written to cache, 1 token of input
    assert first.status_code == 200
    assert first.headers["anthropic-ratelimit-input-tokens-remaining"] == "99"
    second = _post(sim, "sk-in", body)  # all cached: costs only the 1 uncached token
    assert second.status_code == 200, second.text
    assert second.json()["usage"]["cache_read_input_tokens"] == 1100
    big = {**BODY, "messages": [{"role": "user", "content": "y" * 800}]}
    refused = _post(sim, "sk-in", big)
    assert refused.status_code == 429
    assert "1,200 input tokens per minute" in refused.json()["error"]["message"]


def test_sdk_sees_a_rate_limit_error(sim: SimHandle) -> None:
    sim.set_limits("sk-sdk", KeyLimits(requests_per_window=1))
    client = anthropic.Anthropic(base_url=sim.url, api_key="sk-sdk", max_retries=0)
    client.messages.create(**BODY)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(**BODY)
    assert caught.value.response.headers["x-should-retry"] == "true"


def test_key_state_reports_counts(sim: SimHandle) -> None:
    sim.set_limits("sk-st", KeyLimits(requests_per_window=5, output_tokens_per_window=10_000))
    response = _post(sim, "sk-st")
    state = sim.key_state("sk-st")
    assert state["known"] and state["accepted"]
    assert state["window"]["requests"] == 1
    assert state["window"]["output_tokens"] == response.json()["usage"]["output_tokens"]
    assert state["limits"]["requests_per_window"] == 5
    assert sim.key_state("sk-nobody")["window"] is None


def test_refusals_show_the_window_without_charging_it(sim: SimHandle) -> None:
    sim.set_limits("sk-peek", KeyLimits(requests_per_window=3))
    assert _post(sim, "sk-peek").status_code == 200
    sim.fault("529", key="sk-peek")
    overloaded = _post(sim, "sk-peek")
    invalid = _post(sim, "sk-peek", {"model": "m", "messages": []})
    for response in (overloaded, invalid):
        assert response.status_code in (529, 400)
        assert response.headers["anthropic-ratelimit-requests-remaining"] == "2"
    assert sim.key_state("sk-peek")["window"]["requests"] == 1
