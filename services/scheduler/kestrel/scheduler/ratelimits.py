"""Reading upstream rate-limit headers: when an account frees up, and how much quota it has left.

Three header families reach us, each with its own time format:

- ``anthropic-ratelimit-<family>-{limit,remaining,reset}`` (API keys): ``reset`` is RFC 3339.
- ``anthropic-ratelimit-unified[-<window>]-{status,reset,utilization}`` (subscription OAuth):
  ``reset`` is epoch seconds, ``utilization`` a fraction used (0..1), ``status`` is ``allowed``,
  ``allowed_warning`` or ``rejected``.
- ``x-ratelimit-{limit,remaining,reset}-<family>`` (OpenAI-compatible): ``reset`` is a duration
  such as ``12ms``, ``6m0s`` or ``1.5s``, counted from the response.

Each family becomes one ``Window``; the scheduler then asks two questions of the list: after a
429, which exhausted window refills last (``cooldown_until``), and after a success, how close the
account is to its limit (``quota_from``). Everything here is pure: ``now`` is passed in, as wall
clock epoch seconds, because resets are wall-clock instants shared by every replica.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

_ANTHROPIC = re.compile(
    r"^anthropic-ratelimit-(?!unified)(?P<family>.+)-(?P<kind>limit|remaining|reset)$"
)
_UNIFIED = re.compile(
    r"^anthropic-ratelimit-unified(?:-(?P<family>.+?))?-(?P<kind>status|reset|utilization)$"
)
_OPENAI = re.compile(r"^x-ratelimit-(?P<kind>limit|remaining|reset)-(?P<family>.+)$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# Paying past the plan is a separate budget: its own "rejected" does not mean the plan is spent.
_IGNORED_UNIFIED = frozenset({"overage"})


@dataclass(frozen=True, slots=True)
class Window:
    """One rate-limit family as read off a single response."""

    name: str
    """``anthropic:tokens``, ``unified:5h``, ``openai:requests``... for logs and tests."""
    remaining_fraction: float | None = None
    """``remaining / limit`` in 0..1; None when the response did not say."""
    exhausted: bool = False
    """Nothing left in this window: remaining is 0, or the unified status is ``rejected``."""
    reset_at: float | None = None
    """Epoch seconds when the window refills; None when unknown or unreadable."""


@dataclass(frozen=True, slots=True)
class Quota:
    """How much of its limit an account had left at its last success, for the soft limit."""

    remaining_fraction: float
    """The tightest window's ``remaining / limit``, 0..1."""
    expires_at: float
    """After this instant (the window's reset) the reading says nothing any more."""


def read_windows(headers: Mapping[str, str], now: float) -> list[Window]:
    """Every rate-limit window the headers describe; unknown or malformed values are skipped."""
    anthropic: dict[str, dict[str, str]] = {}
    unified: dict[str, dict[str, str]] = {}
    openai: dict[str, dict[str, str]] = {}
    for raw_name, value in headers.items():
        name = raw_name.lower()
        for pattern, groups in ((_UNIFIED, unified), (_ANTHROPIC, anthropic), (_OPENAI, openai)):
            match = pattern.match(name)
            if match:
                family = match.group("family") or ""
                groups.setdefault(family, {})[match.group("kind")] = value.strip()
                break
    windows = [
        _counted(f"anthropic:{family}", fields, _parse_rfc3339(fields.get("reset")))
        for family, fields in sorted(anthropic.items())
    ]
    windows += [
        _counted(f"openai:{family}", fields, _reset_after(fields.get("reset"), now))
        for family, fields in sorted(openai.items())
    ]
    windows += [
        _unified(family, fields)
        for family, fields in sorted(unified.items())
        if family not in _IGNORED_UNIFIED
    ]
    return windows


def cooldown_until(
    headers: Mapping[str, str], retry_after_s: float, now: float, default_s: float
) -> float:
    """When a rate-limited account may serve the model again.

    The latest reset among the exhausted windows, or ``retry-after`` if later; with neither,
    ``default_s``. Resets already in the past are ignored: the upstream just refused us, so a
    stale reset (clock skew, a window we misread) must not mean "try again at once".
    """
    candidates = [
        w.reset_at for w in read_windows(headers, now) if w.exhausted and w.reset_at is not None
    ]
    if retry_after_s > 0:
        candidates.append(now + retry_after_s)
    future = [t for t in candidates if t > now]
    return max(future) if future else now + default_s


def quota_from(headers: Mapping[str, str], now: float, default_ttl_s: float) -> Quota | None:
    """The tightest window of a successful response, or None when no window gives a fraction.

    The reading lasts until that window resets (or ``default_ttl_s`` when it did not say), so a
    drained account is not ranked last forever on the strength of one old response.
    """
    known = [w for w in read_windows(headers, now) if w.remaining_fraction is not None]
    if not known:
        return None
    tightest = min(known, key=lambda w: w.remaining_fraction or 0.0)
    expires_at = tightest.reset_at if tightest.reset_at and tightest.reset_at > now else None
    return Quota(
        remaining_fraction=tightest.remaining_fraction or 0.0,
        expires_at=expires_at if expires_at is not None else now + default_ttl_s,
    )


def parse_duration(text: str) -> float | None:
    """``12ms`` / ``6m0s`` / ``1h2m3.5s`` / ``1.5`` (bare seconds) to seconds; None if malformed."""
    text = text.strip()
    if not text:
        return None
    bare = _number(text)
    if bare is not None:
        return bare if bare >= 0 else None
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) else None


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float:
    """Seconds the upstream asked us to wait: ``retry-after-ms``, else ``retry-after``; 0 if none.

    ``retry-after`` may be seconds or an HTTP date. The edge calls this to fill
    ``Completion.retry_after_s``.
    """
    lowered = {k.lower(): v.strip() for k, v in headers.items()}
    millis = _number(lowered.get("retry-after-ms", ""))
    if millis is not None and millis >= 0:
        return millis / 1000.0
    raw = lowered.get("retry-after", "")
    seconds = _number(raw)
    if seconds is not None:
        return max(seconds, 0.0)
    if raw:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return 0.0
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(when.timestamp() - now, 0.0)
    return 0.0


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The subset of response headers the scheduler reads, for ``Completion.rate_limit_headers``."""
    return {
        k.lower(): v
        for k, v in headers.items()
        if k.lower().startswith(("anthropic-ratelimit-", "x-ratelimit-"))
    }


def _counted(name: str, fields: Mapping[str, str], reset_at: float | None) -> Window:
    limit = _number(fields.get("limit", ""))
    remaining = _number(fields.get("remaining", ""))
    fraction = None
    if limit is not None and remaining is not None and limit > 0:
        fraction = min(max(remaining / limit, 0.0), 1.0)
    return Window(
        name=name,
        remaining_fraction=fraction,
        exhausted=remaining is not None and remaining <= 0,
        reset_at=reset_at,
    )


def _unified(family: str, fields: Mapping[str, str]) -> Window:
    utilization = _number(fields.get("utilization", ""))
    fraction = None if utilization is None else min(max(1.0 - utilization, 0.0), 1.0)
    rejected = fields.get("status", "").lower() == "rejected"
    return Window(
        name=f"unified:{family}" if family else "unified",
        remaining_fraction=fraction,
        exhausted=rejected or (utilization is not None and utilization >= 1.0),
        reset_at=_number(fields.get("reset", "")),
    )


@functools.lru_cache(maxsize=256)  # every success carries resets; the same instants repeat for a whole window
def _parse_rfc3339(text: str | None) -> float | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _reset_after(text: str | None, now: float) -> float | None:
    seconds = parse_duration(text) if text else None
    return None if seconds is None else now + seconds


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
