"""The simulator observes how many requests per key it answers at once."""

from __future__ import annotations

import asyncio

import httpx

from kestrel.sim.config import SimConfig
from kestrel.sim.testing import running_sim

BODY = {"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def test_peak_in_flight_counts_concurrent_streams_until_their_last_byte() -> None:
    with running_sim(SimConfig(tokens_per_s=100)) as sim:

        async def burst() -> None:
            async with httpx.AsyncClient(base_url=sim.url, headers={"x-api-key": "k"}, timeout=10) as client:
                await asyncio.gather(*(client.post("/v1/messages", json=BODY) for _ in range(5)))

        asyncio.run(burst())
        state = sim.key_state("k")
        assert state["peak_in_flight"] == 5
        assert state["in_flight"] == 0
