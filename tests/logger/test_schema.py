"""The shared table description covers the event and renders for both SQL dialects."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from kestrel.common.events import RequestEvent
from kestrel.logger.sink import schema
from kestrel.logger.sink.base import EventFilter

from .factories import make_event


def test_one_column_per_event_field() -> None:
    fields = [f.name for f in dataclasses.fields(RequestEvent)]
    assert sorted(schema.DATA_COLUMNS) == sorted(fields)


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
@pytest.mark.parametrize("table", schema.PARTITIONED, ids=lambda t: t.name)
def test_every_kind_has_a_type_in_every_dialect(dialect: schema.Dialect, table: schema.Table) -> None:
    statements = schema.create_statements(table, dialect)
    create = next(s for s in statements if s.startswith("CREATE TABLE IF NOT EXISTS"))
    assert create.startswith(f"CREATE TABLE IF NOT EXISTS {table.name} (")
    assert "event_id TEXT NOT NULL" in create
    assert sum(s.startswith("CREATE INDEX IF NOT EXISTS") for s in statements) == len(table.indexes)


def test_sqlite_keys_on_event_id_alone() -> None:
    statements = schema.create_statements(schema.REQUESTS, "sqlite")
    assert "seq INTEGER PRIMARY KEY" in statements[0]
    assert "UNIQUE (event_id)" in statements[0]
    assert "ON CONFLICT (event_id) DO NOTHING" in schema.insert_sql(schema.REQUESTS, "sqlite", schema.qmark)


def test_postgres_uses_native_types_and_partitions_by_day() -> None:
    create = next(
        s for s in schema.create_statements(schema.REQUESTS, "postgres") if s.startswith("CREATE TABLE")
    )
    assert "attempts JSONB NOT NULL" in create
    assert "stream BOOLEAN NOT NULL" in create
    assert "input_tokens BIGINT NOT NULL" in create
    assert "seq BIGINT NOT NULL DEFAULT nextval('requests_seq')" in create
    # A unique key of a partitioned table must contain the partition key.
    assert "PRIMARY KEY (event_id, started_at_ms)" in create
    assert create.endswith("PARTITION BY RANGE (started_at_ms)")
    insert = schema.insert_sql(schema.REQUESTS, "postgres", schema.percent)
    assert insert.endswith("ON CONFLICT (event_id, started_at_ms) DO NOTHING")


def test_where_clause_numbers_parameters_in_order() -> None:
    flt = EventFilter(since_ms=5, account_id="a", model="m", status=429)
    sql, params = schema.where_clause(flt, schema.numbered)
    assert sql == (
        "WHERE started_at_ms >= $1 AND account_id = $2 "
        "AND (requested_model = $3 OR served_model = $4) AND status = $5"
    )
    assert params == [5, "a", "m", "m", 429]
    recent, recent_params = schema.recent_sql(flt, 20, schema.numbered)
    assert recent.endswith("ORDER BY started_at_ms DESC, seq DESC LIMIT $6")
    assert recent_params == [*params, 20]


def test_no_filter_means_no_where() -> None:
    assert schema.where_clause(EventFilter(), schema.qmark) == ("", [])


def test_sql_runs_as_written() -> None:
    # The statements are plain SQL: run them on a bare connection, outside the adapter.
    conn = sqlite3.connect(":memory:")
    for statement in schema.create_statements(schema.REQUESTS, "sqlite"):
        conn.execute(statement)
    event = make_event(3)
    conn.execute(schema.insert_sql(schema.REQUESTS, "sqlite", schema.qmark), schema.event_to_row(event))
    sql, params = schema.recent_sql(EventFilter(model=event.served_model), 5, schema.qmark)
    rows = conn.execute(sql, params).fetchall()
    assert [schema.row_to_event(r) for r in rows] == [event]
