"""A real Kestrel (``kestrel up`` composition) in front of the real simulator, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kestrel.common.config import KestrelConfig, config_from_dict
from kestrel.common.events import RequestEvent
from kestrel.common.serving import BackgroundServer
from kestrel.logger.sink.sqlite import SQLiteSink
from kestrel.up import Embedded, build


@dataclass
class KestrelHandle:
    url: str
    config: KestrelConfig
    embedded: Embedded
    server: BackgroundServer

    def events(self, count: int | None = None, timeout: float = 5.0) -> list[RequestEvent]:
        """Recorded events, oldest first; waits until at least ``count`` are written."""
        deadline = time.monotonic() + timeout
        while True:
            events = asyncio.run(_read(self.embedded.database))
            if count is None or len(events) >= count or time.monotonic() > deadline:
                return events
            time.sleep(0.05)

    def matching(
        self, predicate: Callable[[RequestEvent], bool], count: int = 1, timeout: float = 5.0
    ) -> list[RequestEvent]:
        """Recorded events for which ``predicate`` holds, once at least ``count`` are written."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in asyncio.run(_read(self.embedded.database)) if predicate(e)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def event(self, request_id: str, timeout: float = 5.0) -> RequestEvent:
        deadline = time.monotonic() + timeout
        while True:
            for event in asyncio.run(_read(self.embedded.database)):
                if event.request_id == request_id:
                    return event
            if time.monotonic() > deadline:
                raise AssertionError(f"request {request_id} was not recorded")
            time.sleep(0.05)


async def _read(database: Path) -> list[RequestEvent]:
    sink = await SQLiteSink.open(str(database), readonly=True)
    try:
        return list(reversed(await sink.recent(10_000)))
    finally:
        await sink.aclose()


@contextlib.contextmanager
def running_kestrel(tmp_path: Path, **config: Any) -> Iterator[KestrelHandle]:
    config.setdefault("logger", {})
    config["logger"] = {"database": str(tmp_path / "kestrel.db"), **config["logger"]}
    cfg = config_from_dict(config)
    embedded = build(cfg)
    server = BackgroundServer(embedded.app).start()
    try:
        yield KestrelHandle(server.url, cfg, embedded, server)
    finally:
        server.stop()


def account(sim_url: str, key: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": name or key, "base_url": sim_url, "api_key": key, **extra}
