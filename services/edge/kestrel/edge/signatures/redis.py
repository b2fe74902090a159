"""Signatures shared by every edge replica through Redis, so any replica can serve the next turn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class RedisSignatureStore:
    """``SignatureStore`` over Redis strings ``<prefix>sig:<call id>`` with a TTL.

    ``remember`` only fills a bounded local buffer that a background task writes with one
    pipelined ``SET … PX`` per batch, so a slow or absent Redis never holds a stream back; what
    does not fit is dropped and counted. ``recall`` looks in that buffer first (the next turn may
    reach this replica before the write lands), then sends one ``MGET`` with a short deadline and
    answers ``{}`` on any failure. Call ``start()`` on the running loop before use.
    """

    def __init__(
        self,
        client: Redis,
        prefix: str,
        *,
        ttl_seconds: float = 86_400.0,
        buffer_size: int = 10_000,
        timeout: float = 0.5,
    ) -> None:
        self._client = client
        self._prefix = prefix + "sig:"
        self._ttl_ms = int(ttl_seconds * 1000)
        self._buffer_size = buffer_size
        self._timeout = timeout
        self._pending: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.dropped = 0
        """Signatures not kept: the buffer was full, or Redis refused the write."""
        self.failed_lookups = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_forever(), name="kestrel-signatures")

    def remember(self, signatures: Mapping[str, str]) -> None:
        for call_id, signature in signatures.items():
            if len(self._pending) >= self._buffer_size and call_id not in self._pending:
                self.dropped += 1
                continue
            self._pending[call_id] = signature
        self._wake.set()

    async def recall(self, call_ids: Sequence[str]) -> dict[str, str]:
        found = {i: self._pending[i] for i in call_ids if i in self._pending}
        missing = [i for i in call_ids if i not in found]
        if not missing:
            return found
        try:
            async with asyncio.timeout(self._timeout):
                values = await self._client.mget([self._prefix + i for i in missing])
        except (RedisError, OSError, TimeoutError) as exc:
            self.failed_lookups += 1
            log.warning("signature lookup failed, sending calls unsigned: %s", type(exc).__name__)
            return found
        for call_id, value in zip(missing, values, strict=True):
            if value is not None:
                found[call_id] = value.decode() if isinstance(value, bytes) else value
        return found

    async def aclose(self) -> None:
        """Let the writer send what is buffered (briefly), then stop it."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        done, _ = await asyncio.wait([self._task], timeout=self._timeout * 4)
        if not done:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=self._timeout)
        self._task = None

    def _take(self) -> dict[str, str]:
        batch, self._pending = self._pending, {}
        return batch

    async def _flush_forever(self) -> None:
        while not (self._closing and not self._pending):
            await self._wake.wait()
            self._wake.clear()
            batch = self._take()
            if not batch:
                continue
            try:
                async with asyncio.timeout(self._timeout * 4):
                    await self._write(batch)
            except (RedisError, OSError, TimeoutError) as exc:
                self.dropped += len(batch)
                log.warning("could not keep %d signatures: %s", len(batch), type(exc).__name__)

    async def _write(self, batch: Mapping[str, str]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for call_id, signature in batch.items():
                pipe.set(self._prefix + call_id, signature, px=self._ttl_ms)
            await pipe.execute()
