"""Versioned schema migrations of the request log, one list for SQLite and Postgres.

Each ``Migration`` renders its statements for a dialect from the table descriptions in
``sink.schema``, so the two databases never drift apart. ``schema_migrations`` records which
versions a database has applied; ``migrate`` applies the missing ones, in order, inside one
transaction, and records them in the same transaction, so a database is always at a version the
code knows, never half-way.

Several processes may start at once (logger pods, ``kestrel up`` twice), so ``migrate`` holds a
lock while it reads and applies: on Postgres a transaction-scoped advisory lock, keyed by the
schema so unrelated schemas in one database do not wait on each other; on SQLite the write lock
of ``BEGIN IMMEDIATE``. The second process waits, then finds nothing left to do. A database
already at a version newer than this code is refused rather than written by code that does not
know its shape (``SchemaTooNew``).

Rules for adding a migration: append, never edit a released one (the tests pin the SQL of each
released migration), and make the matching change to the table descriptions, which describe the
schema after the last migration (a test migrates a fresh database and compares).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .sink import schema
from .sink.schema import Dialect

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    build: Callable[[Dialect], list[str]]
    """The statements for a dialect, run in order inside the migration transaction."""

    def statements(self, dialect: Dialect) -> list[str]:
        return self.build(dialect)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "requests table and its indexes (partitioned by day on Postgres)",
        lambda dialect: schema.create_statements(schema.REQUESTS, dialect),
    ),
    Migration(
        2,
        "request_bodies table, written only while body capture is on",
        lambda dialect: schema.create_statements(schema.BODIES, dialect),
    ),
)
LATEST_VERSION = MIGRATIONS[-1].version

MIGRATIONS_TABLE = "schema_migrations"
# Types that mean the same in both dialects, so this one statement needs no rendering.
_CREATE_MIGRATIONS_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (\n"
    "  version INTEGER PRIMARY KEY,\n"
    "  description TEXT NOT NULL,\n"
    "  applied_at_ms BIGINT NOT NULL\n"
    ")"
)
_CONNINFO = re.compile(r"\s*[a-z_]+\s*=")
ADVISORY_LOCK_CLASS = 0x4B53_4D47
"""First key of Kestrel's migration advisory lock ('KSMG'); the second is the schema's hash."""


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer Kestrel; this one must not write to it."""


def is_postgres(database: str | Path) -> bool:
    """Whether ``database`` names a Postgres server rather than a SQLite file.

    Postgres is a URL (``postgresql://...``) or libpq's ``key=value`` form (``host=... dbname=...``).
    """
    if not isinstance(database, str):
        return False
    return database.startswith(("postgres://", "postgresql://")) or bool(_CONNINFO.match(database))


async def migrate(database: str | Path, *, schema_name: str | None = None) -> list[Migration]:
    """Bring ``database`` (a Postgres URL or a SQLite path) to ``LATEST_VERSION``.

    Returns the migrations this call applied: empty when another process got there first or
    the database was already current. ``schema_name`` sets the Postgres search path.
    """
    if is_postgres(database):
        from .sink.postgres import connect

        async with await connect(str(database), schema_name=schema_name) as conn:
            return await migrate_postgres(conn)
    return await asyncio.to_thread(_migrate_sqlite_file, Path(database).expanduser())


def migrate_sqlite(conn: sqlite3.Connection) -> list[Migration]:
    """Apply the missing migrations on an autocommit (``isolation_level=None``) connection."""
    # The write lock up front: a second process blocks here until the first has committed.
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_CREATE_MIGRATIONS_TABLE)
        applied = {v for (v,) in conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}")}
        # Databases from before this table recorded their version only in user_version.
        applied_before = conn.execute("PRAGMA user_version").fetchone()[0]
        _refuse_newer(applied | {applied_before})
        pending = _pending(applied)
        for statement, params in _plan(pending, "sqlite"):
            conn.execute(statement, params)
        conn.execute(f"PRAGMA user_version={LATEST_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return pending


async def migrate_postgres(conn: psycopg.AsyncConnection) -> list[Migration]:
    """Apply the missing migrations on ``conn``, in the schema its search path names."""
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(coalesce(current_schema(), '')))",
            (ADVISORY_LOCK_CLASS,),
        )
        await conn.execute(_CREATE_MIGRATIONS_TABLE)
        cursor = await conn.execute(f"SELECT version FROM {MIGRATIONS_TABLE}")
        applied = {v for (v,) in await cursor.fetchall()}
        _refuse_newer(applied)
        pending = _pending(applied)
        for statement, params in _plan(pending, "postgres"):
            # No parameters means none at all, so a literal % in DDL is never read as one.
            await conn.execute(statement, params or None)
    return pending


async def postgres_version(conn: psycopg.AsyncConnection) -> int:
    """The newest version applied to the schema ``conn`` looks at; 0 when never migrated."""
    cursor = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (MIGRATIONS_TABLE,))
    row = await cursor.fetchone()
    if row is None or not row[0]:
        return 0
    cursor = await conn.execute(f"SELECT max(version) FROM {MIGRATIONS_TABLE}")
    row = await cursor.fetchone()
    return int(row[0] or 0) if row else 0


def check_current(version: int) -> None:
    """Refuse a schema that is newer than the code, or older (``kestrel migrate`` first)."""
    _refuse_newer({version})
    if version < LATEST_VERSION:
        raise RuntimeError(
            f"the request log is at schema version {version}, this Kestrel needs "
            f"{LATEST_VERSION}: run `kestrel migrate` first"
        )


def _pending(applied: set[int]) -> list[Migration]:
    return [m for m in MIGRATIONS if m.version not in applied]


def _plan(pending: list[Migration], dialect: Dialect) -> list[tuple[str, tuple[object, ...]]]:
    """Each migration's statements, each followed by the row that records it as applied."""
    mark = schema.qmark(0) if dialect == "sqlite" else schema.percent(0)
    record = (
        f"INSERT INTO {MIGRATIONS_TABLE} (version, description, applied_at_ms) "
        f"VALUES ({mark}, {mark}, {mark})"
    )
    now_ms = int(time.time() * 1000)
    plan: list[tuple[str, tuple[object, ...]]] = []
    for migration in pending:
        plan += [(statement, ()) for statement in migration.statements(dialect)]
        plan.append((record, (migration.version, migration.description, now_ms)))
    return plan


def _refuse_newer(versions: set[int]) -> None:
    newest = max(versions, default=0)
    if newest > LATEST_VERSION:
        raise SchemaTooNew(
            f"the request log has schema version {newest}, newer than this Kestrel "
            f"({LATEST_VERSION}); upgrade Kestrel or point it at another database"
        )


def _migrate_sqlite_file(path: Path) -> list[Migration]:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        return migrate_sqlite(conn)
    finally:
        conn.close()
