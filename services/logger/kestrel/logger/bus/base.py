"""The two ends of the event stream, as the edge and the writer see them.

The edge holds an ``EventPublisher`` and the logger's writer holds an ``EventSource``. In
``kestrel up`` both are the same ``MemoryBus``; in cluster mode the publisher does ``XADD`` and
the source is a consumer group reading the Redis stream. Keeping both sides as Protocols lets
one writer and one set of tests serve either adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kestrel.common.events import RequestEvent


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event handed to the writer, with the handle the source needs to acknowledge it."""

    id: str
    """Source-specific handle: a Redis stream entry id, a sequence number in memory."""
    event: RequestEvent


class EventPublisher(Protocol):
    """Where the edge drops one event per request. A request never waits on logging."""

    dropped: int
    """Events refused because the buffer was full or closed; exported as a metric."""

    def publish(self, event: RequestEvent) -> None:
        """Hand an event over without blocking and without raising.

        When the buffer is full the event is discarded and ``dropped`` goes up: losing a log
        line is better than slowing or failing the request that produced it.
        """
        ...


class EventSource(Protocol):
    """What the writer drains. Entries are acknowledged only after the sink has committed them.

    A source may deliver an entry more than once (a Redis consumer that died before its ack);
    sinks are idempotent by ``event_id`` so redelivery is harmless.
    """

    async def read_batch(self, max_n: int, timeout: float) -> list[Delivery]:
        """Return up to ``max_n`` deliveries, waiting up to ``timeout`` seconds for the first.

        An empty list means nothing arrived in time. ``timeout=0`` returns what is already
        buffered without waiting, which is how the writer drains on shutdown. Cancelling a
        pending call must not lose entries.
        """
        ...

    async def ack(self, deliveries: list[Delivery]) -> None:
        """Mark deliveries as durably stored, so they are never handed out again."""
        ...
