"""Where the scheduler keeps its shared state, behind one port with two adapters.

``base.SchedulerStore`` is the port: async calls each atomic with respect to the others, so a
Redis adapter can implement every call as one Lua script (``settle`` sends three in one round
trip). ``memory.MemoryStore`` is the embedded adapter for ``kestrel up`` and tests;
``redis.RedisStore`` is the cluster adapter, whose scripts let any number of scheduler replicas
share one state and which also publishes changes so that replicas wake each other's waiters. The
policy both adapters enforce lives in ``kestrel.scheduler.leases``; a store only records state and
re-checks eligibility atomically.
"""

from .base import Claim, SchedulerStore, Settlement
from .memory import MemoryStore
from .redis import RedisStore

__all__ = ["Claim", "MemoryStore", "RedisStore", "SchedulerStore", "Settlement"]
