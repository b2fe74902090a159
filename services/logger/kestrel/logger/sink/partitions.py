"""Daily partitions of the Postgres tables: names, bounds and the DDL, with no I/O.

A partitioned table (``schema.Table.partition_key`` set) holds one partition per UTC day,
``<table>_pYYYYMMDD``, covering ``[day start, next day start)`` in Unix milliseconds. The name
carries the bounds, so retention can tell from the catalog alone which partitions lie wholly
before a cutoff and drop them, the cheap way to delete a day of rows.

A new partition is created as a plain table and then attached, rather than with ``CREATE TABLE
... PARTITION OF``: attaching takes only SHARE UPDATE EXCLUSIVE on the parent, which lets the
writer's inserts and the dashboard's reads carry on, where ``PARTITION OF`` needs ACCESS EXCLUSIVE
and would queue every query behind the slowest running one. The new table is empty, so attaching
scans nothing; the parent's indexes are built on it as part of the attach.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .schema import Table

DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def day_of(ms: int) -> int:
    """The UTC day number (days since 1970-01-01) that contains ``ms``."""
    return ms // DAY_MS


def bounds(day: int) -> tuple[int, int]:
    """``[start, end)`` of ``day`` in Unix milliseconds."""
    return day * DAY_MS, (day + 1) * DAY_MS


def partition_name(table: Table, day: int) -> str:
    return f"{table.name}_p{(_EPOCH + timedelta(days=day)):%Y%m%d}"


def day_of_partition(table: Table, name: str) -> int | None:
    """The day a partition named by ``partition_name`` covers; None for any other name."""
    match = re.fullmatch(re.escape(table.name) + r"_p(\d{8})", name)
    if match is None:
        return None
    date = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=UTC)
    return (date - _EPOCH).days


def create_statements(table: Table, day: int) -> list[str]:
    """Create ``table``'s partition for ``day`` and attach it (run under the partition lock)."""
    if table.partition_key is None:
        raise ValueError(f"{table.name} is not partitioned")
    name = partition_name(table, day)
    start, end = bounds(day)
    return [
        f"CREATE TABLE {name} (LIKE {table.name} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
        f"ALTER TABLE {table.name} ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({end})",
    ]


def expired(table: Table, names: list[str], cutoff_ms: int) -> list[str]:
    """The partitions among ``names`` whose every row started before ``cutoff_ms``."""
    old: list[tuple[int, str]] = []
    for name in names:
        day = day_of_partition(table, name)
        if day is not None and bounds(day)[1] <= cutoff_ms:
            old.append((day, name))
    return [name for _, name in sorted(old)]
