"""The official ``anthropic`` SDK through Kestrel to the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import httpx2
import pytest

from integration.harness import KestrelHandle, account, running_kestrel
from integration.rawtap import RawTap
from kestrel.edge.testing.stream_validators import validate_anthropic_sse
from kestrel.sim.testing import SimHandle, running_sim

MODEL = "claude-sonnet-4-6"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with running_sim() as handle:
        yield handle


@pytest.fixture(scope="module")
def kestrel(sim: SimHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KestrelHandle]:
    with running_kestrel(tmp_path_factory.mktemp("k"), accounts=[account(sim.url, "sk-one")]) as handle:
        yield handle


@pytest.fixture
def tap() -> RawTap:
    """The raw bytes of what ``client`` reads, for the strict stream validator."""
    return RawTap()


@pytest.fixture
def client(kestrel: KestrelHandle, sim: SimHandle, tap: RawTap) -> anthropic.Anthropic:
    sim.reset()
    return anthropic.Anthropic(
        base_url=kestrel.url, api_key="client-key", max_retries=0, http_client=httpx2.Client(transport=tap)
    )


def test_non_streaming_text(client: anthropic.Anthropic, kestrel: KestrelHandle) -> None:
    raw = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Say hello"}]
    )
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    event = kestrel.event(raw.headers["x-kestrel-request-id"])
    assert (event.status, event.account_id, event.requested_model) == (200, "sk-one", MODEL)
    assert event.output_tokens == message.usage.output_tokens


def test_stream_accumulates_to_the_non_streaming_message(
    client: anthropic.Anthropic, kestrel: KestrelHandle, tap: RawTap
) -> None:
    params = {
        "model": MODEL,
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": "Tell me about kestrels"}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    whole = client.messages.create(**params)
    with client.messages.stream(**params) as stream:
        kinds = [event.type for event in stream]
        streamed = stream.get_final_message()
        request_id = stream.response.headers["x-kestrel-request-id"]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    (raw,) = tap.streams()
    assert validate_anthropic_sse(bytes(raw.raw))[-1][0] == "message_stop"
    assert [b.model_dump() for b in streamed.content] == [b.model_dump() for b in whole.content]
    assert streamed.content[0].type == "thinking" and streamed.content[0].signature
    assert (streamed.stop_reason, streamed.usage.output_tokens) == (whole.stop_reason, whole.usage.output_tokens)
    recorded = kestrel.event(request_id)
    assert recorded.stream and recorded.status == 200
    assert recorded.output_tokens == streamed.usage.output_tokens
    assert recorded.stop_reason == "end_turn" and recorded.ttfb_ms > 0


def test_tool_use_round_trip(client: anthropic.Anthropic, sim: SimHandle, tap: RawTap) -> None:
    sim.script(
        [
            {
                "content": [
                    {"type": "text", "text": "Let me read it."},
                    {"type": "tool_use", "name": "read_file", "input": {"path": "src/main.py", "lines": [1, 20]}},
                ]
            },
            {"content": [{"type": "text", "text": "The file defines main()."}]},
        ]
    )
    tools = [
        {
            "name": "read_file",
            "description": "Read a file",
            "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        }
    ]
    messages: list[dict] = [{"role": "user", "content": "What is in src/main.py?"}]
    with client.messages.stream(model=MODEL, max_tokens=256, tools=tools, messages=messages) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    validate_anthropic_sse(bytes(tap.streams()[-1].raw))
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "read_file" and call.input == {"path": "src/main.py", "lines": [1, 20]}
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "def main(): ..."}]},
    ]
    second = client.messages.create(model=MODEL, max_tokens=256, tools=tools, messages=messages)
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "The file defines main()."


def test_count_tokens_and_models(client: anthropic.Anthropic, sim: SimHandle) -> None:
    counted = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "count me please"}])
    assert counted.input_tokens > 0
    forwarded = sim.requests()[-1]
    assert forwarded["path"] == "/v1/messages/count_tokens"
    models = client.models.list()
    assert any(m.id == MODEL for m in models.data)
    assert all(m.type == "model" and m.display_name for m in models.data)


def test_headers_forwarded_and_credential_replaced(client: anthropic.Anthropic, sim: SimHandle) -> None:
    client.messages.create(
        model=MODEL,
        max_tokens=16,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-beta": "claude-code-20250219,made-up-beta-2099", "anthropic-version": "2023-06-01"},
    )
    seen = sim.requests()[-1]["headers"]
    assert seen["anthropic-beta"] == "claude-code-20250219,made-up-beta-2099"
    assert seen["anthropic-version"] == "2023-06-01"
    assert seen["x-api-key"] == "sk-one"
    assert "client-key" not in str(seen)


def test_beta_query_string_is_forwarded(kestrel: KestrelHandle, sim: SimHandle) -> None:
    body = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{kestrel.url}/v1/messages?beta=true", json=body, headers={"x-api-key": "k"})
    assert response.status_code == 200 and response.json()["content"]
    assert sim.requests()[-1]["query"] == "beta=true"


def test_demoted_non_streaming_request_is_reassembled(sim: SimHandle, tmp_path: Path) -> None:
    with running_kestrel(tmp_path, accounts=[account(sim.url, "sk-one")], edge={"demote_non_streaming": True}) as k:
        client = anthropic.Anthropic(base_url=k.url, api_key="x", max_retries=0)
        sim.script([{"content": [{"type": "tool_use", "name": "grep", "input": {"pattern": 'a"b'}}]}])
        message = client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "go"}])
        assert message.content[0].type == "tool_use" and message.content[0].input == {"pattern": 'a"b'}
        assert message.stop_reason == "tool_use"
        assert b'"stream":true' in sim.requests()[-1]["body"].encode()


def test_count_tokens_is_recorded_with_its_count(client: anthropic.Anthropic, kestrel: KestrelHandle) -> None:
    raw = client.messages.with_raw_response.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "how many tokens is this"}]
    )
    event = kestrel.event(raw.headers["x-kestrel-request-id"])
    assert event.path == "/v1/messages/count_tokens"
    assert event.input_tokens == raw.parse().input_tokens > 0


def test_models_named_by_accounts_are_listed_in_anthropic_shape(sim: SimHandle, tmp_path: Path) -> None:
    accounts = [
        account(sim.url, "sk-one", models=["claude-opus-4-8", "claude-sonnet-4-6"]),
        account(sim.url, "sk-two", name="two", models=["claude-haiku-4-5"]),
    ]
    with running_kestrel(tmp_path, accounts=accounts) as k:
        client = anthropic.Anthropic(base_url=k.url, api_key="x", max_retries=0)
        ids = [m.id for m in client.models.list()]
        assert ids == ["claude-haiku-4-5", "claude-opus-4-8", "claude-sonnet-4-6"]
        assert client.models.retrieve("claude-haiku-4-5").id == "claude-haiku-4-5"
        with pytest.raises(anthropic.NotFoundError):
            client.models.retrieve("gpt-4o")
        with pytest.raises(anthropic.NotFoundError, match="no account serves"):
            client.messages.create(model="gpt-4o", max_tokens=5, messages=[{"role": "user", "content": "hi"}])


def test_metrics_endpoint_counts_requests_for_prometheus(client: anthropic.Anthropic, kestrel: KestrelHandle) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def served() -> float:
        text = httpx.get(kestrel.url + "/metrics").text
        for family in text_string_to_metric_families(text):
            if family.name == "kestrel_requests":
                return sum(
                    s.value
                    for s in family.samples
                    if s.labels.get("code") == "200" and s.labels.get("path") == "/v1/messages"
                )
        return 0.0

    before = served()
    client.messages.create(model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "count me"}])
    assert served() == before + 1
    assert "kestrel_events_dropped_total 0.0" in httpx.get(kestrel.url + "/metrics").text
