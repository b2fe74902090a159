"""The cluster adapter of the event bus: a Redis stream read by a consumer group.

Each stream entry holds one field, ``event``, whose value is ``event_codec.encode(event)``
(protobuf, so edge and logger pods of different versions understand each other).

``RedisStreamPublisher`` is the edge's end. A request must never wait on logging, and Redis can
be slow or gone, so ``publish`` only appends to a bounded local buffer; a background task sends
the buffer with pipelined ``XADD ... MAXLEN ~`` and keeps events buffered while Redis is away.
What does not fit, or is still buffered when ``aclose`` gives up, is counted in ``dropped``.

``RedisStreamSource`` is the logger's end, one consumer of a group shared by every logger pod:

- Reading: entries another consumer left pending longer than ``claim_idle_ms`` (it died, or its
  ack failed) are reclaimed with ``XAUTOCLAIM`` first, then new entries are read with
  ``XREADGROUP``. An entry read by a call that is then cancelled stays pending in Redis and is
  reclaimed the same way, so cancellation delays entries but never loses them.
- Acknowledging: ``XACK`` and ``XDEL`` in one ``MULTI``. Deleting acked entries keeps the stream
  as long as the backlog rather than ``maxlen``, so Redis memory stays small and a restarted
  group (which starts from the beginning) re-reads only what was not stored. The cost: no other
  consumer group can read this stream; pass ``delete_acked=False`` if one must, and ``MAXLEN``
  alone then bounds the stream.
- Poison: an entry that cannot be decoded is copied to the dead-letter stream with the error,
  then acknowledged, in one ``MULTI``. It is never handed to the writer and never looped on.
  A dead-letter entry has ``stream``, ``id``, ``error``, ``group``, ``consumer``, and each
  field of the original entry under ``field.<name>``, so it can be inspected or replayed.
- Redis restarts: errors surface from ``read_batch`` and the writer retries with backoff. When
  Redis comes back without its data the group is gone (``NOGROUP``); the source recreates it
  and carries on. Events that were only in the lost Redis are lost with it.

Delivery is at least once: a consumer that dies after its commit but before its ack has its
entries stored again by whoever reclaims them, which the idempotent sinks absorb. Set
``claim_idle_ms`` well above the longest commit, or live consumers' batches are re-read too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from kestrel.common.event_codec import EventDecodeError, decode, encode
from kestrel.common.events import RequestEvent

from .base import Delivery

log = logging.getLogger(__name__)

ENTRY_FIELD = b"event"
"""The one field of a stream entry; its value is the protobuf-encoded ``RequestEvent``."""

_FIRST_ID = "0"
"""Where a newly created group starts: events the edge wrote before any logger ran are kept."""


class RedisStreamPublisher:
    """``EventPublisher`` over a Redis stream: a bounded buffer drained by a background task.

    Call ``start()`` on the running loop, ``publish`` from anywhere on it, ``aclose()`` at
    shutdown. The Redis client is the caller's and is not closed here; it must be created
    with ``decode_responses=False``. Its own retries can be turned off: the flusher retries.
    """

    def __init__(
        self,
        client: Redis,
        stream: str,
        *,
        maxlen: int,
        buffer_size: int,
        batch_size: int = 500,
        send_timeout: float = 5.0,
        retry_base: float = 0.05,
        retry_max: float = 2.0,
    ) -> None:
        """``buffer_size`` bounds what the edge holds while Redis is away (sent events included
        until Redis confirms them); ``maxlen`` is the approximate cap given to every ``XADD``;
        ``send_timeout`` bounds one pipelined send, so a hung Redis connection is abandoned."""
        if buffer_size < 1 or batch_size < 1 or maxlen < 1:
            raise ValueError("buffer_size, batch_size and maxlen must be at least 1")
        _require_bytes_client(client)
        self._client = client
        self._stream = stream
        self._maxlen = maxlen
        self._buffer_size = buffer_size
        self._batch_size = batch_size
        self._send_timeout = send_timeout
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._buffer: deque[RequestEvent] = deque()
        self._in_flight: list[bytes] = []
        """Encoded events taken from the buffer and not yet confirmed by Redis."""
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        """Events accepted into the buffer."""
        self.sent = 0
        """Events Redis confirmed (``XADD`` answered with an id)."""
        self.dropped = 0
        """Events refused (buffer full, or closed), unencodable, or abandoned by ``aclose``."""
        self.send_errors = 0
        """Failed send attempts; each is retried, so this counts trouble, not loss."""

    @property
    def backlog(self) -> int:
        """Events accepted and not yet confirmed by Redis."""
        return len(self._buffer) + len(self._in_flight)

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, event: RequestEvent) -> None:
        """Buffer ``event`` unless the buffer is full or closed; never blocks, never raises.

        Encoding happens in the flusher, so the request path pays for one append.
        """
        if self._closed or len(self._buffer) + len(self._in_flight) >= self._buffer_size:
            self.dropped += 1
            return
        self._buffer.append(event)
        self.published += 1
        if not self._wake.is_set():
            self._wake.set()

    def start(self) -> None:
        """Start the flusher task on the running loop; call once."""
        if self._task is not None:
            raise RuntimeError("the publisher was already started")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kestrel-event-publisher")
        self._task.add_done_callback(_report_crash)

    async def flush(self, timeout: float) -> bool:
        """Wait until everything published so far is in Redis; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.backlog:
            if time.monotonic() >= deadline or self._task is None or self._task.done():
                return False
            await asyncio.sleep(0.005)
        return True

    async def aclose(self, timeout: float = 5.0) -> bool:
        """Refuse new events, send what is buffered within ``timeout``, count the rest as dropped.

        Returns True when nothing was left behind. An event abandoned in the middle of a send
        may still have reached Redis; it is counted as dropped all the same.
        """
        self._closed = True
        self._wake.set()
        task = self._task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            except Exception:
                pass  # the crash was already logged by _report_crash; count what it left
        left = self.backlog
        if left:
            self.dropped += left
            self._buffer.clear()
            self._in_flight = []
            log.error("event publisher: closed with %d events not sent to Redis", left)
        return left == 0

    async def _run(self) -> None:
        delay = self._retry_base
        failures = 0  # in the current outage
        while True:
            if not self._in_flight and not self._take_batch():
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                async with asyncio.timeout(self._send_timeout):
                    await self._send()
            except Exception as exc:
                self.send_errors += 1
                if not failures:  # one warning per outage, not one per retry
                    log.warning("event publisher: sending to Redis failed (%r); buffering and retrying", exc)
                failures += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            if failures:
                log.warning("event publisher: Redis is back after %d failed sends", failures)
                failures = 0
            delay = self._retry_base

    def _take_batch(self) -> bool:
        """Move up to ``batch_size`` events from the buffer into ``_in_flight``, encoded."""
        while self._buffer and len(self._in_flight) < self._batch_size:
            event = self._buffer.popleft()
            try:
                self._in_flight.append(encode(event))
            except Exception:
                self.dropped += 1
                log.exception("event publisher: dropping event %s that cannot be encoded", event.event_id)
        return bool(self._in_flight)

    async def _send(self) -> None:
        """One pipelined round trip; entries Redis refused stay in flight for the next try."""
        batch = self._in_flight
        async with self._client.pipeline(transaction=False) as pipe:
            for data in batch:
                pipe.xadd(self._stream, {ENTRY_FIELD: data}, maxlen=self._maxlen, approximate=True)
            results = await pipe.execute(raise_on_error=False)
        failed = [data for data, result in zip(batch, results, strict=True) if isinstance(result, Exception)]
        self.sent += len(batch) - len(failed)
        self._in_flight = failed
        if failed:
            raise next(r for r in results if isinstance(r, Exception))


class RedisStreamSource:
    """``EventSource`` over a Redis stream, as consumer ``consumer`` of group ``group``.

    Every logger pod uses the same ``group`` and its own ``consumer`` name (the pod name). The
    client must be created with ``decode_responses=False`` and a ``socket_timeout`` (if any)
    longer than the writer's poll interval, since ``XREADGROUP`` blocks that long.
    """

    def __init__(
        self,
        client: Redis,
        stream: str,
        group: str,
        consumer: str,
        *,
        claim_idle_ms: int = 60_000,
        dead_letter_stream: str,
        dead_letter_maxlen: int = 10_000,
        delete_acked: bool = True,
        claim_interval: float | None = None,
        command_timeout: float = 5.0,
    ) -> None:
        """``claim_interval`` (seconds, default half of ``claim_idle_ms``) spaces the reclaim
        checks, which cost a round trip each; ``command_timeout`` is added to a read's own wait
        to bound a call to a Redis that stopped answering."""
        if claim_idle_ms < 1:
            raise ValueError("claim_idle_ms must be at least 1")
        _require_bytes_client(client)
        self._client = client
        self._stream = stream
        self._group = group
        self._consumer = consumer
        self._claim_idle_ms = claim_idle_ms
        self._claim_interval = claim_idle_ms / 2000 if claim_interval is None else claim_interval
        self._dead_letter_stream = dead_letter_stream
        self._dead_letter_maxlen = dead_letter_maxlen
        self._delete_acked = delete_acked
        self._command_timeout = command_timeout
        self._group_ready = False
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._closed = False
        self.delivered = 0
        """Deliveries handed to the writer, reclaimed ones included."""
        self.reclaimed = 0
        """Entries taken over from consumers that left them pending too long."""
        self.acked = 0
        """Entries acknowledged (by ``ack`` or when parked)."""
        self.dead_lettered = 0
        """Undecodable entries copied to the dead-letter stream and acknowledged."""

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Hand out nothing more, so the writer's drain ends with the batch it holds.

        Unlike the in-process bus, unread entries are not this pod's to drain: they stay in
        the stream for the other consumers (or this group after a restart).
        """
        self._closed = True

    async def ensure_group(self) -> None:
        """Create the group (and the stream) if missing; ``read_batch`` does it on first use."""
        try:
            await self._client.xgroup_create(self._stream, self._group, id=_FIRST_ID, mkstream=True)
            log.info("event source: created consumer group %s on %s", self._group, self._stream)
        except ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise
        self._group_ready = True

    async def read_batch(self, max_n: int, timeout: float) -> list[Delivery]:
        """Reclaimed entries first, then new ones, up to ``max_n``; waits ``timeout`` for new ones."""
        if max_n < 1:
            raise ValueError("max_n must be at least 1")
        if self._closed:
            if timeout > 0:
                await asyncio.sleep(timeout)  # keeps a polling caller from spinning
            return []
        async with asyncio.timeout(max(timeout, 0) + self._command_timeout):
            try:
                return await self._read(max_n, timeout)
            except ResponseError as exc:
                if not str(exc).startswith("NOGROUP"):
                    raise
                # Redis lost the group (restarted without persistence, or someone deleted the
                # stream): recreate it and read again; the new group starts at the beginning.
                log.warning("event source: consumer group %s is gone; recreating it", self._group)
                self._group_ready = False
                self._claim_cursor = "0-0"
                return await self._read(max_n, timeout)

    async def ack(self, deliveries: list[Delivery]) -> None:
        """``XACK`` (and ``XDEL`` unless ``delete_acked`` is off) in one ``MULTI``."""
        if not deliveries:
            return
        ids = [d.id for d in deliveries]
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.xack(self._stream, self._group, *ids)
            if self._delete_acked:
                pipe.xdel(self._stream, *ids)
            results = await pipe.execute(raise_on_error=False)
        acked = results[0]
        if isinstance(acked, ResponseError) and str(acked).startswith("NOGROUP"):
            # The group, and with it the pending list, vanished with a Redis restart: there is
            # nothing left to acknowledge, and the next read recreates the group.
            self._group_ready = False
            return
        for result in results:
            if isinstance(result, Exception):
                raise result
        self.acked += int(acked)

    async def _read(self, max_n: int, timeout: float) -> list[Delivery]:
        if not self._group_ready:
            await self.ensure_group()
        entries: list[tuple[Any, Any]] = []
        if time.monotonic() >= self._next_claim:
            entries += await self._reclaim(max_n)
        if len(entries) < max_n:
            # Block only when there is nothing to return yet; BLOCK 0 would mean "forever".
            block = None if entries or timeout <= 0 else max(1, int(timeout * 1000))
            response = await self._client.xreadgroup(
                self._group, self._consumer, {self._stream: ">"}, count=max_n - len(entries), block=block
            )
            for _stream, stream_entries in response or ():
                entries += stream_entries
        return await self._deliveries(entries)

    async def _reclaim(self, max_n: int) -> list[tuple[Any, Any]]:
        """One ``XAUTOCLAIM`` page; the cursor walks the pending list across calls."""
        response = await self._client.xautoclaim(
            self._stream, self._group, self._consumer, self._claim_idle_ms, start_id=self._claim_cursor, count=max_n
        )
        cursor, claimed = response[0], response[1]
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        # Walk on at once while there are more pages; otherwise wait for the next interval.
        wrapped = self._claim_cursor == "0-0"
        self._next_claim = time.monotonic() + (self._claim_interval if wrapped else 0.0)
        # Redis 6.2 returns an entry deleted while pending as (None, None), without its id, so
        # it cannot be acknowledged; Redis 7 drops such entries from the pending list itself.
        live = [entry for entry in claimed if entry[0] is not None]
        if live:
            self.reclaimed += len(live)
            log.info("event source: reclaimed %d entries left pending by other consumers", len(live))
        return live

    async def _deliveries(self, entries: list[tuple[Any, Any]]) -> list[Delivery]:
        deliveries: list[Delivery] = []
        poison: list[tuple[bytes, dict[bytes, bytes], str]] = []
        for entry_id, fields in entries:
            try:
                data = fields.get(ENTRY_FIELD)
                if data is None:
                    raise EventDecodeError(f"the entry has no {ENTRY_FIELD.decode()!r} field")
                event = decode(data)
            except EventDecodeError as exc:
                poison.append((entry_id, fields, str(exc)))
                continue
            deliveries.append(Delivery(entry_id.decode(), event))
        if poison:
            await self._park(poison)
        self.delivered += len(deliveries)
        return deliveries

    async def _park(self, poison: list[tuple[bytes, dict[bytes, bytes], str]]) -> None:
        """Copy undecodable entries to the dead-letter stream and acknowledge them, atomically.

        When this fails the entries stay pending and are parked again once reclaimed; the good
        deliveries of the same read are returned either way.
        """
        ids = [entry_id for entry_id, _, _ in poison]
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                for entry_id, fields, error in poison:
                    record: dict[bytes | str, bytes | str] = {
                        "stream": self._stream,
                        "id": entry_id,
                        "error": error,
                        "group": self._group,
                        "consumer": self._consumer,
                    }
                    record.update({b"field." + name: value for name, value in fields.items()})
                    pipe.xadd(self._dead_letter_stream, record, maxlen=self._dead_letter_maxlen, approximate=True)
                pipe.xack(self._stream, self._group, *ids)
                if self._delete_acked:
                    pipe.xdel(self._stream, *ids)
                results = await pipe.execute()
        except Exception:
            log.exception("event source: parking %d undecodable entries failed; they stay pending", len(ids))
            return
        self.dead_lettered += len(ids)
        self.acked += int(results[len(poison)])
        log.error(
            "event source: parked %d undecodable entries in %s (first: %s)",
            len(ids),
            self._dead_letter_stream,
            poison[0][2],
        )


def _require_bytes_client(client: Redis) -> None:
    # Entries are protobuf bytes; a client that decodes replies to str would corrupt them.
    if client.get_connection_kwargs().get("decode_responses"):
        raise ValueError("the Redis client must be created with decode_responses=False")


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("event publisher crashed; events are no longer sent", exc_info=task.exception())
