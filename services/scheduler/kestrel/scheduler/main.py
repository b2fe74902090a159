"""``kestrel scheduler``: the scheduler service over gRPC, its state in Redis.

Any number of replicas share one Redis and agree. SIGTERM (or SIGINT) drains: the health service
turns NOT_SERVING, calls in flight finish within the grace period, then the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import CollectorRegistry, start_http_server
from redis import asyncio as aioredis

from kestrel.common.config import ConfigError, KestrelConfig
from kestrel.scheduler.grpc_server import serve
from kestrel.scheduler.metrics import CountingLeaseClient, SchedulerMetrics
from kestrel.scheduler.service import SchedulerService
from kestrel.scheduler.store.redis import RedisStore

_log = logging.getLogger("kestrel.scheduler")


async def run(config: KestrelConfig, listen: str, grace_s: float = 20.0, metrics_listen: str = "") -> None:
    if not config.cluster.redis_url:
        raise ConfigError("cluster.redis_url: kestrel scheduler keeps its state in Redis; set it or REDIS_URL")
    client = aioredis.Redis.from_url(config.cluster.redis_url)
    service = SchedulerService(config.accounts, config.scheduler, RedisStore(client, prefix=config.cluster.key_prefix))
    counted = CountingLeaseClient(service)
    metrics_at = metrics_listen or config.cluster.scheduler_metrics_listen
    if metrics_at:
        registry = CollectorRegistry()
        registry.register(SchedulerMetrics(counted))
        host, _, port = metrics_at.rpartition(":")
        start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
        _log.info("scheduler metrics on http://%s/metrics", metrics_at)
    server = await serve(counted, listen)
    _log.info("scheduler serving gRPC on %s for %d accounts", server.address, len(config.accounts))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        _log.info("draining: finishing calls in flight (up to %ss)", grace_s)
        await server.stop(grace_s)
    finally:
        await service.aclose()
        await client.aclose()
