"""Where request events are stored and read back.

``base`` defines the ``EventSink`` port (and the optional ``BodyStore`` for request bodies);
``schema`` describes the tables once for every SQL database, and ``kestrel.logger.migrations``
creates them; ``sqlite`` is the adapter for ``kestrel up``; ``postgres`` the one for cluster
mode, with the tables partitioned by day (``partitions``); ``memory`` is the fake for tests.

``PostgresSink`` is imported from ``kestrel.logger.sink.postgres`` rather than from here, so
that the one-process mode and ``kestrel logs`` never load the Postgres driver.
"""

from .base import BodyStore, EventFilter, EventSink, PruneResult, RequestBodies
from .memory import MemorySink
from .sqlite import SQLiteSink

__all__ = ["BodyStore", "EventFilter", "EventSink", "MemorySink", "PruneResult", "RequestBodies", "SQLiteSink"]
