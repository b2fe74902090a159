"""The request log keeps what arrived, byte for byte, for passthrough assertions."""

from __future__ import annotations

from kestrel.sim.testing import SimHandle


def test_body_headers_and_query_are_kept_as_received(sim: SimHandle) -> None:
    # Odd spacing, key order and non-ASCII text: a re-serialising gateway would change them.
    raw = (
        '{ "model":"claude-sonnet-4-6",  "messages":[{"role":"user","content":"h\u00e9llo \\u00e9"}],'
        '"max_tokens": 16, "stream": true }'
    ).encode()
    response = sim.http.post(
        "/v1/messages?beta=true",
        content=raw,
        headers={
            "x-api-key": "sk-test",
            "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
            "content-type": "application/json",
        },
    )
    assert response.status_code == 200
    [entry] = sim.requests()
    assert entry["body"].encode() == raw and entry["body_utf8"]
    assert entry["method"] == "POST" and entry["path"] == "/v1/messages"
    assert entry["query"] == "beta=true"
    assert entry["headers"]["anthropic-beta"] == "claude-code-20250219,interleaved-thinking-2025-05-14"
    assert entry["headers"]["x-api-key"] == "sk-test"
    assert entry["status"] == 200
    assert entry["request_id"] == response.headers["request-id"]


def test_log_is_bounded_by_limit_and_can_be_cleared(sim: SimHandle) -> None:
    for n in range(3):
        sim.http.post("/v1/messages", headers={"x-api-key": "k"}, json={"model": "m", "max_tokens": n, "messages": []})
    last_two = sim.requests(limit=2)
    assert [e["body"].count('"max_tokens":') for e in last_two] == [1, 1]
    assert ['"max_tokens":1' in e["body"] for e in last_two] == [True, False]
    assert all(e["status"] == 400 for e in last_two)
    sim.http.get("/_sim/health")  # control calls are never logged
    assert len(sim.requests()) == 3
    sim.clear_requests()
    assert sim.requests() == []


def test_refused_requests_are_logged_with_their_status(sim: SimHandle) -> None:
    sim.http.post("/v1/messages", json={"model": "m"})
    [entry] = sim.requests()
    assert entry["status"] == 401 and "x-api-key" not in entry["headers"]
