"""How one upstream stream becomes the client's stream, and what is recorded from it.

``PassthroughPipe`` forwards the upstream's bytes untouched, whole events at a time, and only taps
usage and errors. ``TranslatedPipe`` decodes the upstream's API into canonical events and renders
them in the client's dialect. The relay treats both the same.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from kestrel.common.events import RequestEvent
from kestrel.edge.canonical import (
    BlockStart,
    Event,
    MessageDelta,
    MessageStart,
    Response,
    StreamError,
    TextDelta,
    ThinkingDelta,
    ToolInputDelta,
    Usage,
)
from kestrel.edge.dialects.clients import StreamRenderer
from kestrel.edge.providers.base import StreamDecoder
from kestrel.edge.sse import FrameCutter, iter_events
from kestrel.edge.tap import UsageTap
from kestrel.scheduler.contract import Usage as LeaseUsage

_CONTENT = (BlockStart, TextDelta, ThinkingDelta, ToolInputDelta)


class Pipe(Protocol):
    def feed(self, chunk: bytes) -> bytes:
        """Bytes for the client from one upstream chunk (often nothing yet)."""
        ...

    def finish(self) -> bytes:
        """The upstream ended: whatever is left to send."""
        ...

    def interrupted(self, message: str) -> bytes:
        """The upstream broke mid-stream: an error in the client's dialect, and the end."""
        ...

    def failed_early(self) -> str:
        """The upstream's error kind when its stream failed before any content, else ``""``."""
        ...

    def usage(self) -> LeaseUsage: ...

    def record(self, event: RequestEvent) -> None: ...


class PassthroughPipe:
    """Upstream SSE relayed as is, cut at event boundaries; usage read from Anthropic or OpenAI frames."""

    def __init__(self, dialect_name: str, error_frame: Any) -> None:
        self._cutter = FrameCutter()
        self._tap = UsageTap() if dialect_name == "anthropic" else OpenAIUsageTap()
        self._error_frame = error_frame
        self._started = False
        self._early_error = ""

    def feed(self, chunk: bytes) -> bytes:
        frames = self._cutter.feed(chunk)
        if frames:
            if not self._started:
                self._early_error = _early_error(frames)
                self._started = True
            self._tap.feed_frames(frames)
        return frames

    def finish(self) -> bytes:
        """End the relay; an upstream that stopped mid-event gets an error instead of half a frame."""
        tail = self._cutter.pending
        if not tail:
            return b""
        if tail.endswith(b"\n") or tail.rstrip() == b"data: [DONE]":
            # Whole lines, only the blank line that ends the event missing (``data: [DONE]`` included).
            whole = tail.rstrip(b"\r\n") + b"\n\n"
            self._tap.feed_frames(whole)
            return whole
        return self.interrupted("upstream stream ended in the middle of an event")

    def interrupted(self, message: str) -> bytes:
        self._tap.error_type, self._tap.error_message = "api_error", message
        return self._error_frame("api_error", message)

    def failed_early(self) -> str:
        return self._early_error

    def usage(self) -> LeaseUsage:
        return self._tap.usage()

    def record(self, event: RequestEvent) -> None:
        self._tap.record(event)
        if self._tap.model:
            event.served_model = self._tap.model


def _early_error(frames: bytes) -> str:
    """An ``event: error`` (or OpenAI error frame) before the first content means no stream at all."""
    for name, data in iter_events(frames):
        if name == "message_start" or data.startswith(b'{"id"'):
            return ""
        if name == "error" or data.startswith(b'{"error"'):
            try:
                err = orjson.loads(data).get("error", {})
            except orjson.JSONDecodeError:
                return "api_error"
            return str(err.get("type") or "api_error")
    return ""


class TranslatedPipe:
    """Upstream API → canonical events → the client's dialect."""

    def __init__(self, decoder: StreamDecoder, renderer: StreamRenderer) -> None:
        self._decoder = decoder
        self._renderer = renderer
        self._tap = EventTap()

    def feed(self, chunk: bytes) -> bytes:
        return self._render(self._decoder.feed(chunk))

    def finish(self) -> bytes:
        return self._render(self._decoder.finish()) + self._renderer.finish()

    def interrupted(self, message: str) -> bytes:
        return self._render([StreamError("api_error", message)])

    def failed_early(self) -> str:
        return self._tap.early_error

    def usage(self) -> LeaseUsage:
        return self._tap.usage()

    def record(self, event: RequestEvent) -> None:
        self._tap.record(event)

    def _render(self, events: list[Event]) -> bytes:
        if not events:
            return b""
        self._tap.observe(events)
        return b"".join(self._renderer.render(e) for e in events)


class EventTap:
    """Usage, stop reason and errors as canonical events report them."""

    __slots__ = ("content_seen", "early_error", "error", "model", "stop_reason", "usage_seen")

    def __init__(self) -> None:
        self.usage_seen = Usage()
        self.stop_reason = ""
        self.model = ""
        self.error: StreamError | None = None
        self.content_seen = False
        self.early_error = ""

    def observe(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, _CONTENT):
                self.content_seen = True
            elif isinstance(event, MessageStart):
                self.usage_seen, self.model = event.usage, event.model or self.model
            elif isinstance(event, MessageDelta):
                self.stop_reason = event.stop_reason.value
                self.usage_seen = _merge(self.usage_seen, event.usage)
            elif isinstance(event, StreamError):
                self.error = event
                if not self.content_seen:
                    self.early_error = event.kind

    def response(self, response: Response) -> None:
        self.usage_seen, self.model, self.stop_reason = response.usage, response.model, response.stop_reason.value

    def usage(self) -> LeaseUsage:
        u = self.usage_seen
        return LeaseUsage(u.input_tokens, u.output_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens)

    def record(self, event: RequestEvent) -> None:
        u = self.usage_seen
        event.input_tokens, event.output_tokens = u.input_tokens, u.output_tokens
        event.cache_read_input_tokens = u.cache_read_input_tokens
        event.cache_creation_input_tokens = u.cache_creation_input_tokens
        event.stop_reason = self.stop_reason
        if self.error is not None and not event.error_type:
            event.error_type, event.error_message = self.error.kind, self.error.message


def _merge(start: Usage, delta: Usage) -> Usage:
    return Usage(
        input_tokens=delta.input_tokens or start.input_tokens,
        output_tokens=delta.output_tokens or start.output_tokens,
        cache_read_input_tokens=delta.cache_read_input_tokens or start.cache_read_input_tokens,
        cache_creation_input_tokens=delta.cache_creation_input_tokens or start.cache_creation_input_tokens,
        reasoning_tokens=delta.reasoning_tokens or start.reasoning_tokens,
    )


class OpenAIUsageTap(UsageTap):
    """``UsageTap`` for OpenAI chat completions passed through: usage sits in the last chunk or body."""

    def feed_frames(self, frames: bytes) -> None:
        if b'"usage":{' not in frames and b'"error"' not in frames:
            return
        for _, data in iter_events(frames):
            if data == b"[DONE]":
                continue
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            self._chat(chunk)

    def feed_message(self, body: bytes) -> None:
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if isinstance(message, dict):
            self._chat(message)

    def _chat(self, chunk: dict[str, Any]) -> None:
        if isinstance(chunk.get("error"), dict):
            self.error(chunk)
            return
        self.model = chunk.get("model") or self.model
        for choice in chunk.get("choices") or ():
            if choice.get("finish_reason"):
                self.stop_reason = choice["finish_reason"]
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
            self.input_tokens = int(usage.get("prompt_tokens") or 0) - int(cached)
            self.cache_read_input_tokens = int(cached)
            self.output_tokens = int(usage.get("completion_tokens") or 0)
