"""The provider seam, without I/O: encode a canonical request, decode what the upstream answers.

The attempt loop owns the sockets (``upstream.py``); a ``Codec`` only turns a ``Request`` into the
path, headers and body for its API, and turns the answer (a whole body, or SSE bytes fed as they
arrive) into canonical ``Response`` / ``Event`` values. That keeps every codec testable with recorded
bytes and no server, chunk boundaries included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kestrel.edge.canonical import Event, Request, Response


@dataclass(frozen=True, slots=True)
class Encoded:
    """An upstream HTTP request, minus the account's credential and base URL."""

    path: str
    """Path and query string, e.g. ``/v1/chat/completions`` or ``/v1beta/models/x:streamGenerateContent?alt=sse``."""
    headers: tuple[tuple[bytes, bytes], ...]
    """Headers the API needs besides the credential (content-type, anthropic-version …)."""
    body: bytes


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    """An error answer decoded into Anthropic's vocabulary (dialects map it to theirs)."""

    status: int
    kind: str
    """Anthropic ``error.type``: ``invalid_request_error``, ``rate_limit_error``, ``overloaded_error`` …"""
    message: str
    retry_after_s: float = 0.0
    """From headers or the body (Gemini ``RetryInfo``); 0 when absent."""


class StreamDecoder(Protocol):
    """Turns an upstream stream into canonical events; feed bytes in any chunking."""

    def feed(self, chunk: bytes) -> list[Event]: ...

    def finish(self) -> list[Event]:
        """The stream ended: flush, and close what the upstream left open (or report the cut)."""
        ...


class Codec(Protocol):
    kind: str
    """``anthropic``, ``openai`` or ``gemini``."""

    def encode(self, request: Request, model: str) -> Encoded:
        """The upstream request for ``request`` asking for ``model`` (the upstream's own name)."""
        ...

    def decode_response(self, body: bytes) -> Response: ...

    def stream_decoder(self, request: Request) -> StreamDecoder: ...

    def decode_error(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> UpstreamFailure: ...
