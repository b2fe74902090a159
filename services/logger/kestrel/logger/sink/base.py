"""The ``EventSink`` port: where request events are stored and read back.

Every method is async so callers on the event loop (the writer, the admin API, the dashboard)
never block, whatever the adapter: SQLite runs its calls on its own threads, a Postgres adapter
can use an async driver. ``EventFilter`` is the one description of "which requests" that each
adapter translates, either into SQL (``schema.where_clause``) or into a predicate (``matches``).

Request and response bodies are a separate, optional port (``BodyStore``): they are large, often
sensitive, and stored only while ``capture_bodies`` is on, so nothing that reads the request log
depends on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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


@dataclass(frozen=True, slots=True)
class RequestBodies:
    """The bodies of one request, stored apart from its event and only when capture is on."""

    event_id: str
    """The ``RequestEvent`` these bodies belong to."""
    started_at_ms: int
    """Copied from the event: it places the bodies in the same partition and retention window."""
    request: bytes
    """The request body as received, possibly truncated (see ``request_size``)."""
    response: bytes
    """The response body, or a summary of it (a reassembled stream), possibly truncated."""
    request_size: int
    """The size of the full request body in bytes, whatever ``request`` kept of it."""
    response_size: int


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What one ``prune`` removed."""

    cutoff_ms: int
    """Records that started before this Unix time in milliseconds were removed."""
    deleted: int = 0
    """Request rows deleted one by one (rows in dropped partitions are not counted)."""
    dropped_partitions: tuple[str, ...] = ()
    """Whole partitions dropped (Postgres), the cheap path for everything past the cutoff."""


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

    async def prune(self, older_than_s: float, *, now_ms: int | None = None) -> PruneResult:
        """Remove events (and their bodies) that started more than ``older_than_s`` ago.

        ``now_ms`` replaces the clock, for tests. Safe to run while the writer is writing and
        from several processes at once; each deletion is its own short transaction, so a large
        backlog never holds the writer up for long.
        """
        ...

    async def aclose(self) -> None:
        """Release connections and threads; the sink is unusable afterwards."""
        ...


@runtime_checkable
class BodyStore(Protocol):
    """Optional storage of request and response bodies, apart from the events."""

    capture_bodies: bool
    """While False, ``write_bodies`` stores nothing; may be switched at run time."""

    async def write_bodies(self, bodies: Sequence[RequestBodies]) -> None:
        """Store ``bodies`` in one transaction, idempotent by ``event_id``; a no-op when capture
        is off."""
        ...

    async def get_bodies(self, event_id: str) -> RequestBodies | None:
        """The bodies stored for ``event_id``, or None."""
        ...
