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
  both ends in one process; cluster mode swaps in a Redis stream with the same two Protocols
  (``RedisStreamPublisher`` in the edge, ``RedisStreamSource``, a consumer group, here).
- ``writer``: one asyncio task that drains batches into the sink, retries a failed commit
  without letting go of the batch, acknowledges only after the commit, and drains on stop.
- ``sink``: storage and the read side. ``SQLiteSink`` for ``kestrel up``, ``PostgresSink``
  (``sink.postgres``, tables partitioned by day) for cluster mode; ``schema`` describes the
  tables once for both; ``MemorySink`` is the test fake. Writes are idempotent by ``event_id``,
  which makes at-least-once delivery safe.
- ``migrations``: the versioned schema of both databases, applied under a lock at start-up or
  by ``kestrel migrate``.
- ``retention``: ``RetentionTask`` prunes what is older than ``logger.retention_days``.
- ``embedded``: builds and shuts down bus + writer + SQLite for the one-process mode.
- ``render`` and ``cli``: ``kestrel logs``, ``kestrel logs prune``, ``kestrel migrate``.
"""

from .bus import Delivery, EventPublisher, EventSource, MemoryBus, RedisStreamPublisher, RedisStreamSource
from .embedded import EmbeddedLogger
from .retention import RetentionTask
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
    "RedisStreamPublisher",
    "RedisStreamSource",
    "RetentionTask",
    "SQLiteSink",
]
