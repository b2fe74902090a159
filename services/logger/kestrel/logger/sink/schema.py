"""The ``requests`` table, written once for every SQL adapter.

SQLite (``kestrel up``) and Postgres (cluster mode) store the same columns under the same names;
only the column types differ, so the table is described as data (``COLUMNS`` with a logical
kind each, ``INDEXES``) and rendered per dialect. Queries are plain SQL that both databases
accept (``ON CONFLICT ... DO NOTHING``, ``CREATE INDEX IF NOT EXISTS``); the only thing an
adapter supplies is its driver's placeholder style.

One column per scalar field of ``RequestEvent``, so the read side can filter and aggregate
without parsing JSON; ``attempts`` is the one nested field and is stored as JSON. ``seq`` is a
surrogate key that records arrival order, the tie-breaker when two requests start in the same
millisecond; ``event_id`` is unique and is what makes writes idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from kestrel.common.events import Attempt, RequestEvent

from .base import EventFilter

Dialect = Literal["sqlite", "postgres"]
ColumnKind = Literal["serial", "text", "int", "float", "bool", "json"]
Placeholder = Callable[[int], str]
"""Renders the n-th (1-based) query parameter in a driver's style."""

TABLE = "requests"
SCHEMA_VERSION = 1
"""Bump with a migration whenever a column or index changes."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: ColumnKind
    unique: bool = False


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    columns: tuple[str, ...]


COLUMNS: tuple[Column, ...] = (
    Column("seq", "serial"),
    Column("event_id", "text", unique=True),
    Column("request_id", "text"),
    Column("started_at_ms", "int"),
    Column("duration_ms", "float"),
    Column("ttfb_ms", "float"),
    Column("method", "text"),
    Column("path", "text"),
    Column("dialect", "text"),
    Column("client_key_id", "text"),
    Column("session_id", "text"),
    Column("requested_model", "text"),
    Column("served_model", "text"),
    Column("account_id", "text"),
    Column("status", "int"),
    Column("stream", "bool"),
    Column("attempts", "json"),
    Column("input_tokens", "int"),
    Column("output_tokens", "int"),
    Column("cache_creation_input_tokens", "int"),
    Column("cache_read_input_tokens", "int"),
    Column("stop_reason", "text"),
    Column("error_type", "text"),
    Column("error_message", "text"),
    Column("user_agent", "text"),
)

# Each filterable column leads an index that ends in the sort key, so "the latest N for this
# account" is an index range scan rather than a sort.
INDEXES: tuple[Index, ...] = (
    Index("requests_started_at", ("started_at_ms",)),
    Index("requests_request_id", ("request_id",)),
    Index("requests_client_key", ("client_key_id", "started_at_ms")),
    Index("requests_account", ("account_id", "started_at_ms")),
    Index("requests_requested_model", ("requested_model", "started_at_ms")),
    Index("requests_served_model", ("served_model", "started_at_ms")),
    Index("requests_status", ("status", "started_at_ms")),
)

SQL_TYPES: dict[Dialect, dict[ColumnKind, str]] = {
    "sqlite": {
        "serial": "INTEGER PRIMARY KEY",
        "text": "TEXT NOT NULL",
        "int": "INTEGER NOT NULL",
        "float": "REAL NOT NULL",
        "bool": "INTEGER NOT NULL",
        "json": "TEXT NOT NULL",
    },
    "postgres": {
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "text": "TEXT NOT NULL",
        "int": "BIGINT NOT NULL",
        "float": "DOUBLE PRECISION NOT NULL",
        "bool": "BOOLEAN NOT NULL",
        "json": "JSONB NOT NULL",
    },
}

DATA_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.kind != "serial")
"""The columns written and read, in ``event_to_row`` / ``row_to_event`` order."""
_BOOL_COLUMNS = frozenset(c.name for c in COLUMNS if c.kind == "bool")
_ORDER = "ORDER BY started_at_ms DESC, seq DESC"


def qmark(_: int) -> str:
    """sqlite3's placeholder style."""
    return "?"


def numbered(n: int) -> str:
    """asyncpg's placeholder style."""
    return f"${n}"


def create_statements(dialect: Dialect) -> list[str]:
    """DDL that creates the table and its indexes if missing; safe to run at every start."""
    types = SQL_TYPES[dialect]
    columns = ",\n  ".join(
        f"{c.name} {types[c.kind]}{' UNIQUE' if c.unique else ''}" for c in COLUMNS
    )
    statements = [f"CREATE TABLE IF NOT EXISTS {TABLE} (\n  {columns}\n)"]
    statements += [
        f"CREATE INDEX IF NOT EXISTS {i.name} ON {TABLE} ({', '.join(i.columns)})"
        for i in INDEXES
    ]
    return statements


def insert_sql(placeholder: Placeholder) -> str:
    """One-row insert that silently skips an ``event_id`` already stored."""
    names = ", ".join(DATA_COLUMNS)
    values = ", ".join(placeholder(i) for i in range(1, len(DATA_COLUMNS) + 1))
    return f"INSERT INTO {TABLE} ({names}) VALUES ({values}) ON CONFLICT (event_id) DO NOTHING"


def event_to_row(event: RequestEvent) -> tuple[Any, ...]:
    """Parameters for ``insert_sql``; ``attempts`` becomes JSON text."""
    row: list[Any] = []
    for name in DATA_COLUMNS:
        if name == "attempts":
            row.append(_attempts_json(event.attempts))
        else:
            row.append(getattr(event, name))
    return tuple(row)


def row_to_event(row: Sequence[Any]) -> RequestEvent:
    """Rebuild an event from a row selected as ``DATA_COLUMNS``."""
    values: dict[str, Any] = dict(zip(DATA_COLUMNS, row, strict=True))
    raw = values["attempts"]
    attempts = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    values["attempts"] = [Attempt(**a) for a in attempts]
    for name in _BOOL_COLUMNS:
        values[name] = bool(values[name])
    return RequestEvent(**values)


def where_clause(
    flt: EventFilter, placeholder: Placeholder, start: int = 1
) -> tuple[str, list[Any]]:
    """``WHERE ...`` (or an empty string) and its parameters, numbered from ``start``."""
    conditions: list[str] = []
    params: list[Any] = []

    def param(value: Any) -> str:
        params.append(value)
        return placeholder(start + len(params) - 1)

    if flt.since_ms is not None:
        conditions.append(f"started_at_ms >= {param(flt.since_ms)}")
    if flt.client_key_id is not None:
        conditions.append(f"client_key_id = {param(flt.client_key_id)}")
    if flt.account_id is not None:
        conditions.append(f"account_id = {param(flt.account_id)}")
    if flt.model is not None:
        conditions.append(
            f"(requested_model = {param(flt.model)} OR served_model = {param(flt.model)})"
        )
    if flt.status is not None:
        conditions.append(f"status = {param(flt.status)}")
    return ("WHERE " + " AND ".join(conditions) if conditions else ""), params


def recent_sql(flt: EventFilter, limit: int, placeholder: Placeholder) -> tuple[str, list[Any]]:
    """The newest ``limit`` rows matching ``flt``, selected as ``DATA_COLUMNS``."""
    where, params = where_clause(flt, placeholder)
    params.append(limit)
    sql = (
        f"SELECT {', '.join(DATA_COLUMNS)} FROM {TABLE} {where} {_ORDER} "
        f"LIMIT {placeholder(len(params))}"
    )
    return sql, params


def by_request_sql(placeholder: Placeholder) -> str:
    """The newest row for one ``request_id`` (there is normally exactly one)."""
    return (
        f"SELECT {', '.join(DATA_COLUMNS)} FROM {TABLE} "
        f"WHERE request_id = {placeholder(1)} {_ORDER} LIMIT 1"
    )


COUNT_SQL = f"SELECT COUNT(*) FROM {TABLE}"


def _attempts_json(attempts: list[Attempt]) -> str:
    # orjson serialises (slotted) dataclasses natively, in field order.
    return orjson.dumps(attempts).decode()
