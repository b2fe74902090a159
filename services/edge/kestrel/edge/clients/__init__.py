"""Clients the edge uses to reach the other Kestrel services in cluster mode.

Each one implements a port the edge already depends on, so nothing above it knows whether it is
talking to an in-process service or a remote one: ``GrpcLeaseClient`` is the ``LeaseClient``
(``kestrel.scheduler.contract``) that asks scheduler replicas over gRPC, where ``kestrel up`` hands
the edge the ``SchedulerService`` itself. Transport errors are mapped to the edge's own
``GatewayError`` tree here, at the boundary.
"""

from .scheduler import GrpcLeaseClient

__all__ = ["GrpcLeaseClient"]
