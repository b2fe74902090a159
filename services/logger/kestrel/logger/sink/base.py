"""The ``EventSink`` port: where request events are stored and read back.

Every method is async so callers on the event loop (the writer, the admin API, the dashboard)
never block, whatever the adapter: SQLite runs its calls on its own threads, a Postgres adapter
can use an async driver. ``EventFilter`` is the one description of "which requests" that each
adapter translates, either into SQL (``schema.where_clause``) or into a predicate (``matches``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kestrel.common.events import RequestEvent


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which requests a read returns. Unset fields match everything."""

    since_ms: int | None = None
    """Only requests that started at or after this Unix time in milliseconds."""
    client_key_id: str | None = None
    account_id: str | None = None
    """The account that finally served the request."""
    model: str | None = None
    """Matches the requested model or the served one, so an alias and its target both work."""
    status: int | None = None
    """The HTTP status returned to the client."""

    def matches(self, event: RequestEvent) -> bool:
        """The same predicate as the SQL built by ``schema.where_clause``, for in-memory sinks."""
        return (
            (self.since_ms is None or event.started_at_ms >= self.since_ms)
            and (self.client_key_id is None or event.client_key_id == self.client_key_id)
            and (self.account_id is None or event.account_id == self.account_id)
            and (self.model is None or self.model in (event.requested_model, event.served_model))
            and (self.status is None or event.status == self.status)
        )


class EventSink(Protocol):
    """Durable storage of request events, idempotent by ``event_id``."""

    async def write(self, events: Sequence[RequestEvent]) -> None:
        """Store ``events`` in one transaction; events already stored are left as they are.

        Idempotence is what makes at-least-once delivery safe: a batch retried after a failed
        commit, or redelivered after a consumer died before acknowledging, is stored once.
        Raises when nothing was committed, so the caller keeps the batch and retries.
        """
        ...

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
        """Up to ``limit`` matching events, newest first (by start time, then by arrival)."""
        ...

    async def get(self, request_id: str) -> RequestEvent | None:
        """The event recorded for ``request_id``, or None when there is none."""
        ...

    async def count(self) -> int:
        """How many events are stored."""
        ...

    async def aclose(self) -> None:
        """Release connections and threads; the sink is unusable afterwards."""
        ...
