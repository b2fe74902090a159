"""What the SQLite adapter adds to the contract: WAL, read-only readers, schema versioning,
pruning in batches."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kestrel.logger import migrations
from kestrel.logger.sink import schema
from kestrel.logger.sink.base import EventFilter
from kestrel.logger.sink.sqlite import SQLiteSink

from .factories import make_event


async def test_creates_the_file_in_wal_mode_with_indexes(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "kestrel.db"
    async with await SQLiteSink.open(path):
        pass
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations.LATEST_VERSION
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {i.name for i in schema.INDEXES} <= names
    conn.close()


async def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "kestrel.db"
    async with await SQLiteSink.open(path) as sink:
        await sink.write([make_event(1), make_event(2)])
    async with await SQLiteSink.open(path) as sink:
        assert await sink.count() == 2


async def test_a_readonly_sink_reads_while_the_writer_is_open(tmp_path: Path) -> None:
    path = tmp_path / "kestrel.db"
    async with await SQLiteSink.open(path) as writer:
        await writer.write([make_event(1)])
        async with await SQLiteSink.open(path, readonly=True) as reader:
            assert await reader.count() == 1
            await writer.write([make_event(2)])
            assert [e.event_id for e in await reader.recent(5)] == ["evt-0002", "evt-0001"]
            with pytest.raises(RuntimeError, match="read-only"):
                await reader.write([make_event(3)])


async def test_readonly_never_creates_a_database(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(FileNotFoundError):
        await SQLiteSink.open(path, readonly=True)
    assert not path.exists()


async def test_refuses_a_database_from_a_newer_kestrel(tmp_path: Path) -> None:
    path = tmp_path / "kestrel.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={migrations.LATEST_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        await SQLiteSink.open(path)


async def test_a_closed_sink_refuses_work(tmp_path: Path) -> None:
    sink = await SQLiteSink.open(tmp_path / "kestrel.db")
    await sink.aclose()
    await sink.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await sink.write([make_event(1)])


async def test_a_failed_batch_leaves_nothing_behind(tmp_path: Path) -> None:
    async with await SQLiteSink.open(tmp_path / "kestrel.db") as sink:
        too_big = make_event(2, input_tokens=2**64)  # does not fit SQLite's INTEGER
        with pytest.raises(OverflowError):
            await sink.write([make_event(1), too_big])
        assert await sink.count() == 0
        await sink.write([make_event(1)])
        assert await sink.count() == 1


async def test_prune_deletes_in_batches_and_keeps_the_rest(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "kestrel.db", prune_batch=7)
    await sink.initialize()
    try:
        await sink.write([make_event(i) for i in range(30)])
        # make_event(i) starts i seconds after BASE_MS: cut between events 22 and 23.
        result = await sink.prune(10, now_ms=make_event(33).started_at_ms)
        assert result.deleted == 23
        assert await sink.count() == 7
        assert (await sink.recent(1, since_ms=0))[0].event_id == "evt-0029"
    finally:
        await sink.aclose()


async def test_adopts_a_log_created_before_migrations(tmp_path: Path) -> None:
    # What SQLiteSink created before schema_migrations existed: the table, user_version 1.
    path = tmp_path / "kestrel.db"
    conn = sqlite3.connect(path)
    for statement in schema.create_statements(schema.REQUESTS, "sqlite"):
        conn.execute(statement)
    conn.execute(schema.insert_sql(schema.REQUESTS, "sqlite", schema.qmark), schema.event_to_row(make_event(1)))
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    async with await SQLiteSink.open(path) as sink:
        assert await sink.count() == 1
    conn = sqlite3.connect(path)
    assert [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")] == [
        m.version for m in migrations.MIGRATIONS
    ]
    conn.close()


async def test_recent_by_account_reads_an_index(tmp_path: Path) -> None:
    path = tmp_path / "kestrel.db"
    async with await SQLiteSink.open(path) as sink:
        await sink.write([make_event(i, account_id=f"acct-{i % 5}") for i in range(50)])
    statement, params = schema.recent_sql(EventFilter(account_id="acct-3"), 20, schema.qmark)
    conn = sqlite3.connect(path)
    plan = " ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + statement, params))
    conn.close()
    assert "USING INDEX requests_account" in plan, plan
