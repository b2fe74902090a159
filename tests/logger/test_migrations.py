"""Schema migrations, on SQLite and on Postgres: once, in order, under a lock, never backwards."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from kestrel.logger import migrations
from kestrel.logger.sink import schema
from kestrel.logger.sink.postgres import PostgresSink
from kestrel.logger.sink.sqlite import SQLiteSink

from .conftest import PgSchema


@dataclass
class Database:
    """One empty database of either kind, reached the way production reaches it."""

    dialect: schema.Dialect
    migrate: Callable[[], Awaitable[list[migrations.Migration]]]
    """``migrations.migrate`` over a connection of its own."""
    query: Callable[[str], list[tuple[Any, ...]]]
    open_sink: Callable[[], Awaitable[Any]]


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        path = tmp_path / "kestrel.db"

        def query_sqlite(statement: str) -> list[tuple[Any, ...]]:
            conn = sqlite3.connect(path)
            try:
                with conn:
                    return conn.execute(statement).fetchall()
            finally:
                conn.close()

        return Database(
            "sqlite", lambda: migrations.migrate(path), query_sqlite, lambda: SQLiteSink.open(path)
        )
    where: PgSchema = request.getfixturevalue("pg_schema")

    def query_postgres(statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(where.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(where.name)))
            cursor = conn.execute(statement.encode())
            return cursor.fetchall() if cursor.description else []

    return Database(
        "postgres",
        lambda: migrations.migrate(where.dsn, schema_name=where.name),
        query_postgres,
        lambda: PostgresSink.open(where.dsn, schema_name=where.name),
    )


ALL = [m.version for m in migrations.MIGRATIONS]


def applied(database: Database) -> list[int]:
    return [v for (v,) in database.query("SELECT version FROM schema_migrations ORDER BY version")]


async def test_a_fresh_database_gets_every_migration_in_order(database: Database) -> None:
    done = await database.migrate()
    assert [m.version for m in done] == ALL
    assert applied(database) == ALL
    assert sorted(ALL) == ALL and ALL[0] == 1


async def test_running_again_is_a_no_op(database: Database) -> None:
    await database.migrate()
    assert await database.migrate() == []
    assert applied(database) == ALL


async def test_concurrent_migrations_apply_once(database: Database) -> None:
    results = await asyncio.gather(*(database.migrate() for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(ALL)]
    assert applied(database) == ALL


async def test_a_database_newer_than_the_code_is_refused(database: Database) -> None:
    await database.migrate()
    newer = migrations.LATEST_VERSION + 1
    database.query(
        f"INSERT INTO schema_migrations (version, description, applied_at_ms) "
        f"VALUES ({newer}, 'from the future', 0)"
    )
    with pytest.raises(migrations.SchemaTooNew, match="newer"):
        await database.migrate()
    with pytest.raises(migrations.SchemaTooNew):
        await database.open_sink()
    assert applied(database) == [*ALL, newer]


async def test_the_migrated_tables_match_their_description(database: Database) -> None:
    # The descriptions in ``schema`` are the schema after the last migration: a change to one
    # without a migration (or the reverse) fails here.
    await database.migrate()
    for table in schema.PARTITIONED:
        if database.dialect == "sqlite":
            rows = database.query(f"SELECT name FROM pragma_table_info('{table.name}') ORDER BY cid")
        else:
            rows = database.query(
                "SELECT column_name FROM information_schema.columns "
                f"WHERE table_schema = current_schema() AND table_name = '{table.name}' "
                "ORDER BY ordinal_position"
            )
        assert [name for (name,) in rows] == [c.name for c in table.columns]


async def test_opening_a_sink_migrates(database: Database) -> None:
    sink = await database.open_sink()
    await sink.aclose()
    assert applied(database) == ALL


async def test_a_postgres_sink_can_require_a_prior_migration(pg_schema: PgSchema) -> None:
    with pytest.raises(RuntimeError, match="kestrel migrate"):
        await PostgresSink.open(pg_schema.dsn, schema_name=pg_schema.name, migrate=False)
    await migrations.migrate(pg_schema.dsn, schema_name=pg_schema.name)
    sink = await PostgresSink.open(pg_schema.dsn, schema_name=pg_schema.name, migrate=False)
    await sink.aclose()


# The SQL each released migration runs, pinned: a migration that shipped must never change, or
# databases migrated before and after the change would differ. Append a new migration instead.
RELEASED = {
    (1, "sqlite"): "ff790fcf865f0a7a",
    (1, "postgres"): "0c11b3145a3a77f8",
    (2, "sqlite"): "e0d18d1d9de870b4",
    (2, "postgres"): "6b0ba93b6413ea75",
}


@pytest.mark.parametrize(("version", "dialect"), sorted(RELEASED))
def test_released_migrations_never_change(version: int, dialect: schema.Dialect) -> None:
    migration = next(m for m in migrations.MIGRATIONS if m.version == version)
    digest = hashlib.sha256("\n".join(migration.statements(dialect)).encode()).hexdigest()
    assert digest[:16] == RELEASED[version, dialect]


def test_postgres_targets_are_told_from_sqlite_paths() -> None:
    assert migrations.is_postgres("postgresql://u@h/db")
    assert migrations.is_postgres("postgres://h/db")
    assert migrations.is_postgres("host=127.0.0.1 dbname=kestrel")
    assert not migrations.is_postgres("~/.kestrel/kestrel.db")
    assert not migrations.is_postgres(Path("/var/lib/kestrel.db"))
