"""The edge in cluster mode: leases from scheduler replicas over gRPC, events onto a Redis stream.

Same app as ``kestrel up``, other adapters. When no scheduler replica answers, requests fail fast
with 503 ``overloaded_error`` and a short ``retry-after`` (``clients.scheduler``): choosing an
account locally would break the cluster-wide limits, cooldowns and sticky sessions the scheduler
exists for. A slow or absent Redis never blocks a request: events wait in a bounded buffer and
what does not fit is dropped and counted.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from redis import asyncio as aioredis

from kestrel.common.config import ConfigError, KestrelConfig
from kestrel.edge.app import EdgeApp, create_app
from kestrel.edge.clients.scheduler import GrpcLeaseClient
from kestrel.edge.metrics import EdgeMetrics
from kestrel.edge.signatures.redis import RedisSignatureStore
from kestrel.logger.bus.redis_stream import RedisStreamPublisher


def event_stream(config: KestrelConfig) -> str:
    return config.cluster.key_prefix + "events"


def build(config: KestrelConfig) -> EdgeApp:
    cluster = config.cluster
    if not cluster.scheduler_addresses:
        raise ConfigError("cluster.scheduler_addresses: kestrel edge needs at least one scheduler (host:port)")
    if not cluster.redis_url:
        raise ConfigError("cluster.redis_url: kestrel edge writes request events to Redis; set it or REDIS_URL")
    client = aioredis.Redis.from_url(cluster.redis_url, retry_on_timeout=False)
    publisher = RedisStreamPublisher(
        client, event_stream(config), maxlen=cluster.stream_maxlen, buffer_size=config.logger.queue_size
    )
    signatures = RedisSignatureStore(client, cluster.key_prefix, ttl_seconds=config.edge.signature_ttl_seconds)
    scheduler = GrpcLeaseClient(cluster.scheduler_addresses, cluster.scheduler_timeout_seconds)
    metrics = EdgeMetrics()
    metrics.counter_from(
        "kestrel_events_dropped",
        "Request events dropped because the buffer to Redis was full.",
        lambda: publisher.dropped,
    )
    metrics.gauge_from(
        "kestrel_events_buffered", "Request events waiting to be sent to Redis.", lambda: publisher.backlog
    )
    metrics.counter_from(
        "kestrel_signatures_dropped",
        "Gemini tool-call signatures not kept: the buffer to Redis was full or Redis refused them.",
        lambda: signatures.dropped,
    )
    metrics.counter_from(
        "kestrel_signature_lookups_failed",
        "Lookups of kept signatures that failed (Redis slow or away); the calls went out unsigned.",
        lambda: signatures.failed_lookups,
    )

    @contextlib.asynccontextmanager
    async def resources() -> AsyncIterator[None]:
        publisher.start()
        signatures.start()
        try:
            yield
        finally:
            await signatures.aclose()
            await publisher.aclose()
            await scheduler.aclose()
            await client.aclose()

    return create_app(
        config, scheduler, publisher.publish, resources=resources, metrics=metrics, signatures=signatures
    )
