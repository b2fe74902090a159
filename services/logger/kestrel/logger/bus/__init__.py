"""The event stream between the edge and the logger's writer.

``base`` holds the two Protocols (``EventPublisher`` for the edge, ``EventSource`` for the
writer) and the ``Delivery`` envelope; ``memory`` is the in-process adapter used by
``kestrel up``, one object serving both ends. ``redis_stream`` is the cluster adapter, one class
per end: ``RedisStreamPublisher`` in the edge, ``RedisStreamSource`` (a consumer group) in the
logger, with protobuf bytes (``kestrel.common.event_codec``) between them.
"""

from .base import Delivery, EventPublisher, EventSource
from .memory import MemoryBus
from .redis_stream import RedisStreamPublisher, RedisStreamSource

__all__ = ["Delivery", "EventPublisher", "EventSource", "MemoryBus", "RedisStreamPublisher", "RedisStreamSource"]
