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
def test_every_kind_has_a_type_in_every_dialect(dialect: schema.Dialect) -> None:
    statements = schema.create_statements(dialect)
    assert statements[0].startswith("CREATE TABLE IF NOT EXISTS requests")
    assert "event_id TEXT NOT NULL UNIQUE" in statements[0]
    assert len(statements) == 1 + len(schema.INDEXES)


def test_postgres_uses_native_types() -> None:
    table = schema.create_statements("postgres")[0]
    assert "attempts JSONB NOT NULL" in table
    assert "stream BOOLEAN NOT NULL" in table
    assert "input_tokens BIGINT NOT NULL" in table


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
    for statement in schema.create_statements("sqlite"):
        conn.execute(statement)
    event = make_event(3)
    conn.execute(schema.insert_sql(schema.qmark), schema.event_to_row(event))
    sql, params = schema.recent_sql(EventFilter(model=event.served_model), 5, schema.qmark)
    rows = conn.execute(sql, params).fetchall()
    assert [schema.row_to_event(r) for r in rows] == [event]
