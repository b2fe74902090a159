"""The ``EventSink`` contract, run against every adapter in ``conftest.SINK_FACTORIES``."""

from __future__ import annotations

from typing import Any

from kestrel.common.events import Attempt
from kestrel.logger.sink.base import BodyStore, EventSink, RequestBodies

from .factories import BASE_MS, make_event


async def test_every_field_round_trips(sink: EventSink) -> None:
    event = make_event(
        7,
        requested_model="sonnet",
        served_model="claude-sonnet-4-5",
        status=529,
        stream=True,
        attempts=[
            Attempt("acct-a", "claude-sonnet-4-5", 429, "rate_limited", 12.5),
            Attempt("acct-b", "claude-sonnet-4-5", 0, "connect_error", 3.0),
            Attempt("acct-c", "claude-sonnet-4-5", 529, "overloaded", 40.75),
        ],
        error_type="overloaded_error",
        error_message="Overloaded — «try again» ✓",
        input_tokens=2**40,
    )
    await sink.write([event])

    assert await sink.get(event.request_id) == event
    assert await sink.recent(10) == [event]


async def test_false_and_empty_values_round_trip(sink: EventSink) -> None:
    event = make_event(1, stream=False, attempts=[], status=0, duration_ms=0.0, path="")
    await sink.write([event])
    assert await sink.get(event.request_id) == event


async def test_writing_an_event_twice_stores_it_once(sink: EventSink) -> None:
    first, second = make_event(1), make_event(2)
    await sink.write([first])
    await sink.write([first, second])
    await sink.write([second, second])

    assert await sink.count() == 2
    assert [e.event_id for e in await sink.recent(10)] == [second.event_id, first.event_id]


async def test_a_rewrite_keeps_the_first_version(sink: EventSink) -> None:
    original = make_event(1, status=200)
    await sink.write([original])
    await sink.write([make_event(1, status=500)])
    stored = await sink.get(original.request_id)
    assert stored is not None and stored.status == 200


async def test_stored_events_are_not_aliased_to_the_callers(sink: EventSink) -> None:
    event = make_event(1)
    await sink.write([event])
    event.status = 499
    event.attempts.append(Attempt("x", "y"))
    stored = await sink.get(event.request_id)
    assert stored is not None and stored.status == 200 and len(stored.attempts) == 1


async def test_recent_is_newest_first_with_arrival_breaking_ties(sink: EventSink) -> None:
    old, new = make_event(1), make_event(5)
    tie_a = make_event(3, event_id="tie-a", request_id="tie-a")
    tie_b = make_event(3, event_id="tie-b", request_id="tie-b")
    await sink.write([old, tie_a])
    await sink.write([new, tie_b])
    ids = [e.event_id for e in await sink.recent(10)]
    assert ids == [new.event_id, "tie-b", "tie-a", old.event_id]


async def test_recent_respects_limit(sink: EventSink) -> None:
    await sink.write([make_event(i) for i in range(5)])
    assert [e.event_id for e in await sink.recent(2)] == ["evt-0004", "evt-0003"]
    assert await sink.recent(0) == []


async def test_recent_filters(sink: EventSink) -> None:
    await sink.write(
        [
            make_event(0, account_id="a", client_key_id="k1", status=200),
            make_event(1, account_id="b", client_key_id="k2", status=429),
            make_event(2, account_id="a", client_key_id="k2", status=500,
                       requested_model="sonnet", served_model="claude-sonnet-4-5"),
            make_event(3, account_id="b", client_key_id="k1", status=200,
                       requested_model="claude-haiku-4-5", served_model="claude-haiku-4-5"),
        ]
    )

    async def ids(**filters: Any) -> list[int]:
        return [int(e.event_id[-4:]) for e in await sink.recent(10, **filters)]

    assert await ids(account_id="a") == [2, 0]
    assert await ids(client_key_id="k2") == [2, 1]
    assert await ids(status=200) == [3, 0]
    assert await ids(since_ms=BASE_MS + 2000) == [3, 2]
    # A model filter matches either the name the client asked for or the one that served it.
    assert await ids(model="sonnet") == [2]
    assert await ids(model="claude-sonnet-4-5") == [2, 1, 0]
    assert await ids(account_id="b", client_key_id="k1", status=200) == [3]
    assert await ids(account_id="nobody") == []


async def test_get_returns_none_for_an_unknown_request(sink: EventSink) -> None:
    await sink.write([make_event(1)])
    assert await sink.get("req-missing") is None


async def test_count_and_empty_write(sink: EventSink) -> None:
    assert await sink.count() == 0
    await sink.write([])
    assert await sink.count() == 0
    await sink.write([make_event(i) for i in range(3)])
    assert await sink.count() == 3


async def test_prune_removes_only_what_started_before_the_cutoff(sink: EventSink) -> None:
    await sink.write([make_event(i) for i in range(10)])
    # make_event(i) starts i seconds after BASE_MS; keep the last 4 (6..9).
    result = await sink.prune(4, now_ms=BASE_MS + 10_000)
    assert result.cutoff_ms == BASE_MS + 6_000
    assert await sink.count() == 4
    assert [e.event_id for e in await sink.recent(10)] == [f"evt-{i:04d}" for i in (9, 8, 7, 6)]
    assert await sink.get("req-0005") is None
    again = await sink.prune(4, now_ms=BASE_MS + 10_000)
    assert again.deleted == 0 and again.dropped_partitions == ()
    assert await sink.count() == 4


def _bodies(n: int, request: bytes = b'{"model":"m"}') -> RequestBodies:
    event = make_event(n)
    return RequestBodies(event.event_id, event.started_at_ms, request, b"\x00\xffdata: ok", len(request), 9)


async def test_bodies_are_stored_only_while_capture_is_on(sink: EventSink) -> None:
    assert isinstance(sink, BodyStore)
    sink.capture_bodies = False
    await sink.write_bodies([_bodies(1)])
    assert await sink.get_bodies("evt-0001") is None

    sink.capture_bodies = True
    stored = _bodies(2)
    await sink.write_bodies([stored])
    await sink.write_bodies([_bodies(2, request=b"a second version"), _bodies(3)])
    assert await sink.get_bodies("evt-0002") == stored  # idempotent: the first write stays
    assert await sink.get_bodies("evt-0003") == _bodies(3)
    assert await sink.get_bodies("evt-0009") is None


async def test_prune_removes_old_bodies_too(sink: EventSink) -> None:
    assert isinstance(sink, BodyStore)
    sink.capture_bodies = True
    await sink.write_bodies([_bodies(1), _bodies(8)])
    await sink.prune(4, now_ms=BASE_MS + 10_000)
    assert await sink.get_bodies("evt-0001") is None
    assert await sink.get_bodies("evt-0008") == _bodies(8)
