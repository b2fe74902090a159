"""Turn an ``Answer`` into wire bytes: one JSON message, or the SSE frames of a stream.

Both forms come from the same ``Answer`` and usage, so an SDK accumulating the stream rebuilds
exactly the non-streamed message (ids aside). The stream follows PROTOCOLS.md A5:

``message_start`` (stop_reason null, real input and cache usage, ``output_tokens: 1``), ``ping``,
then per block ``content_block_start`` / deltas / ``content_block_stop`` with dense indexes,
``message_delta`` (stop reason, cumulative usage), ``message_stop``.

Deltas: text and thinking in slices of ``chunk_tokens * 4`` characters; a thinking block ends
with its ``signature_delta``; a tool call starts with ``input: {}`` and streams its compact JSON
as ``input_json_delta`` fragments, an empty one first (as Anthropic sends) and then slices of
varying size that split keys and strings mid-way.

``StreamPlan``, ``text_slices`` and ``json_slices`` are shared with the OpenAI and Gemini
renderers, so all three APIs cut the same answer at the same places.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from kestrel.sim._answers import Answer
from kestrel.sim._cache import CachePlan
from kestrel.sim._tokens import tokens_for_chars

_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
_OVERLOADED_EVENT = (
    b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
)


@dataclass(slots=True)
class StreamPlan:
    """The frames of one stream and what pacing needs to know about them."""

    frames: list[bytes] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    """Output tokens each frame carries (for ``tokens_per_s`` pacing)."""
    first_content: int = 0
    """Index of the first frame carrying content (``ttft_ms`` is slept before it)."""
    error_frame: bytes | None = None
    """What an ``error_event`` fault sends before ending the body (None: the stream just ends)."""

    def add(self, event: str, data: dict[str, Any], tokens: int = 0) -> None:
        self.frames.append(b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")
        self.tokens.append(tokens)

    def add_raw(self, frame: bytes, tokens: int = 0) -> None:
        self.frames.append(frame)
        self.tokens.append(tokens)


def usage(plan: CachePlan, output_tokens: int) -> dict[str, Any]:
    """The ``usage`` object of a finished message (A4)."""
    return {
        "input_tokens": plan.input_tokens,
        "cache_creation_input_tokens": plan.cache_creation_input_tokens,
        "cache_read_input_tokens": plan.cache_read_input_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": plan.ephemeral_5m_input_tokens,
            "ephemeral_1h_input_tokens": plan.ephemeral_1h_input_tokens,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def message_json(answer: Answer, model: str, message_id: str, plan: CachePlan) -> bytes:
    """The non-streaming response body."""
    return orjson.dumps(
        {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": answer.content,
            "stop_reason": answer.stop_reason,
            "stop_sequence": answer.stop_sequence,
            "usage": usage(plan, answer.output_tokens),
        }
    )


def stream_plan(answer: Answer, model: str, message_id: str, plan: CachePlan, chunk_tokens: int) -> StreamPlan:
    """The SSE frames of the streamed response, in A5 order."""
    chunk = chunk_tokens * 4
    out = StreamPlan(error_frame=_OVERLOADED_EVENT)
    start_usage = usage(plan, 1)
    out.add(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": start_usage,
            },
        },
    )
    out.frames.append(_PING)
    out.tokens.append(0)
    out.first_content = len(out.frames)
    for index, block in enumerate(answer.content):
        _add_block(out, index, block, chunk)
    out.add(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": answer.stop_reason, "stop_sequence": answer.stop_sequence},
            "usage": {
                "input_tokens": plan.input_tokens,
                "cache_creation_input_tokens": plan.cache_creation_input_tokens,
                "cache_read_input_tokens": plan.cache_read_input_tokens,
                "output_tokens": answer.output_tokens,
            },
        },
    )
    out.add("message_stop", {"type": "message_stop"})
    return out


def _add_block(out: StreamPlan, index: int, block: dict[str, Any], chunk: int) -> None:
    kind = block["type"]
    if kind == "text":
        out.add("content_block_start", _start(index, {"type": "text", "text": ""}))
        for piece in text_slices(block["text"], chunk):
            out.add(
                "content_block_delta",
                _delta(index, {"type": "text_delta", "text": piece}),
                tokens_for_chars(len(piece)),
            )
    elif kind == "thinking":
        out.add("content_block_start", _start(index, {"type": "thinking", "thinking": "", "signature": ""}))
        # An omitted-display thinking block has no text: only its signature is streamed.
        for piece in text_slices(block["thinking"], chunk) if block["thinking"] else ():
            out.add(
                "content_block_delta",
                _delta(index, {"type": "thinking_delta", "thinking": piece}),
                tokens_for_chars(len(piece)),
            )
        out.add("content_block_delta", _delta(index, {"type": "signature_delta", "signature": block["signature"]}))
    elif kind == "tool_use":
        out.add(
            "content_block_start",
            _start(index, {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}),
        )
        text = orjson.dumps(block["input"]).decode()
        for piece in ["", *json_slices(text, chunk)]:
            out.add(
                "content_block_delta",
                _delta(index, {"type": "input_json_delta", "partial_json": piece}),
                tokens_for_chars(len(piece)),
            )
    else:  # redacted_thinking (and anything else) arrives whole, without deltas
        out.add("content_block_start", _start(index, block))
    out.add("content_block_stop", {"type": "content_block_stop", "index": index})


def _start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def text_slices(text: str, size: int) -> list[str]:
    """``size``-character slices (one empty slice for empty text)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def json_slices(text: str, chunk: int) -> list[str]:
    """Uneven slices (about half a chunk, 1 char, a chunk, two chunks, repeating)."""
    sizes = (max(1, chunk // 2 - 1), 1, chunk, 2 * chunk)
    pieces, at, turn = [], 0, 0
    while at < len(text):
        size = sizes[turn % len(sizes)]
        pieces.append(text[at : at + size])
        at += size
        turn += 1
    return pieces
