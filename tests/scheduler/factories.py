"""Small builders shared by the scheduler tests."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from kestrel.common.config import AccountConfig, SchedulerConfig


def account(
    account_id: str,
    *,
    priority: int = 0,
    max_concurrency: int = 16,
    models: tuple[str, ...] = (),
) -> AccountConfig:
    """An Anthropic API-key account with a dummy key."""
    return AccountConfig(
        id=account_id,
        api_key=SecretStr("sk-test"),
        priority=priority,
        max_concurrency=max_concurrency,
        models=models,
    )


def settings(**overrides: Any) -> SchedulerConfig:
    """Scheduler settings with round numbers that make expected times easy to read."""
    values: dict[str, Any] = {
        "max_wait_seconds": 10.0,
        "sticky_ttl_seconds": 3600.0,
        "lease_ttl_seconds": 600.0,
        "default_cooldown_seconds": 30.0,
        "backoff_base_seconds": 1.0,
        "backoff_max_seconds": 60.0,
        "auth_cooldown_seconds": 300.0,
        "soft_limit_fraction": 0.05,
    }
    values.update(overrides)
    return SchedulerConfig(**values)


class ManualClock:
    """A wall clock that only moves when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
