"""A per-key prompt cache that splits a prompt into read, written and uncached tokens.

It follows Anthropic's documented behaviour closely enough for a gateway's cache-preserving
work to show up in usage numbers:

* A prefix is identified by a hash over the model and the prompt's segments (tools, system,
  messages, in that order) up to a block, ignoring ``cache_control`` itself, so moving the
  breakpoint forward on the next turn still finds the earlier prefix. Reordering, rewriting or
  dropping any earlier segment changes the hash: a miss, as upstream.
* Lookup: for each breakpoint, the sim checks the prefix ending at the breakpoint and at each of
  the 19 block boundaries before it (Anthropic's ~20-block lookback). The longest prefix found
  and unexpired is ``cache_read_input_tokens``; a hit refreshes its expiry.
* Write: every breakpoint after the read point whose prefix has at least ``min_cache_tokens``
  tokens is stored with its ttl (``5m`` or ``1h``). Tokens between the read point and the last
  such breakpoint are ``cache_creation_input_tokens``, split into the 5m/1h buckets by the ttl
  of the breakpoint closing each stretch. Everything after is ``input_tokens``.
* State is per API key (Anthropic caches per organisation, and an account is one key here).

``plan`` is pure lookup; ``commit`` stores the writes. The app plans first and commits only when
the request is admitted, so a rate-limited request leaves no trace.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from kestrel.sim._request import Prompt
from kestrel.sim._tokens import without_cache_control

LOOKBACK_BLOCKS = 20
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
MAX_ENTRIES_PER_KEY = 10_000


@dataclass(slots=True)
class CachePlan:
    """How one request's prompt tokens divide, and what to store if it is admitted."""

    input_tokens: int
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0
    read_digest: bytes | None = None
    writes: list[tuple[bytes, str]] = field(default_factory=list)
    """``(prefix digest, ttl)`` to store on commit."""


class PromptCache:
    """Prefix digests per key with their expiry times."""

    def __init__(self, min_cache_tokens: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_cache_tokens = min_cache_tokens
        self._clock = clock
        self._entries: dict[str, dict[bytes, tuple[float, str]]] = {}

    def plan(self, key: str, prompt: Prompt) -> CachePlan:
        """Divide the prompt's tokens; look up but do not change the cache."""
        total = prompt.total_tokens
        if not prompt.breakpoints:
            return CachePlan(input_tokens=total)
        digests = _prefix_digests(prompt)
        entries = self._entries.get(key, {})
        now = self._clock()
        cumulative = prompt.cumulative

        read_index, read_digest = -1, None
        for index, _ttl in prompt.breakpoints:
            for j in range(index, max(index - LOOKBACK_BLOCKS, read_index), -1):
                entry = entries.get(digests[j])
                if entry is not None and entry[0] > now:
                    read_index, read_digest = j, digests[j]
                    break
        read = cumulative[read_index] if read_index >= 0 else 0

        plan = CachePlan(input_tokens=0, cache_read_input_tokens=read, read_digest=read_digest)
        written_through = read
        for index, ttl in prompt.breakpoints:
            if index <= read_index or cumulative[index] < self.min_cache_tokens:
                continue
            stretch = cumulative[index] - written_through
            if ttl == "1h":
                plan.ephemeral_1h_input_tokens += stretch
            else:
                plan.ephemeral_5m_input_tokens += stretch
            written_through = cumulative[index]
            plan.writes.append((digests[index], ttl))
        plan.cache_creation_input_tokens = written_through - read
        plan.input_tokens = total - written_through
        return plan

    def commit(self, key: str, plan: CachePlan) -> None:
        """Store the plan's writes and refresh the prefix it read."""
        if plan.read_digest is None and not plan.writes:
            return
        entries = self._entries.setdefault(key, {})
        now = self._clock()
        if plan.read_digest is not None:
            entry = entries.get(plan.read_digest)
            if entry is not None:
                entries[plan.read_digest] = (now + TTL_SECONDS[entry[1]], entry[1])
        for digest, ttl in plan.writes:
            entries.pop(digest, None)  # re-insert so dict order tracks recency for pruning
            entries[digest] = (now + TTL_SECONDS[ttl], ttl)
        if len(entries) > MAX_ENTRIES_PER_KEY:
            self._prune(entries, now)

    def entry_count(self, key: str) -> int:
        now = self._clock()
        return sum(1 for expiry, _ in self._entries.get(key, {}).values() if expiry > now)

    def clear(self) -> None:
        self._entries.clear()

    @staticmethod
    def _prune(entries: dict[bytes, tuple[float, str]], now: float) -> None:
        for digest in [d for d, (expiry, _) in entries.items() if expiry <= now]:
            del entries[digest]
        while len(entries) > MAX_ENTRIES_PER_KEY:
            del entries[next(iter(entries))]


def _prefix_digests(prompt: Prompt) -> dict[int, bytes]:
    """Digests of the prefixes ending at each boundary a lookup can touch (and no others)."""
    wanted: set[int] = set()
    for index, _ in prompt.breakpoints:
        wanted.update(range(max(index - LOOKBACK_BLOCKS + 1, 0), index + 1))
    last = max(wanted)
    running = hashlib.blake2b(prompt.model.encode(), digest_size=16)
    digests: dict[int, bytes] = {}
    for i in range(last + 1):
        running.update(prompt.tags[i] + _segment_bytes(prompt.segments[i]) + b"\x00")
        if i in wanted:
            digests[i] = running.copy().digest()
    return digests


def _segment_bytes(segment: object) -> bytes:
    """What the model would see of a segment: a plain text block hashes like a string.

    Anthropic caches the rendered prompt, so ``"hi"`` and ``[{"type": "text", "text": "hi"}]``
    share a prefix upstream; a gateway that converts one into the other must not lose its cache
    here either. Everything else hashes as sorted compact JSON without ``cache_control``.
    """
    if isinstance(segment, str):
        return segment.encode()
    assert isinstance(segment, dict)
    if segment.get("type") == "text" and len(segment.keys() - {"type", "text", "cache_control"}) == 0:
        return str(segment["text"]).encode()
    return orjson.dumps(without_cache_control(segment), option=orjson.OPT_SORT_KEYS)
