"""Turning stored request events into text for ``kestrel logs``: an aligned table, or JSON lines.

Pure functions of the events and a terminal width, so they are tested without a database or a
terminal. The table is meant to be read at a glance while an agent runs: one line per request,
the columns a person scans for (status, model swaps, retries, tokens, errors) sized to their
content, and the free-text columns shrunk first when the terminal is narrow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

import orjson

from kestrel.common.events import Attempt, RequestEvent

_SEP = "  "
_ELLIPSIS = "…"
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class _Column:
    header: str
    cell: Callable[[RequestEvent], str]
    right: bool = False
    """Right-align (numbers)."""
    max_width: int = 0
    """Widest this column gets; 0 for no cap."""
    min_width: int = 0
    """How far it may shrink on a narrow terminal; 0 means it never shrinks."""


def format_time(started_at_ms: int, tz: tzinfo | None = None) -> str:
    """Local wall-clock ``HH:MM:SS``; ``tz`` is for tests that need a fixed zone."""
    return datetime.fromtimestamp(started_at_ms / 1000, tz).strftime("%H:%M:%S")


def format_count(n: int) -> str:
    """Token counts: exact below 10,000, then ``12.3k`` / ``4.56M`` to keep columns narrow."""
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.2f}M"


def format_ms(ms: float) -> str:
    return f"{ms:.0f}" if ms > 0 else "-"


def format_attempts(attempts: Sequence[Attempt]) -> str:
    """``1`` for the common case; ``3 (429,429,200)`` when the gateway had to retry."""
    if len(attempts) <= 1:
        return str(len(attempts))
    statuses = ",".join(str(a.status) if a.status else (a.error or "-") for a in attempts)
    return f"{len(attempts)} ({statuses})"


def format_model(event: RequestEvent) -> str:
    """``requested→served`` when routing or fallback changed the model, else the one name."""
    requested, served = event.requested_model, event.served_model
    if requested and served and requested != served:
        return f"{requested}→{served}"
    return requested or served or "-"


def format_request(event: RequestEvent) -> str:
    """``POST messages``: the query string and the ``/v1/`` every API path shares are noise."""
    path = event.path.split("?", 1)[0]
    path = path.removeprefix("/v1/")
    return f"{event.method} {path}".strip() or "-"


def format_error(event: RequestEvent) -> str:
    message = _WHITESPACE.sub(" ", event.error_message).strip()
    if event.error_type and message:
        return f"{event.error_type}: {message}"
    return event.error_type or message


def _columns(tz: tzinfo | None) -> list[_Column]:
    return [
        _Column("TIME", lambda e: format_time(e.started_at_ms, tz)),
        _Column("STATUS", lambda e: str(e.status) if e.status else "-", right=True),
        _Column("REQUEST", format_request, max_width=32, min_width=12),
        _Column("MODEL", format_model, max_width=48, min_width=16),
        _Column("ACCOUNT", lambda e: e.account_id or "-", max_width=24, min_width=8),
        _Column("DUR ms", lambda e: format_ms(e.duration_ms), right=True),
        _Column("TTFB ms", lambda e: format_ms(e.ttfb_ms), right=True),
        _Column("IN", lambda e: format_count(e.input_tokens), right=True),
        _Column("OUT", lambda e: format_count(e.output_tokens), right=True),
        _Column("CACHE-R", lambda e: format_count(e.cache_read_input_tokens), right=True),
        _Column("CACHE-W", lambda e: format_count(e.cache_creation_input_tokens), right=True),
        _Column("ATTEMPTS", lambda e: format_attempts(e.attempts), max_width=32, min_width=10),
        _Column("KEY", lambda e: e.client_key_id or "-", max_width=20, min_width=6),
        # The error takes whatever width is left; it is the column most often long.
        _Column("ERROR", format_error, min_width=12),
    ]


def render_table(
    events: Sequence[RequestEvent], width: int = 160, *, tz: tzinfo | None = None
) -> str:
    """An aligned table, one line per event in the order given, fitted to ``width`` if possible.

    Capped columns are first cut to their cap, then the shrinkable ones are narrowed, widest
    first, down to their minimum; the error column gets what remains. Cut cells end in ``…``.
    """
    if not events:
        return "no requests recorded\n"
    columns = _columns(tz)
    cells = [[col.cell(e) for col in columns] for e in events]
    widths = []
    for i, col in enumerate(columns):
        natural = max(len(col.header), *(len(row[i]) for row in cells))
        widths.append(min(natural, col.max_width) if col.max_width else natural)
    _fit_widths(columns, widths, width)
    lines = [_line([c.header for c in columns], columns, widths)]
    lines += [_line(row, columns, widths) for row in cells]
    return "\n".join(lines) + "\n"


def render_json_lines(events: Sequence[RequestEvent]) -> str:
    """One JSON object per event and line: the full record, for ``jq`` and scripts."""
    return "".join(orjson.dumps(e.to_dict()).decode() + "\n" for e in events)


def _fit_widths(columns: list[_Column], widths: list[int], width: int) -> None:
    last = len(columns) - 1
    fixed = sum(widths[:last]) + len(_SEP) * last
    shrinkable = [i for i, c in enumerate(columns[:last]) if c.min_width]
    overflow = fixed + columns[last].min_width - width
    while overflow > 0:
        candidates = [i for i in shrinkable if widths[i] > columns[i].min_width]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
        fixed -= 1
        overflow -= 1
    # The error column never stretches the line past the terminal, and never drops below its
    # minimum: on a very narrow terminal the line wraps rather than hiding the error entirely.
    widths[last] = min(widths[last], max(columns[last].min_width, width - fixed))


def _line(values: list[str], columns: list[_Column], widths: list[int]) -> str:
    parts = []
    for value, col, w in zip(values, columns, widths, strict=True):
        text = _truncate(value, w)
        parts.append(text.rjust(w) if col.right else text.ljust(w))
    return _SEP.join(parts).rstrip()


def _truncate(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return (text[: width - 1] + _ELLIPSIS) if width > 0 else ""
