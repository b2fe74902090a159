"""What every signature store promises, run against the in-process store and Redis alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from kestrel.edge.signatures import MemorySignatureStore, SignatureStore
from kestrel.edge.signatures.redis import RedisSignatureStore


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SignatureStore]:
    if request.param == "memory":
        yield MemorySignatureStore()
        return
    redis_url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    client = Redis.from_url(redis_url)
    redis_store = RedisSignatureStore(client, prefix)
    redis_store.start()
    try:
        yield redis_store
    finally:
        await redis_store.aclose()
        await client.aclose()


async def test_a_remembered_signature_is_recalled_by_its_call_id(store: SignatureStore) -> None:
    store.remember({"toolu_a": "sig-a", "toolu_b": "sig-b"})
    assert await store.recall(["toolu_a", "toolu_b"]) == {"toolu_a": "sig-a", "toolu_b": "sig-b"}


async def test_unknown_ids_are_simply_absent(store: SignatureStore) -> None:
    store.remember({"toolu_a": "sig-a"})
    assert await store.recall(["toolu_a", "toolu_nope"]) == {"toolu_a": "sig-a"}
    assert await store.recall([]) == {}


async def test_a_later_signature_for_the_same_call_wins(store: SignatureStore) -> None:
    store.remember({"toolu_a": "old"})
    await asyncio.sleep(0.05)
    store.remember({"toolu_a": "new"})
    assert await store.recall(["toolu_a"]) == {"toolu_a": "new"}


async def test_a_large_signature_comes_back_byte_for_byte(store: SignatureStore) -> None:
    signature = "CiQB" + "x/+=" * 2000
    store.remember({"toolu_big": signature})
    await asyncio.sleep(0.05)
    assert await store.recall(["toolu_big"]) == {"toolu_big": signature}


async def test_the_store_survives_the_write_landing_after_the_buffer(store: SignatureStore) -> None:
    """Once written through (Redis: the flusher ran), a recall reads the backend, not a buffer."""
    store.remember({"toolu_a": "sig-a"})
    await asyncio.sleep(0.2)
    assert await store.recall(["toolu_a"]) == {"toolu_a": "sig-a"}


# -- adapter specifics ---------------------------------------------------------------------


async def test_memory_store_forgets_after_its_ttl() -> None:
    now = [0.0]
    store = MemorySignatureStore(ttl_seconds=60, clock=lambda: now[0])
    store.remember({"toolu_a": "sig"})
    now[0] = 59
    assert await store.recall(["toolu_a"]) == {"toolu_a": "sig"}
    now[0] = 61
    assert await store.recall(["toolu_a"]) == {}
    assert len(store) == 0


async def test_memory_store_drops_the_least_recently_used_past_its_byte_bound() -> None:
    store = MemorySignatureStore(max_bytes=3 * (len("toolu_0") + 100))
    for i in range(3):
        store.remember({f"toolu_{i}": "s" * 100})
    await store.recall(["toolu_0"])  # now the most recently used
    store.remember({"toolu_3": "s" * 100})
    assert await store.recall(["toolu_0", "toolu_1", "toolu_2", "toolu_3"]) == {
        "toolu_0": "s" * 100,
        "toolu_2": "s" * 100,
        "toolu_3": "s" * 100,
    }


async def test_redis_store_is_shared_by_replicas_and_expires(redis_url: str, redis_prefix: str) -> None:
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    writer = RedisSignatureStore(first, redis_prefix, ttl_seconds=0.5)
    reader = RedisSignatureStore(second, redis_prefix)
    writer.start()
    reader.start()
    try:
        writer.remember({"toolu_a": "sig-a"})
        await asyncio.sleep(0.1)
        assert await reader.recall(["toolu_a"]) == {"toolu_a": "sig-a"}, "another replica finds it"
        ttl = await second.pttl(redis_prefix + "sig:toolu_a")
        assert 0 < ttl <= 500
        await asyncio.sleep(0.6)
        assert await reader.recall(["toolu_a"]) == {}
    finally:
        await writer.aclose()
        await reader.aclose()
        await first.aclose()
        await second.aclose()


async def test_redis_store_answers_empty_and_counts_when_redis_is_away() -> None:
    client = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    store = RedisSignatureStore(client, "kestrel-test:", timeout=0.3)
    store.start()
    try:
        store.remember({"toolu_a": "sig-a"})
        assert await store.recall(["toolu_a"]) == {"toolu_a": "sig-a"}, "the local buffer still answers"
        for _ in range(40):  # the flush fails (after the client's own retries): dropped, not retried forever
            if store.dropped:
                break
            await asyncio.sleep(0.1)
        assert store.dropped == 1
        assert await store.recall(["toolu_a"]) == {}
        assert store.failed_lookups == 1
    finally:
        await store.aclose()
        await client.aclose()


async def test_redis_store_drops_and_counts_past_its_buffer(redis_url: str, redis_prefix: str) -> None:
    client = Redis.from_url(redis_url)
    store = RedisSignatureStore(client, redis_prefix, buffer_size=2)  # not started: nothing drains
    try:
        store.remember({"a": "1", "b": "2", "c": "3"})
        assert store.dropped == 1
        assert await store.recall(["a", "b", "c"]) == {"a": "1", "b": "2"}
    finally:
        await client.aclose()
