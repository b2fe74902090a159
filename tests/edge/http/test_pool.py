"""Keep-alive reuse, counted on a raw server: what is pooled, what is not, and stale connections."""

from __future__ import annotations

import asyncio

import pytest

from kestrel.edge.http import FastTransport, _pool
from kestrel.edge.upstream import ConnectFailed, UpstreamError

from .servers import OK_BODY, RawServer, read_request, respond


async def test_sequential_requests_reuse_one_connection(fast: FastTransport) -> None:
    async with RawServer() as server:
        for i in range(200):
            response = await fast.open(server.upstream(), "POST", f"/v1/messages?n={i}", [], b"{}")
            assert await response.read() == OK_BODY
        assert server.accepted == 1
        assert len(server.requests) == 200


async def test_streams_read_to_the_end_are_reused_too(fast: FastTransport) -> None:
    async with RawServer() as server:
        for _ in range(20):
            response = await fast.open(server.upstream(), "POST", "/", [], b"{}")
            assert b"".join([chunk async for chunk in response.iter_chunks()]) == OK_BODY
            await response.aclose()
        assert server.accepted == 1


async def test_concurrent_requests_open_several_connections_then_reuse_them(fast: FastTransport) -> None:
    async with RawServer(delay=0.02) as server:

        async def one() -> None:
            response = await fast.open(server.upstream(), "POST", "/", [], b"{}")
            assert await response.read() == OK_BODY

        await asyncio.gather(*(one() for _ in range(8)))
        assert server.accepted == 8
        await asyncio.gather(*(one() for _ in range(8)))
        for _ in range(5):
            await one()
        assert server.accepted == 8


async def test_closing_a_response_before_its_end_closes_its_connection(fast: FastTransport) -> None:
    async def slow_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nab")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"cd")
            await writer.drain()

    async with RawServer(slow_body) as server:
        response = await fast.open(server.upstream(), "POST", "/", [], b"{}")
        await response.aclose()  # the rest of the body is still on its way: the connection is unusable
        response = await fast.open(server.upstream(), "POST", "/", [], b"{}")
        assert await response.read() == b"abcd"
        assert server.accepted == 2
        response = await fast.open(server.upstream(), "POST", "/", [], b"{}")
        assert await response.read() == b"abcd"
        assert server.accepted == 2


async def test_closing_a_response_that_arrived_whole_keeps_its_connection(fast: FastTransport) -> None:
    async with RawServer() as server:
        response = await fast.open(server.upstream(), "POST", "/", [], b"{}")
        await asyncio.sleep(0.01)
        await response.aclose()  # unread, but entirely off the wire: nothing can desynchronise
        response = await fast.open(server.upstream(), "POST", "/", [], b"{}")
        assert await response.read() == OK_BODY
        assert server.accepted == 1


async def test_idle_connection_closed_by_the_server_is_replaced(fast: FastTransport) -> None:
    async def one_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(respond(b"ok"))  # advertises keep-alive, then the server's idle timer fires
        await writer.drain()
        await asyncio.sleep(0.01)

    async with RawServer(one_then_close) as server:
        for _ in range(3):
            response = await fast.open(server.upstream(), "GET", "/", [], b"")
            assert await response.read() == b"ok"
            await asyncio.sleep(0.05)
        assert server.accepted == 3


async def test_keep_alive_closed_as_the_request_arrives_is_resent_once(fast: FastTransport) -> None:
    """The race pooling cannot see: the server drops the connection just as the next request lands."""

    async def one_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(respond(b"ok"))
        await writer.drain()
        await read_request(reader)  # the second request on this connection is dropped unanswered

    async with RawServer(one_per_connection) as server:
        for _ in range(4):
            response = await fast.open(server.upstream(), "POST", "/", [], b"{}")
            assert await response.read() == b"ok"
        assert server.accepted == 4  # each reuse failed with no byte back and went on a fresh connection


async def test_stale_then_failing_fresh_connection_gives_up(fast: FastTransport) -> None:
    async def first_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if server.accepted == 1:
            writer.write(respond(b"ok"))
            await writer.drain()
            await read_request(reader)

    async with RawServer(first_only) as server:
        response = await fast.open(server.upstream(), "POST", "/", [], b"{}")
        assert await response.read() == b"ok"
        with pytest.raises(ConnectFailed) as caught:
            await fast.open(server.upstream(), "POST", "/", [], b"{}")
        assert type(caught.value) is ConnectFailed
        assert server.accepted == 2  # one stale reuse, one fresh attempt, no more


@pytest.mark.parametrize("closes", [True, False], ids=["server-closes", "server-lingers"])
async def test_connection_close_responses_are_not_reused(fast: FastTransport, closes: bool) -> None:
    async def close_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(respond(b"bye", b"connection: close"))
            await writer.drain()
            if closes:
                return

    async with RawServer(close_each) as server:
        for _ in range(3):
            response = await fast.open(server.upstream(), "GET", "/", [], b"")
            assert await response.read() == b"bye"
        assert server.accepted == 3


async def test_http_1_0_responses_are_not_reused(fast: FastTransport) -> None:
    async def old(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()

    async with RawServer(old) as server:
        for _ in range(2):
            response = await fast.open(server.upstream(), "GET", "/", [], b"")
            assert await response.read() == b"ok"
        assert server.accepted == 2


async def test_base_url_path_prefix_and_host_header(fast: FastTransport) -> None:
    async with RawServer() as server:
        response = await fast.open(server.upstream(path="/proxy/"), "GET", "/v1/models?limit=5", [], b"")
        await response.read()
        assert server.requests[0].startswith(
            b"GET /proxy/v1/models?limit=5 HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n" % server.port
        )


async def test_aclose_closes_idle_connections(fast: FastTransport) -> None:
    async with RawServer() as server:
        response = await fast.open(server.upstream(), "GET", "/", [], b"")
        await response.read()
        origin = fast._origins[server.upstream().base_url]
        conn = origin.idle[0]
        await fast.aclose()
        await asyncio.sleep(0.01)
        assert origin.idle == [] and conn._closed


async def test_connections_idle_too_long_are_not_reused(fast: FastTransport, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool, "MAX_IDLE_SECONDS", 0.05)
    async with RawServer() as server:
        for pause in (0.0, 0.1, 0.0):
            await asyncio.sleep(pause)
            response = await fast.open(server.upstream(), "GET", "/", [], b"")
            await response.read()
        assert server.accepted == 2


async def test_requests_after_aclose_are_refused(fast: FastTransport) -> None:
    async with RawServer() as server:
        await fast.aclose()
        with pytest.raises(UpstreamError, match="closed"):
            await fast.open(server.upstream(), "GET", "/", [], b"")
