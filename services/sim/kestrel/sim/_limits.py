"""Per-key rate limits over fixed windows, with Anthropic's headers and 429 wording by default.

The semantics are chosen to be exact, so a test can predict every answer:

* Each key has at most one window. It opens at the first request arriving when no window is open
  (or the previous one has ended) and lasts ``window_s``: it resets at ``start + window_s``.
  Requests refused with 429 count nowhere, but a refused request can still open a window.
* A request is admitted when all three hold (0 means unlimited):
  ``requests + 1 <= requests_per_window``;
  ``input_used + input_cost <= input_tokens_per_window`` where ``input_cost`` is the request's
  ``input_tokens + cache_creation_input_tokens`` (cache reads are free, as upstream);
  ``output_used < output_tokens_per_window`` (the output of a request is not known before it
  runs, so the budget is checked as "anything left", then charged with the actual output).
* A 429 carries ``retry-after: ceil(reset - now)`` (integer seconds, at least 1) and the
  ``anthropic-ratelimit-*`` headers. Every ``*-reset`` header is the window end rounded **up** to
  the second in RFC 3339 UTC, so neither hint is ever earlier than the real reset.
* Headers on an admitted request show the state after it, output included; other answers to a
  limited key (400, fault errors) show the state as it stands.

The windows are the same for every API a key is used on; only the headers differ. Each method
takes an optional ``style`` (a ``HeaderStyle``: limits, window and now to header list) so the
OpenAI dialect can send ``x-ratelimit-*`` and Gemini none; without one, Anthropic's family.
A ``Refusal`` carries the numbers (limit, used, requested, unit) for each API's own wording.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from kestrel.sim.config import KeyLimits

Headers = list[tuple[bytes, bytes]]


@dataclass(slots=True)
class Window:
    """Usage of one key inside its current window."""

    start: float
    """Epoch seconds of the first request of the window."""
    end: float
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


HeaderStyle = Callable[[KeyLimits, Window, float], Headers]
"""Rate-limit headers for a window at a moment (epoch seconds)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was not admitted, with everything a 429 needs."""

    message: str
    retry_after: int
    headers: Headers
    unit: str = "requests"
    """``requests``, ``input tokens`` or ``output tokens``: the budget that ran out."""
    limit: int = 0
    used: int = 0
    """What the window had already spent of that budget."""
    requested: int = 0
    """What this request asked of it (1 request, its input cost, or 0 for output)."""
    window_s: float = 60.0


class RateLimiter:
    """Fixed windows per key; the clock is injectable so unit tests need no sleeps."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, Window] = {}
        self._reset_text: tuple[int, bytes] = (-1, b"")

    def admit(self, key: str, limits: KeyLimits, input_cost: int, style: HeaderStyle | None = None) -> Refusal | None:
        """Charge one request and its input cost, or say why not (charging nothing)."""
        if not limits.limited:
            return None
        now = self._clock()
        window = self._current(key, limits, now)
        exceeded = _exceeded(limits, window, input_cost)
        if exceeded is not None:
            amount, unit, used, requested = exceeded
            retry_after = max(1, math.ceil(window.end - now))
            headers = (style or self._headers)(limits, window, now)
            message = _message(amount, unit, limits.window_s)
            return Refusal(message, retry_after, headers, unit, amount, used, requested, limits.window_s)
        window.requests += 1
        window.input_tokens += input_cost
        return None

    def charge_output(
        self, key: str, limits: KeyLimits, output_tokens: int, style: HeaderStyle | None = None
    ) -> Headers:
        """Add an admitted request's output; return the headers describing the window now."""
        if not limits.limited:
            return []
        now = self._clock()
        window = self._current(key, limits, now)
        window.output_tokens += output_tokens
        return (style or self._headers)(limits, window, now)

    def peek(self, key: str, limits: KeyLimits, style: HeaderStyle | None = None) -> Headers:
        """Headers for the window as it stands, charging nothing (for refused requests).

        With no open window they show full budgets and a reset one window from now, without
        opening one: only requests that reach admission open windows.
        """
        if not limits.limited:
            return []
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now >= window.end:
            window = Window(start=now, end=now + limits.window_s)
        return (style or self._headers)(limits, window, now)

    def state(self, key: str, limits: KeyLimits | None) -> dict[str, object]:
        """The key's window as JSON for ``GET /_sim/keys/{key}`` (``window`` null when none)."""
        window = self._windows.get(key)
        if window is not None and self._clock() >= window.end:
            window = None
        state: dict[str, object] = {"key": key, "known": limits is not None, "window": None}
        if limits is not None:
            state["limits"] = {
                "requests_per_window": limits.requests_per_window,
                "input_tokens_per_window": limits.input_tokens_per_window,
                "output_tokens_per_window": limits.output_tokens_per_window,
                "window_s": limits.window_s,
            }
        if window is not None:
            state["window"] = {
                "start": window.start,
                "reset_at": window.end,
                "requests": window.requests,
                "input_tokens": window.input_tokens,
                "output_tokens": window.output_tokens,
            }
        return state

    def forget(self, key: str) -> None:
        self._windows.pop(key, None)

    def clear(self) -> None:
        self._windows.clear()

    def _current(self, key: str, limits: KeyLimits, now: float) -> Window:
        window = self._windows.get(key)
        if window is None or now >= window.end:
            window = self._windows[key] = Window(start=now, end=now + limits.window_s)
        return window

    def _headers(self, limits: KeyLimits, window: Window, now: float) -> Headers:
        """Anthropic's ``anthropic-ratelimit-*`` family (the default style)."""
        reset = self._reset_header(window.end)
        headers: Headers = []
        families = (
            (b"requests", limits.requests_per_window, window.requests),
            (b"input-tokens", limits.input_tokens_per_window, window.input_tokens),
            (b"output-tokens", limits.output_tokens_per_window, window.output_tokens),
        )
        token_limit = token_remaining = 0
        for name, limit, used in families:
            if not limit:
                continue
            remaining = max(0, limit - used)
            if name != b"requests":
                token_limit += limit
                token_remaining += remaining
            headers += _family(name, limit, remaining, reset)
        if token_limit:
            headers += _family(b"tokens", token_limit, token_remaining, reset)
        return headers

    def _reset_header(self, end: float) -> bytes:
        second = math.ceil(end)
        if self._reset_text[0] != second:  # one strftime per second, not per request
            text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)).encode()
            self._reset_text = (second, text)
        return self._reset_text[1]


def _exceeded(limits: KeyLimits, window: Window, input_cost: int) -> tuple[int, str, int, int] | None:
    """``(limit, unit, used, requested)`` of the first budget the request would break."""
    if limits.requests_per_window and window.requests + 1 > limits.requests_per_window:
        return limits.requests_per_window, "requests", window.requests, 1
    if limits.input_tokens_per_window and window.input_tokens + input_cost > limits.input_tokens_per_window:
        return limits.input_tokens_per_window, "input tokens", window.input_tokens, input_cost
    if limits.output_tokens_per_window and window.output_tokens >= limits.output_tokens_per_window:
        return limits.output_tokens_per_window, "output tokens", window.output_tokens, 0
    return None


def _family(name: bytes, limit: int, remaining: int, reset: bytes) -> Headers:
    prefix = b"anthropic-ratelimit-" + name
    return [
        (prefix + b"-limit", str(limit).encode()),
        (prefix + b"-remaining", str(remaining).encode()),
        (prefix + b"-reset", reset),
    ]


def _message(amount: int, unit: str, window_s: float) -> str:
    period = "per minute" if window_s == 60 else f"per {window_s:g} seconds"
    return (
        f"This request would exceed the rate limit for your organization (kestrel-sim) of "
        f"{amount:,} {unit} {period}. For details, refer to: "
        "https://docs.claude.com/en/api/rate-limits. You can see the response headers for current "
        "usage. Please reduce the prompt length or the maximum tokens requested, or try again "
        "later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss "
        "your options for a rate limit increase."
    )
