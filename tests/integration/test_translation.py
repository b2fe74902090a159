"""Both dialects over any upstream, through the real SDKs: translation end to end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import httpx2
import openai
import pytest

from integration.harness import KestrelHandle, running_kestrel
from integration.rawtap import RawTap
from kestrel.edge.testing.openai_stream import validate_openai_sse
from kestrel.edge.testing.stream_validators import validate_anthropic_sse
from kestrel.sim.config import SimConfig
from kestrel.sim.testing import SimHandle, running_sim

PLACEHOLDERS = {"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"}
"""What Gemini accepts in place of a signature it issued (the encoder's fallback)."""

TOOLS = [
    {
        "name": "read_file",
        "description": "Read a file",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    }
]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with running_sim() as handle:
        yield handle


def kestrel_over(sim: SimHandle, tmp: Path, provider: str, **extra: object):  # type: ignore[no-untyped-def]
    account = {"id": f"{provider}-1", "provider": provider, "base_url": sim.url, "api_key": f"sk-{provider}", **extra}
    return running_kestrel(tmp, accounts=[account])


@pytest.fixture(scope="module")
def over_openai(sim: SimHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KestrelHandle]:
    with kestrel_over(sim, tmp_path_factory.mktemp("o"), "openai", model_map={"claude-*": "gpt-5"}) as handle:
        yield handle


@pytest.fixture(scope="module")
def over_anthropic(sim: SimHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KestrelHandle]:
    with kestrel_over(sim, tmp_path_factory.mktemp("a"), "anthropic", model_map={"gpt-*": "claude-sonnet-4-6"}) as h:
        yield h


# -- an Anthropic client over an OpenAI-compatible upstream ----------------------------------


def test_anthropic_sdk_over_openai_text_and_usage(over_openai: KestrelHandle, sim: SimHandle) -> None:
    sim.reset()
    client = anthropic.Anthropic(base_url=over_openai.url, api_key="k", max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=200, messages=[{"role": "user", "content": "Say hello"}]
    )
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    upstream = sim.requests()[-1]
    assert upstream["path"] == "/v1/chat/completions"
    assert json.loads(upstream["body"])["model"] == "gpt-5"
    event = over_openai.event(raw.headers["x-kestrel-request-id"])
    assert event.input_tokens == message.usage.input_tokens and event.output_tokens == message.usage.output_tokens


def test_anthropic_stream_over_openai_is_valid_and_carries_a_tool_call(
    over_openai: KestrelHandle, sim: SimHandle
) -> None:
    sim.reset()
    sim.script(
        [
            {
                "content": [
                    {"type": "text", "text": "Reading."},
                    {"type": "tool_use", "name": "read_file", "input": {"path": 'a "quoted" name.py'}},
                ]
            }
        ]
    )
    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 300,
        "stream": True,
        "tools": TOOLS,
        "messages": [{"role": "user", "content": "open it"}],
    }
    response = httpx.post(over_openai.url + "/v1/messages", json=body, headers={"x-api-key": "k"}, timeout=30)
    assert response.status_code == 200
    events = validate_anthropic_sse(response.content)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    start = events[0][1]
    assert start["message"]["usage"]["input_tokens"] > 0
    fragments = "".join(
        data["delta"]["partial_json"]
        for name, data in events
        if name == "content_block_delta" and data["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(fragments) == {"path": 'a "quoted" name.py'}
    delta = next(data for name, data in events if name == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] > 0


def test_anthropic_sdk_tool_round_trip_over_openai(over_openai: KestrelHandle, sim: SimHandle) -> None:
    sim.reset()
    sim.script(
        [
            {"content": [{"type": "tool_use", "name": "read_file", "input": {"path": "main.py"}}]},
            {"content": [{"type": "text", "text": "It defines main()."}]},
        ]
    )
    tap = RawTap()
    client = anthropic.Anthropic(
        base_url=over_openai.url, api_key="k", max_retries=0, http_client=httpx2.Client(transport=tap)
    )
    messages: list[dict] = [{"role": "user", "content": "what is in main.py?"}]
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=300, tools=TOOLS, messages=messages) as s:
        first = s.get_final_message()
    validate_anthropic_sse(bytes(tap.streams()[-1].raw))
    call = next(b for b in first.content if b.type == "tool_use")
    assert first.stop_reason == "tool_use" and call.input == {"path": "main.py"}
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "def main(): ..."}]},
    ]
    second = client.messages.create(model="claude-sonnet-4-6", max_tokens=300, tools=TOOLS, messages=messages)
    assert second.content[0].text == "It defines main()."
    sent = json.loads(sim.requests()[-1]["body"])
    tool_message = next(m for m in sent["messages"] if m["role"] == "tool")
    assert tool_message["tool_call_id"] == call.id and "def main" in str(tool_message["content"])


# -- an OpenAI client over an Anthropic upstream ---------------------------------------------


def test_openai_sdk_over_anthropic_text_stream_and_usage(over_anthropic: KestrelHandle, sim: SimHandle) -> None:
    sim.reset()
    client = openai.OpenAI(base_url=over_anthropic.url + "/v1", api_key="k", max_retries=0)
    completion = client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "Say hello"}])
    assert completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    upstream = sim.requests()[-1]
    assert upstream["path"] == "/v1/messages" and json.loads(upstream["body"])["model"] == "claude-sonnet-4-6"

    raw = httpx.post(
        over_anthropic.url + "/v1/chat/completions",
        json={
            "model": "gpt-5",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Say hello"}],
        },
        headers={"authorization": "Bearer k"},
        timeout=30,
    )
    chunks = validate_openai_sse(raw.content, include_usage=True)
    assert chunks[-1]["usage"]["prompt_tokens"] > 0 and chunks[-1]["usage"]["completion_tokens"] > 0


def test_openai_sdk_tool_round_trip_over_anthropic(over_anthropic: KestrelHandle, sim: SimHandle) -> None:
    sim.reset()
    sim.script(
        [
            {"content": [{"type": "tool_use", "name": "read_file", "input": {"path": "main.py"}}]},
            {"content": [{"type": "text", "text": "It defines main()."}]},
        ]
    )
    tap = RawTap()
    client = openai.OpenAI(
        base_url=over_anthropic.url + "/v1", api_key="k", max_retries=0, http_client=httpx2.Client(transport=tap)
    )
    tools = [{"type": "function", "function": {"name": "read_file", "parameters": TOOLS[0]["input_schema"]}}]
    messages: list[dict] = [{"role": "user", "content": "what is in main.py?"}]
    with client.chat.completions.stream(model="gpt-5", messages=messages, tools=tools) as stream:
        first = stream.get_final_completion()
    streamed = tap.streams()[-1]
    validate_openai_sse(bytes(streamed.raw), include_usage=streamed.include_usage())
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"path": "main.py"}
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "def main(): ..."},
    ]
    second = client.chat.completions.create(model="gpt-5", messages=messages, tools=tools)
    assert second.choices[0].message.content == "It defines main()."
    sent = json.loads(sim.requests()[-1]["body"])
    result = next(
        b
        for m in sent["messages"]
        for b in (m["content"] if isinstance(m["content"], list) else [])
        if b.get("type") == "tool_result"
    )
    assert result["tool_use_id"] == call.id


def test_openai_sdk_over_anthropic_with_reasoning_gets_its_thinking_carried_by_the_gateway(tmp_path: Path) -> None:
    """With thinking on, Anthropic refuses a tool loop whose turn does not start with its (signed)
    thinking, which an OpenAI client cannot send back: the gateway kept it and puts it back. When
    it has nothing kept (another Kestrel here, with its own memory), the turn goes without thinking
    rather than failing."""
    answers = [
        {
            "content": [
                {"type": "thinking", "thinking": "The user wants main.py; I should read it."},
                {"type": "text", "text": "Reading it."},
                {"type": "tool_use", "name": "read_file", "input": {"path": "main.py"}},
            ]
        },
        {"content": [{"type": "thinking", "thinking": "It has main."}, {"type": "text", "text": "It defines main()."}]},
    ]
    tools = [{"type": "function", "function": {"name": "read_file", "parameters": TOOLS[0]["input_schema"]}}]
    ask = {"model": "gpt-5", "tools": tools, "reasoning_effort": "low"}
    with running_sim(SimConfig(verify_signatures=True)) as sim:
        account = {"id": "a", "base_url": sim.url, "api_key": "sk-a", "model_map": {"gpt-*": "claude-sonnet-4-5"}}
        with running_kestrel(tmp_path / "one", accounts=[account]) as kestrel:
            client = openai.OpenAI(base_url=kestrel.url + "/v1", api_key="k", max_retries=0)
            for stream_first in (True, False):
                sim.script(answers)
                messages: list[dict] = [{"role": "user", "content": "what is in main.py?"}]
                if stream_first:
                    with client.chat.completions.stream(messages=messages, **ask) as stream:
                        first = stream.get_final_completion()
                else:
                    first = client.chat.completions.create(messages=messages, **ask)
                assert json.loads(sim.requests()[-1]["body"])["thinking"]["type"] == "enabled"
                call = first.choices[0].message.tool_calls[0]
                messages += [
                    first.choices[0].message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": "def main(): ..."},
                ]
                assert "signature" not in json.dumps(messages), "the client carries no signature"
                second = client.chat.completions.create(messages=messages, **ask)
                assert second.choices[0].message.content == "It defines main()."
                sent = json.loads(sim.requests()[-1]["body"])
                assert sent["thinking"]["type"] == "enabled", "thinking stayed on"
                turn = sent["messages"][1]["content"]
                assert turn[0]["type"] == "thinking" and turn[0]["thinking"].startswith("The user wants main.py")
                assert turn[0]["signature"], "the signature the upstream minted (the sim verifies it)"
        with running_kestrel(tmp_path / "two", accounts=[account]) as other:
            sim.script(answers[1:])
            client = openai.OpenAI(base_url=other.url + "/v1", api_key="k", max_retries=0)
            second = client.chat.completions.create(messages=messages, **ask)
            assert second.choices[0].message.content == "It defines main()."
            assert "thinking" not in json.loads(sim.requests()[-1]["body"]), "nothing kept: thinking off, not a 400"


def test_openai_client_gets_errors_in_its_own_envelope(over_anthropic: KestrelHandle) -> None:
    response = httpx.post(
        over_anthropic.url + "/v1/chat/completions",
        content=b"{nope",
        headers={"authorization": "Bearer k", "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    models = httpx.get(over_anthropic.url + "/v1/models", headers={"authorization": "Bearer k"}).json()
    assert models["object"] == "list"
    ids = [m["id"] for m in models["data"]]
    assert "claude-sonnet-4-6" in ids, "an account serving any model lists what its upstream serves"
    assert all(m["object"] == "model" for m in models["data"])


# -- fallback across providers ---------------------------------------------------------------


def test_fallback_from_rate_limited_anthropic_accounts_to_openai_compatible(sim: SimHandle, tmp_path: Path) -> None:
    sim.reset()
    accounts = [
        {"id": "claude-a", "provider": "anthropic", "base_url": sim.url, "api_key": "sk-ca", "models": ["claude-*"]},
        {"id": "claude-b", "provider": "anthropic", "base_url": sim.url, "api_key": "sk-cb", "models": ["claude-*"]},
        {"id": "oai", "provider": "openai", "base_url": sim.url, "api_key": "sk-oai", "models": ["gpt-5"]},
    ]
    routing = {"fallbacks": {"claude-opus-4-8": ["gpt-5"]}}
    with running_kestrel(tmp_path, accounts=accounts, routing=routing, scheduler={"max_wait_seconds": 1}) as k:
        for key in ("sk-ca", "sk-cb"):
            sim.fault("429", key=key, count=1, retry_after=30)
        body = {
            "model": "claude-opus-4-8",
            "max_tokens": 200,
            "stream": True,
            "messages": [{"role": "user", "content": "hello"}],
        }
        response = httpx.post(k.url + "/v1/messages", json=body, headers={"x-api-key": "k"}, timeout=30)
        assert response.status_code == 200
        validate_anthropic_sse(response.content)
        event = k.event(response.headers["x-kestrel-request-id"])
        assert [(a.account_id, a.status) for a in event.attempts] == [
            ("claude-a", 429),
            ("claude-b", 429),
            ("oai", 200),
        ]
        assert event.served_model == "gpt-5" or event.account_id == "oai"


# -- an Anthropic client over Gemini ---------------------------------------------------------


@pytest.fixture(scope="module")
def over_gemini(sim: SimHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KestrelHandle]:
    with kestrel_over(sim, tmp_path_factory.mktemp("g"), "gemini", model_map={"claude-*": "gemini-2.5-pro"}) as h:
        yield h


def test_anthropic_sdk_over_gemini_text_stream_and_usage(over_gemini: KestrelHandle, sim: SimHandle) -> None:
    sim.reset()
    client = anthropic.Anthropic(base_url=over_gemini.url, api_key="k", max_retries=0)
    message = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=200, messages=[{"role": "user", "content": "Say hello"}]
    )
    assert message.content[0].type == "text" and message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert sim.requests()[-1]["path"] == "/v1beta/models/gemini-2.5-pro:generateContent"
    body = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 200,
        "stream": True,
        "messages": [{"role": "user", "content": "Say hello"}],
    }
    raw = httpx.post(over_gemini.url + "/v1/messages", json=body, headers={"x-api-key": "k"}, timeout=30)
    events = validate_anthropic_sse(raw.content)
    assert events[0][1]["message"]["usage"]["input_tokens"] > 0
    assert next(d for n, d in events if n == "message_delta")["usage"]["output_tokens"] > 0


def test_tool_round_trip_over_gemini_keeps_the_thought_signature(over_gemini: KestrelHandle, sim: SimHandle) -> None:
    sim.reset()
    sim.script(
        [
            {"content": [{"type": "tool_use", "name": "read_file", "input": {"path": "main.py"}}]},
            {"content": [{"type": "text", "text": "It defines main()."}]},
        ]
    )
    tap = RawTap()
    client = anthropic.Anthropic(
        base_url=over_gemini.url, api_key="k", max_retries=0, http_client=httpx2.Client(transport=tap)
    )
    thinking = {"type": "enabled", "budget_tokens": 1024}
    messages: list[dict] = [{"role": "user", "content": "what is in main.py?"}]
    with client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=4000, tools=TOOLS, thinking=thinking, messages=messages
    ) as s:
        first = s.get_final_message()
    validate_anthropic_sse(bytes(tap.streams()[-1].raw))
    call = next(b for b in first.content if b.type == "tool_use")
    assert first.stop_reason == "tool_use" and call.input == {"path": "main.py"}
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "def main(): ..."}]},
    ]
    second = client.messages.create(
        model="claude-sonnet-4-6", max_tokens=4000, tools=TOOLS, thinking=thinking, messages=messages
    )
    assert second.content[-1].text == "It defines main()."
    sent = json.loads(sim.requests()[-1]["body"])
    call_part = next(p for c in sent["contents"] for p in c["parts"] if "functionCall" in p)
    assert call_part.get("thoughtSignature"), "the signature Gemini issued went back with its call"


@pytest.mark.parametrize("stream_first", [True, False], ids=["streamed", "whole"])
def test_openai_sdk_over_gemini_gets_its_calls_signed_by_the_gateway(
    over_gemini: KestrelHandle, sim: SimHandle, stream_first: bool
) -> None:
    """Chat completions has no place for Gemini's thought signature, so the OpenAI client sends
    its call back bare; the gateway kept the signature and puts it back on the call."""
    sim.reset()
    sim.script(
        [
            {"content": [{"type": "tool_use", "name": "read_file", "input": {"path": "main.py"}}]},
            {"content": [{"type": "text", "text": "It defines main()."}]},
        ]
    )
    client = openai.OpenAI(base_url=over_gemini.url + "/v1", api_key="k", max_retries=0)
    tools = [{"type": "function", "function": {"name": "read_file", "parameters": TOOLS[0]["input_schema"]}}]
    messages: list[dict] = [{"role": "user", "content": "what is in main.py?"}]
    ask = {"model": "gemini-2.5-pro", "tools": tools, "reasoning_effort": "low"}
    if stream_first:
        with client.chat.completions.stream(messages=messages, **ask) as stream:
            first = stream.get_final_completion()
    else:
        first = client.chat.completions.create(messages=messages, **ask)
    assert "thinkingConfig" in json.loads(sim.requests()[-1]["body"])["generationConfig"]
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "def main(): ..."},
    ]
    assert "signature" not in json.dumps(messages), "the client itself carries no signature"
    second = client.chat.completions.create(messages=messages, **ask)
    assert second.choices[0].message.content == "It defines main()."
    sent = json.loads(sim.requests()[-1]["body"])
    call_part = next(p for c in sent["contents"] for p in c["parts"] if "functionCall" in p)
    signature = call_part.get("thoughtSignature")
    assert signature and signature not in PLACEHOLDERS, "the signature Gemini issued, not the placeholder"


def test_count_tokens_over_a_non_anthropic_upstream_is_answered_locally(
    over_openai: KestrelHandle, sim: SimHandle
) -> None:
    sim.reset()
    client = anthropic.Anthropic(base_url=over_openai.url, api_key="k", max_retries=0)
    text = "def f(x):\n    return [i * i for i in range(x)]\n" * 40
    counted = client.messages.count_tokens(model="claude-sonnet-4-6", messages=[{"role": "user", "content": text}])
    assert sim.requests() == [], "no upstream has count_tokens here: nothing is sent"
    direct = httpx.post(
        sim.url + "/v1/messages/count_tokens",
        headers={"x-api-key": "k"},
        json={"model": "m", "messages": [{"role": "user", "content": text}]},
    ).json()["input_tokens"]
    assert abs(counted.input_tokens - direct) <= max(2, direct // 10)
