"""Misbehaving upstreams: every way a response can end early maps to an UpstreamError, never a short body."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest

from kestrel.common.config import EdgeConfig
from kestrel.edge.http import FastTransport
from kestrel.edge.upstream import ConnectFailed, StreamBroken, TimedOut, Upstream, UpstreamError

from .servers import SECRET, RawServer, read_request

HEADERS = [(b"x-api-key", SECRET), (b"x-private", b"hush")]


@pytest.fixture
async def quick() -> AsyncIterator[FastTransport]:
    """A transport with timeouts short enough to test."""
    transport = FastTransport(EdgeConfig(connect_timeout_seconds=0.3, read_timeout_seconds=0.3))
    yield transport
    await transport.aclose()


def assert_discreet(exc: UpstreamError, account: str) -> None:
    """Messages name the account but never carry the credential or other headers."""
    message = str(exc)
    assert account in message
    assert SECRET.decode() not in message and "hush" not in message


def answer_then_close(data: bytes) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(data)
        await writer.drain()

    return handler


CUT = [
    pytest.param(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 50, id="content-length"),
    pytest.param(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n", id="chunked-between-chunks"),
    pytest.param(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\nhel", id="chunked-mid-chunk"),
    pytest.param(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", id="bad-chunk-size"),
]


@pytest.mark.parametrize("data", CUT)
async def test_body_cut_short_breaks_iteration(fast: FastTransport, data: bytes) -> None:
    async with RawServer(answer_then_close(data)) as server:
        response = await fast.open(server.upstream(), "POST", "/", HEADERS, b"{}")
        assert response.status_code == 200
        got = b""
        with pytest.raises(StreamBroken) as caught:
            async for chunk in response.iter_chunks():
                got += chunk
        assert got in (b"x" * 50, b"hello", b"hel")
        assert_discreet(caught.value, "acct-raw")
        await response.aclose()


@pytest.mark.parametrize("data", CUT)
async def test_body_cut_short_breaks_read(fast: FastTransport, data: bytes) -> None:
    async with RawServer(answer_then_close(data)) as server:
        response = await fast.open(server.upstream(), "POST", "/", HEADERS, b"{}")
        with pytest.raises(StreamBroken):
            await response.read()


async def test_close_delimited_body_is_read_to_the_end_and_not_reused(fast: FastTransport) -> None:
    async with RawServer(answer_then_close(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil eof")) as server:
        for _ in range(2):
            response = await fast.open(server.upstream(), "GET", "/", [], b"")
            assert await response.read() == b"until eof"
        assert server.accepted == 2


async def test_close_before_responding_is_connect_failed(fast: FastTransport) -> None:
    async with RawServer(answer_then_close(b"")) as server:
        with pytest.raises(ConnectFailed) as caught:
            await fast.open(server.upstream(), "POST", "/", HEADERS, b"{}")
        assert type(caught.value) is ConnectFailed
        assert_discreet(caught.value, "acct-raw")
        assert server.accepted == 1  # a fresh connection is not retried


async def test_garbage_instead_of_a_response_is_connect_failed(fast: FastTransport) -> None:
    async with RawServer(answer_then_close(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")) as server:
        with pytest.raises(ConnectFailed):
            await fast.open(server.upstream(), "POST", "/", HEADERS, b"{}")


async def test_silent_server_times_out_within_the_read_timeout(quick: FastTransport) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(10)

    async with RawServer(never_answer) as server:
        started = time.monotonic()
        with pytest.raises(TimedOut) as caught:
            await quick.open(server.upstream(), "POST", "/", HEADERS, b"{}")
        assert 0.25 < time.monotonic() - started < 1.0
        assert_discreet(caught.value, "acct-raw")


async def test_server_going_silent_mid_stream_times_out(quick: FastTransport) -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(4):  # steady trickle shorter than the timeout keeps it alive
            writer.write(b"1\r\n.\r\n")
            await writer.drain()
            await asyncio.sleep(0.15)
        await asyncio.sleep(10)

    async with RawServer(stall) as server:
        response = await quick.open(server.upstream(), "POST", "/", HEADERS, b"{}")
        got = b""
        started = time.monotonic()
        with pytest.raises(TimedOut):
            async for chunk in response.iter_chunks():
                got += chunk
        assert got == b"...."
        assert 0.7 < time.monotonic() - started < 1.5


async def test_refused_port_is_connect_failed(fast: FastTransport) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        upstream = Upstream("acct-gone", "anthropic", f"http://127.0.0.1:{port}", (b"x-api-key", SECRET))
        with pytest.raises(ConnectFailed) as caught:
            await fast.open(upstream, "POST", "/v1/messages", HEADERS, b"{}")
    assert_discreet(caught.value, "acct-gone")


async def test_unknown_host_is_connect_failed(fast: FastTransport) -> None:
    upstream = Upstream("acct-dns", "anthropic", "http://no-such-host.invalid", (b"x-api-key", SECRET))
    with pytest.raises(ConnectFailed) as caught:
        await fast.open(upstream, "POST", "/v1/messages", HEADERS, b"{}")
    assert_discreet(caught.value, "acct-dns")


async def test_connect_timeout_is_connect_failed(quick: FastTransport) -> None:
    # A listener with a full accept queue: Linux drops further SYNs, so connecting hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        try:
            upstream = Upstream("acct-slow", "anthropic", f"http://127.0.0.1:{port}", (b"x-api-key", SECRET))
            started = time.monotonic()
            with pytest.raises(ConnectFailed) as caught:
                await quick.open(upstream, "POST", "/", HEADERS, b"{}")
            assert time.monotonic() - started < 1.0
            assert_discreet(caught.value, "acct-slow")
        finally:
            for filler in fillers:
                filler.close()


async def test_interim_responses_are_skipped(fast: FastTransport) -> None:
    async with RawServer(
        answer_then_close(
            b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-real: 1\r\n\r\nok"
        )
    ) as server:
        response = await fast.open(server.upstream(), "GET", "/", [], b"")
        assert response.status_code == 200
        assert response.raw_headers == [(b"content-length", b"2"), (b"x-real", b"1")]
        assert await response.read() == b"ok"


async def test_cancelled_request_closes_its_connection(fast: FastTransport) -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            await asyncio.sleep(0.1)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    async with RawServer(slow) as server:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await fast.open(server.upstream(), "GET", "/", [], b"")
        response = await fast.open(server.upstream(), "GET", "/", [], b"")
        assert await response.read() == b"ok"
        assert server.accepted == 2  # the cancelled one was not pooled with a response in flight


async def test_unrequested_protocol_switch_is_refused(fast: FastTransport) -> None:
    switch = b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n\x81\x00"
    async with RawServer(answer_then_close(switch)) as server:
        with pytest.raises(ConnectFailed):
            await fast.open(server.upstream(), "GET", "/", [], b"")


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 12\r\n\r\ndata: {}\n\n\n\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-a: b\r\n\r\n6\r\nhello \r\n6\r\nworld!\r\n0\r\n\r\n",
    ],
    ids=["content-length", "chunked"],
)
async def test_responses_trickled_byte_by_byte_parse_the_same(fast: FastTransport, data: bytes) -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            for i in range(len(data)):
                writer.write(data[i : i + 1])
                await writer.drain()
                await asyncio.sleep(0.0005)

    async with RawServer(trickle) as server:
        for _ in range(2):
            response = await fast.open(server.upstream(), "GET", "/", [], b"")
            assert response.status_code == 200
            body = b"".join([chunk async for chunk in response.iter_chunks()])
            assert body in (b"data: {}\n\n\n\n", b"hello world!")
        assert server.accepted == 1
