"""Anthropic stream events (the ``data`` of each SSE frame) ⇄ canonical ``Event``s.

Kept apart from request and response JSON because only streams need it, and because it is the one
place where an event's JSON and its ``event:`` name are tied together: every frame written here
carries ``event: <type>`` and a ``data`` object with the same ``type``, which is how both SDKs
dispatch (PROTOCOLS A5).
"""

from __future__ import annotations

from typing import Any

import orjson

from kestrel.edge.canonical import (
    BlockStart,
    BlockStop,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    RedactedThinking,
    SignatureDelta,
    StreamError,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolInputDelta,
    ToolUse,
    Usage,
)
from kestrel.edge.formats._anthropic_blocks import (
    Invalid,
    as_dict,
    integer,
    need,
    read_block,
    read_stop_reason,
    read_usage,
    string,
    usage_json,
    write_block,
)

_NO_USAGE = Usage()


def event_json(event: Event) -> dict[str, Any]:
    """The ``data`` JSON of ``event``; its ``type`` is also the SSE ``event:`` name.

    A plain mapping: ordering and block invariants are the renderer's job
    (``dialects/anthropic_render.py``).
    """
    match event:
        case MessageStart():
            message: dict[str, Any] = {"id": event.id, "type": "message", "role": "assistant", "content": []}
            message["model"] = event.model
            message |= {"stop_reason": None, "stop_sequence": None, "usage": usage_json(event.usage)}
            return {"type": "message_start", "message": message}
        case BlockStart():
            return {"type": "content_block_start", "index": event.index, "content_block": write_block(event.block)}
        case TextDelta():
            return _delta(event.index, {"type": "text_delta", "text": event.text})
        case ThinkingDelta():
            return _delta(event.index, {"type": "thinking_delta", "thinking": event.thinking})
        case SignatureDelta():
            return _delta(event.index, {"type": "signature_delta", "signature": event.signature})
        case ToolInputDelta():
            return _delta(event.index, {"type": "input_json_delta", "partial_json": event.partial_json})
        case BlockStop():
            return {"type": "content_block_stop", "index": event.index}
        case MessageDelta():
            delta = {"stop_reason": event.stop_reason.value, "stop_sequence": event.stop_sequence}
            return {"type": "message_delta", "delta": delta, "usage": usage_json(event.usage)}
        case MessageStop():
            return {"type": "message_stop"}
        case Ping():
            return {"type": "ping"}
        case StreamError():
            return {"type": "error", "error": {"type": event.kind, "message": event.message}}
    raise TypeError(f"not a stream event: {event!r}")


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def frame(data: dict[str, Any]) -> bytes:
    """One SSE event: ``event:`` named after the JSON's ``type``, one ``data:`` line, a blank line."""
    return b"event: " + str(data["type"]).encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def parse_event(data: dict[str, Any], usage: Usage = _NO_USAGE) -> Event | None:
    """One Anthropic stream event as a canonical event; ``None`` for what has no canonical form.

    ``usage`` is what ``message_start`` reported: ``message_delta`` usage is read over it, so the
    result is cumulative even when the upstream leaves the input counts out of the delta.
    Raises ``Invalid`` when a known event is missing a field it needs.
    """
    kind = data.get("type")
    if kind == "message_start":
        message = as_dict(need(data, "message", ""), "message")
        model = string(message, "model", "message", "")
        return MessageStart(string(message, "id", "message"), model, read_usage(message.get("usage")))
    if kind == "content_block_start":
        block = as_dict(need(data, "content_block", ""), "content_block")
        if block.get("type") not in ("text", "thinking", "redacted_thinking", "tool_use"):
            return None
        parsed = read_block(block, "content_block")
        if not isinstance(parsed, Text | Thinking | ToolUse | RedactedThinking):
            return None
        return BlockStart(_index(data), parsed)
    if kind == "content_block_delta":
        return _parse_delta(_index(data), as_dict(need(data, "delta", ""), "delta"))
    if kind == "content_block_stop":
        return BlockStop(_index(data))
    if kind == "message_delta":
        delta = as_dict(data.get("delta") or {}, "delta")
        sequence = delta.get("stop_sequence")
        stop_sequence = sequence if isinstance(sequence, str) else None
        cumulative = read_usage(data.get("usage"), usage)
        return MessageDelta(read_stop_reason(delta.get("stop_reason")), stop_sequence, cumulative)
    if kind == "message_stop":
        return MessageStop()
    if kind == "ping":
        return Ping()
    if kind == "error":
        raw_error = data.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        return StreamError(str(error.get("type") or "api_error"), str(error.get("message") or "upstream error"))
    return None  # a new event type: clients must tolerate those, so must we


def _parse_delta(index: int, delta: dict[str, Any]) -> Event | None:
    kind = delta.get("type")
    if kind == "text_delta":
        return TextDelta(index, string(delta, "text", "delta"))
    if kind == "thinking_delta":
        return ThinkingDelta(index, string(delta, "thinking", "delta"))
    if kind == "signature_delta":
        return SignatureDelta(index, string(delta, "signature", "delta"))
    if kind == "input_json_delta":
        return ToolInputDelta(index, string(delta, "partial_json", "delta"))
    return None  # citations_delta and future kinds have no canonical event


def _index(data: dict[str, Any]) -> int:
    index = integer(data, "index", "")
    if index is None:
        raise Invalid("index", "Field required")
    return index
