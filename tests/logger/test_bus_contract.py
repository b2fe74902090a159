"""What every event bus promises, run against the in-process bus and the Redis stream alike.

Each test gets a ``BusUnderTest``: the publisher the edge holds and the source the writer holds
(one ``MemoryBus`` in memory; a ``RedisStreamPublisher`` and a ``RedisStreamSource`` over one
stream in Redis). Where the adapters honestly differ, in what happens to a delivery that is never
acknowledged, the tests are adapter-specific: memory ones at the end of this file, Redis ones in
``test_redis_stream.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from kestrel.common.events import RequestEvent
from kestrel.logger.bus.base import Delivery, EventPublisher, EventSource
from kestrel.logger.bus.memory import MemoryBus
from kestrel.logger.bus.redis_stream import RedisStreamPublisher, RedisStreamSource
from kestrel.logger.sink.memory import MemorySink
from kestrel.logger.writer import EventWriter

from .factories import make_event

CLAIM_IDLE_MS = 250
"""Short, so the Redis adapter's redelivery of unacknowledged entries fits in a test; long
enough that a test holding deliveries on a busy machine does not see them redelivered."""


@dataclass
class BusUnderTest:
    kind: str
    publisher: EventPublisher
    source: EventSource
    settle: Callable[[], Awaitable[None]]
    """Return once everything published can be read (Redis: the flusher has sent it)."""
    close_publisher: Callable[[], Awaitable[None]]
    stop_reading: Callable[[], None]
    """What a service calls before ``EventWriter.stop`` so the writer's drain has an end."""
    redelivery_after: float
    """Seconds after which an unacknowledged delivery may be handed out again (0: never)."""
    cleanup: list[Callable[[], Awaitable[object]]] = field(default_factory=list)


OpenBus = Callable[..., Awaitable[BusUnderTest]]


def redis_client(url: str) -> Redis:
    """No client-side retries: the adapters retry themselves, and tests stay fast."""
    return Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2)


async def _memory(request: pytest.FixtureRequest, capacity: int) -> BusUnderTest:
    bus = MemoryBus(capacity, linger=0.001)

    async def nothing() -> None:
        return None

    async def close() -> None:
        bus.close()

    return BusUnderTest("memory", bus, bus, nothing, close, bus.close, redelivery_after=0.0)


async def _redis(request: pytest.FixtureRequest, capacity: int) -> BusUnderTest:
    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    client = redis_client(url)
    stream = f"{prefix}events"
    publisher = RedisStreamPublisher(client, stream, maxlen=100_000, buffer_size=capacity, retry_base=0.01)
    source = RedisStreamSource(
        client,
        stream,
        f"{prefix}loggers",
        "logger-1",
        claim_idle_ms=CLAIM_IDLE_MS,
        dead_letter_stream=f"{prefix}events:dead",
    )
    await source.ensure_group()
    publisher.start()

    async def settle() -> None:
        assert await publisher.flush(timeout=5)

    async def close() -> None:
        await publisher.aclose(timeout=5)

    bus = BusUnderTest("redis", publisher, source, settle, close, source.close, CLAIM_IDLE_MS / 1000)
    bus.cleanup += [lambda: publisher.aclose(timeout=1), client.aclose]
    return bus


FACTORIES = {"memory": _memory, "redis": _redis}


@pytest.fixture(params=sorted(FACTORIES))
async def open_bus(request: pytest.FixtureRequest) -> AsyncIterator[OpenBus]:
    opened: list[BusUnderTest] = []

    async def open_(capacity: int = 10_000) -> BusUnderTest:
        bus = await FACTORIES[request.param](request, capacity)
        opened.append(bus)
        return bus

    yield open_
    for bus in opened:
        for step in bus.cleanup:
            await step()


async def read_all(
    source: EventSource, expected: int, *, max_n: int = 1000, within: float = 5.0, ack: bool = False
) -> list[Delivery]:
    """Read until ``expected`` deliveries arrived (or ``within`` seconds passed).

    ``ack`` acknowledges each batch as the writer does, so a slow test run is not mistaken by
    the Redis adapter for a dead consumer.
    """
    got: list[Delivery] = []
    deadline = time.monotonic() + within
    while len(got) < expected and time.monotonic() < deadline:
        batch = await source.read_batch(max_n, timeout=0.05)
        if ack:
            await source.ack(batch)
        got += batch
    return got


def ids(deliveries: list[Delivery]) -> list[str]:
    return [d.event.event_id for d in deliveries]


async def test_published_events_arrive_intact_and_in_order(open_bus: OpenBus) -> None:
    bus = await open_bus()
    events = [make_event(i) for i in range(10)]
    for event in events:
        bus.publisher.publish(event)
    await bus.settle()
    got = await read_all(bus.source, 10)
    assert [d.event for d in got] == events
    assert len({d.id for d in got}) == 10
    await bus.source.ack(got)


async def test_batches_never_exceed_max_n(open_bus: OpenBus) -> None:
    bus = await open_bus()
    for i in range(10):
        bus.publisher.publish(make_event(i))
    await bus.settle()
    sizes: list[int] = []
    seen: list[str] = []
    while len(seen) < 10:
        batch = await bus.source.read_batch(4, timeout=0.5)
        assert batch, "events went missing"
        sizes.append(len(batch))
        seen += ids(batch)
        await bus.source.ack(batch)
    assert max(sizes) <= 4
    assert seen == [f"evt-{i:04d}" for i in range(10)]


async def test_an_empty_bus_returns_nothing_after_the_timeout(open_bus: OpenBus) -> None:
    bus = await open_bus()
    started = time.perf_counter()
    assert await bus.source.read_batch(10, timeout=0.05) == []
    assert 0.04 <= time.perf_counter() - started < 1
    started = time.perf_counter()
    assert await bus.source.read_batch(10, timeout=0) == []
    assert time.perf_counter() - started < 0.5  # timeout=0 never waits for new events


async def test_a_read_wakes_up_for_the_first_event(open_bus: OpenBus) -> None:
    bus = await open_bus()
    asyncio.get_running_loop().call_later(0.05, bus.publisher.publish, make_event(7))
    started = time.perf_counter()
    batch = await bus.source.read_batch(10, timeout=3)
    assert ids(batch) == ["evt-0007"]
    assert time.perf_counter() - started < 1.5


async def test_nothing_is_lost_in_a_burst(open_bus: OpenBus) -> None:
    bus = await open_bus()
    for i in range(2000):
        bus.publisher.publish(make_event(i))
        if i % 250 == 0:
            await asyncio.sleep(0)  # let the Redis flusher run meanwhile
    await bus.settle()
    got = await read_all(bus.source, 2000, max_n=300, ack=True)
    assert set(ids(got)) == {f"evt-{i:04d}" for i in range(2000)}
    assert bus.publisher.dropped == 0


async def test_acknowledged_deliveries_are_never_handed_out_again(open_bus: OpenBus) -> None:
    bus = await open_bus()
    for i in range(5):
        bus.publisher.publish(make_event(i))
    await bus.settle()
    got = await read_all(bus.source, 5)
    await bus.source.ack(got)
    await asyncio.sleep(bus.redelivery_after * 1.5)  # past the point where Redis would reclaim
    assert await bus.source.read_batch(10, timeout=0.1) == []
    assert await bus.source.read_batch(10, timeout=0) == []


async def test_acking_nothing_is_harmless(open_bus: OpenBus) -> None:
    bus = await open_bus()
    await bus.source.ack([])


async def test_a_full_buffer_drops_and_counts_without_raising(open_bus: OpenBus) -> None:
    bus = await open_bus(capacity=3)
    for i in range(5):
        assert bus.publisher.publish(make_event(i)) is None  # type: ignore[func-returns-value]
    assert bus.publisher.dropped == 2
    await bus.settle()
    assert ids(await read_all(bus.source, 3)) == ["evt-0000", "evt-0001", "evt-0002"]


async def test_publishing_after_close_is_counted_as_dropped(open_bus: OpenBus) -> None:
    bus = await open_bus()
    bus.publisher.publish(make_event(1))
    await bus.close_publisher()
    bus.publisher.publish(make_event(2))
    assert bus.publisher.dropped == 1
    assert ids(await read_all(bus.source, 1)) == ["evt-0001"]  # what was accepted still arrives


async def test_a_cancelled_read_loses_nothing(open_bus: OpenBus) -> None:
    bus = await open_bus()
    for i in range(3):
        bus.publisher.publish(make_event(i))
    await bus.settle()
    got: list[Delivery] = []
    for pause in (0, 0, 0.0005, 0.001):  # cancel at different points of the read
        reader = asyncio.ensure_future(bus.source.read_batch(1, timeout=1))
        await asyncio.sleep(pause)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            got += await reader  # the read may have finished first: that is a delivery too
    # Memory keeps cancelled events in its buffer; Redis keeps them pending and reclaims them.
    got += await read_all(bus.source, 3 - len(got), within=3)
    assert sorted(set(ids(got))) == ["evt-0000", "evt-0001", "evt-0002"]


async def test_the_writer_stores_everything_published_exactly_once(open_bus: OpenBus) -> None:
    bus = await open_bus()
    sink = MemorySink()
    writer = EventWriter(bus.source, sink, batch_size=64, poll_interval=0.1, retry_base=0.01)
    writer.start()
    for i in range(500):
        bus.publisher.publish(make_event(i))
        if i % 50 == 0:
            await asyncio.sleep(0)
    await bus.settle()
    deadline = time.monotonic() + 5
    while await sink.count() < 500 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    bus.stop_reading()
    assert await writer.stop(timeout=5)
    assert await sink.count() == 500
    assert {e.event_id for e in await sink.recent(1000)} == {f"evt-{i:04d}" for i in range(500)}


async def test_events_that_differ_only_in_id_stay_distinct(open_bus: OpenBus) -> None:
    bus = await open_bus()
    first = RequestEvent("same-request", 1, event_id="a")
    second = RequestEvent("same-request", 1, event_id="b")
    bus.publisher.publish(first)
    bus.publisher.publish(second)
    await bus.settle()
    assert [d.event for d in await read_all(bus.source, 2)] == [first, second]


# --- memory only: the writer, not the bus, holds an unacknowledged batch -------------------


async def test_memory_hands_out_each_event_once_even_unacknowledged() -> None:
    bus = MemoryBus(10, linger=0)
    bus.publish(make_event(1))
    assert ids(await bus.read_batch(10, timeout=0)) == ["evt-0001"]
    assert await bus.read_batch(10, timeout=0.05) == []
    assert bus.unacked == 1


async def test_memory_keeps_draining_after_close() -> None:
    bus = MemoryBus(10, linger=0)
    bus.publish(make_event(1))
    bus.close()
    assert ids(await bus.read_batch(10, timeout=0)) == ["evt-0001"]
