"""The writer: drains an ``EventSource`` into an ``EventSink``, one batch per transaction.

It is the only place that decides when an event counts as stored. A batch is acknowledged to
the source only after the sink committed it; a failed commit is retried with backoff while the
batch stays in hand, so a database hiccup costs latency, not records. Meanwhile the edge keeps
publishing into the bounded bus; if the outage outlasts the buffer, the bus counts what it drops.

On ``stop`` it reads until the source has nothing buffered, then exits, so whatever the bus
accepted before it was closed reaches the database. The stop timeout bounds that drain: a sink
that stays down cannot hold shutdown hostage, and what is then abandoned is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .bus.base import Delivery, EventSource
from .sink.base import EventSink

log = logging.getLogger(__name__)


class EventWriter:
    """An asyncio task moving batches from ``source`` to ``sink`` until stopped."""

    def __init__(
        self,
        source: EventSource,
        sink: EventSink,
        *,
        batch_size: int = 200,
        poll_interval: float = 1.0,
        retry_base: float = 0.1,
        retry_max: float = 5.0,
    ) -> None:
        """``poll_interval`` is how long one read waits for a first event before looping.

        ``retry_base`` and ``retry_max`` shape the exponential backoff between failed commits
        (and failed reads); the delay doubles from base up to max and resets after a success.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._source = source
        self._sink = sink
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_hand = 0
        self.written = 0
        """Events committed to the sink (a redelivered duplicate counts again)."""
        self.batches = 0
        """Batches committed."""
        self.failed_batches = 0
        """Commit attempts that raised; each is retried, so this counts failures, not losses."""
        self.abandoned = 0
        """Events in hand when ``stop`` gave up waiting for the sink."""

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the drain task on the running loop; call once."""
        if self._task is not None:
            raise RuntimeError("the writer was already started")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kestrel-writer")
        self._task.add_done_callback(_report_crash)

    async def stop(self, timeout: float = 10.0) -> bool:
        """Finish the current batch, drain what the source still buffers, then end the task.

        Returns True when everything was written. Close the bus first (``MemoryBus.close``) so
        the drain has an end. After ``timeout`` seconds the task is cancelled, the batch in
        hand is counted in ``abandoned``, and False is returned.
        """
        task = self._task
        if task is None:
            return True
        self._stopping.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.abandoned += self._in_hand
            log.error(
                "event writer: stopped after %.1fs with the sink still failing; "
                "%d events in hand were not written",
                timeout,
                self._in_hand,
            )
            return False
        except Exception:
            return False  # the crash was already logged by _report_crash
        return True

    async def _run(self) -> None:
        while not self._stopping.is_set():
            deliveries = await self._read_unless_stopping()
            if deliveries:
                await self._commit(deliveries)
        # Drain: timeout=0 returns only what is already buffered, so this loop ends.
        while deliveries := await self._read(timeout=0):
            await self._commit(deliveries)

    async def _read_unless_stopping(self) -> list[Delivery]:
        """One read that returns early when stop is requested; sources keep cancelled entries."""
        read = asyncio.ensure_future(self._read(self._poll_interval))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({read, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            read.cancel()
            raise
        finally:
            stopping.cancel()
        if read.done():
            return read.result()
        read.cancel()
        try:
            return await read
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            return []  # the drain that follows reads what this read left behind

    async def _read(self, timeout: float) -> list[Delivery]:
        delay = self._retry_base
        while True:
            try:
                return await self._source.read_batch(self._batch_size, timeout)
            except Exception:
                log.exception("event writer: reading from the source failed; retrying")
                if self._stopping.is_set() and timeout == 0:
                    return []
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)

    async def _commit(self, deliveries: list[Delivery]) -> None:
        events = [d.event for d in deliveries]
        self._in_hand = len(events)
        delay = self._retry_base
        while True:
            try:
                await self._sink.write(events)
                break
            except Exception:
                self.failed_batches += 1
                log.warning(
                    "event writer: writing %d events failed; retrying in %.2fs",
                    len(events),
                    delay,
                    exc_info=True,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
        self._in_hand = 0
        self.written += len(events)
        self.batches += 1
        try:
            await self._source.ack(deliveries)
        except Exception:
            # The events are stored; an unacknowledged entry is redelivered and deduplicated.
            log.warning("event writer: acknowledging %d events failed", len(events), exc_info=True)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("event writer crashed; events are no longer stored", exc_info=task.exception())
