"""The event stream between the edge and the logger's writer.

``base`` holds the two Protocols (``EventPublisher`` for the edge, ``EventSource`` for the
writer) and the ``Delivery`` envelope; ``memory`` is the in-process adapter used by
``kestrel up``. The Redis-stream adapter for cluster mode has the same shape.
"""

from .base import Delivery, EventPublisher, EventSource
from .memory import MemoryBus

__all__ = ["Delivery", "EventPublisher", "EventSource", "MemoryBus"]
