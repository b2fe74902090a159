"""Daily partition names and bounds, without a database."""

from __future__ import annotations

import pytest

from kestrel.logger.sink import partitions, schema

from .factories import BASE_MS

DAY = partitions.DAY_MS


def test_names_carry_the_utc_day_and_read_back() -> None:
    day = partitions.day_of(BASE_MS)  # 2025-12-29 09:20 UTC
    assert partitions.partition_name(schema.REQUESTS, day) == "requests_p20251229"
    assert partitions.partition_name(schema.BODIES, day) == "request_bodies_p20251229"
    assert partitions.day_of_partition(schema.REQUESTS, "requests_p20251229") == day
    # A bodies partition is not a requests partition, and foreign tables are ignored.
    assert partitions.day_of_partition(schema.REQUESTS, "request_bodies_p20251229") is None
    assert partitions.day_of_partition(schema.REQUESTS, "requests_archive") is None


def test_bounds_are_half_open_days() -> None:
    start, end = partitions.bounds(partitions.day_of(BASE_MS))
    assert start <= BASE_MS < end and end - start == DAY and start % DAY == 0
    assert partitions.day_of(end) == partitions.day_of(start) + 1
    assert partitions.day_of(end - 1) == partitions.day_of(start)


def test_expired_means_every_row_is_before_the_cutoff() -> None:
    day = partitions.day_of(BASE_MS)
    names = [partitions.partition_name(schema.REQUESTS, day + i) for i in (2, 0, 1)] + ["other"]
    start_of_day_2 = partitions.bounds(day + 2)[0]
    assert partitions.expired(schema.REQUESTS, names, start_of_day_2) == [
        "requests_p20251229", "requests_p20251230"
    ]
    assert partitions.expired(schema.REQUESTS, names, start_of_day_2 - 1) == ["requests_p20251229"]


def test_a_partition_is_created_apart_then_attached() -> None:
    day = partitions.day_of(BASE_MS)
    create, attach = partitions.create_statements(schema.REQUESTS, day)
    assert create.startswith("CREATE TABLE requests_p20251229 (LIKE requests INCLUDING DEFAULTS")
    start, end = partitions.bounds(day)
    assert attach == (
        f"ALTER TABLE requests ATTACH PARTITION requests_p20251229 FOR VALUES FROM ({start}) TO ({end})"
    )
    unpartitioned = schema.Table("plain", (schema.Column("a", "int"),), ("a",))
    with pytest.raises(ValueError, match="not partitioned"):
        partitions.create_statements(unpartitioned, day)
