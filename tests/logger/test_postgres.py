"""What the Postgres adapter adds to the contract: daily partitions, retention by dropping them,
idempotence across retries, index use, surviving lost connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from kestrel.logger.sink import partitions, schema
from kestrel.logger.sink.base import EventFilter, RequestBodies
from kestrel.logger.sink.postgres import PostgresSink

from .conftest import PgSchema
from .factories import BASE_MS, make_event

DAY = partitions.DAY_MS
D0 = partitions.day_of(BASE_MS)


def at(day: int, hour: int, n: int, **overrides: Any) -> Any:
    """Event ``n``, started at ``hour`` o'clock UTC on day ``D0 + day``."""
    return make_event(n, started_at_ms=(D0 + day) * DAY + hour * 3_600_000, **overrides)


@pytest.fixture
async def sink(pg_schema: PgSchema) -> AsyncIterator[PostgresSink]:
    opened = await PostgresSink.open(pg_schema.dsn, schema_name=pg_schema.name, capture_bodies=True)
    try:
        yield opened
    finally:
        await opened.aclose()


def query(where: PgSchema, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(where.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(where.name)))
        cursor = conn.execute(statement.encode(), params)
        return cursor.fetchall() if cursor.description else []


def rows_per_partition(where: PgSchema) -> dict[str, int]:
    rows = query(where, "SELECT tableoid::regclass::text, count(*) FROM requests GROUP BY 1")
    return {name.rsplit(".", 1)[-1]: n for name, n in rows}


def name(day: int, table: schema.Table = schema.REQUESTS) -> str:
    return partitions.partition_name(table, D0 + day)


async def test_events_land_in_the_partition_of_their_day(
    sink: PostgresSink, pg_schema: PgSchema
) -> None:
    await sink.write([at(0, 1, 1), at(0, 23, 2), at(1, 0, 3), at(2, 12, 4), at(2, 13, 5)])
    assert rows_per_partition(pg_schema) == {name(0): 2, name(1): 1, name(2): 2}
    assert {name(0), name(1), name(2)} <= set(await sink.partition_names())
    assert [e.event_id for e in await sink.recent(10)] == [f"evt-{i:04d}" for i in (5, 4, 3, 2, 1)]


async def test_the_day_boundary_belongs_to_the_next_day(sink: PostgresSink, pg_schema: PgSchema) -> None:
    midnight = (D0 + 1) * DAY
    await sink.write([make_event(1, started_at_ms=midnight - 1), make_event(2, started_at_ms=midnight)])
    assert rows_per_partition(pg_schema) == {name(0): 1, name(1): 1}


async def test_rewriting_events_never_duplicates_them(sink: PostgresSink) -> None:
    batch = [at(0, 1, 1), at(1, 1, 2), at(2, 1, 3)]
    await sink.write(batch)
    await sink.write(batch)  # a batch retried after a commit whose outcome was unknown
    await sink.write([batch[1], batch[1], at(2, 2, 4)])  # a redelivery inside a new batch
    assert await sink.count() == 4


async def test_prune_drops_old_partitions_and_trims_the_boundary_day(
    sink: PostgresSink, pg_schema: PgSchema
) -> None:
    events = [at(0, 5, 1), at(1, 5, 2), at(2, 5, 3), at(2, 18, 4), at(3, 5, 5)]
    await sink.write(events)
    await sink.write_bodies([RequestBodies(e.event_id, e.started_at_ms, b"q", b"r", 1, 1) for e in events])
    now = (D0 + 3) * DAY + 12 * 3_600_000  # day 3, noon
    result = await sink.prune(30 * 3_600_000 / 1000, now_ms=now)  # cutoff: day 2, 06:00

    assert result.cutoff_ms == (D0 + 2) * DAY + 6 * 3_600_000
    assert set(result.dropped_partitions) == {
        name(0), name(1), name(0, schema.BODIES), name(1, schema.BODIES)
    }
    assert result.deleted == 1  # event 3, at 05:00 on day 2
    assert rows_per_partition(pg_schema) == {name(2): 1, name(3): 1}
    assert [e.event_id for e in await sink.recent(10)] == ["evt-0005", "evt-0004"]
    assert await sink.get_bodies("evt-0003") is None and await sink.get_bodies("evt-0004")
    partitions_now = await sink.partition_names()
    assert name(0) not in partitions_now and name(1) not in partitions_now
    # Prune also prepared the days ahead of "now".
    assert {name(3), name(4), name(5)} <= set(partitions_now)


async def test_a_late_event_for_a_day_pruned_elsewhere_is_still_written(
    sink: PostgresSink, pg_schema: PgSchema
) -> None:
    await sink.write([at(0, 1, 1)])  # this sink now believes day 0 has a partition
    other = await PostgresSink.open(pg_schema.dsn, schema_name=pg_schema.name)
    try:
        result = await other.prune(1, now_ms=(D0 + 1) * DAY + 1000)  # another process drops day 0
        assert name(0) in result.dropped_partitions
    finally:
        await other.aclose()
    await sink.write([at(0, 2, 2)])  # redelivered late: its partition is created again
    assert rows_per_partition(pg_schema) == {name(0): 1}


async def test_writers_racing_for_a_new_day_create_its_partition_once(
    sink: PostgresSink, pg_schema: PgSchema
) -> None:
    others = [await PostgresSink.open(pg_schema.dsn, schema_name=pg_schema.name) for _ in range(3)]
    try:
        await asyncio.gather(*(s.write([at(40, 1, i)]) for i, s in enumerate([sink, *others])))
    finally:
        for other in others:
            await other.aclose()
    assert rows_per_partition(pg_schema) == {name(40): 4}


async def test_recent_by_account_reads_an_index(sink: PostgresSink, pg_schema: PgSchema) -> None:
    events = [
        make_event(i, started_at_ms=BASE_MS + i * 7_000, account_id=f"acct-{i % 50}", event_id=f"e{i}")
        for i in range(20_000)
    ]
    for start in range(0, len(events), 5000):
        await sink.write(events[start : start + 5000])
    query(pg_schema, "ANALYZE requests")
    statement, params = schema.recent_sql(EventFilter(account_id="acct-7"), 50, schema.percent)
    plan = "\n".join(r[0] for r in query(pg_schema, "EXPLAIN " + statement, tuple(params)))
    assert "Seq Scan" not in plan, plan
    assert "account_id_started_at_ms_idx" in plan, plan
    assert [e.account_id for e in await sink.recent(50, account_id="acct-7")] == ["acct-7"] * 50


async def test_the_sink_survives_its_connections_being_killed(
    sink: PostgresSink, pg_schema: PgSchema
) -> None:
    await sink.write([at(0, 1, 1)])
    assert await sink.count() == 1  # the reader connection is open too
    killed = query(
        pg_schema,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'kestrel-logger' AND datname = current_database()",
    )
    assert len(killed) >= 2
    await sink.write([at(0, 2, 2)])
    assert await sink.count() == 2
