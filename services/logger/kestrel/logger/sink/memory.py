"""An in-memory ``EventSink``: the fake that edge and writer tests assert against.

It honours the same contract as the SQL adapters (the contract tests run against it too), so a
test that passes against it says something about production. Events are copied on the way in
and out, as a database would, so a caller mutating an event cannot change what was stored.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence

from kestrel.common.events import RequestEvent

from .base import EventFilter, PruneResult, RequestBodies


class MemorySink:
    """``EventSink`` over a dict; arrival order stands in for the SQL ``seq`` column."""

    def __init__(self, *, capture_bodies: bool = False) -> None:
        self.capture_bodies = capture_bodies
        self._bodies: dict[str, RequestBodies] = {}
        self._by_event_id: dict[str, tuple[int, RequestEvent]] = {}
        self._seq = 0
        self.writes = 0
        """Calls to ``write`` that committed, for tests that check batching."""

    async def write(self, events: Sequence[RequestEvent]) -> None:
        for event in events:
            if event.event_id in self._by_event_id:
                continue
            self._seq += 1
            self._by_event_id[event.event_id] = (self._seq, copy.deepcopy(event))
        self.writes += 1

    async def recent(
        self,
        limit: int,
        *,
        since_ms: int | None = None,
        client_key_id: str | None = None,
        account_id: str | None = None,
        model: str | None = None,
        status: int | None = None,
    ) -> list[RequestEvent]:
        if limit < 0:
            raise ValueError("limit must not be negative")
        flt = EventFilter(
            since_ms=since_ms,
            client_key_id=client_key_id,
            account_id=account_id,
            model=model,
            status=status,
        )
        matching = [(seq, e) for seq, e in self._by_event_id.values() if flt.matches(e)]
        matching.sort(key=lambda item: (item[1].started_at_ms, item[0]), reverse=True)
        return [copy.deepcopy(e) for _, e in matching[:limit]]

    async def get(self, request_id: str) -> RequestEvent | None:
        found = [(e.started_at_ms, seq, e) for seq, e in self._by_event_id.values()
                 if e.request_id == request_id]
        return copy.deepcopy(max(found, key=lambda item: item[:2])[2]) if found else None

    async def count(self) -> int:
        return len(self._by_event_id)

    async def write_bodies(self, bodies: Sequence[RequestBodies]) -> None:
        if not self.capture_bodies:
            return
        for item in bodies:
            self._bodies.setdefault(item.event_id, item)

    async def get_bodies(self, event_id: str) -> RequestBodies | None:
        return self._bodies.get(event_id)

    async def prune(self, older_than_s: float, *, now_ms: int | None = None) -> PruneResult:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        cutoff_ms = now_ms - round(older_than_s * 1000)
        old = [k for k, (_, e) in self._by_event_id.items() if e.started_at_ms < cutoff_ms]
        for key in old:
            del self._by_event_id[key]
        self._bodies = {k: b for k, b in self._bodies.items() if b.started_at_ms >= cutoff_ms}
        return PruneResult(cutoff_ms, len(old))

    async def aclose(self) -> None:
        return None
