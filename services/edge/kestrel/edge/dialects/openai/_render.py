"""Writing canonical answers as OpenAI chat completions: bodies, SSE chunks, errors, model lists.

This is PROTOCOLS.md B2, B3 and the reverse half of C4. The stream renderer numbers tool calls
densely (``tool_calls[].index`` is 0, 1, 2 … over calls, not the canonical block index, which also
counts text and thinking blocks) and puts argument fragments into ``arguments`` exactly as they came,
so nothing is parsed or re-escaped on the way. Usage goes back in OpenAI's arithmetic:
``prompt_tokens`` includes cached tokens, ``cached_tokens`` is the cache-read part.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from kestrel.edge.canonical import (
    BlockStart,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    Response,
    StopReason,
    StreamError,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolInputDelta,
    ToolUse,
    Usage,
)

DONE = b"data: [DONE]\n\n"
PING = b": ping\n\n"
"""An SSE comment: keeps idle connections alive; every SSE parser (the SDKs' included) skips it."""

_FINISH = {
    StopReason.TOOL_USE: "tool_calls",
    StopReason.MAX_TOKENS: "length",
    StopReason.CONTEXT_WINDOW: "length",
    StopReason.REFUSAL: "content_filter",
}
_ERRORS = {
    "invalid_request_error": ("invalid_request_error", None),
    "authentication_error": ("invalid_request_error", "invalid_api_key"),
    "permission_error": ("invalid_request_error", "permission_denied"),
    "not_found_error": ("invalid_request_error", "not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit_error": ("rate_limit_exceeded", "rate_limit_exceeded"),
    "billing_error": ("insufficient_quota", "insufficient_quota"),
    "overloaded_error": ("server_error", "overloaded"),
    "timeout_error": ("server_error", "timeout"),
}
"""Anthropic ``error.type`` → OpenAI (``type``, ``code``); anything else is a ``server_error``."""


def finish_reason(stop: StopReason, *, tool_called: bool = False) -> str:
    """C1, reversed; a turn that called tools reports ``tool_calls`` whatever else it says."""
    if stop in _FINISH:
        return _FINISH[stop]
    return "tool_calls" if tool_called else "stop"


def render_usage(usage: Usage) -> dict[str, Any]:
    prompt = usage.prompt_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def chat_id(response_id: str) -> str:
    """OpenAI ids start ``chatcmpl-``; the upstream's id is kept after the prefix for tracing."""
    if not response_id:
        return "chatcmpl-" + uuid.uuid4().hex
    return response_id if response_id.startswith("chatcmpl-") else "chatcmpl-" + response_id


def render_response(response: Response, model: str, *, created: int | None = None) -> bytes:
    """A ``chat.completion`` body: content null when only tools were called, arguments as JSON text."""
    text = "".join(b.text for b in response.content if isinstance(b, Text))
    reasoning = "".join(b.thinking for b in response.content if isinstance(b, Thinking))
    calls = [
        {"id": b.id, "type": "function", "function": {"name": b.name, "arguments": orjson.dumps(b.input).decode()}}
        for b in response.content
        if isinstance(b, ToolUse)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if reasoning:
        message["reasoning_content"] = reasoning  # non-standard (DeepSeek style); SDKs keep it as an extra
    choice = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(response.stop_reason, tool_called=bool(calls)),
    }
    return orjson.dumps(
        {
            "id": chat_id(response.id),
            "object": "chat.completion",
            "created": int(time.time()) if created is None else created,
            "model": model,
            "choices": [choice],
            "usage": render_usage(response.usage),
        }
    )


def error_object(kind: str, message: str) -> dict[str, Any]:
    etype, code = _ERRORS.get(kind, ("server_error", None))
    return {"message": message, "type": etype, "param": None, "code": code}


def render_error(status: int, kind: str, message: str) -> tuple[int, bytes]:
    """(status, body) in OpenAI's envelope; 529 becomes 503, which OpenAI clients know to retry."""
    return (503 if status == 529 else status), orjson.dumps({"error": error_object(kind, message)})


def render_models(ids: Iterable[str], *, created: int = 0, owned_by: str = "kestrel") -> bytes:
    """``GET /v1/models`` (B5)."""
    data = [{"id": i, "object": "model", "created": created, "owned_by": owned_by} for i in ids]
    return orjson.dumps({"object": "list", "data": data})


class OpenAIStreamRenderer:
    """Canonical events → ``data: {chunk}`` frames, ending with the usage chunk (if asked) and ``[DONE]``.

    Feed every event to ``render`` and send what it returns (often nothing). Every chunk repeats the
    same id, created and model; exactly one chunk carries ``finish_reason``.
    """

    def __init__(self, model: str, include_usage: bool, *, id: str = "", created: int | None = None) -> None:
        self._model = model
        self._include_usage = include_usage
        self._id = chat_id(id) if id else ""
        self._created = int(time.time()) if created is None else created
        self._slots: dict[int, int] = {}
        """Canonical block index → dense tool-call index."""
        self._started = False
        self._finished = False
        self._closed = False
        self._usage = Usage()

    @property
    def closed(self) -> bool:
        """True once ``[DONE]`` or an error frame was written; later events render to nothing."""
        return self._closed

    def render(self, event: Event) -> bytes:
        if self._closed:
            return b""
        if isinstance(event, StreamError):
            self._closed = True
            return b"data: " + orjson.dumps({"error": error_object(event.kind, event.message)}) + b"\n\n"
        if isinstance(event, Ping):
            return PING
        out = b""
        if not self._started:
            if isinstance(event, MessageStart):
                self._id = self._id or chat_id(event.id)
                self._usage = event.usage
            self._started = True
            out = self._chunk({"role": "assistant", "content": ""})
        if isinstance(event, TextDelta) and event.text:
            out += self._chunk({"content": event.text})
        elif isinstance(event, ThinkingDelta) and event.thinking:
            out += self._chunk({"reasoning_content": event.thinking})
        elif isinstance(event, BlockStart) and isinstance(event.block, ToolUse):
            out += self._tool_start(event.index, event.block)
        elif isinstance(event, ToolInputDelta) and event.partial_json and event.index in self._slots:
            slot = self._slots[event.index]
            out += self._chunk({"tool_calls": [{"index": slot, "function": {"arguments": event.partial_json}}]})
        elif isinstance(event, MessageDelta):
            out += self._finish(event.stop_reason, event.usage)
        elif isinstance(event, MessageStop):
            out += self._finish(StopReason.END_TURN, self._usage)
            if self._include_usage:
                out += self._frame({"choices": [], "usage": render_usage(self._usage)})
            self._closed = True
            out += DONE
        return out

    def render_all(self, events: Iterable[Event]) -> bytes:
        return b"".join(self.render(e) for e in events)

    def _tool_start(self, index: int, block: ToolUse) -> bytes:
        slot = self._slots[index] = len(self._slots)
        arguments = orjson.dumps(block.input).decode() if block.input else ""
        call = {
            "index": slot,
            "id": block.id,
            "type": "function",
            "function": {"name": block.name, "arguments": arguments},
        }
        return self._chunk({"tool_calls": [call]})

    def _finish(self, stop: StopReason, usage: Usage) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        self._usage = usage
        reason = finish_reason(stop, tool_called=bool(self._slots))
        return self._chunk({}, reason)

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self._frame({"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    def _frame(self, fields: dict[str, Any]) -> bytes:
        if not self._id:
            self._id = chat_id("")
        chunk = {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model}
        chunk.update(fields)
        if self._include_usage and "usage" not in chunk:
            chunk["usage"] = None
        return b"data: " + orjson.dumps(chunk) + b"\n\n"
