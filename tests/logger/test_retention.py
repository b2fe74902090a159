"""The retention policy: durations, and a task that prunes on a schedule and shrugs off failures."""

from __future__ import annotations

import time

import pytest

from kestrel.common.config import LoggerConfig
from kestrel.logger.retention import RetentionTask, parse_duration
from kestrel.logger.sink.base import PruneResult
from kestrel.logger.sink.memory import MemorySink

from .factories import eventually, make_event


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("45s", 45), ("2w", 14 * 86400),
     ("1d12h", 129600), (" 1.5h ", 5400), ("7D", 7 * 86400)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "d", "30x", "-1d", "1d 2", "1h30"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


class FailingSink(MemorySink):
    async def prune(self, older_than_s: float, *, now_ms: int | None = None) -> PruneResult:
        raise OSError("database is down")


async def test_the_task_prunes_with_the_configured_retention() -> None:
    sink = MemorySink()
    now = int(time.time() * 1000)
    await sink.write([make_event(1, started_at_ms=now - 3 * 86_400_000), make_event(2, started_at_ms=now)])
    task = RetentionTask.from_config(sink, LoggerConfig(retention_days=2))
    assert task.retention_s == 2 * 86400
    result = await task.run_once()
    assert result is not None and result.deleted == 1
    assert [e.event_id for e in await sink.recent(5)] == ["evt-0002"]
    assert task.runs == 1 and task.last == result


async def test_the_task_runs_periodically_and_survives_failures() -> None:
    sink = FailingSink()
    task = RetentionTask(sink, retention_s=60, interval_s=0.01, first_delay_s=0)
    task.start()
    try:
        await eventually(lambda: task.failures >= 3)
        assert task.running and task.runs == 0
    finally:
        await task.stop()
    assert not task.running
