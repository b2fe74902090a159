"""Answer choice and cutting, and the stream frames rendered from an answer."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kestrel.sim._answers import build_answer, marker_blocks, parse_script
from kestrel.sim._cache import CachePlan
from kestrel.sim._render import stream_plan
from kestrel.sim._request import MessagesRequest, RequestError, parse_messages

from .sse import check_order, parse_frames


def request(text: str = "hello", **extra: Any) -> MessagesRequest:
    body = {"model": "m", "max_tokens": 1000, "messages": [{"role": "user", "content": text}]}
    return parse_messages(orjson.dumps({**body, **extra}))


def test_markers_in_order() -> None:
    blocks = marker_blocks('a [[sim:text hi]] b [[sim:tool Bash {"c": [[1]]}]] [[sim:think t]]')
    assert blocks == [
        {"type": "text", "text": "hi"},
        {"type": "tool_use", "id": None, "name": "Bash", "input": {"c": [[1]]}},
        {"type": "thinking", "thinking": "t"},
    ]
    assert marker_blocks("no markers [[sim:unknown x]]") == []
    with pytest.raises(RequestError):
        marker_blocks("[[sim:tool Bash not json]]")


def test_default_answer_echoes_and_thinks_when_asked() -> None:
    plain = build_answer(request("what is up"), None)
    assert plain.content[0]["text"].endswith("You said: what is up")
    assert plain.stop_reason == "end_turn"
    thinking = build_answer(request("x", thinking={"type": "adaptive"}), None)
    assert [b["type"] for b in thinking.content] == ["thinking", "text"]
    assert thinking.content[0]["signature"]


def test_max_tokens_truncates_text_and_drops_tools_that_do_not_fit() -> None:
    script = parse_script(
        {
            "content": [
                {"type": "text", "text": "x" * 40},
                {"type": "tool_use", "name": "Read", "input": {"p": "y" * 100}},
            ]
        }
    )
    answer = build_answer(request(max_tokens=20), script)
    assert [b["type"] for b in answer.content] == ["text"]
    assert answer.stop_reason == "max_tokens" and answer.output_tokens == 10
    tight = build_answer(request(max_tokens=3), script)
    assert tight.content == [{"type": "text", "text": "x" * 12}] and tight.output_tokens == 3


def test_stop_sequence_picks_the_earliest_match() -> None:
    script = parse_script({"content": [{"type": "text", "text": "one two three"}]})
    answer = build_answer(request(stop_sequences=["three", "two"]), script)
    assert answer.content == [{"type": "text", "text": "one "}]
    assert (answer.stop_reason, answer.stop_sequence) == ("stop_sequence", "two")


def test_scripted_stop_reason_and_ids() -> None:
    script = parse_script({"content": [{"type": "tool_use", "name": "A", "input": {}}], "stop_reason": "pause_turn"})
    answer = build_answer(request(), script)
    assert answer.stop_reason == "pause_turn"
    assert answer.content[0]["id"].startswith("toolu_01") and len(answer.content[0]["id"]) == 30


def test_stream_plan_frames_and_redacted_thinking() -> None:
    script = parse_script(
        {
            "content": [
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "t" * 50},
            ]
        }
    )
    answer = build_answer(request(), script)
    plan = stream_plan(answer, "m", "msg_1", CachePlan(input_tokens=2), chunk_tokens=4)
    frames = parse_frames(b"".join(plan.frames))
    check_order(frames)
    assert frames[2][1]["content_block"] == {"type": "redacted_thinking", "data": "opaque"}
    texts = [d["delta"]["text"] for e, d in frames if e == "content_block_delta"]
    assert texts == ["t" * 16, "t" * 16, "t" * 16, "t" * 2]
    assert plan.first_content == 2
