"""Sink fixtures: the contract tests run once per adapter listed in ``SINK_FACTORIES``.

To add an adapter (Postgres next), add a factory that returns an open, empty sink; tests that
need a server can skip from inside the factory when it is not available.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from kestrel.logger.sink.base import EventSink
from kestrel.logger.sink.memory import MemorySink
from kestrel.logger.sink.sqlite import SQLiteSink


async def _sqlite(tmp_path: Path) -> EventSink:
    return await SQLiteSink.open(tmp_path / "kestrel.db")


async def _memory(tmp_path: Path) -> EventSink:
    return MemorySink()


SINK_FACTORIES: dict[str, Callable[[Path], Awaitable[EventSink]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
}


@pytest.fixture(params=sorted(SINK_FACTORIES))
async def sink(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventSink]:
    opened = await SINK_FACTORIES[request.param](tmp_path)
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture(autouse=True)
def _no_kestrel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own KESTREL_* variables must not leak into config loading."""
    for name in list(os.environ):
        if name.startswith("KESTREL_"):
            monkeypatch.delenv(name)
