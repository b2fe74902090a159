"""The latency model: time to first content and output pacing."""

from __future__ import annotations

import time
from typing import Any

from kestrel.sim.config import SimConfig
from kestrel.sim.testing import running_sim

BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 200,
    "stream": True,
    "messages": [{"role": "user", "content": "pace me"}],
}


def test_ttft_delays_the_first_content_event_only() -> None:
    with running_sim(SimConfig(ttft_ms=250)) as sim:
        started = time.monotonic()
        seen: dict[str, float] = {}
        with sim.http.stream("POST", "/v1/messages", json=BODY, headers={"x-api-key": "k"}) as response:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    seen.setdefault(line[7:], time.monotonic() - started)
        assert seen["message_start"] < 0.2
        assert 0.25 <= seen["content_block_start"] < 0.6
        assert seen["message_stop"] - seen["content_block_start"] < 0.2


def test_tokens_per_s_paces_output() -> None:
    with running_sim(SimConfig(tokens_per_s=200)) as sim:
        started = time.monotonic()
        response = sim.http.post("/v1/messages", json={**BODY, "stream": False}, headers={"x-api-key": "k"})
        elapsed = time.monotonic() - started
        output = response.json()["usage"]["output_tokens"]
        assert elapsed >= output / 200 * 0.9

        started = time.monotonic()
        sim.http.post("/v1/messages", json=BODY, headers={"x-api-key": "k"})
        assert time.monotonic() - started >= output / 200 * 0.9
