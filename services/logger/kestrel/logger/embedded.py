"""The logger as ``kestrel up`` runs it: memory bus, writer task and SQLite file in one process.

This is a convenience for the composition root, not a service of its own: it builds the three
parts from ``LoggerConfig`` and shuts them down in the one order that loses nothing (close the
bus, drain the writer, close the database). The edge holds ``logger.bus`` as its
``EventPublisher``; the admin API and the dashboard read through ``logger.sink``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType

from kestrel.common.config import LoggerConfig

from .bus.memory import MemoryBus
from .sink.sqlite import SQLiteSink
from .writer import EventWriter

log = logging.getLogger(__name__)


@dataclass(slots=True)
class EmbeddedLogger:
    """The running logger parts; build with ``await EmbeddedLogger.open(config.logger)``."""

    bus: MemoryBus
    sink: SQLiteSink
    writer: EventWriter

    @classmethod
    async def open(cls, config: LoggerConfig, *, linger: float = 0.02) -> EmbeddedLogger:
        """Open the database (creating it and its schema) and start the writer task."""
        sink = await SQLiteSink.open(config.database)
        bus = MemoryBus(config.queue_size, linger=linger)
        writer = EventWriter(bus, sink, batch_size=config.batch_size)
        writer.start()
        return cls(bus=bus, sink=sink, writer=writer)

    async def aclose(self, timeout: float = 10.0) -> bool:
        """Stop accepting events, write everything accepted, close the database.

        Call after the edge has finished its in-flight requests, so their events are in the
        bus. Returns False when the writer could not finish within ``timeout`` seconds.
        """
        self.bus.close()
        try:
            flushed = await self.writer.stop(timeout)
        finally:
            await self.sink.aclose()
        if not flushed and self.bus.backlog:
            log.error("logger shutdown: %d buffered events were not written", self.bus.backlog)
        return flushed

    async def __aenter__(self) -> EmbeddedLogger:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
