"""``kestrel logger``: drain the request-event stream into Postgres, prune by retention.

Every logger process joins one consumer group and names itself after its host and pid, so a
replica that dies leaves its pending entries for the others to reclaim. Migrations run at start
(safe from several processes at once). A small HTTP server answers ``/livez`` and ``/readyz`` for
the orchestrator; SIGTERM stops reading, writes and acknowledges what was read, then exits.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from redis import asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kestrel.common.config import ConfigError, KestrelConfig
from kestrel.logger.bus.redis_stream import RedisStreamSource
from kestrel.logger.retention import RetentionTask
from kestrel.logger.sink.postgres import PostgresSink
from kestrel.logger.writer import EventWriter

GROUP = "kestrel-logger"


def build(config: KestrelConfig) -> Starlette:
    cluster = config.cluster
    if not cluster.redis_url:
        raise ConfigError("cluster.redis_url: kestrel logger reads request events from Redis; set it or REDIS_URL")
    if not cluster.database_url:
        raise ConfigError("cluster.database_url: kestrel logger writes to Postgres; set it or DATABASE_URL")
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = aioredis.Redis.from_url(cluster.redis_url, socket_timeout=30)
        sink = await PostgresSink.open(cluster.database_url)
        source = RedisStreamSource(
            client,
            cluster.key_prefix + "events",
            GROUP,
            f"{socket.gethostname()}-{os.getpid()}",
            claim_idle_ms=int(config.logger.claim_idle_seconds * 1000),
            dead_letter_stream=cluster.key_prefix + "events:dead",
        )
        writer = EventWriter(source, sink, batch_size=config.logger.batch_size)
        retention = RetentionTask.from_config(sink, config.logger)
        writer.start()
        retention.start()
        state["writer"] = writer
        state["source"] = source
        try:
            yield
        finally:
            state.clear()
            await retention.stop()
            source.close()  # the writer's drain ends with what it holds; unread entries stay for other loggers
            await writer.stop(20.0)
            await sink.aclose()
            await client.aclose()

    registry = CollectorRegistry()
    registry.register(_LoggerMetrics(state))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def livez(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        writer = state.get("writer")
        if writer is None:
            return JSONResponse({"status": "stopping"}, status_code=503)
        return JSONResponse({"status": "ready", "written": writer.written})

    routes = [Route("/livez", livez), Route("/readyz", readyz), Route("/metrics", metrics)]
    return Starlette(routes=routes, lifespan=lifespan)


class _LoggerMetrics(Collector):
    """The writer's and the stream source's own counters, read at scrape time."""

    _COUNTERS = (
        ("writer", "written", "kestrel_logger_events_written", "Events committed to the database."),
        ("writer", "failed_batches", "kestrel_logger_failed_batches", "Batch writes that failed and were retried."),
        ("source", "delivered", "kestrel_logger_events_read", "Events read from the stream."),
        ("source", "reclaimed", "kestrel_logger_events_reclaimed", "Events taken over from a logger that died."),
        ("source", "dead_lettered", "kestrel_logger_events_dead_lettered", "Undecodable events parked aside."),
    )

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def collect(self) -> Iterator[CounterMetricFamily]:
        for part, attribute, name, help_text in self._COUNTERS:
            owner = self._state.get(part)
            if owner is not None:
                yield CounterMetricFamily(name, help_text, value=getattr(owner, attribute))
