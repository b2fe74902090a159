"""FIFO queues per API key with a global fallback: how scripts and faults wait for a request.

A test that runs several clients at once scripts per key; a test that does not care which key
a gateway picks scripts globally. ``pop`` serves the key's own queue first, then the global one,
so both styles mix.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class KeyedQueue(Generic[T]):
    """Per-key FIFO queues plus one global queue (key ``None``)."""

    def __init__(self) -> None:
        self._queues: dict[str | None, deque[T]] = {}

    def push(self, key: str | None, items: list[T]) -> None:
        self._queues.setdefault(key, deque()).extend(items)

    def pop(self, key: str) -> T | None:
        """The next item for this key: its own queue first, then the global queue."""
        if not self._queues:  # the common case on a benchmark: nothing queued at all
            return None
        for queue_key in (key, None):
            queue = self._queues.get(queue_key)
            if queue:
                item = queue.popleft()
                if not queue:
                    del self._queues[queue_key]
                return item
        return None

    def pending(self) -> dict[str, int]:
        """Items waiting per queue; the global queue is reported under ``"*"``."""
        return {("*" if k is None else k): len(q) for k, q in self._queues.items()}

    def clear(self, key: str | None = None, *, everything: bool = True) -> int:
        """Drop queued items (all queues, or one queue when ``everything`` is False)."""
        if everything:
            count = sum(len(q) for q in self._queues.values())
            self._queues.clear()
            return count
        queue = self._queues.pop(key, None)
        return len(queue) if queue else 0
