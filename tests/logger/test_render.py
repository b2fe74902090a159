"""Formatting of single cells and fitting the table to the terminal."""

from __future__ import annotations

from datetime import UTC

from kestrel.common.events import Attempt
from kestrel.logger.render import (
    format_attempts,
    format_count,
    format_error,
    format_model,
    format_request,
    format_time,
    render_table,
)

from .factories import BASE_MS, make_event


def test_time_is_wall_clock() -> None:
    assert format_time(BASE_MS, UTC) == "09:20:00"


def test_counts_stay_narrow() -> None:
    assert [format_count(n) for n in (0, 9999, 12_345, 999_949, 4_560_000)] == [
        "0", "9999", "12.3k", "999.9k", "4.56M",
    ]


def test_attempts_show_statuses_only_after_a_retry() -> None:
    assert format_attempts([]) == "0"
    assert format_attempts([Attempt("a", "m", 200)]) == "1"
    retried = [
        Attempt("a", "m", 429),
        Attempt("b", "m", 0, "connect_error"),
        Attempt("c", "m", 200),
    ]
    assert format_attempts(retried) == "3 (429,connect_error,200)"


def test_model_shows_a_swap() -> None:
    assert format_model(make_event(requested_model="a", served_model="b")) == "a→b"
    assert format_model(make_event(requested_model="a", served_model="a")) == "a"
    assert format_model(make_event(requested_model="", served_model="")) == "-"


def test_request_drops_the_query_string_and_the_api_prefix() -> None:
    assert format_request(make_event()) == "POST messages"
    assert format_request(make_event(method="GET", path="/v1/models")) == "GET models"
    assert format_request(make_event(method="GET", path="/api/usage")) == "GET /api/usage"


def test_error_joins_type_and_message_on_one_line() -> None:
    event = make_event(error_type="overloaded_error", error_message="Overloaded\n  try later")
    assert format_error(event) == "overloaded_error: Overloaded try later"


def test_columns_line_up() -> None:
    events = [make_event(1, account_id="a"), make_event(2, account_id="a-much-longer-account")]
    header, *rows = render_table(events, width=250, tz=UTC).splitlines()
    status_end = header.index("STATUS") + len("STATUS")
    duration_end = header.index("DUR ms") + len("DUR ms")
    for row in rows:  # numbers are right-aligned under their headers
        assert row[status_end - 3 : status_end] == "200"
        assert row[duration_end - 4 : duration_end] == "1234"


def test_a_narrow_terminal_truncates_the_error_not_the_numbers() -> None:
    event = make_event(
        1, status=500, error_type="api_error", error_message="x" * 300,
        requested_model="claude-sonnet-4-5-20250929-with-a-very-long-suffix",
    )
    table = render_table([event], width=150, tz=UTC)
    assert all(len(line) <= 150 for line in table.splitlines())
    assert "…" in table
    assert "9000" in table and "1234" in table  # cache read tokens, duration


def test_empty() -> None:
    assert render_table([]) == "no requests recorded\n"
