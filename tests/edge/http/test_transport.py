"""FastTransport against a real uvicorn server: the shapes of response the edge relays."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from kestrel.common.config import EdgeConfig
from kestrel.edge.http import FastTransport
from kestrel.edge.http._connection import HIGH_WATER
from kestrel.edge.upstream import HttpxTransport, Upstream, UpstreamTransport

from .servers import SECRET, SSE_EVENTS, pattern

HEADERS = [(b"content-type", b"application/json"), (b"anthropic-version", b"2023-06-01"), (b"x-api-key", SECRET)]


async def test_json_round_trip_forwards_method_target_headers_and_body(
    fast: FastTransport, app_upstream: Upstream
) -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "h\u00e9"}]}).encode()
    response = await fast.open(app_upstream, "POST", "/v1/json?beta=true", HEADERS, body)
    assert response.status_code == 200
    assert (b"content-type", b"application/json") in response.raw_headers
    echo = json.loads(await response.read())
    assert (echo["method"], echo["path"], echo["query"]) == ("POST", "/v1/json", "beta=true")
    assert echo["body_length"] == len(body)
    sent = [tuple(h) for h in echo["headers"]]
    host = app_upstream.base_url.removeprefix("http://")
    assert sent == [
        ("host", host),
        ("content-type", "application/json"),
        ("anthropic-version", "2023-06-01"),
        ("x-api-key", SECRET.decode()),
        ("content-length", str(len(body))),
    ]


async def test_sse_chunks_arrive_as_they_are_sent(fast: FastTransport, app_upstream: Upstream) -> None:
    started = time.perf_counter()
    response = await fast.open(app_upstream, "GET", "/sse?delay=0.05", [], b"")
    assert response.status_code == 200
    arrivals: list[tuple[float, bytes]] = []
    async for chunk in response.iter_chunks():
        arrivals.append((time.perf_counter() - started, chunk))
    await response.aclose()
    assert b"".join(chunk for _, chunk in arrivals) == b"".join(SSE_EVENTS)
    assert len(arrivals) >= 3
    assert arrivals[0][0] < 0.15 < arrivals[-1][0]  # the first event did not wait for the last


async def test_chunked_body_is_dechunked(fast: FastTransport, app_upstream: Upstream) -> None:
    response = await fast.open(app_upstream, "GET", "/chunked", [], b"")
    assert (b"transfer-encoding", b"chunked") in response.raw_headers
    assert await response.read() == b"alpha beta gamma"


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500, 503, 529])
async def test_error_statuses_come_back_with_their_body(
    fast: FastTransport, app_upstream: Upstream, status: int
) -> None:
    response = await fast.open(app_upstream, "POST", f"/status/{status}", HEADERS, b"{}")
    assert response.status_code == status
    assert (b"retry-after", b"7") in response.raw_headers
    assert json.loads(await response.read()) == {"type": "error", "status": status}


async def test_no_content_responses_have_no_body_and_keep_the_connection(
    fast: FastTransport, app_upstream: Upstream
) -> None:
    for _ in range(3):
        response = await fast.open(app_upstream, "GET", "/status/204", [], b"")
        assert response.status_code == 204
        assert await response.read() == b""
    assert len(fast._origins[app_upstream.base_url].idle) == 1


async def test_head_has_headers_but_no_body_and_the_next_request_works(
    fast: FastTransport, app_upstream: Upstream
) -> None:
    response = await fast.open(app_upstream, "HEAD", "/big?size=5000", [], b"")
    assert response.status_code == 200
    assert (b"content-length", b"5000") in response.raw_headers
    assert await response.read() == b""
    for _ in range(2):
        response = await fast.open(app_upstream, "GET", "/big?size=5000", [], b"")
        assert await response.read() == pattern(5000)
    assert len(fast._origins[app_upstream.base_url].idle) == 1


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
async def test_large_body_read_whole(fast: FastTransport, app_upstream: Upstream, path: str) -> None:
    size = 6 * 1024 * 1024 + 7
    response = await fast.open(app_upstream, "GET", f"{path}?size={size}", [], b"")
    assert await response.read() == pattern(size)


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
async def test_slow_consumer_pauses_the_upstream_and_loses_nothing(
    fast: FastTransport, app_upstream: Upstream, path: str
) -> None:
    size = 8 * 1024 * 1024
    response = await fast.open(app_upstream, "GET", f"{path}?size={size}", [], b"")
    chunks = aiter(response.iter_chunks())
    received = [await anext(chunks)]
    await asyncio.sleep(0.3)  # long enough for the server to push everything if nothing held it back
    backlog = await anext(chunks)
    received.append(backlog)
    # Without flow control this chunk would hold most of the 8 MiB; paused, it stops near HIGH_WATER.
    assert len(backlog) <= HIGH_WATER + 512 * 1024
    async for chunk in chunks:
        received.append(chunk)
        assert len(chunk) <= HIGH_WATER + 512 * 1024
    await response.aclose()
    assert b"".join(received) == pattern(size)
    response = await fast.open(app_upstream, "GET", "/chunked", [], b"")  # the connection is reusable
    assert await response.read() == b"alpha beta gamma"


async def test_large_request_body_arrives_intact(fast: FastTransport, app_upstream: Upstream) -> None:
    body = pattern(3 * 1024 * 1024 + 1)
    response = await fast.open(app_upstream, "POST", "/echo", HEADERS, body)
    assert await response.read() == body


async def test_concurrent_requests_on_one_transport(fast: FastTransport, app_upstream: Upstream) -> None:
    async def one(i: int) -> bytes:
        response = await fast.open(app_upstream, "POST", "/echo", HEADERS, b"request %d" % i)
        return await response.read()

    assert await asyncio.gather(*(one(i) for i in range(50))) == [b"request %d" % i for i in range(50)]


async def test_aclose_after_read_does_not_touch_the_next_request(fast: FastTransport, app_upstream: Upstream) -> None:
    first = await fast.open(app_upstream, "GET", "/chunked", [], b"")
    assert await first.read() == b"alpha beta gamma"
    second = await fast.open(app_upstream, "GET", "/sse?delay=0.01", [], b"")
    await first.aclose()  # a late close of the finished response: the pooled connection serves `second`
    assert await second.read() == b"".join(SSE_EVENTS)


def _comparable(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return sorted(h for h in headers if h[0] != b"date")


REQUESTS = [
    ("POST", "/echo", b'{"model":"m"}'),
    ("GET", "/chunked", b""),
    ("GET", "/sse?delay=0.001", b""),
    ("POST", "/status/404", b"{}"),
    ("POST", "/status/529", b"{}"),
    ("GET", "/status/204", b""),
    ("GET", "/big?size=3000000", b""),
    ("GET", "/big-chunked?size=300000", b""),
    ("HEAD", "/big?size=3000", b""),
    ("GET", "/nowhere", b""),
]


async def test_same_answers_as_the_httpx_transport(config: EdgeConfig, app_upstream: Upstream) -> None:
    transports: list[UpstreamTransport] = [FastTransport(config), HttpxTransport(config)]
    try:
        for method, target, body in REQUESTS:
            seen = []
            for transport in transports:
                response = await transport.open(app_upstream, method, target, HEADERS, body)
                if target.startswith("/sse"):
                    content = b"".join([chunk async for chunk in response.iter_chunks()])
                    await response.aclose()
                else:
                    content = await response.read()
                seen.append((response.status_code, _comparable(response.raw_headers), content))
            assert seen[0] == seen[1], (method, target)
    finally:
        for transport in transports:
            await transport.aclose()
