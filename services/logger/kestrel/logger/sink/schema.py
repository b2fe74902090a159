"""The request-log tables, written once for every SQL adapter.

SQLite (``kestrel up``) and Postgres (cluster mode) store the same columns under the same names;
only the column types differ, so each table is described as data (``Table``: columns with a
logical kind each, the idempotency key, indexes) and rendered per dialect. Queries are plain SQL
that both databases accept (``ON CONFLICT ... DO NOTHING``, ``CREATE INDEX IF NOT EXISTS``); the
only thing an adapter supplies is its driver's placeholder style. The statements that create the
tables are run by ``kestrel.logger.migrations``, never directly at open.

``requests`` has one column per scalar field of ``RequestEvent``, so the read side can filter and
aggregate without parsing JSON; ``attempts`` is the one nested field and is stored as JSON.
``seq`` is a surrogate that records arrival order, the tie-breaker when two requests start in
the same millisecond; ``event_id`` is what makes writes idempotent.

On Postgres both tables are range-partitioned by UTC day on ``started_at_ms`` (see
``partitions``). A unique key on a partitioned table must contain the partition key, so the key
there is ``(event_id, started_at_ms)``; the ``postgres`` module explains why that still makes
writes idempotent by ``event_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from kestrel.common.events import Attempt, RequestEvent

from .base import EventFilter, RequestBodies

Dialect = Literal["sqlite", "postgres"]
ColumnKind = Literal["serial", "text", "int", "float", "bool", "json", "bytes"]
Placeholder = Callable[[int], str]
"""Renders the n-th (1-based) query parameter in a driver's style."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: ColumnKind


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """One table as data, so both dialects render it from the same description."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    """Identifies a stored record; ``ON CONFLICT`` on it is what makes writes idempotent."""
    indexes: tuple[Index, ...] = ()
    partition_key: str | None = None
    """Postgres only: the millisecond column the table is range-partitioned on, by UTC day."""

    @property
    def data_columns(self) -> tuple[str, ...]:
        """The columns written and read (the serial one is filled by the database)."""
        return tuple(c.name for c in self.columns if c.kind != "serial")

    def unique_key(self, dialect: Dialect) -> tuple[str, ...]:
        """``key``, plus the partition key where Postgres requires it in every unique key."""
        if dialect == "postgres" and self.partition_key and self.partition_key not in self.key:
            return (*self.key, self.partition_key)
        return self.key


COLUMNS: tuple[Column, ...] = (
    Column("seq", "serial"),
    Column("event_id", "text"),
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
# account" is an index range scan rather than a sort. On Postgres these are partitioned indexes:
# declared once on the parent, built on every partition, present on partitions created later.
INDEXES: tuple[Index, ...] = (
    Index("requests_started_at", ("started_at_ms",)),
    Index("requests_request_id", ("request_id",)),
    Index("requests_client_key", ("client_key_id", "started_at_ms")),
    Index("requests_account", ("account_id", "started_at_ms")),
    Index("requests_requested_model", ("requested_model", "started_at_ms")),
    Index("requests_served_model", ("served_model", "started_at_ms")),
    Index("requests_status", ("status", "started_at_ms")),
)

REQUESTS = Table("requests", COLUMNS, ("event_id",), INDEXES, partition_key="started_at_ms")
TABLE = REQUESTS.name

BODIES = Table(
    "request_bodies",
    (
        Column("event_id", "text"),
        Column("started_at_ms", "int"),
        Column("request_body", "bytes"),
        Column("response_body", "bytes"),
        Column("request_size", "int"),
        Column("response_size", "int"),
    ),
    ("event_id",),
    (Index("request_bodies_started_at", ("started_at_ms",)),),
    partition_key="started_at_ms",
)
"""Bodies live apart from ``requests`` so the hot table stays narrow and the big one is optional."""

PARTITIONED: tuple[Table, ...] = (REQUESTS, BODIES)

SQL_TYPES: dict[Dialect, dict[ColumnKind, str]] = {
    "sqlite": {
        "serial": "INTEGER PRIMARY KEY",
        "text": "TEXT NOT NULL",
        "int": "INTEGER NOT NULL",
        "float": "REAL NOT NULL",
        "bool": "INTEGER NOT NULL",
        "json": "TEXT NOT NULL",
        "bytes": "BLOB NOT NULL",
    },
    "postgres": {
        # Filled from a sequence rather than an identity column: partitioned tables only
        # accept identity columns from Postgres 17 on.
        "serial": "BIGINT NOT NULL DEFAULT nextval('{sequence}')",
        "text": "TEXT NOT NULL",
        "int": "BIGINT NOT NULL",
        "float": "DOUBLE PRECISION NOT NULL",
        "bool": "BOOLEAN NOT NULL",
        "json": "JSONB NOT NULL",
        "bytes": "BYTEA NOT NULL",
    },
}

DATA_COLUMNS: tuple[str, ...] = REQUESTS.data_columns
"""The ``requests`` columns written and read, in ``event_to_row`` / ``row_to_event`` order."""
BODY_COLUMNS: tuple[str, ...] = BODIES.data_columns
_BOOL_COLUMNS = frozenset(c.name for c in COLUMNS if c.kind == "bool")
_ORDER = "ORDER BY started_at_ms DESC, seq DESC"


def qmark(_: int) -> str:
    """sqlite3's placeholder style."""
    return "?"


def numbered(n: int) -> str:
    """asyncpg's (and Postgres's own) placeholder style."""
    return f"${n}"


def percent(_: int) -> str:
    """psycopg's placeholder style."""
    return "%s"


def sequence_name(table: Table, column: str) -> str:
    return f"{table.name}_{column}"


def column_definitions(table: Table, dialect: Dialect) -> list[str]:
    types = SQL_TYPES[dialect]
    return [
        f"{c.name} {types[c.kind].format(sequence=sequence_name(table, c.name))}"
        for c in table.columns
    ]


def create_statements(table: Table, dialect: Dialect) -> list[str]:
    """DDL that creates ``table`` and its indexes if missing (run by a migration)."""
    serials = [c.name for c in table.columns if c.kind == "serial"]
    statements: list[str] = []
    if dialect == "postgres":
        statements += [f"CREATE SEQUENCE IF NOT EXISTS {sequence_name(table, s)}" for s in serials]
    key = "PRIMARY KEY" if dialect == "postgres" else "UNIQUE"
    body = ",\n  ".join(
        [*column_definitions(table, dialect), f"{key} ({', '.join(table.unique_key(dialect))})"]
    )
    partitioning = ""
    if dialect == "postgres" and table.partition_key:
        partitioning = f" PARTITION BY RANGE ({table.partition_key})"
    statements.append(f"CREATE TABLE IF NOT EXISTS {table.name} (\n  {body}\n){partitioning}")
    if dialect == "postgres":
        # Dropping the table drops its sequence too.
        statements += [
            f"ALTER SEQUENCE {sequence_name(table, s)} OWNED BY {table.name}.{s}" for s in serials
        ]
    statements += [
        f"CREATE INDEX IF NOT EXISTS {i.name} ON {table.name} ({', '.join(i.columns)})"
        for i in table.indexes
    ]
    return statements


def insert_sql(table: Table, dialect: Dialect, placeholder: Placeholder) -> str:
    """One-row insert that silently skips a record whose key is already stored."""
    columns = table.data_columns
    values = ", ".join(placeholder(i) for i in range(1, len(columns) + 1))
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({values}) "
        f"ON CONFLICT ({', '.join(table.unique_key(dialect))}) DO NOTHING"
    )


def event_to_row(event: RequestEvent) -> tuple[Any, ...]:
    """Parameters for ``insert_sql(REQUESTS, ...)``; ``attempts`` becomes JSON text."""
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


def bodies_to_row(bodies: RequestBodies) -> tuple[Any, ...]:
    """Parameters for ``insert_sql(BODIES, ...)``, in ``BODY_COLUMNS`` order."""
    return (
        bodies.event_id,
        bodies.started_at_ms,
        bodies.request,
        bodies.response,
        bodies.request_size,
        bodies.response_size,
    )


def row_to_bodies(row: Sequence[Any]) -> RequestBodies:
    event_id, started_at_ms, request, response, request_size, response_size = row
    return RequestBodies(
        event_id, started_at_ms, bytes(request), bytes(response), request_size, response_size
    )


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


def bodies_sql(placeholder: Placeholder) -> str:
    """The bodies stored for one ``event_id``."""
    return (
        f"SELECT {', '.join(BODY_COLUMNS)} FROM {BODIES.name} "
        f"WHERE event_id = {placeholder(1)} LIMIT 1"
    )


COUNT_SQL = f"SELECT COUNT(*) FROM {TABLE}"


def _attempts_json(attempts: list[Attempt]) -> str:
    # orjson serialises (slotted) dataclasses natively, in field order.
    return orjson.dumps(attempts).decode()
