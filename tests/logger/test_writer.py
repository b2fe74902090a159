"""The writer: nothing accepted is lost, through sink failures and shutdown."""

from __future__ import annotations

import asyncio
import time

import pytest

from kestrel.logger.bus.memory import MemoryBus
from kestrel.logger.sink.memory import MemorySink
from kestrel.logger.writer import EventWriter

from .factories import FlakySink, ListSource, eventually, make_event

FAST = {"retry_base": 0.001, "retry_max": 0.01}


async def test_everything_published_is_written_in_bounded_batches() -> None:
    bus, sink = MemoryBus(5000, linger=0.001), FlakySink(failures=0)
    writer = EventWriter(bus, sink, batch_size=50)
    writer.start()
    for i in range(1000):
        bus.publish(make_event(i))
        if i % 100 == 0:
            await asyncio.sleep(0)
    await eventually(lambda: sink.count())  # type: ignore[arg-type]
    bus.close()
    assert await writer.stop(timeout=2)
    assert await sink.count() == 1000
    assert writer.written == 1000
    assert max(sink.batch_sizes) <= 50
    assert writer.batches == len(sink.batch_sizes)
    assert (bus.dropped, bus.unacked, writer.failed_batches) == (0, 0, 0)


async def test_stop_flushes_what_is_buffered() -> None:
    bus, sink = MemoryBus(1000), MemorySink()
    writer = EventWriter(bus, sink, batch_size=7, poll_interval=5)
    writer.start()
    for i in range(100):
        bus.publish(make_event(i))
    bus.close()
    assert await writer.stop(timeout=2)
    assert await sink.count() == 100
    assert not writer.running


async def test_stop_is_prompt_when_idle() -> None:
    writer = EventWriter(MemoryBus(10), MemorySink(), poll_interval=30)
    writer.start()
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    assert await writer.stop(timeout=2)
    assert time.perf_counter() - started < 0.5


async def test_a_sink_that_fails_twice_loses_nothing() -> None:
    bus, sink = MemoryBus(100), FlakySink(failures=2)
    writer = EventWriter(bus, sink, batch_size=100, **FAST)
    writer.start()
    for i in range(10):
        bus.publish(make_event(i))
    await eventually(lambda: sink.batch_sizes)
    bus.close()
    assert await writer.stop(timeout=2)
    assert await sink.count() == 10
    assert (writer.failed_batches, writer.written, sink.calls) == (2, 10, 3)
    assert bus.unacked == 0


async def test_acknowledges_only_after_the_commit() -> None:
    log: list[str] = []
    batches = [[make_event(1), make_event(2)], [make_event(3)]]
    source = ListSource(batches, log, fail_reads=1)

    class RecordingSink(FlakySink):
        async def write(self, events):  # type: ignore[no-untyped-def]
            log.append(f"write {len(events)}")
            await super().write(events)

    sink = RecordingSink(failures=1)
    writer = EventWriter(source, sink, **FAST)
    writer.start()
    await eventually(lambda: len(source.acked) == 3)
    assert await writer.stop(timeout=1)
    assert log == ["read 2", "write 2", "write 2", "ack 2", "read 1", "write 1", "ack 1"]
    assert source.acked == ["evt-0001", "evt-0002", "evt-0003"]


async def test_redelivered_events_are_stored_once() -> None:
    event = make_event(1)
    source = ListSource([[event], [event]], [])
    sink = MemorySink()
    writer = EventWriter(source, sink)
    writer.start()
    await eventually(lambda: len(source.acked) == 2)
    assert await writer.stop(timeout=1)
    assert (writer.written, await sink.count()) == (2, 1)


async def test_stop_gives_up_on_a_dead_sink_and_counts_the_loss() -> None:
    bus, sink = MemoryBus(100), FlakySink(failures=-1)
    writer = EventWriter(bus, sink, **FAST)
    writer.start()
    for i in range(5):
        bus.publish(make_event(i))
    await eventually(lambda: writer.failed_batches >= 2)
    bus.close()
    assert not await writer.stop(timeout=0.05)
    assert writer.abandoned == 5
    assert not writer.running


async def test_stop_before_start_and_double_start() -> None:
    writer = EventWriter(MemoryBus(1), MemorySink())
    assert await writer.stop()
    writer.start()
    with pytest.raises(RuntimeError):
        writer.start()
    assert await writer.stop(timeout=1)
