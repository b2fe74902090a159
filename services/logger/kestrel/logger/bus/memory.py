"""The in-process event bus for ``kestrel up``: a bounded buffer between the edge and the writer.

``publish`` is called on the event loop thread for every request, so it does the least possible:
a length check, a ``deque.append`` and waking the reader. The writer side batches: it waits for
the first event, lingers a moment so a burst becomes one transaction, then takes up to
``max_n``. Nothing here is thread-safe, by design: both ends live on the one event loop.
"""

from __future__ import annotations

import asyncio
from collections import deque

from kestrel.common.events import RequestEvent

from .base import Delivery


class MemoryBus:
    """A bounded FIFO that implements both ``EventPublisher`` and ``EventSource``.

    Acknowledgement is bookkeeping only: an event leaves the buffer when it is read, and the
    writer keeps the batch until the sink commits it. What an in-process bus cannot survive is
    the process dying, which takes the writer's batch with it either way.
    """

    def __init__(self, queue_size: int, *, linger: float = 0.02) -> None:
        """``queue_size`` bounds memory when the sink stalls; ``linger`` trades latency for batches.

        The linger only applies when a batch is not already full, so under load the writer
        never sleeps, and at a trickle each event is stored within ``linger`` seconds.
        """
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if linger < 0:
            raise ValueError("linger must not be negative")
        self._buffer: deque[RequestEvent] = deque()
        self._queue_size = queue_size
        self._linger = linger
        self._ready = asyncio.Event()
        self._closed = False
        self._next_id = 0
        self.dropped = 0
        """Events refused because the buffer was full, or published after ``close``."""
        self.published = 0
        """Events accepted into the buffer."""
        self.unacked = 0
        """Events handed to the writer and not yet acknowledged."""

    @property
    def backlog(self) -> int:
        """Events accepted and not yet read by the writer."""
        return len(self._buffer)

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, event: RequestEvent) -> None:
        """Accept ``event`` unless the buffer is full or closed; never blocks, never raises."""
        if self._closed or len(self._buffer) >= self._queue_size:
            self.dropped += 1
            return
        self._buffer.append(event)
        self.published += 1
        if not self._ready.is_set():
            self._ready.set()

    def close(self) -> None:
        """Refuse further events (counted as dropped) so a final drain can reach the end.

        Called at shutdown after the edge has finished its in-flight requests: whatever is
        still buffered is read by the writer's drain, anything later is counted, not silent.
        """
        self._closed = True

    async def read_batch(self, max_n: int, timeout: float) -> list[Delivery]:
        """Wait up to ``timeout`` for one event, linger briefly for more, return up to ``max_n``."""
        if max_n < 1:
            raise ValueError("max_n must be at least 1")
        if not self._buffer and timeout > 0:
            if self._closed:
                # Nothing can arrive any more; sleeping keeps a polling caller from spinning.
                await asyncio.sleep(timeout)
                return []
            self._ready.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return []
        if not self._buffer:
            return []
        if timeout > 0 and len(self._buffer) < max_n and self._linger > 0 and not self._closed:
            # Popping happens after the sleep, so a cancellation here loses nothing.
            await asyncio.sleep(self._linger)
        return self._take(max_n)

    async def ack(self, deliveries: list[Delivery]) -> None:
        """Nothing to persist in memory; keep ``unacked`` honest for observability."""
        self.unacked = max(0, self.unacked - len(deliveries))

    def _take(self, max_n: int) -> list[Delivery]:
        n = min(max_n, len(self._buffer))
        popleft = self._buffer.popleft
        start = self._next_id
        self._next_id += n
        self.unacked += n
        if not self._buffer and not self._closed:
            self._ready.clear()
        return [Delivery(str(start + i), popleft()) for i in range(n)]
