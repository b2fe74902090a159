"""Serving a non-streaming request from an upstream stream (``edge.demote_non_streaming``).

Long non-streaming calls can hit idle timeouts between proxies; asking the upstream for a stream
and reassembling it keeps bytes moving. Off by default: the body changes (``stream: true``).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from kestrel.edge.sse import iter_events

_STREAM_FALSE = re.compile(rb'"stream"\s*:\s*false')
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "overloaded_error": 529,
}


def force_stream(body: bytes) -> bytes:
    """The same request body asking for a stream."""
    matches = _STREAM_FALSE.findall(body)
    if len(matches) == 1:
        return _STREAM_FALSE.sub(b'"stream":true', body, count=1)
    if b'"stream"' not in body:
        start = body.index(b"{") + 1
        return body[:start] + b'"stream":true,' + body[start:]
    data = orjson.loads(body)
    data["stream"] = True
    return orjson.dumps(data)


def assemble_message(stream: bytes) -> tuple[bytes, int]:
    """Build the non-streaming message (or error) a stream describes; returns ``(body, status)``."""
    message: dict[str, Any] | None = None
    partial_json: dict[int, list[str]] = {}
    for name, data in iter_events(stream):
        if name not in (
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "error",
        ):
            continue
        event = orjson.loads(data)
        if name == "error":
            kind = event.get("error", {}).get("type", "api_error")
            return data, _ERROR_STATUS.get(kind, 500)
        if name == "message_start":
            message = event["message"]
            message["content"] = []
            continue
        if message is None:
            continue
        if name == "content_block_start":
            message["content"].append(event["content_block"])
        elif name == "content_block_delta":
            _apply_delta(message["content"][event["index"]], event["delta"], partial_json, event["index"])
        elif name == "content_block_stop":
            pieces = partial_json.pop(event["index"], None)
            if pieces is not None:
                joined = "".join(pieces)
                message["content"][event["index"]]["input"] = orjson.loads(joined) if joined else {}
        elif name == "message_delta":
            message.update(event.get("delta", {}))
            message["usage"] = {
                **message.get("usage", {}),
                **{k: v for k, v in event.get("usage", {}).items() if v is not None},
            }
    if message is None:
        return (
            b'{"type":"error","error":{"type":"api_error","message":"upstream stream ended before message_start"}}',
            502,
        )
    return orjson.dumps(message), 200


def _apply_delta(block: dict[str, Any], delta: dict[str, Any], partial: dict[int, list[str]], index: int) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + delta["text"]
    elif kind == "input_json_delta":
        partial.setdefault(index, []).append(delta["partial_json"])
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + delta["thinking"]
    elif kind == "signature_delta":
        block["signature"] = delta["signature"]
    elif kind == "citations_delta":
        block.setdefault("citations", []).append(delta["citation"])
