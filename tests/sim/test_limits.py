"""Fixed rate windows, without a server and with a hand-moved clock."""

from __future__ import annotations

from kestrel.sim._limits import RateLimiter
from kestrel.sim.config import KeyLimits


class Clock:
    def __init__(self, now: float = 1_700_000_000.25) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_requests_budget_refuses_the_request_that_would_exceed_it() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    limits = KeyLimits(requests_per_window=2, window_s=60)
    assert limiter.admit("k", limits, 0) is None
    clock.now += 10
    assert limiter.admit("k", limits, 0) is None
    clock.now += 10
    refusal = limiter.admit("k", limits, 0)
    assert refusal is not None
    assert "of 2 requests per minute" in refusal.message
    assert refusal.retry_after == 40  # ceil(start + 60 - now)
    headers = dict(refusal.headers)
    assert headers[b"anthropic-ratelimit-requests-remaining"] == b"0"
    assert headers[b"anthropic-ratelimit-requests-reset"] == b"2023-11-14T22:14:21Z"


def test_window_reopens_at_its_reset() -> None:
    clock = Clock(1000.0)
    limiter = RateLimiter(clock)
    limits = KeyLimits(requests_per_window=1, window_s=5)
    assert limiter.admit("k", limits, 0) is None
    clock.now = 1004.999
    assert limiter.admit("k", limits, 0) is not None
    clock.now = 1005.0
    assert limiter.admit("k", limits, 0) is None
    state = limiter.state("k", limits)
    assert state["window"] == {
        "start": 1005.0,
        "reset_at": 1010.0,
        "requests": 1,
        "input_tokens": 0,
        "output_tokens": 0,
    }


def test_input_tokens_count_only_uncached_cost() -> None:
    limiter = RateLimiter(Clock())
    limits = KeyLimits(input_tokens_per_window=100)
    assert limiter.admit("k", limits, 60) is None
    refusal = limiter.admit("k", limits, 41)
    assert refusal is not None and "100 input tokens per minute" in refusal.message
    assert limiter.admit("k", limits, 40) is None  # the refused one was not charged


def test_output_budget_refuses_only_once_spent() -> None:
    limiter = RateLimiter(Clock())
    limits = KeyLimits(output_tokens_per_window=100)
    assert limiter.admit("k", limits, 0) is None
    headers = dict(limiter.charge_output("k", limits, 99))
    assert headers[b"anthropic-ratelimit-output-tokens-remaining"] == b"1"
    assert limiter.admit("k", limits, 0) is None
    limiter.charge_output("k", limits, 50)
    refusal = limiter.admit("k", limits, 0)
    assert refusal is not None and "output tokens" in refusal.message


def test_headers_cover_every_limited_family_and_tokens_sums_them() -> None:
    limiter = RateLimiter(Clock())
    limits = KeyLimits(requests_per_window=10, input_tokens_per_window=1000, output_tokens_per_window=500)
    assert limiter.admit("k", limits, 100) is None
    headers = dict(limiter.charge_output("k", limits, 50))
    assert headers[b"anthropic-ratelimit-requests-remaining"] == b"9"
    assert headers[b"anthropic-ratelimit-input-tokens-remaining"] == b"900"
    assert headers[b"anthropic-ratelimit-output-tokens-remaining"] == b"450"
    assert headers[b"anthropic-ratelimit-tokens-limit"] == b"1500"
    assert headers[b"anthropic-ratelimit-tokens-remaining"] == b"1350"


def test_unlimited_keys_get_no_headers_and_no_window() -> None:
    limiter = RateLimiter(Clock())
    assert limiter.admit("k", KeyLimits(), 10**9) is None
    assert limiter.charge_output("k", KeyLimits(), 10**9) == []
    assert limiter.state("k", KeyLimits())["window"] is None


def test_keys_have_separate_windows() -> None:
    limiter = RateLimiter(Clock())
    limits = KeyLimits(requests_per_window=1)
    assert limiter.admit("a", limits, 0) is None
    assert limiter.admit("b", limits, 0) is None
    assert limiter.admit("a", limits, 0) is not None
