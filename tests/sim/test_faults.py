"""Injected faults: errors before headers, and stalls, resets and error events mid-stream."""

from __future__ import annotations

import itertools
import time
from typing import Any

import anthropic
import httpx
import pytest

from kestrel.sim.testing import SimHandle

from .sse import parse_frames

BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 200,
    "messages": [{"role": "user", "content": "a question long enough for several deltas"}],
}
HEADERS = {"x-api-key": "sk-test"}


def _post(sim: SimHandle, stream: bool = False, key: str = "sk-test") -> httpx.Response:
    return sim.http.post("/v1/messages", headers={"x-api-key": key}, json={**BODY, "stream": stream})


@pytest.mark.parametrize(
    ("kind", "status", "error_type"),
    [("529", 529, "overloaded_error"), ("500", 500, "api_error"), ("429", 429, "rate_limit_error")],
)
def test_errors_before_headers(sim: SimHandle, kind: str, status: int, error_type: str) -> None:
    sim.fault(kind, retry_after=7)
    for stream in (True, False):
        if stream is False:
            sim.fault(kind, retry_after=7)
        response = _post(sim, stream=stream)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["error"]["type"] == error_type and body["request_id"].startswith("req_")
        assert response.headers["x-should-retry"] == "true"
        if kind == "429":
            assert response.headers["retry-after"] == "7"
    assert _post(sim).status_code == 200  # used up


def test_sdk_maps_overloaded(sim: SimHandle, client: anthropic.Anthropic) -> None:
    sim.fault("529")
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(**BODY)
    assert caught.value.status_code == 529


def test_count_and_key_scope(sim: SimHandle) -> None:
    sim.fault("500", count=2, key="sk-x")
    assert _post(sim, key="sk-y").status_code == 200
    assert _post(sim, key="sk-x").status_code == 500
    assert _post(sim, key="sk-x").status_code == 500
    assert _post(sim, key="sk-x").status_code == 200


def test_reset_breaks_the_stream_after_k_events(sim: SimHandle) -> None:
    sim.fault("reset", after_events=4)
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        sim.http.stream("POST", "/v1/messages", headers=HEADERS, json={**BODY, "stream": True}) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_raw():
            received += chunk
    assert [e for e, _ in parse_frames(received)] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
    ]


def test_reset_breaks_a_non_streaming_body(sim: SimHandle) -> None:
    sim.fault("reset")
    with pytest.raises(httpx.RemoteProtocolError):
        _post(sim)


def test_sdk_stream_sees_the_reset(sim: SimHandle, client: anthropic.Anthropic) -> None:
    sim.fault("reset", after_events=3)
    try:
        with client.messages.stream(**BODY) as stream:
            stream.get_final_message()
    except Exception as exc:  # the SDK's transport raises its own httpx flavour of this error
        assert type(exc).__name__ in ("RemoteProtocolError", "APIConnectionError"), repr(exc)
    else:
        pytest.fail("the stream completed despite the reset")


def test_stall_pauses_the_stream_then_finishes(sim: SimHandle) -> None:
    sim.fault("stall", after_events=3, stall_s=0.4)
    arrivals: list[tuple[float, bytes]] = []
    with sim.http.stream("POST", "/v1/messages", headers=HEADERS, json={**BODY, "stream": True}) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                arrivals.append((time.monotonic(), line.encode()))
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(arrivals)]
    assert gaps[2] >= 0.35  # between event 3 and event 4
    assert max(gaps[:2] + gaps[3:]) < 0.2
    assert arrivals[-1][1] == b"event: message_stop"


def test_stall_trips_a_client_read_timeout(sim: SimHandle) -> None:
    sim.fault("stall", after_events=2, stall_s=1.0)
    client = anthropic.Anthropic(base_url=sim.url, api_key="sk-test", max_retries=0, timeout=0.3)
    try:
        with client.messages.stream(**BODY) as stream:
            stream.get_final_message()
    except Exception as exc:  # mid-stream, the SDK lets its transport's ReadTimeout through
        assert type(exc).__name__ in ("ReadTimeout", "APITimeoutError"), repr(exc)
    else:
        pytest.fail("the stream completed despite the stall")


def test_stall_delays_a_non_streaming_answer(sim: SimHandle) -> None:
    sim.fault("stall", stall_s=0.3)
    started = time.monotonic()
    assert _post(sim).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_error_event_ends_the_stream_without_message_stop(sim: SimHandle) -> None:
    sim.fault("error_event", after_events=5)
    response = _post(sim, stream=True)
    frames = parse_frames(response.content)
    assert len(frames) == 6
    assert frames[-1] == ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})


def test_faults_can_be_cleared(sim: SimHandle) -> None:
    sim.fault("529", count=3)
    sim.clear_faults()
    assert _post(sim).status_code == 200


def test_bad_fault_is_refused(sim: SimHandle) -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        sim.fault("418")
