"""The one-process wiring: publish, shut down, and everything is in the SQLite file."""

from __future__ import annotations

from pathlib import Path

from kestrel.common.config import LoggerConfig
from kestrel.logger import EmbeddedLogger, SQLiteSink

from .factories import make_event


async def test_shutdown_writes_everything_then_refuses_more(tmp_path: Path) -> None:
    database = tmp_path / "kestrel.db"
    config = LoggerConfig(database=str(database), queue_size=500, batch_size=20)
    logger = await EmbeddedLogger.open(config)
    for i in range(250):
        logger.bus.publish(make_event(i))
    assert await logger.aclose(timeout=2)
    logger.bus.publish(make_event(999))  # after shutdown: counted, not silently lost
    assert logger.bus.dropped == 1

    async with await SQLiteSink.open(database, readonly=True) as reader:
        assert await reader.count() == 250


async def test_works_as_a_context_manager(tmp_path: Path) -> None:
    config = LoggerConfig(database=str(tmp_path / "kestrel.db"))
    async with await EmbeddedLogger.open(config) as logger:
        logger.bus.publish(make_event(1))
    assert logger.writer.written == 1
