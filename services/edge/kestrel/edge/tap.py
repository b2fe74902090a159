"""Reading usage, stop reason and errors from responses the edge relays without changing.

The tap only parses the few events that carry what it needs (``message_start``,
``message_delta``, ``error``); content deltas, the bulk of a stream, are skipped by a byte search.
"""

from __future__ import annotations

from typing import Any

import orjson

from kestrel.common.events import RequestEvent
from kestrel.edge.sse import iter_events
from kestrel.scheduler.contract import Usage


class UsageTap:
    __slots__ = (
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "error_message",
        "error_type",
        "input_tokens",
        "model",
        "output_tokens",
        "stop_reason",
    )

    def __init__(self) -> None:
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_creation_input_tokens = 0
        self.cache_read_input_tokens = 0
        self.stop_reason = ""
        self.model = ""
        self.error_type = ""
        self.error_message = ""

    def feed_frames(self, frames: bytes) -> None:
        """Feed whole SSE events (as cut by ``FrameCutter``)."""
        if b"message_start" not in frames and b"message_delta" not in frames and b"error" not in frames:
            return
        for name, data in iter_events(frames):
            if name not in ("message_start", "message_delta", "error"):
                continue
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if name == "message_start":
                message = event.get("message") or {}
                self.model = message.get("model") or self.model
                self._usage(message.get("usage"))
            elif name == "message_delta":
                self._usage(event.get("usage"))
                self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            else:
                self.error(event)

    def feed_message(self, body: bytes) -> None:
        """Feed a whole non-streaming response body (a message or an error)."""
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if not isinstance(message, dict):
            return
        if message.get("type") == "error":
            self.error(message)
            return
        if "type" not in message:  # a count_tokens answer: {"input_tokens": N}
            self._usage(message)
            return
        self.model = message.get("model") or self.model
        self.stop_reason = message.get("stop_reason") or ""
        self._usage(message.get("usage"))

    def error(self, envelope: dict[str, Any]) -> None:
        err = envelope.get("error")
        if isinstance(err, dict):
            self.error_type = str(err.get("type", ""))
            self.error_message = str(err.get("message", ""))

    def _usage(self, usage: Any) -> None:
        # Stream usage is cumulative: later values replace earlier ones when present.
        if not isinstance(usage, dict):
            return
        for field in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            value = usage.get(field)
            if isinstance(value, int):
                setattr(self, field, value)

    def usage(self) -> Usage:
        return Usage(
            self.input_tokens, self.output_tokens, self.cache_creation_input_tokens, self.cache_read_input_tokens
        )

    def record(self, event: RequestEvent) -> None:
        event.input_tokens = self.input_tokens
        event.output_tokens = self.output_tokens
        event.cache_creation_input_tokens = self.cache_creation_input_tokens
        event.cache_read_input_tokens = self.cache_read_input_tokens
        event.stop_reason = self.stop_reason
        if self.error_type and not event.error_type:
            event.error_type = self.error_type
            event.error_message = self.error_message
