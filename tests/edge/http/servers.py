"""Upstreams for the client tests: a uvicorn app and a scripted raw asyncio server."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from kestrel.edge.upstream import Upstream

SECRET = b"sk-ant-very-secret"
"""The credential every test upstream carries; no error message may contain it."""

SSE_EVENTS = [f'event: delta\ndata: {{"i":{i}}}\n\n'.encode() for i in range(5)]


def pattern(size: int) -> bytes:
    """A body whose every byte depends on its offset, so reordering or loss shows."""
    block = bytes(range(251))
    return (block * (size // len(block) + 1))[:size]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A small upstream: JSON echo, SSE with pauses, chunked and large bodies, any status."""
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path: str = scope["path"]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}

    async def start(status: int, headers: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})

    async def part(data: bytes, more: bool = True) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": more})

    if path.endswith("/json"):
        echo = {
            "method": scope["method"],
            "path": scope["raw_path"].decode(),
            "query": scope["query_string"].decode(),
            "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_length": len(body),
        }
        data = json.dumps(echo).encode()
        await start(200, [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())])
        await part(data, more=False)
    elif path == "/echo":
        await start(200, [(b"content-type", b"application/octet-stream"), (b"x-multi", b"a"), (b"x-multi", b"b")])
        await part(body, more=False)
    elif path == "/sse":
        delay = float(query.get("delay", "0.05"))
        await start(200, [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")])
        for i, event in enumerate(SSE_EVENTS):
            if i:
                await asyncio.sleep(delay)
            await part(event)
        await part(b"", more=False)
    elif path == "/chunked":
        await start(200, [(b"content-type", b"text/plain")])
        for piece in (b"alpha ", b"", b"beta ", b"gamma"):
            await part(piece)
        await part(b"", more=False)
    elif path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        data = json.dumps({"type": "error", "status": status}).encode()
        headers = [(b"content-type", b"application/json"), (b"retry-after", b"7")]
        if status in (204, 304):
            await start(status, headers)
            await part(b"", more=False)
            return
        await start(status, [*headers, (b"content-length", str(len(data)).encode())])
        await part(data, more=False)
    elif path in ("/big", "/big-chunked"):
        data = pattern(int(query["size"]))
        headers = [(b"content-type", b"application/octet-stream")]
        if path == "/big":
            headers.append((b"content-length", str(len(data)).encode()))
        await start(200, headers)
        step = 64 * 1024
        for offset in range(0, len(data), step):
            await part(data[offset : offset + step])
        await part(b"", more=False)
    else:
        await start(404, [(b"content-length", b"9")])
        await part(b"not found", more=False)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """One request's head and body, or None when the client closed the connection."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


def respond(body: bytes, *headers: bytes, status: bytes = b"200 OK") -> bytes:
    """A content-length response with extra raw header lines."""
    lines = [b"HTTP/1.1 " + status, b"content-length: %d" % len(body), *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


OK_BODY = b'{"ok":true}'


class RawServer:
    """A loopback asyncio server running ``handler`` on each connection and counting connections.

    Without a handler it is a well-behaved keep-alive server answering ``OK_BODY`` to every
    request, after ``delay`` seconds, and recording each request's bytes in ``requests``.
    """

    def __init__(self, handler: Handler | None = None, *, delay: float = 0.0) -> None:
        self.handler = handler or self.keep_alive
        self.delay = delay
        self.accepted = 0
        self.requests: list[bytes] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    def upstream(self, account: str = "acct-raw", path: str = "") -> Upstream:
        return Upstream(account, "anthropic", f"http://127.0.0.1:{self.port}{path}", (b"x-api-key", SECRET))

    async def keep_alive(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests on one connection until the client closes it."""
        while (request := await read_request(reader)) is not None:
            self.requests.append(request[0] + request[1])
            if self.delay:
                await asyncio.sleep(self.delay)
            writer.write(respond(OK_BODY, b"content-type: application/json"))
            await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.sleep(0)
