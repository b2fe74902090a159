"""``kestrel up``: edge, scheduler and logger in one process with the embedded adapters.

Scheduler state lives in memory, request events go through an in-process queue into SQLite.
With no accounts configured, the upstream simulator starts as a demo upstream so that a fresh
clone has something to talk to.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from kestrel.common.config import KestrelConfig, config_from_dict
from kestrel.common.serving import BackgroundServer, uvicorn_config
from kestrel.edge.app import EdgeApp, create_app
from kestrel.edge.metrics import EdgeMetrics
from kestrel.logger.bus.memory import MemoryBus
from kestrel.logger.sink.sqlite import SQLiteSink
from kestrel.logger.writer import EventWriter
from kestrel.scheduler.service import SchedulerService
from kestrel.scheduler.store.memory import MemoryStore

DEMO_KEYS = ("demo-key-1", "demo-key-2", "demo-key-3")


@dataclass(slots=True)
class Embedded:
    """The parts of a one-process Kestrel, for ``kestrel up`` and for tests."""

    app: EdgeApp
    scheduler: SchedulerService
    bus: MemoryBus
    database: Path


def build(config: KestrelConfig) -> Embedded:
    database = Path(config.logger.database).expanduser()
    database.parent.mkdir(parents=True, exist_ok=True)
    scheduler = SchedulerService(config.accounts, config.scheduler, MemoryStore())
    bus = MemoryBus(config.logger.queue_size)

    @contextlib.asynccontextmanager
    async def logger() -> AsyncIterator[None]:
        sink = await SQLiteSink.open(str(database))
        writer = EventWriter(bus, sink, batch_size=config.logger.batch_size)
        writer.start()
        try:
            yield
        finally:
            bus.close()
            try:
                await writer.stop(10.0)
            finally:
                await sink.aclose()

    metrics = EdgeMetrics()
    metrics.counter_from(
        "kestrel_events_dropped", "Request events dropped because the logger queue was full.", lambda: bus.dropped
    )
    app = create_app(config, scheduler, bus.publish, resources=logger, metrics=metrics)
    return Embedded(app, scheduler, bus, database)


@contextlib.contextmanager
def demo_upstream() -> Iterator[tuple[KestrelConfig, BackgroundServer]]:
    """Start the simulator with three keys and return a config with one account per key."""
    from kestrel.sim.app import create_app as create_sim_app
    from kestrel.sim.config import KeyLimits, SimConfig

    sim_config = SimConfig(
        keys={key: KeyLimits(requests_per_window=50, window_s=60.0) for key in DEMO_KEYS},
        open=False,
        ttft_ms=150,
        tokens_per_s=150,
    )
    server = BackgroundServer(create_sim_app(sim_config)).start()
    try:
        yield (
            config_from_dict(
                {
                    "accounts": [
                        {"id": f"demo-{i + 1}", "base_url": server.url, "api_key": key}
                        for i, key in enumerate(DEMO_KEYS)
                    ]
                }
            ),
            server,
        )
    finally:
        server.stop()


def run(config: KestrelConfig) -> int:
    """Serve until SIGINT/SIGTERM; in-flight requests (streams included) finish first."""
    config.check_bind()
    with contextlib.ExitStack() as stack:
        demo = None
        if not config.accounts:
            demo_config, demo = stack.enter_context(demo_upstream())
            config = config.model_copy(update={"accounts": demo_config.accounts})
        embedded = build(config)
        _banner(config, embedded, demo)
        server = uvicorn.Server(
            uvicorn_config(embedded.app, config.server.host, config.server.port, timeout_graceful_shutdown=30)
        )
        server.run()
    return 0


def _banner(config: KestrelConfig, embedded: Embedded, demo: Any) -> None:
    url = f"http://{config.server.host}:{config.server.port}"
    key = "<a client key from `kestrel keys create`>" if config.auth.enabled else "any-value"
    lines = [f"Kestrel listening on {url}", f"  accounts: {', '.join(a.id for a in config.accounts)}"]
    if demo is not None:
        lines.append(f"  no accounts configured: demo upstream (the Kestrel simulator) on {demo.url}")
    lines += [
        f"  request log: {embedded.database}  (kestrel logs)",
        "",
        "Point Claude Code at it:",
        f"  ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY={key} claude",
        "",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)
