"""The official SDK against the sim: messages, streams, thinking, tools, tokens, models."""

from __future__ import annotations

from typing import Any

import anthropic
import orjson

from kestrel.sim.testing import SimHandle

from .sse import check_order, parse_frames

MODEL = "claude-sonnet-4-6"
HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}


def _comparable(message: Any) -> dict[str, Any]:
    """A message as JSON without ids or SDK-side helper fields."""
    data = message.model_dump(mode="json", exclude_none=True)
    data.pop("id")
    for block in data["content"]:
        block.pop("id", None)
        block.pop("parsed_output", None)
    return data


def _raw_stream(sim: SimHandle, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    response = sim.http.post("/v1/messages?beta=true", headers=HEADERS, json={**body, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = parse_frames(response.content)
    check_order(frames)
    return frames


def test_non_streaming_text_has_the_a4_shape(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "Hello, sim"}])
    assert message.id.startswith("msg_")
    assert message.type == "message" and message.role == "assistant" and message.model == MODEL
    assert message.content[0].type == "text" and "Hello, sim" in message.content[0].text
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    usage = message.usage
    assert usage.input_tokens == 3  # ceil(len("Hello, sim") / 4)
    assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0
    assert usage.cache_creation is not None and usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert usage.output_tokens >= 1 and usage.service_tier == "standard"


def test_default_answer_is_deterministic(client: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": "same question"}]
    first = client.messages.create(model=MODEL, max_tokens=200, messages=messages)
    second = client.messages.create(model=MODEL, max_tokens=200, messages=messages)
    assert _comparable(first) == _comparable(second)


def test_stream_accumulates_to_the_non_streaming_message(client: anthropic.Anthropic) -> None:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [{"type": "text", "text": "You are terse."}],
        "messages": [{"role": "user", "content": "Explain streaming in a few words please"}],
    }
    plain = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        final = stream.get_final_message()
    assert _comparable(final) == _comparable(plain)
    assert [b.type for b in final.content] == ["thinking", "text"]


def test_stream_accumulates_tools_and_text_like_non_streaming(sim: SimHandle, client: anthropic.Anthropic) -> None:
    blocks = [
        {"type": "text", "text": "Let me look at both files."},
        {"type": "tool_use", "name": "Read", "input": {"file_path": "/tmp/a.py"}},
        {"type": "tool_use", "name": "Grep", "input": {"pattern": 'def "x"', "n": [1, 2]}},
    ]
    sim.script([blocks, blocks])
    kwargs: dict[str, Any] = {"model": MODEL, "max_tokens": 500, "messages": [{"role": "user", "content": "look"}]}
    plain = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        final = stream.get_final_message()
    assert _comparable(final) == _comparable(plain)
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert final.content[2].input == {"pattern": 'def "x"', "n": [1, 2]}  # type: ignore[union-attr]


def test_raw_stream_follows_a5_order_with_several_text_deltas(sim: SimHandle) -> None:
    frames = _raw_stream(
        sim,
        {
            "model": MODEL,
            "max_tokens": 300,
            "messages": [{"role": "user", "content": "tell me something about server-sent events"}],
        },
    )
    text_deltas = [d for e, d in frames if e == "content_block_delta"]
    assert len(text_deltas) >= 3
    assert all(d["delta"]["type"] == "text_delta" for d in text_deltas)
    start_usage = frames[0][1]["message"]["usage"]
    final_usage = frames[-2][1]["usage"]
    assert start_usage["input_tokens"] == final_usage["input_tokens"] > 0
    assert final_usage["output_tokens"] >= 1


def test_thinking_block_ends_with_its_signature(sim: SimHandle) -> None:
    frames = _raw_stream(
        sim,
        {
            "model": MODEL,
            "max_tokens": 2048,
            "thinking": {"type": "adaptive"},
            "messages": [{"role": "user", "content": "think first"}],
        },
    )
    thinking = [d for e, d in frames[2:-2] if d.get("index") == 0]
    assert thinking[0]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert thinking[1]["delta"]["type"] == "thinking_delta"
    assert thinking[-2]["delta"]["type"] == "signature_delta"
    assert thinking[-2]["delta"]["signature"]
    assert thinking[-1]["type"] == "content_block_stop"


def test_omitted_thinking_streams_only_the_signature(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=2048,
        thinking={"type": "adaptive", "display": "omitted"},
        messages=[{"role": "user", "content": "think quietly"}],
    )
    block = message.content[0]
    assert block.type == "thinking" and block.thinking == "" and block.signature


def test_tool_input_arrives_as_json_fragments(sim: SimHandle, client: anthropic.Anthropic) -> None:
    tool_input = {"command": 'grep -rn "needle" src/ | head', "description": "Find needle é✓"}
    sim.script([[{"type": "tool_use", "name": "Bash", "input": tool_input}]] * 2)
    frames = _raw_stream(
        sim,
        {
            "model": MODEL,
            "max_tokens": 500,
            "messages": [{"role": "user", "content": "go"}],
        },
    )
    start = frames[2][1]
    assert start["content_block"]["input"] == {} and start["content_block"]["id"].startswith("toolu_")
    fragments = [d["delta"]["partial_json"] for e, d in frames if e == "content_block_delta"]
    assert fragments[0] == "" and len(fragments) >= 5
    assert orjson.loads("".join(fragments)) == tool_input
    assert any(f.count('"') % 2 == 1 for f in fragments)  # some fragment cuts a string open
    assert frames[-2][1]["delta"]["stop_reason"] == "tool_use"

    with client.messages.stream(model=MODEL, max_tokens=500, messages=[{"role": "user", "content": "go"}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].input == tool_input  # type: ignore[union-attr]


def test_count_tokens_matches_usage(client: anthropic.Anthropic) -> None:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "system": "s" * 40,
        "tools": [{"name": "Read", "description": "read", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x" * 100}]}],
    }
    counted = client.messages.count_tokens(**kwargs).input_tokens
    usage = client.messages.create(max_tokens=50, **kwargs).usage
    total = usage.input_tokens + (usage.cache_creation_input_tokens or 0)
    assert counted == total + (usage.cache_read_input_tokens or 0) == 10 + 7 + 25
    # system: 40 chars; tool: 4 + 4 + 17 chars; text: 100 chars


def test_models_list_pages_and_get(client: anthropic.Anthropic) -> None:
    everything = client.models.list(limit=1000)
    ids = [m.id for m in everything.data]
    assert "claude-sonnet-4-6" in ids and not everything.has_more
    first = client.models.list(limit=2)
    assert [m.id for m in first.data] == ids[:2] and first.has_more
    assert first.last_id == ids[1]
    rest = client.models.list(limit=2, after_id=ids[1])
    assert [m.id for m in rest.data] == ids[2:4]
    model = client.models.retrieve("claude-haiku-4-5")
    assert model.display_name == "Claude Haiku 4.5"
