"""``kestrel logs`` against a real SQLite file written by the sink."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from kestrel.common.events import Attempt, RequestEvent
from kestrel.logger.cli import main
from kestrel.logger.render import format_time
from kestrel.logger.sink.sqlite import SQLiteSink

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
