"""Kestrel's logger: every request the edge serves becomes one stored ``RequestEvent``.

How the parts fit::

    edge --publish()--> EventPublisher = EventSource --read_batch()--> EventWriter
                        (bus.base)       (bus.base)                    (writer)
                                                                           |
                                                                        write()
                                                                           v
                        kestrel logs, admin API <--recent(), get()-- EventSink
                                                                     (sink.base)

- ``bus``: the stream between edge and writer. ``publish`` never blocks a request and never
  raises; when the bounded buffer is full the event is dropped and counted. ``MemoryBus`` is
  both ends in one process; cluster mode swaps in a Redis stream with the same two Protocols.
- ``writer``: one asyncio task that drains batches into the sink, retries a failed commit
  without letting go of the batch, acknowledges only after the commit, and drains on stop.
- ``sink``: storage and the read side. ``SQLiteSink`` for ``kestrel up``; ``schema`` describes
  the table once so a Postgres adapter shares it; ``MemorySink`` is the test fake. Writes are
  idempotent by ``event_id``, which makes at-least-once delivery safe.
- ``embedded``: builds and shuts down bus + writer + SQLite for the one-process mode.
- ``render`` and ``cli``: ``kestrel logs``.
"""

from .bus import Delivery, EventPublisher, EventSource, MemoryBus
from .embedded import EmbeddedLogger
from .sink import EventFilter, EventSink, MemorySink, SQLiteSink
from .writer import EventWriter

__all__ = [
    "Delivery",
    "EmbeddedLogger",
    "EventFilter",
    "EventPublisher",
    "EventSink",
    "EventSource",
    "EventWriter",
    "MemoryBus",
    "MemorySink",
    "SQLiteSink",
]
