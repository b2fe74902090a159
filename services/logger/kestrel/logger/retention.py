"""Retention: the request log keeps ``logger.retention_days`` of history and prunes the rest.

``RetentionTask`` is the automatic policy, an asyncio task in the logger process that calls the
sink's ``prune`` every few minutes. Running it often keeps each run small: on SQLite a few
batches of deletes, on Postgres usually nothing but a look at the catalog, and once a day the
drop of a whole partition. The same runs create the Postgres partitions of the coming days, so
the writer seldom has to. A failed run is logged and counted, and the next one tries again; it
never stops the logger.

``parse_duration`` reads the ``30d`` / ``12h`` / ``90m`` of ``kestrel logs prune --older-than``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re

from kestrel.common.config import LoggerConfig

from .sink.base import EventSink, PruneResult

log = logging.getLogger(__name__)

DAY_S = 86_400.0
_UNITS = {"w": 7 * DAY_S, "d": DAY_S, "h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a number and a unit (w, d, h, m, s), possibly several: ``1d12h``."""
    compact = text.strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"not a duration: {text!r} (examples: 30d, 12h, 90m, 1d12h)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


class RetentionTask:
    """Prunes ``sink`` every ``interval_s`` seconds, keeping ``retention_s`` of history."""

    def __init__(
        self,
        sink: EventSink,
        *,
        retention_s: float,
        interval_s: float = 600.0,
        first_delay_s: float = 60.0,
        jitter: float = 0.1,
    ) -> None:
        """``first_delay_s`` keeps the first prune out of the way of start-up; ``jitter`` (a
        fraction of the interval) keeps several logger processes from pruning in lockstep."""
        if retention_s <= 0 or interval_s <= 0:
            raise ValueError("retention_s and interval_s must be positive")
        self._sink = sink
        self.retention_s = retention_s
        self._interval_s = interval_s
        self._first_delay_s = first_delay_s
        self._jitter = jitter
        self._task: asyncio.Task[None] | None = None
        self.runs = 0
        """Prunes that completed."""
        self.failures = 0
        """Prunes that raised; each is retried at the next interval."""
        self.last: PruneResult | None = None

    @classmethod
    def from_config(
        cls, sink: EventSink, config: LoggerConfig, *, interval_s: float = 600.0
    ) -> RetentionTask:
        return cls(sink, retention_s=config.retention_days * DAY_S, interval_s=interval_s)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the periodic task on the running loop; call once."""
        if self._task is not None:
            raise RuntimeError("the retention task was already started")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kestrel-retention")

    async def stop(self) -> None:
        """Cancel the task, interrupting a prune in progress (each batch is its own
        transaction, so what was deleted stays deleted and the rest waits for the next run)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def run_once(self) -> PruneResult | None:
        """One prune now; None when it failed (logged and counted in ``failures``)."""
        try:
            result = await self._sink.prune(self.retention_s)
        except Exception:
            self.failures += 1
            log.exception("retention: pruning the request log failed; retrying next interval")
            return None
        self.runs += 1
        self.last = result
        if result.deleted or result.dropped_partitions:
            log.info(
                "retention: removed requests older than %.1f days (%d rows deleted, %d "
                "partitions dropped)",
                self.retention_s / DAY_S,
                result.deleted,
                len(result.dropped_partitions),
            )
        return result

    async def _run(self) -> None:
        await asyncio.sleep(self._first_delay_s)
        while True:
            await self.run_once()
            spread = self._interval_s * self._jitter
            await asyncio.sleep(self._interval_s + random.uniform(-spread, spread))
