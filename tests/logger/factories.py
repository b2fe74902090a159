"""Events and misbehaving collaborators for the logger tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from kestrel.common.events import Attempt, RequestEvent
from kestrel.logger.bus.base import Delivery
from kestrel.logger.sink.memory import MemorySink

BASE_MS = 1_767_000_000_000
"""A fixed start time, so tests never depend on the clock."""


def make_event(n: int = 0, **overrides: Any) -> RequestEvent:
    """An event with every field set to something other than its default."""
    values: dict[str, Any] = {
        "event_id": f"evt-{n:04d}",
        "request_id": f"req-{n:04d}",
        "started_at_ms": BASE_MS + n * 1000,
        "method": "POST",
        "path": "/v1/messages?beta=true",
        "dialect": "anthropic",
        "duration_ms": 1234.5,
        "ttfb_ms": 210.25,
        "client_key_id": "laptop",
        "session_id": f"sess-{n}",
        "requested_model": "claude-sonnet-4-5",
        "served_model": "claude-sonnet-4-5",
        "account_id": "acct-a",
        "status": 200,
        "stream": True,
        "attempts": [Attempt("acct-a", "claude-sonnet-4-5", 200, "", 1200.0)],
        "input_tokens": 1200,
        "output_tokens": 345,
        "cache_creation_input_tokens": 50,
        "cache_read_input_tokens": 9000,
        "stop_reason": "end_turn",
        "error_type": "",
        "error_message": "",
        "user_agent": "claude-cli/2.0.0",
    }
    values.update(overrides)
    return RequestEvent(**values)


class FlakySink(MemorySink):
    """A ``MemorySink`` whose first ``failures`` writes raise, or every write when negative."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0
        self.batch_sizes: list[int] = []

    async def write(self, events: Sequence[RequestEvent]) -> None:
        self.calls += 1
        if self.failures != 0:
            self.failures -= 1
            raise OSError("database is locked")
        self.batch_sizes.append(len(events))
        await super().write(events)


class ListSource:
    """An ``EventSource`` over fixed batches that records the order of reads, writes and acks."""

    def __init__(self, batches: list[list[RequestEvent]], log: list[str], *, fail_reads: int = 0):
        self._batches = list(batches)
        self._log = log
        self._fail_reads = fail_reads
        self.acked: list[str] = []

    async def read_batch(self, max_n: int, timeout: float) -> list[Delivery]:
        if self._fail_reads:
            self._fail_reads -= 1
            raise ConnectionError("stream unavailable")
        if not self._batches:
            if timeout:
                await asyncio.sleep(timeout)
            return []
        batch = self._batches.pop(0)
        self._log.append(f"read {len(batch)}")
        return [Delivery(e.event_id, e) for e in batch]

    async def ack(self, deliveries: list[Delivery]) -> None:
        self._log.append(f"ack {len(deliveries)}")
        self.acked += [d.id for d in deliveries]


async def eventually(predicate: Any, timeout: float = 2.0) -> None:
    """Wait until ``predicate()`` (sync or async) is true; fail the test after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.005)
