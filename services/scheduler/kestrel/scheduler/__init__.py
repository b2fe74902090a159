"""The scheduler: which upstream account serves each attempt of a request.

How the parts fit:

- ``contract`` is the edge-facing API (``LeaseClient``, ``LeaseRequest``, ``Lease``,
  ``Exhausted``, ``Completion``), mirrored by ``proto/kestrel/v1/scheduler.proto``.
- ``leases`` is the policy as pure functions: which accounts are eligible, how they rank, and what
  each outcome does to an account's health. ``ratelimits`` reads upstream rate-limit headers for
  it (and gives the edge helpers to fill a ``Completion``).
- ``store`` is the state port (``SchedulerStore``) with its adapters: ``MemoryStore`` for
  ``kestrel up``, ``RedisStore`` for cluster mode. The policy never knows which one it has.
- ``service.SchedulerService`` joins them: snapshot, choose, grant atomically, wait when all are
  busy, and learn from completions. It is the ``LeaseClient`` that ``kestrel up`` hands the edge
  directly, and what the gRPC server wraps in cluster mode. When its store is a ``ChangeFeed``
  (Redis), a waiter wakes when any replica frees a slot.
- ``wire`` converts the contract to and from the protobuf messages; ``grpc_server`` serves any
  ``LeaseClient`` as ``kestrel.v1.Scheduler`` (with gRPC health and a graceful drain). Both are
  imported by name rather than re-exported here, so ``kestrel up`` never loads gRPC.
"""

from .contract import (
    AccountState,
    Completion,
    Exhausted,
    ExhaustedReason,
    Lease,
    LeaseClient,
    LeaseRequest,
    Outcome,
    Usage,
)
from .leases import outcome_for_status
from .ratelimits import rate_limit_headers, retry_after_seconds
from .service import ChangeFeed, SchedulerService
from .store import Claim, MemoryStore, RedisStore, SchedulerStore

__all__ = [
    "AccountState",
    "ChangeFeed",
    "Claim",
    "Completion",
    "Exhausted",
    "ExhaustedReason",
    "Lease",
    "LeaseClient",
    "LeaseRequest",
    "MemoryStore",
    "Outcome",
    "RedisStore",
    "SchedulerService",
    "SchedulerStore",
    "Usage",
    "outcome_for_status",
    "rate_limit_headers",
    "retry_after_seconds",
]
