"""Sink fixtures: the contract tests run once per adapter listed in ``SINK_FACTORIES``.

To add an adapter, add a factory that returns an open, empty sink; factories that need a server
ask for its fixture through ``request`` and so skip (or fail under CI) when it is unavailable.

Postgres tests share the run's database (``database_url``) and each gets a schema of its own
(``pg_schema``), dropped afterwards: a test never sees another's rows, partitions or migrations.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from kestrel.logger.sink.base import EventSink
from kestrel.logger.sink.memory import MemorySink
from kestrel.logger.sink.postgres import PostgresSink
from kestrel.logger.sink.sqlite import SQLiteSink


@dataclass(frozen=True)
class PgSchema:
    """A Postgres schema made for one test: connect to ``dsn``, use ``name``."""

    dsn: str
    name: str


async def _sqlite(request: pytest.FixtureRequest) -> EventSink:
    return await SQLiteSink.open(request.getfixturevalue("tmp_path") / "kestrel.db")


async def _memory(request: pytest.FixtureRequest) -> EventSink:
    return MemorySink()


async def _postgres(request: pytest.FixtureRequest) -> EventSink:
    where: PgSchema = request.getfixturevalue("pg_schema")
    return await PostgresSink.open(where.dsn, schema_name=where.name, days_ahead=0)


SINK_FACTORIES: dict[str, Callable[[pytest.FixtureRequest], Awaitable[EventSink]]] = {
    "memory": _memory,
    "postgres": _postgres,
    "sqlite": _sqlite,
}


@pytest.fixture(params=sorted(SINK_FACTORIES))
async def sink(request: pytest.FixtureRequest) -> AsyncIterator[EventSink]:
    opened = await SINK_FACTORIES[request.param](request)
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture
def pg_schema(database_url: str) -> Iterator[PgSchema]:
    """An empty schema in the run's database, dropped with everything in it afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield PgSchema(database_url, name)
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(autouse=True)
def _no_kestrel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own KESTREL_* variables must not leak into config loading."""
    for name in list(os.environ):
        if name.startswith("KESTREL_"):
            monkeypatch.delenv(name)
