"""The Postgres adapter of ``EventSink``: the request log in cluster mode.

Sized for hundreds of millions of rows. ``requests`` and ``request_bodies`` are range-partitioned
by UTC day on ``started_at_ms`` (``partitions``), so retention drops a day with one ``DROP
TABLE`` instead of deleting rows one by one, and a dashboard query bounded in time touches only
the days it asks for. Every filter of ``EventFilter`` has a partitioned index ending in the
start time (``schema.INDEXES``), so "the latest 50 for this account" is an index scan backwards
on each partition, never a sort of the table.

Idempotence by ``event_id``. Postgres requires every unique key of a partitioned table to
contain the partition key, so the key is ``(event_id, started_at_ms)`` and a write is ``INSERT
... ON CONFLICT (event_id, started_at_ms) DO NOTHING``. That equals uniqueness by ``event_id``
alone for every case that occurs: an event is built once by the edge and is immutable after
``publish``; a retried batch or a redelivered stream entry is the same serialised event, so it
carries the same ``started_at_ms``, lands in the same partition and hits the same key. Two
records that share an ``event_id`` but not a start time would be two different events that a
producer gave the same random 128-bit id, which does not happen by chance.

Writing a batch: rows are streamed with ``COPY`` into a per-connection temporary table, then
moved with one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` in the same transaction (``COPY``
alone cannot skip duplicates). The partitions the batch needs are created first when this
process has not seen them; they are normally created ahead, at open and by every ``prune``.

Connections: one for writing (the writer is a single task), a few for reading (the admin API and
dashboard read concurrently), and a short-lived one per ``prune``. Each is opened lazily and
replaced when the server drops it, so the sink outlives a database restart: a read or a write
that finds its connection dead is retried once on a new one (safe for writes because they are
idempotent); after that it raises, and the writer retries the batch with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg import errors, pq, sql
from psycopg.types.json import set_json_loads

from kestrel.common.events import RequestEvent

from .. import migrations
from . import partitions, schema
from .base import EventFilter, PruneResult, RequestBodies
from .schema import Table

log = logging.getLogger(__name__)
T = TypeVar("T")

APPLICATION_NAME = "kestrel-logger"
PARTITION_LOCK_CLASS = 0x4B53_5054
"""First key of the advisory lock that serialises partition DDL ('KSPT')."""
PRUNE_LOCK_CLASS = 0x4B53_5052
"""First key of the advisory lock held by one pruning process at a time ('KSPR')."""
_STAGE = "kestrel_incoming_requests"
# Session-private staging for COPY: same columns as requests, plus the batch order; emptied by
# every commit, so it never grows.
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (ord INTEGER NOT NULL, "
    + ", ".join(
        f"{c.name} {schema.SQL_TYPES['postgres'][c.kind]}" for c in schema.COLUMNS if c.kind != "serial"
    )
    + ") ON COMMIT DELETE ROWS"
)
_SCOPED_LOCK = "SELECT {fn}(%s, hashtext(coalesce(current_schema(), '')))"


async def connect(
    dsn: str, *, schema_name: str | None = None, connect_timeout_s: float = 5.0
) -> psycopg.AsyncConnection[Any]:
    """An autocommit connection whose search path is ``schema_name`` (when given)."""
    extra: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout_s))}
    if "application_name" not in psycopg.conninfo.conninfo_to_dict(dsn):
        extra["application_name"] = APPLICATION_NAME
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, **extra)
    try:
        if schema_name is not None:
            await conn.execute(
                sql.SQL("SET search_path TO {}").format(sql.Identifier(schema_name))
            )
        set_json_loads(orjson.loads, conn)
    except BaseException:
        await conn.close()
        raise
    return conn


class _Connections:
    """Up to ``size`` connections, opened on demand and discarded when broken or left mid-way."""

    def __init__(
        self, connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]], size: int
    ) -> None:
        self._connect = connect
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._closed:
            raise RuntimeError("the Postgres sink is closed")
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = await self._connect()
            try:
                yield conn
            finally:
                reusable = (
                    not self._closed
                    and not conn.closed
                    and conn.info.transaction_status == pq.TransactionStatus.IDLE
                )
                if reusable:
                    self._idle.append(conn)
                else:
                    # Broken, cancelled mid-query, or the sink closed meanwhile: never reuse.
                    await conn.close()

    async def run(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]], *, retry: bool) -> T:
        """``fn`` on a connection; once more on a fresh one if the first was dead (``retry``)."""
        try:
            async with self.use() as conn:
                return await fn(conn)
        except psycopg.OperationalError:
            if not retry or self._closed:
                raise
            log.warning("postgres sink: connection lost; retrying on a new one", exc_info=True)
        async with self.use() as conn:
            return await fn(conn)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


class PostgresSink:
    """``EventSink`` and ``BodyStore`` over Postgres. Create it with ``await PostgresSink.open()``."""

    def __init__(
        self,
        dsn: str,
        *,
        schema_name: str | None = None,
        readers: int = 2,
        capture_bodies: bool = False,
        connect_timeout_s: float = 5.0,
        lock_timeout_s: float = 2.0,
        days_ahead: int = 2,
        prune_batch: int = 10_000,
    ) -> None:
        """Does no I/O; ``open`` (or ``initialize``) connects and checks the schema.

        ``schema_name`` puts every table in that Postgres schema (default: the search path of
        the role). ``lock_timeout_s`` bounds how long partition DDL waits for its lock before
        giving up (and retrying later) rather than queueing the writer's and readers' queries
        behind it. ``days_ahead`` is how many future days get their partition in advance.
        """
        if readers < 1:
            raise ValueError("readers must be at least 1")
        self.dsn = dsn
        self.schema_name = schema_name
        self.capture_bodies = capture_bodies
        self._connect_timeout_s = connect_timeout_s
        self._lock_timeout_ms = round(lock_timeout_s * 1000)
        self._days_ahead = days_ahead
        self._prune_batch = prune_batch
        self._writer = _Connections(self._connect_writer, 1)
        self._readers = _Connections(self._connect, readers)
        self._known: set[tuple[str, int]] = set()
        """(table, day) pairs whose partition this process has seen attached."""
        self._closed = False
        columns = ", ".join(schema.DATA_COLUMNS)
        self._copy_sql = f"COPY {_STAGE} (ord, {columns}) FROM STDIN"
        self._merge_sql = (
            f"INSERT INTO {schema.TABLE} ({columns}) SELECT {columns} FROM {_STAGE} ORDER BY ord "
            f"ON CONFLICT ({', '.join(schema.REQUESTS.unique_key('postgres'))}) DO NOTHING"
        )
        self._insert_bodies = schema.insert_sql(schema.BODIES, "postgres", schema.percent)

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        schema_name: str | None = None,
        migrate: bool = True,
        readers: int = 2,
        capture_bodies: bool = False,
        lock_timeout_s: float = 2.0,
        days_ahead: int = 2,
    ) -> PostgresSink:
        """Connect, migrate and create the partitions for today and the ``days_ahead`` after it;
        with ``migrate=False`` only check that the schema is current (``kestrel
        migrate`` ran) and create nothing."""
        sink = cls(
            dsn,
            schema_name=schema_name,
            readers=readers,
            capture_bodies=capture_bodies,
            lock_timeout_s=lock_timeout_s,
            days_ahead=days_ahead,
        )
        try:
            await sink.initialize(migrate=migrate)
        except BaseException:
            await sink.aclose()
            raise
        return sink

    async def initialize(self, *, migrate: bool = True) -> None:
        async def prepare(conn: psycopg.AsyncConnection[Any]) -> None:
            if migrate:
                await migrations.migrate_postgres(conn)
            else:
                migrations.check_current(await migrations.postgres_version(conn))
            await self._load_partitions(conn)

        await self._writer.run(prepare, retry=False)
        if migrate:
            # A process allowed to change the schema prepares the days ahead; one that is not
            # (a reader's role may lack the right) leaves it to the writer and to prune.
            await self.create_partitions_around(_now_ms())

    # -- writing -------------------------------------------------------------------------

    async def write(self, events: Sequence[RequestEvent]) -> None:
        if not events:
            return
        rows = [(i, *schema.event_to_row(e)) for i, e in enumerate(events)]
        days = {partitions.day_of(e.started_at_ms) for e in events}
        await self._ensure_partitions([schema.REQUESTS], days)

        async def insert(conn: psycopg.AsyncConnection[Any]) -> None:
            async with conn.transaction(), conn.cursor() as cursor:
                async with cursor.copy(self._copy_sql) as copy:
                    for row in rows:
                        await copy.write_row(row)
                await cursor.execute(self._merge_sql)

        await self._with_partitions(insert, [schema.REQUESTS], days)

    async def write_bodies(self, bodies: Sequence[RequestBodies]) -> None:
        if not self.capture_bodies or not bodies:
            return
        rows = [schema.bodies_to_row(b) for b in bodies]
        days = {partitions.day_of(b.started_at_ms) for b in bodies}
        await self._ensure_partitions([schema.BODIES], days)

        async def insert(conn: psycopg.AsyncConnection[Any]) -> None:
            async with conn.transaction(), conn.cursor() as cursor:
                await cursor.executemany(self._insert_bodies, rows)

        await self._with_partitions(insert, [schema.BODIES], days)

    async def _with_partitions(
        self,
        insert: Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]],
        tables: list[Table],
        days: set[int],
    ) -> None:
        # retry=True: a write that died with its connection is simply written again, which is
        # safe even when the first attempt did commit, because writes are idempotent.
        try:
            await self._writer.run(insert, retry=True)
        except errors.CheckViolation:
            # "no partition of relation found for row": another process dropped a partition
            # this one had cached (a late event for a day just pruned). Look again, once.
            self._known.clear()
            await self._ensure_partitions(tables, days)
            await self._writer.run(insert, retry=True)

    # -- reading -------------------------------------------------------------------------

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
        query, params = schema.recent_sql(flt, limit, schema.percent)
        rows = await self._fetch(query, params)
        return [schema.row_to_event(r) for r in rows]

    async def get(self, request_id: str) -> RequestEvent | None:
        rows = await self._fetch(schema.by_request_sql(schema.percent), [request_id])
        return schema.row_to_event(rows[0]) if rows else None

    async def get_bodies(self, event_id: str) -> RequestBodies | None:
        rows = await self._fetch(schema.bodies_sql(schema.percent), [event_id])
        return schema.row_to_bodies(rows[0]) if rows else None

    async def count(self) -> int:
        rows = await self._fetch(schema.COUNT_SQL, [])
        return int(rows[0][0])

    async def partition_names(self, table: Table = schema.REQUESTS) -> list[str]:
        """The partitions attached to ``table``, oldest first (for operators and tests)."""
        names = await self._readers.run(lambda conn: _attached(conn, table), retry=True)
        return sorted(names)

    async def _fetch(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        async def fetch(conn: psycopg.AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(query, params)
            return await cursor.fetchall()

        return await self._readers.run(fetch, retry=True)

    # -- retention and partitions ---------------------------------------------------------

    async def prune(self, older_than_s: float, *, now_ms: int | None = None) -> PruneResult:
        """Drop the partitions wholly older than the cutoff, delete the older rows of the one
        it falls in, and create the partitions of the coming days.

        One process prunes at a time (a session advisory lock; the others wait, then find
        little left). Dropping a partition needs an exclusive lock on the parent table for an
        instant; when it cannot be had within ``lock_timeout_s`` (a long query is reading), the
        partition is left for the next run, so the queries queued behind the drop wait at most
        that long.
        """
        if self._closed:
            raise RuntimeError("the Postgres sink is closed")
        now_ms = _now_ms() if now_ms is None else now_ms
        cutoff_ms = now_ms - round(older_than_s * 1000)
        dropped: list[str] = []
        deleted = 0
        async with await self._connect() as conn:
            await conn.execute(_SCOPED_LOCK.format(fn="pg_advisory_lock"), (PRUNE_LOCK_CLASS,))
            for table in schema.PARTITIONED:
                for name in partitions.expired(table, await _attached(conn, table), cutoff_ms):
                    if await self._drop(conn, name):
                        dropped.append(name)
                n = await self._delete_before(conn, table, cutoff_ms)
                if table is schema.REQUESTS:
                    deleted = n
        self._known = {k for k in self._known if partitions.bounds(k[1])[1] > cutoff_ms}
        await self.create_partitions_around(now_ms)
        return PruneResult(cutoff_ms, deleted, tuple(dropped))

    async def create_partitions_around(self, now_ms: int) -> None:
        """Make sure the day of ``now_ms`` and the ``days_ahead`` after it have partitions.

        Any other day (a late event from yesterday) gets its partition when it is written.
        """
        today = partitions.day_of(now_ms)
        await self._ensure_partitions(
            schema.PARTITIONED, set(range(today, today + self._days_ahead + 1))
        )

    async def _ensure_partitions(self, tables: Iterable[Table], days: set[int]) -> None:
        missing = [(t, d) for t in tables for d in days if (t.name, d) not in self._known]
        if not missing:
            return

        async def create(conn: psycopg.AsyncConnection[Any]) -> None:
            async with conn.transaction():
                await self._set_lock_timeout(conn)
                await conn.execute(
                    _SCOPED_LOCK.format(fn="pg_advisory_xact_lock"), (PARTITION_LOCK_CLASS,)
                )
                # Under the lock, so two processes never create the same partition.
                await self._load_partitions(conn)
                for table, day in missing:
                    if (table.name, day) in self._known:
                        continue
                    for statement in partitions.create_statements(table, day):
                        await conn.execute(statement)
                    log.info("postgres sink: created partition %s", partitions.partition_name(table, day))
            self._known.update((t.name, d) for t, d in missing)

        await self._writer.run(create, retry=True)

    async def _load_partitions(self, conn: psycopg.AsyncConnection[Any]) -> None:
        for table in schema.PARTITIONED:
            for name in await _attached(conn, table):
                day = partitions.day_of_partition(table, name)
                if day is not None:
                    self._known.add((table.name, day))

    async def _drop(self, conn: psycopg.AsyncConnection[Any], name: str) -> bool:
        try:
            async with conn.transaction():
                await self._set_lock_timeout(conn)
                await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
        except errors.LockNotAvailable:
            log.warning("postgres sink: %s is busy; dropping it on the next prune", name)
            return False
        log.info("postgres sink: dropped partition %s", name)
        return True

    async def _delete_before(
        self, conn: psycopg.AsyncConnection[Any], table: Table, cutoff_ms: int
    ) -> int:
        """Delete the rows before the cutoff from the partition the cutoff falls in.

        Older partitions were just dropped (or are left for the next run if busy). Batches,
        each its own transaction, are picked by the start-time index and deleted by physical
        row id, so each costs what it deletes, not a scan of the day.
        """
        boundary = partitions.partition_name(table, partitions.day_of(cutoff_ms))
        if boundary not in await _attached(conn, table):
            return 0
        statement = sql.SQL(
            "DELETE FROM {p} WHERE ctid = ANY(ARRAY("
            "SELECT ctid FROM {p} WHERE started_at_ms < %s LIMIT %s))"
        ).format(p=sql.Identifier(boundary))
        total = 0
        while True:
            cursor = await conn.execute(statement, (cutoff_ms, self._prune_batch))
            total += cursor.rowcount
            if cursor.rowcount < self._prune_batch:
                return total

    async def _set_lock_timeout(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{self._lock_timeout_ms}ms",))

    # -- connections ---------------------------------------------------------------------

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await connect(
            self.dsn, schema_name=self.schema_name, connect_timeout_s=self._connect_timeout_s
        )

    async def _connect_writer(self) -> psycopg.AsyncConnection[Any]:
        conn = await self._connect()
        try:
            await conn.execute(_CREATE_STAGE)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def aclose(self) -> None:
        self._closed = True
        await self._writer.close()
        await self._readers.close()

    async def __aenter__(self) -> PostgresSink:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def _attached(conn: psycopg.AsyncConnection[Any], table: Table) -> list[str]:
    cursor = await conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s)",
        (table.name,),
    )
    return [name for (name,) in await cursor.fetchall()]


def _now_ms() -> int:
    return int(time.time() * 1000)
