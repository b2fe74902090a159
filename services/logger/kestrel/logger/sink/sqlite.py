"""The SQLite adapter of ``EventSink``: the request log of ``kestrel up``, in one local file.

sqlite3 calls block, so none of them runs on the event loop. Each connection is confined to its
own single-thread executor: one for writing, one for reading. In WAL mode readers never wait for
the writer, so the dashboard and ``kestrel logs`` stay responsive while batches are committed,
and ``kestrel logs`` can read the file while ``kestrel up`` is writing it.

The schema comes from ``kestrel.logger.migrations``, applied when a writable sink opens; several
processes opening one file at once take turns on SQLite's write lock. Retention deletes in small
batches, each its own transaction, so a large prune never holds the writer up for long.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from kestrel.common.events import RequestEvent

from .. import migrations
from . import schema
from .base import EventFilter, PruneResult, RequestBodies

T = TypeVar("T")


class _Connection:
    """One sqlite3 connection, opened lazily on, and only ever used from, its own thread."""

    def __init__(self, name: str, opener: Callable[[], sqlite3.Connection]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._opener = opener
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise RuntimeError("the SQLite sink is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, fn)

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._opener()
        return fn(self._conn)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close_in_thread)
        self._executor.shutdown(wait=False)

    def _close_in_thread(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class SQLiteSink:
    """``EventSink`` and ``BodyStore`` over a SQLite file in WAL mode.

    Create it with ``await SQLiteSink.open()``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        busy_timeout_s: float = 5.0,
        capture_bodies: bool = False,
        prune_batch: int = 5000,
    ):
        """Does no I/O; ``open`` (or ``initialize``) creates the file and the schema.

        ``readonly`` is for readers in another process (``kestrel logs``): it never creates the
        file or the schema, and refuses writes. ``prune_batch`` is how many rows one pruning
        transaction deletes at most.
        """
        self.path = Path(path).expanduser()
        self.readonly = readonly
        self.capture_bodies = capture_bodies
        self._busy_timeout_s = busy_timeout_s
        self._prune_batch = prune_batch
        self._insert = schema.insert_sql(schema.REQUESTS, "sqlite", schema.qmark)
        self._insert_bodies = schema.insert_sql(schema.BODIES, "sqlite", schema.qmark)
        self._writer: _Connection | None = None
        if not readonly:
            self._writer = _Connection("kestrel-sqlite-writer", self._open_writer)
        self._reader = _Connection("kestrel-sqlite-reader", self._open_reader)

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        readonly: bool = False,
        busy_timeout_s: float = 5.0,
        capture_bodies: bool = False,
    ) -> SQLiteSink:
        """Open (creating and migrating unless ``readonly``) the database at ``path``."""
        sink = cls(
            path, readonly=readonly, busy_timeout_s=busy_timeout_s, capture_bodies=capture_bodies
        )
        try:
            await sink.initialize()
        except BaseException:
            await sink.aclose()
            raise
        return sink

    async def initialize(self) -> None:
        """Create the file, switch it to WAL and apply the migrations it lacks; idempotent."""
        if self._writer is not None:
            await self._writer.call(migrations.migrate_sqlite)
        elif not self.path.exists():
            raise FileNotFoundError(f"no request log at {self.path}")
        await self._reader.call(lambda conn: None)

    async def write(self, events: Sequence[RequestEvent]) -> None:
        if self._writer is None:
            raise RuntimeError(f"{self.path} was opened read-only")
        if not events:
            return
        rows = [schema.event_to_row(e) for e in events]
        await self._writer.call(lambda conn: _in_transaction(conn, self._insert, rows))

    async def write_bodies(self, bodies: Sequence[RequestBodies]) -> None:
        if self._writer is None:
            raise RuntimeError(f"{self.path} was opened read-only")
        if not self.capture_bodies or not bodies:
            return
        rows = [schema.bodies_to_row(b) for b in bodies]
        await self._writer.call(lambda conn: _in_transaction(conn, self._insert_bodies, rows))

    async def prune(self, older_than_s: float, *, now_ms: int | None = None) -> PruneResult:
        if self._writer is None:
            raise RuntimeError(f"{self.path} was opened read-only")
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        cutoff_ms = now_ms - round(older_than_s * 1000)
        deleted = 0
        for table in (schema.REQUESTS, schema.BODIES):
            # rowid (``seq`` is its alias in requests) picks the batch via the start-time index.
            statement = (
                f"DELETE FROM {table.name} WHERE rowid IN (SELECT rowid FROM {table.name} "
                f"WHERE started_at_ms < ? LIMIT {int(self._prune_batch)})"
            )
            while True:
                # One executor call per batch: the writer's batches get their turn in between.
                n = await self._writer.call(
                    lambda conn, statement=statement: _delete(conn, statement, cutoff_ms)
                )
                if table is schema.REQUESTS:
                    deleted += n
                if n < self._prune_batch:
                    break
        return PruneResult(cutoff_ms, deleted)

    async def recent(
        self,
        limit: int,
        *,
        since_ms: int | None = None,
        client_key_id: str | None = None,
        account_id: str | None = None,
        model: str | None = None,
        status: int | None = None,
    ) -> list[RequestEvent]:
        if limit < 0:
            raise ValueError("limit must not be negative")
        flt = EventFilter(
            since_ms=since_ms,
            client_key_id=client_key_id,
            account_id=account_id,
            model=model,
            status=status,
        )
        sql, params = schema.recent_sql(flt, limit, schema.qmark)
        rows = await self._reader.call(lambda conn: conn.execute(sql, params).fetchall())
        return [schema.row_to_event(r) for r in rows]

    async def get(self, request_id: str) -> RequestEvent | None:
        sql = schema.by_request_sql(schema.qmark)
        row = await self._reader.call(lambda conn: conn.execute(sql, (request_id,)).fetchone())
        return None if row is None else schema.row_to_event(row)

    async def get_bodies(self, event_id: str) -> RequestBodies | None:
        sql = schema.bodies_sql(schema.qmark)
        row = await self._reader.call(lambda conn: conn.execute(sql, (event_id,)).fetchone())
        return None if row is None else schema.row_to_bodies(row)

    async def count(self) -> int:
        row = await self._reader.call(lambda conn: conn.execute(schema.COUNT_SQL).fetchone())
        return int(row[0])

    async def aclose(self) -> None:
        if self._writer is not None:
            await self._writer.close()
        await self._reader.close()

    async def __aenter__(self) -> SQLiteSink:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are explicit (see _in_transaction), never implicit.
        return sqlite3.connect(
            self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
        )

    def _open_writer(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable against a crashed process in WAL mode; a power cut may lose the
        # last commits, an acceptable trade for a request log against an fsync per batch.
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _open_reader(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute("PRAGMA query_only=ON")
        return conn


def _in_transaction(
    conn: sqlite3.Connection, statement: str, rows: list[tuple[object, ...]]
) -> None:
    # BEGIN IMMEDIATE takes the write lock up front, so a busy database fails here, before
    # any row is written, and the whole batch is retried by the writer.
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(statement, rows)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _delete(conn: sqlite3.Connection, statement: str, cutoff_ms: int) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        deleted = conn.execute(statement, (cutoff_ms,)).rowcount
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return deleted
