"""The in-process bus: publishing costs nothing and never fails; reading batches."""

from __future__ import annotations

import asyncio
import time

import pytest

from kestrel.logger.bus.memory import MemoryBus

from .factories import make_event


def test_publish_drops_and_counts_when_full() -> None:
    bus = MemoryBus(3)
    for i in range(5):
        assert bus.publish(make_event(i)) is None
    assert (bus.published, bus.dropped, bus.backlog) == (3, 2, 3)


def test_publish_is_cheap_even_when_full() -> None:
    bus = MemoryBus(1000)
    event = make_event(1)
    started = time.perf_counter()
    for _ in range(20_000):
        bus.publish(event)
    elapsed = time.perf_counter() - started
    assert bus.dropped == 19_000
    assert elapsed < 0.5  # ~1 µs each in practice; the bound only catches accidental I/O


def test_publish_after_close_is_counted_as_dropped() -> None:
    bus = MemoryBus(10)
    bus.close()
    bus.publish(make_event(1))
    assert (bus.dropped, bus.backlog, bus.closed) == (1, 0, True)


async def test_batches_respect_max_n_and_keep_order() -> None:
    bus = MemoryBus(100, linger=0)
    for i in range(10):
        bus.publish(make_event(i))
    sizes, ids = [], []
    while batch := await bus.read_batch(4, timeout=0):
        sizes.append(len(batch))
        ids += [d.event.event_id for d in batch]
    assert sizes == [4, 4, 2]
    assert ids == [make_event(i).event_id for i in range(10)]
    assert bus.unacked == 10


async def test_read_waits_for_the_first_event() -> None:
    bus = MemoryBus(10, linger=0)
    asyncio.get_running_loop().call_later(0.01, bus.publish, make_event(1))
    started = time.perf_counter()
    batch = await bus.read_batch(10, timeout=2)
    assert [d.event.event_id for d in batch] == ["evt-0001"]
    assert time.perf_counter() - started < 1


async def test_read_returns_empty_after_timeout() -> None:
    bus = MemoryBus(10)
    assert await bus.read_batch(10, timeout=0.01) == []
    assert await bus.read_batch(10, timeout=0) == []


async def test_linger_gathers_a_burst_into_one_batch() -> None:
    bus = MemoryBus(10, linger=0.05)
    loop = asyncio.get_running_loop()
    loop.call_later(0.005, bus.publish, make_event(1))
    loop.call_later(0.015, bus.publish, make_event(2))
    loop.call_later(0.025, bus.publish, make_event(3))
    batch = await bus.read_batch(10, timeout=1)
    assert len(batch) == 3


async def test_a_cancelled_read_loses_nothing() -> None:
    bus = MemoryBus(10, linger=0.5)
    reader = asyncio.ensure_future(bus.read_batch(10, timeout=1))
    await asyncio.sleep(0)
    bus.publish(make_event(1))
    await asyncio.sleep(0.01)  # the reader is now lingering
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert [d.event.event_id for d in await bus.read_batch(10, timeout=0)] == ["evt-0001"]


async def test_ack_settles_unacked() -> None:
    bus = MemoryBus(10)
    bus.publish(make_event(1))
    batch = await bus.read_batch(10, timeout=0)
    assert bus.unacked == 1
    await bus.ack(batch)
    assert bus.unacked == 0


async def test_a_closed_empty_bus_does_not_spin() -> None:
    bus = MemoryBus(10)
    bus.close()
    started = time.perf_counter()
    assert await bus.read_batch(10, timeout=0.02) == []
    assert time.perf_counter() - started >= 0.015


def test_rejects_nonsense_sizes() -> None:
    with pytest.raises(ValueError):
        MemoryBus(0)
    with pytest.raises(ValueError):
        MemoryBus(1, linger=-1)
