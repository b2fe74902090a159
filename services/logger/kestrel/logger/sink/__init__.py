"""Where request events are stored and read back.

``base`` defines the ``EventSink`` port and ``EventFilter``; ``schema`` describes the
``requests`` table once for every SQL database; ``sqlite`` is the adapter for ``kestrel up``;
``memory`` is the fake for tests. A Postgres adapter for cluster mode reuses ``schema``.
"""

from .base import EventFilter, EventSink
from .memory import MemorySink
from .sqlite import SQLiteSink

__all__ = ["EventFilter", "EventSink", "MemorySink", "SQLiteSink"]
