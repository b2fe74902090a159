"""Refusals before any answer: auth, validation, unknown paths, in Anthropic's envelope."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kestrel.sim.config import KeyLimits, SimConfig
from kestrel.sim.testing import SimHandle, running_sim

HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
GOOD: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "hi"}],
}


def _error(response: httpx.Response, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert body["request_id"] == response.headers["request-id"]
    assert body["request_id"].startswith("req_")
    return str(body["error"]["message"])


@pytest.mark.parametrize(
    ("change", "wording"),
    [
        ({"model": None}, "model: Field required"),
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"messages": None}, "messages: Field required"),
        ({"messages": []}, "at least one message"),
        ({"max_tokens": "ten"}, "max_tokens"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "must be greater than"),
        ({"stop_sequences": "END"}, "stop_sequences"),
    ],
)
def test_invalid_bodies_are_400(sim: SimHandle, change: dict[str, Any], wording: str) -> None:
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    response = sim.http.post("/v1/messages", headers=HEADERS, json=body)
    assert wording in _error(response, 400, "invalid_request_error")


def test_body_that_is_not_json_is_400(sim: SimHandle) -> None:
    response = sim.http.post("/v1/messages", headers=HEADERS, content=b"{nope")
    _error(response, 400, "invalid_request_error")


def test_unanswered_tool_use_is_refused_like_upstream(sim: SimHandle) -> None:
    messages = [
        {"role": "user", "content": "read it"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}]},
        {"role": "user", "content": "never mind"},
    ]
    response = sim.http.post("/v1/messages", headers=HEADERS, json={**GOOD, "messages": messages})
    message = _error(response, 400, "invalid_request_error")
    assert "tool_use` ids were found without `tool_result` blocks immediately after" in message


def test_with_thinking_the_answered_tool_turn_must_start_with_thinking(sim: SimHandle) -> None:
    call = {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}
    loop = [
        {"role": "user", "content": "read it"},
        {"role": "assistant", "content": [{"type": "text", "text": "Reading."}, call]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}]},
    ]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    body = {**GOOD, "max_tokens": 2000, "messages": loop, "thinking": thinking}
    message = _error(httpx.post(sim.url + "/v1/messages", json=body, headers=HEADERS), 400, "invalid_request_error")
    assert message.startswith("messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `text`")
    assert httpx.post(sim.url + "/v1/messages", json={**body, "thinking": None}, headers=HEADERS).status_code == 200
    led = [loop[0], {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "x"}, call]}, loop[2]]
    assert httpx.post(sim.url + "/v1/messages", json={**body, "messages": led}, headers=HEADERS).status_code == 200
    # a new user question (no tool results last) has no such requirement
    asked = [*loop, {"role": "assistant", "content": "done"}, {"role": "user", "content": "thanks"}]
    assert httpx.post(sim.url + "/v1/messages", json={**body, "messages": asked}, headers=HEADERS).status_code == 200


def test_too_many_cache_breakpoints(sim: SimHandle) -> None:
    block = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
    body = {**GOOD, "messages": [{"role": "user", "content": [block] * 5}]}
    response = sim.http.post("/v1/messages", headers=HEADERS, json=body)
    assert "maximum of 4 blocks" in _error(response, 400, "invalid_request_error")


def test_missing_key_is_401(sim: SimHandle) -> None:
    response = sim.http.post("/v1/messages", json=GOOD)
    _error(response, 401, "authentication_error")


def test_bearer_token_is_accepted(sim: SimHandle) -> None:
    response = sim.http.post("/v1/messages", json=GOOD, headers={"authorization": "Bearer sk-oauth"})
    assert response.status_code == 200


def test_closed_sim_refuses_unknown_keys() -> None:
    config = SimConfig(open=False, keys={"sk-known": KeyLimits()})
    with running_sim(config) as sim:
        unknown = sim.http.post("/v1/messages", json=GOOD, headers={"x-api-key": "sk-x"})
        assert _error(unknown, 401, "authentication_error") == "invalid x-api-key"
        known = sim.http.post("/v1/messages", json=GOOD, headers={"x-api-key": "sk-known"})
        assert known.status_code == 200
        assert "anthropic-ratelimit-requests-limit" not in known.headers  # unlimited key


def test_strict_models_refuse_unknown_model() -> None:
    with running_sim(SimConfig(strict_models=True)) as sim:
        response = sim.http.post("/v1/messages", headers=HEADERS, json={**GOOD, "model": "gpt-4o"})
        assert _error(response, 404, "not_found_error") == "model: gpt-4o"


def test_unknown_path_and_model_are_404(sim: SimHandle) -> None:
    _error(sim.http.get("/v1/nothing", headers=HEADERS), 404, "not_found_error")
    _error(sim.http.get("/v1/messages/", headers=HEADERS), 404, "not_found_error")
    _error(sim.http.get("/v1/models/claude-9", headers=HEADERS), 404, "not_found_error")


def test_wrong_method_is_an_envelope_too(sim: SimHandle) -> None:
    _error(sim.http.get("/v1/messages", headers=HEADERS), 405, "invalid_request_error")


def test_interleaved_thinking_beta_lifts_the_budget_rule(sim: SimHandle) -> None:
    body = {**GOOD, "thinking": {"type": "enabled", "budget_tokens": 2000}}
    beta = {**HEADERS, "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"}
    response = sim.http.post("/v1/messages", headers=beta, json=body)
    assert response.status_code == 200
    assert response.json()["content"][0]["type"] == "thinking"
