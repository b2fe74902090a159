"""Prompt caching seen through the SDK: usage in both forms, count_tokens, per-key state."""

from __future__ import annotations

from typing import Any

import anthropic

from kestrel.sim.testing import SimHandle

MODEL = "claude-sonnet-4-6"
SYSTEM: list[dict[str, Any]] = [
    {"type": "text", "text": "You are Claude Code."},
    {"type": "text", "text": "Rules. " * 1000, "cache_control": {"type": "ephemeral"}},
]
SYSTEM_TOKENS = 5 + 1750


def _request(question: str = "What changed?") -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 100,
        "system": SYSTEM,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": question, "cache_control": {"type": "ephemeral"}}]}
        ],
    }


def test_second_identical_request_reads_the_cache(client: anthropic.Anthropic) -> None:
    first = client.messages.create(**_request()).usage
    assert first.cache_read_input_tokens == 0
    assert first.cache_creation_input_tokens == SYSTEM_TOKENS + 4
    assert first.cache_creation is not None
    assert first.cache_creation.ephemeral_5m_input_tokens == SYSTEM_TOKENS + 4
    assert first.input_tokens == 0

    with client.messages.stream(**_request()) as stream:
        second = stream.get_final_message().usage
    assert second.cache_read_input_tokens == SYSTEM_TOKENS + 4
    assert second.cache_creation_input_tokens == 0 and second.input_tokens == 0


def test_next_turn_reads_the_shared_prefix(client: anthropic.Anthropic) -> None:
    client.messages.create(**_request("first question"))
    usage = client.messages.create(**_request("a different question")).usage
    assert usage.cache_read_input_tokens == SYSTEM_TOKENS
    assert usage.cache_creation_input_tokens == 5  # the new last message


def test_count_tokens_is_the_whole_prompt_whatever_the_cache(client: anthropic.Anthropic) -> None:
    request = _request()
    client.messages.create(**request)
    usage = client.messages.create(**request).usage
    counted = client.messages.count_tokens(
        model=MODEL, system=request["system"], messages=request["messages"]
    ).input_tokens
    assert counted == (
        usage.input_tokens + (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    )


def test_cache_is_per_key(sim: SimHandle) -> None:
    url = "/v1/messages"
    first = sim.http.post(url, headers={"x-api-key": "sk-a"}, json=_request()).json()
    other = sim.http.post(url, headers={"x-api-key": "sk-b"}, json=_request()).json()
    again = sim.http.post(url, headers={"x-api-key": "sk-a"}, json=_request()).json()
    assert first["usage"]["cache_read_input_tokens"] == 0
    assert other["usage"]["cache_read_input_tokens"] == 0
    assert again["usage"]["cache_read_input_tokens"] > 0
    assert sim.key_state("sk-a")["cache_entries"] == 2


def test_stream_message_start_carries_cache_usage(sim: SimHandle) -> None:
    url = "/v1/messages"
    sim.http.post(url, headers={"x-api-key": "sk-s"}, json=_request())
    raw = sim.http.post(url, headers={"x-api-key": "sk-s"}, json={**_request(), "stream": True})
    first_event = raw.text.split("\n\n")[0]
    assert first_event.startswith("event: message_start")
    assert f'"cache_read_input_tokens":{SYSTEM_TOKENS + 4}' in first_event
