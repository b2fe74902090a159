"""Scripted responses and markers over HTTP: order, scope, tool loops."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from kestrel.sim.testing import SimHandle

MODEL = "claude-sonnet-4-6"


def _ask(client: anthropic.Anthropic, text: str = "go", **extra: Any) -> anthropic.types.Message:
    return client.messages.create(model=MODEL, max_tokens=1000, messages=[{"role": "user", "content": text}], **extra)


def test_scripted_responses_are_used_in_order(sim: SimHandle, client: anthropic.Anthropic) -> None:
    sim.script(
        [
            "one",
            [{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "two"}],
            {"content": [{"type": "text", "text": "three"}], "stop_reason": "refusal"},
        ]
    )
    first, second, third, fourth = (_ask(client) for _ in range(4))
    assert first.content[0].text == "one"  # type: ignore[union-attr]
    assert second.content[0].type == "thinking" and second.content[0].signature
    assert second.content[1].text == "two"  # type: ignore[union-attr]
    assert third.content[0].text == "three" and third.stop_reason == "refusal"  # type: ignore[union-attr]
    assert fourth.content[0].text.startswith("Simulated reply")  # type: ignore[union-attr]


def test_key_queue_comes_before_the_global_queue(sim: SimHandle) -> None:
    sim.script(["global"])
    sim.script(["mine"], key="sk-mine")
    result = sim.script(["mine too"], key="sk-mine")
    assert result["pending"] == {"*": 1, "sk-mine": 2}
    mine = anthropic.Anthropic(base_url=sim.url, api_key="sk-mine", max_retries=0)
    texts = [_ask(mine).content[0].text for _ in range(4)]  # type: ignore[union-attr]
    assert texts[:3] == ["mine", "mine too", "global"]
    assert texts[3].startswith("Simulated reply")


def test_scripted_tool_call_gets_an_id_and_tool_use_stop(sim: SimHandle, client: anthropic.Anthropic) -> None:
    sim.script([[{"type": "tool_use", "name": "Read", "input": {"file_path": "a.py"}}]])
    message = _ask(client)
    block = message.content[0]
    assert block.type == "tool_use" and block.id.startswith("toolu_")
    assert block.input == {"file_path": "a.py"} and message.stop_reason == "tool_use"


def test_tool_marker_then_tool_result_ends_the_loop(client: anthropic.Anthropic) -> None:
    prompt = 'Please [[sim:tool Read {"file_path": "x]]y.py"}]] then [[sim:text done]]'
    first = _ask(client, prompt)
    assert [b.type for b in first.content] == ["tool_use", "text"]
    tool = first.content[0]
    assert tool.name == "Read" and tool.input == {"file_path": "x]]y.py"}  # type: ignore[union-attr]
    assert first.content[1].text == "done"  # type: ignore[union-attr]
    assert first.stop_reason == "tool_use"

    follow_up = client.messages.create(
        model=MODEL,
        max_tokens=1000,
        messages=[
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "print(1)"}]},  # type: ignore[union-attr]
        ],
    )
    assert follow_up.stop_reason == "end_turn" and follow_up.content[0].type == "text"


def test_think_marker_and_thinking_request(client: anthropic.Anthropic) -> None:
    message = _ask(client, "[[sim:think deep thoughts]][[sim:text answer]]")
    assert message.content[0].thinking == "deep thoughts"  # type: ignore[union-attr]
    assert message.content[1].text == "answer"  # type: ignore[union-attr]
    with_thinking = _ask(client, "[[sim:text only text]]", thinking={"type": "adaptive"})
    assert [b.type for b in with_thinking.content] == ["thinking", "text"]


def test_malformed_tool_marker_is_a_400(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="sim marker"):
        _ask(client, "[[sim:tool Read [1, 2]]]")


def test_bad_script_is_refused_and_clear_empties(sim: SimHandle, client: anthropic.Anthropic) -> None:
    with pytest.raises(ValueError, match="content"):
        sim.script([{"content": [{"type": "image"}]}])
    sim.script(["never"])
    sim.clear_script()
    assert _ask(client).content[0].text.startswith("Simulated reply")  # type: ignore[union-attr]


def test_max_tokens_and_stop_sequences_cut_the_answer(sim: SimHandle, client: anthropic.Anthropic) -> None:
    sim.script(["alpha beta STOP gamma", "x" * 100])
    stopped = _ask(client, stop_sequences=["STOP", "gamma"])
    assert stopped.content[0].text == "alpha beta "  # type: ignore[union-attr]
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "STOP"
    cut = client.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "go"}])
    assert cut.content[0].text == "x" * 20 and cut.stop_reason == "max_tokens"  # type: ignore[union-attr]
    assert cut.usage.output_tokens == 5
