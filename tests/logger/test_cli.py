"""``kestrel logs``, ``kestrel logs prune`` and ``kestrel migrate`` against real databases."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import psycopg
import pytest

from kestrel.common.events import Attempt, RequestEvent
from kestrel.logger import migrations
from kestrel.logger.cli import main, migrate_main
from kestrel.logger.render import format_time
from kestrel.logger.sink.postgres import PostgresSink
from kestrel.logger.sink.sqlite import SQLiteSink

from .conftest import PgSchema
from .factories import make_event


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    path = tmp_path / "kestrel.db"
    events = [
        make_event(1),
        make_event(
            2,
            requested_model="sonnet",
            served_model="claude-sonnet-4-5",
            account_id="acct-b",
            client_key_id="ci-bot",
            status=529,
            duration_ms=4321.0,
            ttfb_ms=0.0,
            input_tokens=12_345,
            output_tokens=0,
            cache_read_input_tokens=0,
            cache_creation_input_tokens=0,
            attempts=[
                Attempt("acct-a", "claude-sonnet-4-5", 429, "rate_limited"),
                Attempt("acct-c", "claude-sonnet-4-5", 429, "rate_limited"),
                Attempt("acct-b", "claude-sonnet-4-5", 529, "overloaded"),
            ],
            error_type="overloaded_error",
            error_message="Overloaded. " + "Please retry later. " * 20,
        ),
    ]
    async with await SQLiteSink.open(path) as sink:
        await sink.write(events)
    return path


@pytest.fixture
def config_file(tmp_path: Path, database: Path) -> Path:
    path = tmp_path / "kestrel.yaml"
    path.write_text(f"logger:\n  database: {database}\n")
    return path


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")


@pytest.fixture(autouse=True)
def _local_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read the SQLite file of ``kestrel up``; CI's DATABASE_URL would point elsewhere."""
    monkeypatch.delenv("DATABASE_URL", raising=False)


def test_prints_an_aligned_table(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config_file)]) == 0
    header, first, second = capsys.readouterr().out.splitlines()

    for title in ("TIME", "STATUS", "MODEL", "ACCOUNT", "DUR ms", "TTFB ms", "ATTEMPTS", "KEY"):
        assert title in header
    # Oldest first, so the newest request sits just above the prompt.
    assert first.startswith(format_time(make_event(1).started_at_ms))
    assert second.startswith(format_time(make_event(2).started_at_ms))
    for expected in ("200", "POST messages", "claude-sonnet-4-5", "acct-a", "1234", "210",
                     "1200", "345", "9000", "50", "laptop"):
        assert expected in first
    for expected in ("529", "sonnet→claude-sonnet-4-5", "acct-b", "4321", "12.3k",
                     "3 (429,429,529)", "ci-bot", "overloaded_error: Overloaded."):
        assert expected in second
    assert second.endswith("…") and len(second) <= 220


def test_json_lines_parse_back_into_events(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(config_file), "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    events = [RequestEvent.from_dict(orjson.loads(line)) for line in lines]
    assert [e.event_id for e in events] == ["evt-0001", "evt-0002"]
    assert events[1].attempts[0] == Attempt("acct-a", "claude-sonnet-4-5", 429, "rate_limited")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--account", "acct-b"], ["evt-0002"]),
        (["--model", "sonnet"], ["evt-0002"]),
        (["--status", "200"], ["evt-0001"]),
        (["--key", "laptop"], ["evt-0001"]),
        (["-n", "1"], ["evt-0002"]),
        (["--account", "nobody"], []),
    ],
)
def test_filters(
    config_file: Path, capsys: pytest.CaptureFixture[str], flags: list[str], expected: list[str]
) -> None:
    assert main(["--config", str(config_file), "--json", *flags]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [orjson.loads(line)["event_id"] for line in lines] == expected


def test_config_from_the_caller_or_the_environment(
    config_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["--json"], config_path=str(config_file)) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["--json", "-c", str(config_file)]) == 0, "-c as for kestrel up"
    assert len(capsys.readouterr().out.splitlines()) == 2
    monkeypatch.setenv("KESTREL_CONFIG", str(config_file))
    assert main(["--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_database_override_by_environment(
    database: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KESTREL_LOGGER__DATABASE", str(database))
    assert main(["--json", "-n", "5"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_a_missing_database_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "kestrel.yaml"
    config.write_text(f"logger:\n  database: {tmp_path / 'none.db'}\n")
    assert main(["--config", str(config)]) == 1
    assert "no request log" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


def test_a_bad_config_or_flag_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "kestrel.yaml"
    config.write_text("logger:\n  queue_size: 0\n")
    assert main(["--config", str(config)]) == 2
    assert "logger.queue_size" in capsys.readouterr().err
    assert main(["-n", "-3"]) == 2
    assert main(["-n", "many"]) == 2


DAY_MS = 86_400_000


def days_ago(n: int, days: float) -> RequestEvent:
    return make_event(n, started_at_ms=int(time.time() * 1000 - days * DAY_MS))


@pytest.fixture
def no_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a Postgres URL in the environment, prune and migrate act on the SQLite file."""
    monkeypatch.delenv("DATABASE_URL", raising=False)


@pytest.fixture
async def aged(tmp_path: Path) -> Path:
    """A config whose SQLite log holds requests 40, 20 and 1 days old; retention 10 days."""
    path = tmp_path / "aged.db"
    async with await SQLiteSink.open(path) as sink:
        await sink.write([days_ago(1, 40), days_ago(2, 20), days_ago(3, 1)])
    config = tmp_path / "aged.yaml"
    config.write_text(f"logger:\n  database: {path}\n  retention_days: 10\n")
    return config


async def stored(config: Path) -> list[str]:
    path = config.read_text().split("database: ")[1].split("\n")[0]
    async with await SQLiteSink.open(path, readonly=True) as sink:
        return [e.event_id for e in await sink.recent(10)]


@pytest.mark.usefixtures("no_cluster")
async def test_prune_older_than_a_duration(aged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await _run(main, ["prune", "--config", str(aged), "--older-than", "30d"]) == 0
    assert capsys.readouterr().out.endswith("rows deleted: 1\n")
    assert await stored(aged) == ["evt-0003", "evt-0002"]


@pytest.mark.usefixtures("no_cluster")
async def test_prune_defaults_to_the_configured_retention(
    aged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _run(main, ["prune"], config_path=str(aged)) == 0
    assert capsys.readouterr().out.endswith("rows deleted: 2\n")
    assert await stored(aged) == ["evt-0003"]


@pytest.mark.usefixtures("no_cluster")
def test_prune_usage_errors(
    tmp_path: Path, aged: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prune", "--config", str(aged), "--older-than", "soon"]) == 2
    assert "not a duration" in capsys.readouterr().err
    missing = tmp_path / "missing.yaml"
    missing.write_text(f"logger:\n  database: {tmp_path / 'none.db'}\n")
    assert main(["prune", "--config", str(missing)]) == 1
    assert "no request log" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()


@pytest.mark.usefixtures("no_cluster")
def test_migrate_a_sqlite_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "kestrel.yaml"
    config.write_text(f"logger:\n  database: {tmp_path / 'new' / 'kestrel.db'}\n")
    assert migrate_main(["--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "applied 1: requests table" in out and f"schema version {migrations.LATEST_VERSION}" in out
    assert migrate_main(["--config", str(config)]) == 0
    assert "applied" not in capsys.readouterr().out

    conn = sqlite3.connect(tmp_path / "new" / "kestrel.db")
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    conn.commit()
    conn.close()
    assert migrate_main(["--config", str(config)]) == 1
    assert "newer than this Kestrel" in capsys.readouterr().err


async def test_migrate_and_prune_the_cluster_database_from_database_url(
    pg_schema: PgSchema, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = psycopg.conninfo.make_conninfo(pg_schema.dsn, options=f"-csearch_path={pg_schema.name}")
    monkeypatch.setenv("DATABASE_URL", url)
    sqlite_file = tmp_path / "untouched.db"
    monkeypatch.setenv("KESTREL_LOGGER__DATABASE", str(sqlite_file))

    assert await _run(migrate_main, []) == 0
    out = capsys.readouterr().out
    assert "applied 2: request_bodies" in out and "postgres database" in out
    assert "password" not in out
    async with await PostgresSink.open(pg_schema.dsn, schema_name=pg_schema.name, migrate=False) as sink:
        await sink.write([days_ago(1, 40), days_ago(2, 1)])
    assert await _run(main, ["prune", "--older-than", "30d"]) == 0
    # The 40-day-old request was alone in its day: its whole partition went.
    assert "rows deleted: 0, partitions dropped: 1" in capsys.readouterr().out
    async with await PostgresSink.open(pg_schema.dsn, schema_name=pg_schema.name) as sink:
        assert [e.event_id for e in await sink.recent(5)] == ["evt-0002"]
    assert not sqlite_file.exists()


async def _run(command: Callable[..., int], argv: list[str], **kwargs: str) -> int:
    """The commands call asyncio.run, so async tests run them on a thread of their own."""
    return await asyncio.to_thread(command, argv, **kwargs)
