"""The OpenAI stream validator accepts what OpenAI sends and names each rule a broken stream breaks."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kestrel.edge.testing.openai_stream import StreamViolation, collect, validate_openai_sse

BASE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
USAGE = {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}


def chunk(delta: dict[str, Any], finish: str | None = None, **over: Any) -> dict[str, Any]:
    return BASE | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": None} | over


def start(index: int, call_id: str = "call_1", name: str = "get_weather") -> dict[str, Any]:
    fn = {"name": name, "arguments": ""}
    return chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function", "function": fn}]})


def args(index: int, text: str) -> dict[str, Any]:
    return chunk({"tool_calls": [{"index": index, "function": {"arguments": text}}]})


def stream(*chunks: dict[str, Any] | str) -> bytes:
    return b"".join(
        b"data: " + (c.encode() if isinstance(c, str) else orjson.dumps(c)) + b"\n\n" for c in (*chunks, "[DONE]")
    )


ROLE = chunk({"role": "assistant", "content": ""})
FINISH = chunk({}, "tool_calls")
USAGE_CHUNK = BASE | {"choices": [], "usage": USAGE}

# The example of PROTOCOLS.md B3, verbatim in substance.
REFERENCE = stream(
    ROLE,
    chunk({"content": "Hel"}),
    start(0),
    args(0, '{"city":'),
    args(0, '"Paris"}'),
    FINISH,
    USAGE_CHUNK,
)


def test_accepts_the_reference_stream_and_collects_it() -> None:
    chunks = validate_openai_sse(REFERENCE, include_usage=True)
    assert len(chunks) == 7
    collected = collect(chunks)
    assert collected.content == "Hel"
    assert collected.tool_calls == [{"id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'}]
    assert (collected.finish_reason, collected.usage) == ("tool_calls", USAGE)


def test_accepts_parallel_calls_comments_and_a_final_error_frame() -> None:
    raw = stream(ROLE, start(0), args(0, "{}"), start(1, "call_2"), args(1, '{"a":1}'), FINISH, USAGE_CHUNK)
    assert len(collect(validate_openai_sse(b": ping\n\n" + raw, include_usage=True)).tool_calls) == 2
    errored = stream(ROLE, chunk({"content": "x"}))[: -len(b"data: [DONE]\n\n")]
    errored += b'data: {"error":{"message":"boom","type":"server_error"}}\n\n'
    assert validate_openai_sse(errored, include_usage=True)[-1]["choices"][0]["delta"] == {"content": "x"}


def plain(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return BASE | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


@pytest.mark.parametrize(
    ("raw", "include_usage", "rule"),
    [
        (stream(chunk({"content": "x"}), chunk({}, "stop"), USAGE_CHUNK), True, "role assistant"),
        (stream(ROLE, chunk({}, "stop"), chunk({}, "stop"), USAGE_CHUNK), True, "second finish_reason"),
        (stream(ROLE, USAGE_CHUNK, chunk({}, "stop")), True, "after the finish_reason chunk"),
        (stream(ROLE, chunk({}, "stop"), USAGE_CHUNK, USAGE_CHUNK), True, "after the finish_reason chunk"),
        (stream(ROLE, chunk({}, "stop")), True, "no usage chunk"),
        (stream(plain({"role": "assistant"}), plain({}, "stop"), USAGE_CHUNK), True, "usage: null"),
        (stream(plain({"role": "assistant"}), plain({}, "stop"), USAGE_CHUNK), False, "without include_usage"),
        (stream(ROLE, chunk({}, "stop"), chunk({"content": "late"}), USAGE_CHUNK), True, "content after"),
        (stream(ROLE, chunk({"content": "x"}), USAGE_CHUNK), True, "after the finish_reason chunk"),
        (stream(ROLE, chunk({"content": "x"}, None, usage=None)), True, "without a finish_reason"),
        (stream(ROLE, chunk({}, "done"), USAGE_CHUNK), True, "unknown finish_reason"),
        (stream(ROLE, chunk({}, "stop", id="chatcmpl-2"), USAGE_CHUNK), True, "must match the first chunk"),
        (stream(ROLE, chunk({}, "stop", object="chat.completion"), USAGE_CHUNK), True, "object"),
        (stream(ROLE, args(0, "{}"), FINISH, USAGE_CHUNK), True, "needs id, type, name"),
        (stream(ROLE, start(1), FINISH, USAGE_CHUNK), True, "skips ahead"),
        (stream(ROLE, start(0), start(0), FINISH, USAGE_CHUNK), True, "carry only arguments"),
        (stream(ROLE, start(0), args(0, '{"a":'), FINISH, USAGE_CHUNK), True, "JSON object"),
        (stream(ROLE, start(0), args(0, "[1]"), FINISH, USAGE_CHUNK), True, "JSON object"),
        (stream(ROLE, start(0), start(1, "c2"), args(0, "{}"), FINISH, USAGE_CHUNK), True, "after a later call"),
        (stream(ROLE, start(0), args(0, "{}"), chunk({}, "stop"), USAGE_CHUNK), True, "finish_reason is stop"),
        (
            stream(ROLE, chunk({}, "stop"), BASE | {"choices": [], "usage": USAGE | {"total_tokens": 1}}),
            True,
            "total_tokens",
        ),
        (REFERENCE + b"data: {}\n\n", True, "nothing may follow"),
        (REFERENCE[: -len(b"data: [DONE]\n\n")], True, "without [DONE]"),
        (REFERENCE[:-1], True, "frame boundary"),
        (b"data: {nope\n\n" + REFERENCE, True, "not JSON"),
        (b"event: x\ndata: {}\n\n" + REFERENCE, True, "one `data: ` line"),
        (b'data: {"error":{"message":"x"}}\n\n', True, "error.message and error.type"),
        (b"data: [DONE]\n\n", True, "without any chunk"),
    ],
)
def test_rejects_each_broken_rule(raw: bytes, include_usage: bool, rule: str) -> None:
    with pytest.raises(StreamViolation, match=rule.replace("[", r"\[").replace("]", r"\]")):
        validate_openai_sse(raw, include_usage)
