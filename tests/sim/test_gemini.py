"""The Gemini API of the sim over raw HTTP: text, streams, function calls, signatures, schemas, quota."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from kestrel.sim.config import KeyLimits, SimConfig
from kestrel.sim.testing import SimHandle, running_sim

MODEL = "gemini-2.5-flash"
BASE = f"/v1beta/models/{MODEL}"
KEY = {"x-goog-api-key": "g-test"}
THINKING = {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024}}
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]},
}


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def _generate(sim: SimHandle, body: dict[str, Any], key: str = "g-test") -> httpx.Response:
    return sim.http.post(f"{BASE}:generateContent", headers={"x-goog-api-key": key}, json=body)


def _sse(raw: bytes) -> list[dict[str, Any]]:
    """Every ``data:`` frame; Gemini ends each with ``\\r\\n\\r\\n`` and has no end marker."""
    assert raw.endswith(b"\r\n\r\n"), raw[-40:]
    frames = []
    for chunk in raw[:-4].split(b"\r\n\r\n"):
        assert chunk.startswith(b"data: ") and b"\n" not in chunk, chunk
        frames.append(orjson.loads(chunk[len(b"data: ") :]))
    return frames


def _error(response: httpx.Response, code: int, status: str) -> dict[str, Any]:
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["status"] == status
    return dict(error)


def test_text_answer_and_usage(sim: SimHandle) -> None:
    body = {"systemInstruction": {"parts": [{"text": "Be brief."}]}, "contents": [_user("what is up")]}
    response = _generate(sim, body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    data = response.json()
    [candidate] = data["candidates"]
    assert candidate["content"]["role"] == "model" and candidate["finishReason"] == "STOP"
    [part] = candidate["content"]["parts"]
    assert part["text"].endswith("You said: what is up")
    usage = data["usageMetadata"]
    assert usage["promptTokenCount"] == 3 + 3
    assert usage["candidatesTokenCount"] == -(-len(part["text"]) // 4)
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert "cachedContentTokenCount" not in usage and "thoughtsTokenCount" not in usage  # zero: left out
    assert data["modelVersion"] == MODEL and data["responseId"]


def test_key_query_parameter_and_snake_case_fields(sim: SimHandle) -> None:
    body = {
        "system_instruction": {"parts": [{"text": "x"}]},
        "contents": [_user("hi")],
        "generation_config": {"max_output_tokens": 3},
    }
    response = sim.http.post(f"{BASE}:generateContent?key=g-query", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert response.json()["usageMetadata"]["candidatesTokenCount"] == 3


def test_sse_stream_order_and_final_usage(sim: SimHandle) -> None:
    body = {"contents": [_user("stream a reply long enough for several chunks")], "generationConfig": THINKING}
    whole = _generate(sim, body).json()
    response = sim.http.post(f"{BASE}:streamGenerateContent?alt=sse", headers=KEY, json=body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    frames = _sse(response.content)
    assert len(frames) > 3
    assert all("finishReason" not in f["candidates"][0] for f in frames[:-1])
    assert frames[-1]["candidates"][0]["finishReason"] == "STOP"
    assert len({f["responseId"] for f in frames}) == 1 and all(f["modelVersion"] == MODEL for f in frames)
    parts = [p for f in frames for p in f["candidates"][0]["content"]["parts"]]
    assert all(len(f["candidates"][0]["content"]["parts"]) == 1 for f in frames)  # only the new part
    thoughts = [p["text"] for p in parts if p.get("thought")]
    texts = [p["text"] for p in parts if not p.get("thought")]
    assert parts.index({"text": texts[0]}) > parts.index({"text": thoughts[-1], "thought": True})
    whole_parts = whole["candidates"][0]["content"]["parts"]
    assert whole_parts == [{"text": "".join(thoughts), "thought": True}, {"text": "".join(texts)}]
    totals = [f["usageMetadata"]["totalTokenCount"] for f in frames]
    assert totals == sorted(totals)  # cumulative, never summed per chunk
    assert frames[-1]["usageMetadata"] == whole["usageMetadata"]
    assert whole["usageMetadata"]["thoughtsTokenCount"] == -(-len("".join(thoughts)) // 4)


def test_stream_without_alt_sse_is_a_json_array(sim: SimHandle) -> None:
    response = sim.http.post(f"{BASE}:streamGenerateContent", headers=KEY, json={"contents": [_user("hi there")]})
    assert response.headers["content-type"].startswith("application/json")
    chunks = response.json()
    assert isinstance(chunks, list) and len(chunks) > 1
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_function_call_arrives_whole_and_its_signature_is_required(sim: SimHandle) -> None:
    sim.script([[{"type": "tool_use", "name": "get_weather", "input": {"city": "Paris", "days": [1, 2]}}]])
    question = _user("Weather in Paris?")
    body = {"contents": [question], "tools": [{"functionDeclarations": [WEATHER]}], "generationConfig": THINKING}
    response = sim.http.post(f"{BASE}:streamGenerateContent?alt=sse", headers=KEY, json=body)
    frames = _sse(response.content)
    calls = [p for f in frames for p in f["candidates"][0]["content"]["parts"] if "functionCall" in p]
    [call_part] = calls
    call = call_part["functionCall"]
    assert call["name"] == "get_weather" and call["args"] == {"city": "Paris", "days": [1, 2]} and call["id"]
    assert call_part["thoughtSignature"]
    assert frames[-1]["candidates"][0]["finishReason"] == "STOP"  # no tool-call finish reason

    reply = {
        "role": "user",
        "parts": [{"functionResponse": {"id": call["id"], "name": "get_weather", "response": {"result": "18C"}}}],
    }

    def next_turn(model_part: dict[str, Any]) -> httpx.Response:
        contents = [question, {"role": "model", "parts": [model_part]}, reply]
        return _generate(sim, {**body, "contents": contents})

    unsigned = {k: v for k, v in call_part.items() if k != "thoughtSignature"}
    error = _error(next_turn(unsigned), 400, "INVALID_ARGUMENT")
    assert "Function call is missing a thought_signature in functionCall parts" in error["message"]
    assert "`default_api:get_weather`" in error["message"]
    corrupted = _error(next_turn({**call_part, "thoughtSignature": "Zm9yZ2Vk"}), 400, "INVALID_ARGUMENT")
    assert "Corrupted thought signature" in corrupted["message"]
    assert next_turn(call_part).status_code == 200
    assert next_turn({**unsigned, "thoughtSignature": "skip_thought_signature_validator"}).status_code == 200
    no_thinking = {"contents": [question, {"role": "model", "parts": [unsigned]}, reply]}
    assert _generate(sim, no_thinking).status_code == 200  # signatures are only due with thinking on


def test_signature_check_can_be_switched_off() -> None:
    with running_sim(SimConfig(require_thought_signatures=False)) as sim:
        contents = [
            _user("go"),
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
        ]
        assert _generate(sim, {"contents": contents, "generationConfig": THINKING}).status_code == 200


def test_marker_tool_call_and_forced_mode(sim: SimHandle) -> None:
    tools = [{"functionDeclarations": [WEATHER]}]
    marked = _generate(sim, {"contents": [_user('[[sim:tool get_weather {"city": "Oslo"}]]')], "tools": tools})
    [part] = marked.json()["candidates"][0]["content"]["parts"]
    assert part["functionCall"]["args"] == {"city": "Oslo"} and "thoughtSignature" not in part
    forced = _generate(
        sim,
        {"contents": [_user("hi")], "tools": tools, "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}},
    )
    assert forced.json()["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "get_weather"


@pytest.mark.parametrize("keyword", ["additionalProperties", "$schema", "exclusiveMinimum", "propertyNames", "const"])
def test_schema_keywords_gemini_rejects_are_refused(sim: SimHandle, keyword: str) -> None:
    nested = {"type": "OBJECT", "properties": {"n": {"type": "INTEGER", keyword: 0}}}
    declaration = {
        **WEATHER,
        "parameters": {**WEATHER["parameters"], "properties": {"city": {"type": "STRING"}, "extra": nested}},
    }
    body = {"contents": [_user("hi")], "tools": [{"functionDeclarations": [declaration]}]}
    error = _error(_generate(sim, body), 400, "INVALID_ARGUMENT")
    assert f'Unknown name "{keyword}"' in error["message"]
    assert "tools[0].function_declarations[0].parameters.properties[1].value.properties[0].value" in error["message"]
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"


def test_every_bad_keyword_is_listed_and_json_schema_parameters_pass(sim: SimHandle) -> None:
    schema = {"$schema": "x", "type": "object", "additionalProperties": False, "properties": {}}
    refused = _generate(
        sim, {"contents": [_user("hi")], "tools": [{"functionDeclarations": [{"name": "f", "parameters": schema}]}]}
    )
    violations = _error(refused, 400, "INVALID_ARGUMENT")["details"][0]["fieldViolations"]
    assert [v["field"].rsplit(".", 1)[-1] for v in violations] == ["$schema", "additionalProperties"]
    accepted = _generate(
        sim,
        {
            "contents": [_user("hi")],
            "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": schema}]}],
        },
    )
    assert accepted.status_code == 200, accepted.text


@pytest.mark.parametrize(
    ("body", "wording"),
    [
        ({}, "contents is not specified"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "Please use a valid role: user, model."),
        ({"contents": [{"role": "user", "parts": [{"type": "text", "text": "x"}]}]}, 'Unknown name "type"'),
        ({"contents": [_user("x")], "generationConfig": {"max_tokens": 5}}, 'Unknown name "max_tokens"'),
        ({"contents": [{"role": "user", "parts": []}]}, "contents.parts must not be empty"),
        (
            {
                "contents": [
                    _user("x"),
                    {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
                ]
            },
            "function response turn comes immediately after a function call turn",
        ),
        (
            {
                "contents": [
                    _user("x"),
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                    _user("y"),
                ]
            },
            "number of function response parts is equal to the number of function call parts",
        ),
        (
            {
                "contents": [
                    _user("x"),
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": "18C"}}]},
                ]
            },
            "function_response.response",
        ),
    ],
)
def test_invalid_bodies_get_invalid_argument(sim: SimHandle, body: dict[str, Any], wording: str) -> None:
    error = _error(_generate(sim, body), 400, "INVALID_ARGUMENT")
    assert wording in error["message"]


def test_rate_limit_is_resource_exhausted_with_retry_info(sim: SimHandle) -> None:
    sim.set_limits("g-rl", KeyLimits(requests_per_window=1, window_s=60))
    first = _generate(sim, {"contents": [_user("hi")]}, key="g-rl")
    assert first.status_code == 200 and not any(h.startswith("x-ratelimit") for h in first.headers)
    refused = _generate(sim, {"contents": [_user("hi")]}, key="g-rl")
    error = _error(refused, 429, "RESOURCE_EXHAUSTED")
    assert "retry-after" not in refused.headers
    retry = [d for d in error["details"] if d["@type"] == "type.googleapis.com/google.rpc.RetryInfo"]
    [info] = retry
    seconds = int(info["retryDelay"].removesuffix("s"))
    assert info["retryDelay"].endswith("s") and 1 <= seconds <= 60
    assert f"Please retry in {seconds}s." in error["message"]
    quota = next(d for d in error["details"] if d["@type"].endswith("QuotaFailure"))
    assert quota["violations"][0]["quotaValue"] == "1"


def test_faults_map_to_google_errors(sim: SimHandle) -> None:
    sim.fault("429", retry_after=9)
    error = _error(_generate(sim, {"contents": [_user("hi")]}), 429, "RESOURCE_EXHAUSTED")
    assert error["details"] == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "9s"}]
    sim.fault("529")
    _error(_generate(sim, {"contents": [_user("hi")]}), 503, "UNAVAILABLE")
    sim.fault("500")
    _error(_generate(sim, {"contents": [_user("hi")]}), 500, "INTERNAL")


def test_error_event_cuts_the_stream_before_the_finish(sim: SimHandle) -> None:
    sim.fault("error_event", after_events=2)
    body = {"contents": [_user("a question long enough for several chunks of answer")]}
    response = sim.http.post(f"{BASE}:streamGenerateContent?alt=sse", headers=KEY, json=body)
    frames = _sse(response.content)
    assert len(frames) == 2 and all("finishReason" not in f["candidates"][0] for f in frames)


def test_implicit_cache_shows_in_usage(sim: SimHandle) -> None:
    system = {"parts": [{"text": "Rules. " * 1000}]}  # 1750 tokens
    body = {"systemInstruction": system, "contents": [_user("What changed?")]}
    first = _generate(sim, body).json()["usageMetadata"]
    again = _generate(sim, body).json()["usageMetadata"]
    assert "cachedContentTokenCount" not in first and first["promptTokenCount"] == 1754
    assert again["cachedContentTokenCount"] == 1754 and again["promptTokenCount"] == 1754


def test_thinking_without_include_thoughts_counts_but_hides_them(sim: SimHandle) -> None:
    body = {"contents": [_user("hi")], "generationConfig": {"thinkingConfig": {"thinkingBudget": 512}}}
    data = _generate(sim, body).json()
    assert all(not p.get("thought") for p in data["candidates"][0]["content"]["parts"])
    usage = data["usageMetadata"]
    assert usage["thoughtsTokenCount"] > 0
    assert (
        usage["totalTokenCount"]
        == usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    )


def test_auth_and_unknown_methods() -> None:
    with running_sim(SimConfig(open=False, keys={"g-known": KeyLimits()})) as sim:
        body = {"contents": [_user("hi")]}
        _error(sim.http.post(f"{BASE}:generateContent", json=body), 403, "PERMISSION_DENIED")
        invalid = _error(_generate(sim, body, key="g-unknown"), 400, "INVALID_ARGUMENT")
        assert invalid["message"] == "API key not valid. Please pass a valid API key."
        assert invalid["details"][0]["reason"] == "API_KEY_INVALID"
        assert _generate(sim, body, key="g-known").status_code == 200
        _error(
            sim.http.post(f"{BASE}:embedContent", headers={"x-goog-api-key": "g-known"}, json=body), 404, "NOT_FOUND"
        )


def test_count_tokens_models_and_request_log(sim: SimHandle) -> None:
    counted = sim.http.post(f"{BASE}:countTokens", headers=KEY, json={"contents": [_user("x" * 40)]})
    assert counted.json() == {"totalTokens": 10}
    listing = sim.http.get("/v1beta/models", headers=KEY).json()
    assert "models/claude-sonnet-4-6" in [m["name"] for m in listing["models"]]
    _generate(sim, {"contents": [_user("logged")]})
    entries = sim.requests()
    assert [e["path"] for e in entries] == [
        "/v1beta/models/gemini-2.5-flash:countTokens",
        "/v1beta/models",
        f"{BASE}:generateContent",
    ]
    assert entries[-1]["status"] == 200 and entries[-1]["headers"]["x-goog-api-key"] == "g-test"
