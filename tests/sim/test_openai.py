"""The OpenAI chat completions API of the sim: the official SDK, raw stream shape, limits, faults."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from kestrel.sim._openai import duration
from kestrel.sim.config import KeyLimits, SimConfig
from kestrel.sim.testing import SimHandle, running_sim

MODEL = "gpt-sim"
URL = "/v1/chat/completions"
AUTH = {"authorization": "Bearer sk-test"}
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
DURATION = re.compile(r"^(\d+h)?(\d+m)?\d+(\.\d+)?s$|^\d+ms$")


@pytest.fixture(scope="module")
def oai_sdk(sim_server: SimHandle) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sim_server.url + "/v1", api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
def oai(sim: SimHandle, oai_sdk: openai.OpenAI) -> openai.OpenAI:
    """The official OpenAI SDK pointed at a freshly reset sim."""
    return oai_sdk


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _frames(raw: bytes) -> list[Any]:
    """Every ``data:`` frame, strictly ``data: X\\n\\n``; ``[DONE]`` stays a string."""
    assert raw.endswith(b"\n\n"), raw[-40:]
    frames = []
    for chunk in raw[:-2].split(b"\n\n"):
        assert chunk.startswith(b"data: ") and b"\n" not in chunk, chunk
        payload = chunk[len(b"data: ") :]
        frames.append(payload.decode() if payload == b"[DONE]" else orjson.loads(payload))
    return frames


def test_text_completion_and_usage(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": "Be brief."}, *_user("what is up")]
    )
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    choice = completion.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert choice.message.content is not None and choice.message.content.endswith("You said: what is up")
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == 3 + 3  # ceil(9 / 4) + ceil(10 / 4)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None and usage.completion_tokens_details.reasoning_tokens == 0


def test_sdk_stream_accumulates_the_same_answer_with_usage(oai: openai.OpenAI) -> None:
    request: dict[str, Any] = {"model": MODEL, "messages": _user("stream me a reply long enough for deltas")}
    whole = oai.chat.completions.create(**request)
    with oai.chat.completions.stream(**request, stream_options={"include_usage": True}) as stream:
        streamed = stream.get_final_completion()
    assert streamed.choices[0].message.content == whole.choices[0].message.content
    assert streamed.choices[0].finish_reason == "stop"
    assert streamed.usage is not None and whole.usage is not None
    assert streamed.usage.model_dump() == whole.usage.model_dump()


def test_scripted_tool_call_round_trip(sim: SimHandle, oai: openai.OpenAI) -> None:
    sim.script([[{"type": "tool_use", "name": "get_weather", "input": {"city": "Paris"}}], "It is 18C."])
    first = oai.chat.completions.create(model=MODEL, messages=_user("Weather in Paris?"), tools=TOOLS)  # type: ignore[arg-type]
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls" and message.content is None
    [call] = message.tool_calls or []
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}

    history: list[Any] = [*_user("Weather in Paris?"), message.model_dump(exclude_none=True)]
    final = oai.chat.completions.create(
        model=MODEL,
        tools=TOOLS,
        messages=[*history, {"role": "tool", "tool_call_id": call.id, "content": "18C"}],  # type: ignore[arg-type]
    )
    assert final.choices[0].message.content == "It is 18C." and final.choices[0].finish_reason == "stop"

    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model=MODEL, tools=TOOLS, messages=[*history, *_user("never mind")])  # type: ignore[arg-type]
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["message"].startswith("An assistant message with 'tool_calls' must be followed by tool messages")
    assert call.id in error["message"] and error["param"] == "messages.[1].role"
    assert error["type"] == "invalid_request_error"


def test_repeated_long_prompt_reports_cached_tokens(oai: openai.OpenAI) -> None:
    system = {"role": "system", "content": "Rules. " * 1000}  # 1750 tokens
    first = oai.chat.completions.create(model=MODEL, messages=[system, *_user("What changed?")]).usage
    again = oai.chat.completions.create(model=MODEL, messages=[system, *_user("What changed?")]).usage
    other = oai.chat.completions.create(model=MODEL, messages=[system, *_user("Something else")]).usage
    assert first is not None and again is not None and other is not None
    assert first.prompt_tokens == again.prompt_tokens == 1750 + 4  # cached tokens stay in prompt_tokens
    assert first.prompt_tokens_details and first.prompt_tokens_details.cached_tokens == 0
    assert again.prompt_tokens_details and again.prompt_tokens_details.cached_tokens == 1754
    assert other.prompt_tokens_details and other.prompt_tokens_details.cached_tokens == 1750  # shared prefix
    assert other.prompt_tokens == 1750 + 4 and other.total_tokens == other.prompt_tokens + other.completion_tokens


def test_short_prompts_are_never_cached(oai: openai.OpenAI) -> None:
    for _ in range(2):
        usage = oai.chat.completions.create(model=MODEL, messages=_user("short")).usage
        assert usage is not None and usage.prompt_tokens_details is not None
        assert usage.prompt_tokens_details.cached_tokens == 0


def test_429_after_the_request_limit_with_ratelimit_headers(sim: SimHandle) -> None:
    sim.set_limits("sk-rl", KeyLimits(requests_per_window=2, input_tokens_per_window=1000, window_s=60))
    client = openai.OpenAI(base_url=sim.url + "/v1", api_key="sk-rl", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=_user("hi"))
    headers = raw.headers
    assert headers["x-ratelimit-limit-requests"] == "2" and headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-limit-tokens"] == "1000" and headers["x-ratelimit-remaining-tokens"] == "999"
    assert DURATION.match(headers["x-ratelimit-reset-requests"]), headers["x-ratelimit-reset-requests"]
    assert headers["x-ratelimit-reset-requests"].endswith("s") and "T" not in headers["x-ratelimit-reset-tokens"]
    assert headers["x-request-id"].startswith("req_")
    client.chat.completions.create(model=MODEL, messages=_user("hi"))

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=_user("hi"))
    response = caught.value.response
    body = response.json()["error"]
    assert body["type"] == "requests" and body["code"] == "rate_limit_exceeded"
    assert "Limit 2, Used 2, Requested 1" in body["message"]
    assert response.headers["retry-after"].isdigit() and 1 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert sim.key_state("sk-rl")["window"]["requests"] == 2


def test_token_limit_refusal_is_typed_tokens(sim: SimHandle) -> None:
    sim.set_limits("sk-tpm", KeyLimits(input_tokens_per_window=10))
    response = sim.http.post(
        URL, headers={"authorization": "Bearer sk-tpm"}, json={"model": MODEL, "messages": _user("x" * 100)}
    )
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "tokens"
    assert "on tokens per min (TPM): Limit 10, Used 0, Requested 25" in response.json()["error"]["message"]


def test_stream_shape_is_strict(sim: SimHandle) -> None:
    sim.script(
        [
            [
                {"type": "thinking", "thinking": "Two lookups are needed."},
                {"type": "text", "text": "Checking both cities now."},
                {"type": "tool_use", "name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}},
                {"type": "tool_use", "name": "get_weather", "input": {"city": "Lima \u00e9t\u00e9", "days": [1, 2]}},
            ]
        ]
    )
    body = {
        "model": MODEL,
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": TOOLS,
        "messages": _user("Weather in Paris and Lima?"),
    }
    response = sim.http.post(URL, headers=AUTH, json=body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    frames = _frames(response.content)
    assert frames[-1] == "[DONE]"
    chunks, usage_chunk, finish_chunk = frames[:-3], frames[-2], frames[-3]
    for chunk in frames[:-1]:
        assert chunk["object"] == "chat.completion.chunk"
        assert (chunk["id"], chunk["created"], chunk["model"]) == (frames[0]["id"], frames[0]["created"], MODEL)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:])
    assert all(c["usage"] is None for c in frames[:-2])
    assert finish_chunk["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}]
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] > 0

    deltas = [c["choices"][0]["delta"] for c in chunks[1:]]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    text = "".join(d.get("content", "") for d in deltas)
    assert reasoning == "Two lookups are needed." and text == "Checking both cities now."
    assert usage_chunk["usage"]["completion_tokens_details"]["reasoning_tokens"] == 6
    fragments = [f for d in deltas for f in d.get("tool_calls", [])]
    assert [f["index"] for f in fragments] == sorted(f["index"] for f in fragments)  # grouped, in order
    arguments: dict[int, str] = {}
    for fragment in fragments:
        index = fragment["index"]
        if index not in arguments:  # first fragment: id, type, name, empty arguments
            assert fragment["id"].startswith("call_") and fragment["type"] == "function"
            assert fragment["function"] == {"name": "get_weather", "arguments": ""}
            arguments[index] = ""
        else:
            assert set(fragment) == {"index", "function"} and set(fragment["function"]) == {"arguments"}
            arguments[index] += fragment["function"]["arguments"]
    assert [json.loads(arguments[i]) for i in (0, 1)] == [
        {"city": "Paris", "unit": "celsius"},
        {"city": "Lima \u00e9t\u00e9", "days": [1, 2]},
    ]
    split_in_string = [
        f["function"]["arguments"]
        for f in fragments
        if "arguments" in f["function"] and f["function"]["arguments"].count('"') % 2 == 1
    ]
    assert split_in_string, "argument fragments should cut strings mid-way"


def test_stream_without_include_usage_has_no_usage_at_all(sim: SimHandle) -> None:
    response = sim.http.post(URL, headers=AUTH, json={"model": MODEL, "stream": True, "messages": _user("hi")})
    frames = _frames(response.content)
    assert frames[-1] == "[DONE]" and frames[-2]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in f for f in frames[:-1])


def test_reasoning_effort_adds_reasoning_content(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model=MODEL, messages=_user("think first"), reasoning_effort="low")
    message = completion.choices[0].message.model_dump()
    assert message["reasoning_content"].startswith("The user is asking about: think first")
    usage = completion.usage
    assert usage is not None and usage.completion_tokens_details is not None
    reasoning = usage.completion_tokens_details.reasoning_tokens
    assert reasoning == -(-len(message["reasoning_content"]) // 4)
    assert usage.completion_tokens == reasoning + -(-len(message["content"]) // 4)


def test_limits_and_stops_map_to_finish_reasons(sim: SimHandle, oai: openai.OpenAI) -> None:
    sim.script(["alpha STOP beta", "x" * 100])
    stopped = oai.chat.completions.create(model=MODEL, messages=_user("go"), stop=["STOP"])
    assert stopped.choices[0].message.content == "alpha " and stopped.choices[0].finish_reason == "stop"
    cut = oai.chat.completions.create(model=MODEL, messages=_user("go"), max_completion_tokens=5)
    assert cut.choices[0].message.content == "x" * 20 and cut.choices[0].finish_reason == "length"
    assert cut.usage is not None and cut.usage.completion_tokens == 5


def test_markers_and_forced_tool_choice(oai: openai.OpenAI) -> None:
    marked = oai.chat.completions.create(
        model=MODEL,
        messages=_user('[[sim:text on it]] [[sim:tool get_weather {"city": "Oslo"}]]'),
        tools=TOOLS,  # type: ignore[arg-type]
    )
    message = marked.choices[0].message
    assert message.content == "on it" and message.tool_calls is not None
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Oslo"}
    forced = oai.chat.completions.create(model=MODEL, messages=_user("hi"), tools=TOOLS, tool_choice="required")  # type: ignore[arg-type]
    assert forced.choices[0].finish_reason == "tool_calls"
    assert forced.choices[0].message.tool_calls is not None
    assert forced.choices[0].message.tool_calls[0].function.name == "get_weather"


@pytest.mark.parametrize(
    ("change", "wording", "param"),
    [
        ({"model": None}, "you must provide a model parameter", None),
        ({"messages": None}, "Missing required parameter: 'messages'.", "messages"),
        ({"messages": []}, "Invalid 'messages': empty array.", "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "Invalid value: 'robot'.", "messages[0].role"),
        (
            {"messages": [{"role": "tool", "tool_call_id": "call_1", "content": "x"}]},
            "messages with role 'tool' must be a response to a preceeding message with 'tool_calls'",
            "messages.[0].role",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
                        ],
                    },
                ]
            },
            "Invalid type for 'messages[1].tool_calls[0].function.arguments': expected a string",
            "messages[1].tool_calls[0].function.arguments",
        ),
        ({"stream_options": {"include_usage": True}}, "only allowed when 'stream' is enabled", "stream_options"),
        ({"tools": []}, "Invalid 'tools': empty array.", "tools"),
        ({"tool_choice": "auto"}, "'tool_choice' is only allowed when 'tools' are specified", "tool_choice"),
        ({"max_tokens": 0}, "integer below minimum value", "max_tokens"),
        ({"reasoning_effort": "maximal"}, "Invalid value: 'maximal'.", "reasoning_effort"),
    ],
)
def test_invalid_bodies_get_openai_400s(
    sim: SimHandle, change: dict[str, Any], wording: str, param: str | None
) -> None:
    base = {"model": MODEL, "messages": _user("hi")}
    body = {k: v for k, v in {**base, **change}.items() if v is not None}
    response = sim.http.post(URL, headers=AUTH, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and wording in error["message"]
    assert error["param"] == param
    assert sim.requests()[-1]["status"] == 400


def test_auth_errors_use_openai_envelope() -> None:
    with running_sim(SimConfig(open=False, keys={"sk-known": KeyLimits()})) as sim:
        missing = sim.http.post(URL, json={"model": MODEL, "messages": _user("hi")})
        assert missing.status_code == 401 and "You didn't provide an API key" in missing.json()["error"]["message"]
        client = openai.OpenAI(base_url=sim.url + "/v1", api_key="sk-unknown-key-123", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            client.chat.completions.create(model=MODEL, messages=_user("hi"))  # type: ignore[arg-type]
        assert caught.value.code == "invalid_api_key"


@pytest.mark.parametrize(("kind", "status", "error_type"), [("529", 503, "server_error"), ("500", 500, "server_error")])
def test_fault_errors_map_to_openai_statuses(sim: SimHandle, kind: str, status: int, error_type: str) -> None:
    sim.fault(kind)
    response = sim.http.post(URL, headers=AUTH, json={"model": MODEL, "messages": _user("hi")})
    assert response.status_code == status and response.json()["error"]["type"] == error_type


def test_429_fault_has_retry_after(sim: SimHandle, oai: openai.OpenAI) -> None:
    sim.fault("429", retry_after=7)
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model=MODEL, messages=_user("hi"))
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.code == "rate_limit_exceeded"


def test_error_event_is_an_error_frame_without_done(sim: SimHandle, oai: openai.OpenAI) -> None:
    sim.fault("error_event", after_events=2)
    response = sim.http.post(URL, headers=AUTH, json={"model": MODEL, "stream": True, "messages": _user("hi")})
    frames = _frames(response.content)
    assert len(frames) == 3 and "[DONE]" not in frames
    assert frames[-1] == {
        "error": {"message": frames[-1]["error"]["message"], "type": "server_error", "param": None, "code": None}
    }
    sim.fault("error_event", after_events=2)
    with pytest.raises(openai.APIError), oai.chat.completions.stream(model=MODEL, messages=_user("hi")) as stream:
        stream.get_final_completion()


def test_reset_breaks_the_stream(sim: SimHandle) -> None:
    sim.fault("reset", after_events=2)
    body = {"model": MODEL, "stream": True, "messages": _user("hi")}
    with pytest.raises(httpx.RemoteProtocolError), sim.http.stream("POST", URL, headers=AUTH, json=body) as response:
        for _ in response.iter_raw():
            pass


def test_models_list_shape_follows_the_client(sim: SimHandle, oai: openai.OpenAI) -> None:
    models = oai.models.list()
    assert "claude-sonnet-4-6" in [m.id for m in models.data]
    assert all(m.object == "model" and m.owned_by and m.created > 0 for m in models.data)
    assert oai.models.retrieve("claude-haiku-4-5").id == "claude-haiku-4-5"
    anthropic_shape = sim.http.get("/v1/models", headers={**AUTH, "anthropic-version": "2023-06-01"}).json()
    assert "has_more" in anthropic_shape and "object" not in anthropic_shape
    assert "has_more" in sim.http.get("/v1/models", headers={"x-api-key": "k"}).json()


def test_requests_are_logged(sim: SimHandle, oai: openai.OpenAI) -> None:
    oai.chat.completions.create(model=MODEL, messages=_user("logged"))
    [entry] = sim.requests()
    assert entry["path"] == URL and entry["status"] == 200
    assert entry["headers"]["authorization"] == "Bearer sk-test" and '"logged"' in entry["body"]


def test_durations_are_written_like_openai() -> None:
    assert [duration(s) for s in (0, 0.0121, 0.5, 1, 1.5, 59.9994, 360, 3725.25)] == [
        "0s",
        "13ms",
        "500ms",
        "1s",
        "1.5s",
        "1m0s",
        "6m0s",
        "1h2m5.25s",
    ]


def test_ttft_holds_content_but_not_the_role_chunk() -> None:
    with running_sim(SimConfig(ttft_ms=200)) as sim:
        body = {"model": MODEL, "stream": True, "messages": _user("pace me")}
        started = time.monotonic()
        arrivals: list[tuple[float, str]] = []
        with sim.http.stream("POST", URL, headers=AUTH, json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    arrivals.append((time.monotonic() - started, line))
        assert '"role":"assistant"' in arrivals[0][1] and arrivals[0][0] < 0.15
        assert '"content":"' in arrivals[1][1] and arrivals[1][0] >= 0.2
        gemini = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        started = time.monotonic()
        with sim.http.stream(
            "POST",
            gemini,
            headers={"x-goog-api-key": "g"},
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        ) as response:
            next(response.iter_lines())
        assert time.monotonic() - started >= 0.2
