"""Injected failures: what each kind does and how ``POST /_sim/faults`` describes one.

Kinds and where they strike (each queued fault is used by exactly one generation request, of any
API, that passed auth and validation; it does not count against rate limits). The Anthropic form
is described; OpenAI and Gemini answer in their own form, noted after each kind:

* ``429`` / ``529`` / ``500``: before any header, with the real error body
  (``rate_limit_error`` / ``overloaded_error`` / ``api_error``) and ``x-should-retry: true``;
  a 429 also carries ``retry-after`` (``retry_after`` seconds, default 1). OpenAI: 429
  ``rate_limit_exceeded`` with ``retry-after``, 503 and 500 ``server_error``. Gemini: 429
  ``RESOURCE_EXHAUSTED`` with a ``RetryInfo`` detail (no header), 503 ``UNAVAILABLE``, 500
  ``INTERNAL``.
* ``stall``: a stream sends ``after_events`` SSE events, then goes silent for ``stall_s``
  seconds, then finishes normally; a non-streaming answer is delayed by ``stall_s``. (All APIs;
  an OpenAI or Gemini "event" is one chunk.)
* ``reset``: a stream sends ``after_events`` events, then the connection is closed without
  the chunked terminator (the client sees an incomplete body); a non-streaming answer sends
  its headers and half of its body, then closes. (All APIs.)
* ``error_event``: a stream sends ``after_events`` events, then ``event: error`` with an
  ``overloaded_error`` and ends without ``message_stop`` (Anthropic's mid-stream failure); a
  non-streaming request gets a 529 instead. OpenAI: a ``data: {"error": {...}}`` frame, no
  ``[DONE]`` (503 without a stream). Gemini: the stream just ends, with no ``finishReason`` or
  final usage (503 without a stream).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KINDS = ("429", "529", "500", "stall", "reset", "error_event")
_BEFORE_HEADERS = {
    "429": (429, "rate_limit_error"),
    "529": (529, "overloaded_error"),
    "500": (500, "api_error"),
}
MESSAGES = {
    "rate_limit_error": (
        "Number of request tokens has exceeded your per-minute rate limit "
        "(https://docs.claude.com/en/api/rate-limits); see the response headers for current "
        "usage. Please reduce the prompt length or the maximum tokens requested, or try again "
        "later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss "
        "your options for a rate limit increase."
    ),
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
}


class FaultError(ValueError):
    """A fault description the control API refuses."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One queued failure."""

    kind: str
    after_events: int = 0
    """For stream faults: SSE events sent before it strikes."""
    stall_s: float = 10.0
    """For ``stall``: how long the silence lasts."""
    retry_after: int = 1
    """For ``429``: the ``retry-after`` header."""

    def http_error(self, streaming: bool) -> tuple[int, str] | None:
        """``(status, error type)`` when the fault answers before headers, else None."""
        if self.kind in _BEFORE_HEADERS:
            return _BEFORE_HEADERS[self.kind]
        if self.kind == "error_event" and not streaming:
            return _BEFORE_HEADERS["529"]
        return None


def parse_faults(data: Any) -> tuple[str | None, list[Fault]]:
    """``{"key"?, "kind", "count"?, "after_events"?, "stall_s"?, "retry_after"?}`` -> faults."""
    if not isinstance(data, dict):
        raise FaultError("body must be a JSON object")
    kind = str(data.get("kind"))
    if kind not in KINDS:
        raise FaultError(f"kind must be one of {list(KINDS)}")
    key = data.get("key")
    if key is not None and not isinstance(key, str):
        raise FaultError("key must be a string")
    count = _number(data, "count", 1, int)
    fault = Fault(
        kind=kind,
        after_events=_number(data, "after_events", 0, int),
        stall_s=_number(data, "stall_s", 10.0, float),
        retry_after=_number(data, "retry_after", 1, int),
    )
    return key, [fault] * count


def _number(data: dict[str, Any], name: str, default: Any, kind: type) -> Any:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultError(f"{name} must be a non-negative number")
    if kind is int and value != int(value):
        raise FaultError(f"{name} must be an integer")
    return kind(value)
