"""With ``verify_signatures``, thinking blocks must come back exactly as the sim sent them."""

from __future__ import annotations

import anthropic
import pytest

from kestrel.sim.config import SimConfig
from kestrel.sim.testing import running_sim

MODEL = "claude-sonnet-4-6"


def test_altered_thinking_is_refused() -> None:
    with running_sim(SimConfig(verify_signatures=True)) as sim:
        client = anthropic.Anthropic(base_url=sim.url, api_key="k", max_retries=0)
        thinking = {"type": "enabled", "budget_tokens": 1024}
        first = client.messages.create(
            model=MODEL,
            max_tokens=2048,
            thinking=thinking,
            messages=[{"role": "user", "content": "q1"}],
        )
        block = first.content[0].model_dump()
        assert block["type"] == "thinking"

        def follow_up(thinking_block: dict[str, object]) -> anthropic.types.Message:
            return client.messages.create(
                model=MODEL,
                max_tokens=2048,
                thinking=thinking,
                messages=[
                    {"role": "user", "content": "q1"},
                    {"role": "assistant", "content": [thinking_block, *[b.model_dump() for b in first.content[1:]]]},
                    {"role": "user", "content": "q2"},
                ],
            )

        assert follow_up(block).stop_reason == "end_turn"
        with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
            follow_up({**block, "thinking": block["thinking"] + " (edited)"})
