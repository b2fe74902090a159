"""Reading rate-limit headers: the three families, cooldown after a 429, quota after a success."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from kestrel.scheduler.ratelimits import (
    cooldown_until,
    parse_duration,
    quota_from,
    rate_limit_headers,
    read_windows,
    retry_after_seconds,
)

NOW = 1_700_000_000.0
DEFAULT = 30.0


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("12ms", 0.012),
        ("6m0s", 360.0),
        ("1.5s", 1.5),
        ("2h", 7200.0),
        ("1h2m3.5s", 3723.5),
        ("0s", 0.0),
        ("1.5", 1.5),
        ("", None),
        ("abc", None),
        ("5x", None),
        ("1s junk", None),
        ("-1", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


# (name, headers, retry_after_s, expected cooldown end relative to NOW)
COOLDOWN_CASES = [
    (
        "anthropic: only the exhausted family counts",
        {
            "anthropic-ratelimit-tokens-limit": "80000",
            "anthropic-ratelimit-tokens-remaining": "0",
            "anthropic-ratelimit-tokens-reset": rfc3339(NOW + 20),
            "anthropic-ratelimit-requests-limit": "1000",
            "anthropic-ratelimit-requests-remaining": "5",
            "anthropic-ratelimit-requests-reset": rfc3339(NOW + 60),
        },
        0.0,
        20.0,
    ),
    (
        "anthropic: the latest of several exhausted families",
        {
            "anthropic-ratelimit-input-tokens-remaining": "0",
            "anthropic-ratelimit-input-tokens-reset": rfc3339(NOW + 15),
            "anthropic-ratelimit-output-tokens-remaining": "0",
            "anthropic-ratelimit-output-tokens-reset": rfc3339(NOW + 45),
        },
        0.0,
        45.0,
    ),
    (
        "anthropic: retry-after wins when later than the reset",
        {
            "anthropic-ratelimit-tokens-remaining": "0",
            "anthropic-ratelimit-tokens-reset": rfc3339(NOW + 20),
        },
        50.0,
        50.0,
    ),
    (
        "unified: rejected status with an epoch reset",
        {
            "anthropic-ratelimit-unified-status": "rejected",
            "anthropic-ratelimit-unified-reset": str(int(NOW + 3600)),
        },
        0.0,
        3600.0,
    ),
    (
        "unified: a fully used window; overage rejection is ignored",
        {
            "anthropic-ratelimit-unified-5h-utilization": "1.0",
            "anthropic-ratelimit-unified-5h-reset": str(int(NOW + 900)),
            "anthropic-ratelimit-unified-7d-utilization": "0.4",
            "anthropic-ratelimit-unified-7d-reset": str(int(NOW + 86400)),
            "anthropic-ratelimit-unified-overage-status": "rejected",
            "anthropic-ratelimit-unified-overage-reset": str(int(NOW + 999999)),
        },
        0.0,
        900.0,
    ),
    (
        "openai: duration resets counted from now",
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "6m0s",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "12ms",
        },
        0.0,
        360.0,
    ),
    (
        "nothing exhausted: retry-after",
        {"anthropic-ratelimit-tokens-remaining": "10"},
        7.0,
        7.0,
    ),
    ("nothing at all: the default cooldown", {}, 0.0, DEFAULT),
    (
        "a reset already past is ignored",
        {
            "anthropic-ratelimit-tokens-remaining": "0",
            "anthropic-ratelimit-tokens-reset": rfc3339(NOW - 5),
        },
        0.0,
        DEFAULT,
    ),
    (
        "header names are case-insensitive; unreadable resets are skipped",
        {
            "Anthropic-RateLimit-Tokens-Remaining": "0",
            "Anthropic-RateLimit-Tokens-Reset": rfc3339(NOW + 12),
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "soon",
        },
        0.0,
        12.0,
    ),
]


@pytest.mark.parametrize(
    ("headers", "retry_after", "expected"),
    [case[1:] for case in COOLDOWN_CASES],
    ids=[case[0] for case in COOLDOWN_CASES],
)
def test_cooldown_until(headers: dict[str, str], retry_after: float, expected: float) -> None:
    assert cooldown_until(headers, retry_after, NOW, DEFAULT) == pytest.approx(NOW + expected)


def test_read_windows_names_each_family() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "100",
        "anthropic-ratelimit-requests-remaining": "25",
        "anthropic-ratelimit-unified-status": "allowed",
        "anthropic-ratelimit-unified-5h-utilization": "0.25",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "100",
        "anthropic-ratelimit-unified-representative-claim": "five_hour",
        "content-type": "application/json",
    }
    windows = {w.name: w for w in read_windows(headers, NOW)}
    assert set(windows) == {"anthropic:requests", "openai:tokens", "unified", "unified:5h"}
    assert windows["anthropic:requests"].remaining_fraction == pytest.approx(0.25)
    assert windows["openai:tokens"].remaining_fraction == pytest.approx(0.1)
    assert windows["unified:5h"].remaining_fraction == pytest.approx(0.75)
    assert not any(w.exhausted for w in windows.values())


def test_quota_from_takes_the_tightest_window_until_its_reset() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "1000",
        "anthropic-ratelimit-requests-remaining": "900",
        "anthropic-ratelimit-requests-reset": rfc3339(NOW + 60),
        "anthropic-ratelimit-tokens-limit": "100000",
        "anthropic-ratelimit-tokens-remaining": "2000",
        "anthropic-ratelimit-tokens-reset": rfc3339(NOW + 40),
    }
    quota = quota_from(headers, NOW, DEFAULT)
    assert quota is not None
    assert quota.remaining_fraction == pytest.approx(0.02)
    assert quota.expires_at == pytest.approx(NOW + 40)


def test_quota_from_without_reset_lasts_the_default_ttl() -> None:
    quota = quota_from(
        {"x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "5"}, NOW, DEFAULT
    )
    assert quota is not None
    assert quota.expires_at == pytest.approx(NOW + DEFAULT)


def test_quota_from_headers_without_fractions_is_none() -> None:
    assert quota_from({"anthropic-ratelimit-tokens-reset": rfc3339(NOW + 5)}, NOW, DEFAULT) is None
    assert quota_from({}, NOW, DEFAULT) is None


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"Retry-After": "2.5"}, 2.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        (
            {"retry-after": format_datetime(datetime.fromtimestamp(NOW + 20, UTC), usegmt=True)},
            20.0,
        ),
        ({"retry-after": "whenever"}, 0.0),
        ({"retry-after": "-3"}, 0.0),
        ({}, 0.0),
    ],
)
def test_retry_after_seconds(headers: dict[str, str], seconds: float) -> None:
    assert retry_after_seconds(headers, NOW) == pytest.approx(seconds)


def test_rate_limit_headers_keeps_only_the_families_the_scheduler_reads() -> None:
    headers = {
        "Anthropic-Ratelimit-Tokens-Remaining": "5",
        "x-ratelimit-reset-requests": "1s",
        "content-type": "text/event-stream",
        "retry-after": "3",
    }
    assert rate_limit_headers(headers) == {
        "anthropic-ratelimit-tokens-remaining": "5",
        "x-ratelimit-reset-requests": "1s",
    }
