"""Where the scheduler keeps its shared state, behind one port with two adapters.

``base.SchedulerStore`` is the port: six async calls, each one atomic with respect to the others,
so a Redis adapter can implement every call as one Lua script. ``memory.MemoryStore`` is the
embedded adapter for ``kestrel up`` and tests. The policy both adapters enforce lives in
``kestrel.scheduler.leases``; a store only records state and re-checks eligibility atomically.
"""

from .base import Claim, SchedulerStore
from .memory import MemoryStore

__all__ = ["Claim", "MemoryStore", "SchedulerStore"]
