"""The client dialects as one small interface: what the pipeline needs from each.

A ``ClientDialect`` reads its requests into the canonical model, and writes canonical answers,
streams and errors back in its own shapes. ``anthropic`` is what Claude Code speaks; ``openai`` is
chat completions.
"""

from __future__ import annotations

from typing import Protocol

import orjson

from kestrel.edge.canonical import Event, Request, Response, StreamError, Usage
from kestrel.edge.dialects import anthropic_render
from kestrel.edge.dialects import openai as openai_dialect
from kestrel.edge.dialects.anthropic import error_event
from kestrel.edge.formats import anthropic as anthropic_format
from kestrel.edge.providers.openai import estimate_input_tokens


class StreamRenderer(Protocol):
    def render(self, event: Event) -> bytes: ...

    def finish(self) -> bytes:
        """Whatever must still be written when the events ran out."""
        ...


class ClientDialect(Protocol):
    name: str
    """Equal to a provider kind when that provider speaks this dialect (passthrough)."""

    def parse(self, body: bytes) -> Request: ...

    def render_response(self, response: Response, model: str) -> bytes: ...

    def stream_renderer(self, request: Request, model: str) -> StreamRenderer: ...

    def error_body(self, status: int, kind: str, message: str, request_id: str) -> tuple[int, bytes]: ...

    def error_frame(self, kind: str, message: str) -> bytes:
        """An error written into a stream that already started."""
        ...


class AnthropicClient:
    name = "anthropic"

    def parse(self, body: bytes) -> Request:
        return anthropic_format.parse_request(body)

    def render_response(self, response: Response, model: str) -> bytes:
        return anthropic_render.render_response(response)

    def stream_renderer(self, request: Request, model: str) -> StreamRenderer:
        estimate = Usage(input_tokens=estimate_input_tokens(request))
        return anthropic_render.AnthropicStreamRenderer(model=model, estimate=estimate)

    def error_body(self, status: int, kind: str, message: str, request_id: str) -> tuple[int, bytes]:
        body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
        return status, orjson.dumps(body)

    def error_frame(self, kind: str, message: str) -> bytes:
        return error_event(kind, message)


class _OpenAIRenderer:
    __slots__ = ("_inner",)

    def __init__(self, inner: openai_dialect.OpenAIStreamRenderer) -> None:
        self._inner = inner

    def render(self, event: Event) -> bytes:
        return self._inner.render(event)

    def finish(self) -> bytes:
        if self._inner.closed:
            return b""
        return self._inner.render(StreamError("api_error", "upstream stream ended before the answer was complete"))


class OpenAIClient:
    name = "openai"

    def parse(self, body: bytes) -> Request:
        return openai_dialect.parse_request(body)

    def render_response(self, response: Response, model: str) -> bytes:
        return openai_dialect.render_response(response, model)

    def stream_renderer(self, request: Request, model: str) -> StreamRenderer:
        return _OpenAIRenderer(openai_dialect.OpenAIStreamRenderer(model, request.include_usage))

    def error_body(self, status: int, kind: str, message: str, request_id: str) -> tuple[int, bytes]:
        return openai_dialect.render_error(status, kind, message)

    def error_frame(self, kind: str, message: str) -> bytes:
        return b"data: " + orjson.dumps({"error": openai_dialect.error_object(kind, message)}) + b"\n\n"


ANTHROPIC = AnthropicClient()
OPENAI = OpenAIClient()
