"""Signatures kept in this process: least recently used first out, bounded by bytes and age."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence


class MemorySignatureStore:
    """``SignatureStore`` for one process (``kestrel up``).

    Gemini signatures run to a few kilobytes, so the bound is on bytes, not entries: past
    ``max_bytes`` the least recently used go first. An entry older than ``ttl_seconds`` is gone,
    as in the Redis store, so both adapters forget alike.
    """

    def __init__(
        self,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        ttl_seconds: float = 86_400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._ttl = ttl_seconds
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, signatures: Mapping[str, str]) -> None:
        expires = self._clock() + self._ttl
        for call_id, signature in signatures.items():
            old = self._entries.pop(call_id, None)
            if old is not None:
                self._bytes -= _size(call_id, old[0])
            self._entries[call_id] = (signature, expires)
            self._bytes += _size(call_id, signature)
        while self._bytes > self._max_bytes and self._entries:
            call_id, (signature, _) = self._entries.popitem(last=False)
            self._bytes -= _size(call_id, signature)

    async def recall(self, call_ids: Sequence[str]) -> dict[str, str]:
        now = self._clock()
        found: dict[str, str] = {}
        for call_id in call_ids:
            entry = self._entries.get(call_id)
            if entry is None:
                continue
            signature, expires = entry
            if expires <= now:
                del self._entries[call_id]
                self._bytes -= _size(call_id, signature)
                continue
            self._entries.move_to_end(call_id)
            found[call_id] = signature
        return found

    async def aclose(self) -> None:
        self._entries.clear()
        self._bytes = 0


def _size(call_id: str, signature: str) -> int:
    return len(call_id) + len(signature)
