"""``kestrel scheduler``: the scheduler service over gRPC, its state in Redis.

Any number of replicas share one Redis and agree. SIGTERM (or SIGINT) drains: the health service
turns NOT_SERVING, calls in flight finish within the grace period, then the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from redis import asyncio as aioredis

from kestrel.common.config import ConfigError, KestrelConfig
from kestrel.scheduler.grpc_server import serve
from kestrel.scheduler.service import SchedulerService
from kestrel.scheduler.store.redis import RedisStore

_log = logging.getLogger("kestrel.scheduler")


async def run(config: KestrelConfig, listen: str, grace_s: float = 20.0) -> None:
    if not config.cluster.redis_url:
        raise ConfigError("cluster.redis_url: kestrel scheduler keeps its state in Redis; set it or REDIS_URL")
    client = aioredis.Redis.from_url(config.cluster.redis_url)
    service = SchedulerService(config.accounts, config.scheduler, RedisStore(client, prefix=config.cluster.key_prefix))
    server = await serve(service, listen)
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
