"""One upstream HTTP/1.1 connection as an asyncio Protocol, and the response read from it.

The connection does the socket work in callbacks (``data_received`` feeds ``httptools``, whose
callbacks fill a small chunk buffer) and the consumer only ever awaits a bare Future when the
buffer is empty: no task, stream reader or lock per request or per chunk.

Three timing rules live here:

- Read timeout: one ``TimerHandle`` per connection, armed when a request is sent and left running
  across keep-alive reuse. ``data_received`` only stamps ``loop.time()``; when the timer fires it
  re-arms itself for the remaining silence, so a busy connection costs no timer churn at all.
- Flow control: past ``HIGH_WATER`` buffered bytes the transport stops reading until the consumer
  takes them, so a slow client backs pressure up to the upstream instead of into our memory.
- Reuse: a connection goes back to its pool only after the whole response came off the wire and
  neither side asked to close.

Errors are ``UpstreamError`` subclasses from ``kestrel.edge.upstream``: before the response head a
lost or garbled connection is ``ConnectFailed`` (as with the httpx transport), after it
``StreamBroken``; silence is ``TimedOut``. Messages name the account, never headers or credentials.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from kestrel.edge.upstream import ConnectFailed, StreamBroken, TimedOut, UpstreamError

if TYPE_CHECKING:
    from kestrel.edge.http._pool import Origin

HIGH_WATER = 1024 * 1024
"""Buffered body bytes past which the upstream socket is paused."""


_SEALED: list[tuple[bytes, bytes]] = ()  # type: ignore[assignment]


class StaleConnection(ConnectFailed):
    """A reused keep-alive connection died before any response byte: the request may be resent."""


class _Junk(Exception):
    """Raised from a parser callback for bytes after the response we asked for."""


class Connection(asyncio.Protocol):
    """An HTTP/1.1 client connection serving one request at a time."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_closed",
        "_done",
        "_error",
        "_head",
        "_headers",
        "_headers_done",
        "_idle",
        "_interim",
        "_keep_alive",
        "_label",
        "_last_io",
        "_length_known",
        "_loop",
        "_origin",
        "_parser",
        "_paused",
        "_received",
        "_status",
        "_timeout",
        "_timer",
        "_transport",
        "_unbounded",
        "_uses",
        "_waiter",
        "idle_since",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: Origin, read_timeout: float) -> None:
        self._loop = loop
        self._origin = origin
        self._timeout = read_timeout
        self._parser = HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._chunks: list[bytes] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._buffered = 0
        self._status = 0
        self._last_io = 0.0
        self._label = ""
        self._error: UpstreamError | None = None
        self._uses = 0
        self.idle_since = 0.0
        self._closed = False
        self._idle = False
        self._done = False
        self._headers_done = False
        self._head = False
        self._interim = False
        self._keep_alive = False
        self._length_known = False
        self._paused = False
        self._received = False
        self._unbounded = False

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._idle or self._done:
            # Nothing is owed to us: the upstream is out of step, so this connection is done for.
            self._keep_alive = False
            self.close()
            return
        self._last_io = self._loop.time()
        self._received = True
        try:
            self._parser.feed_data(data)
        except (HttpParserError, HttpParserUpgrade):  # the latter for a 101 we never asked for
            self._keep_alive = False
            self.close()
            if not self._done:
                self._fail_lost("sent a malformed response")

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost settles the response

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._idle:
            self._idle = False
            self._origin.discard(self)
            return
        if self._done or self._error is not None or not self._uses:
            return
        if self._headers_done and exc is None and not self._length_known:
            self._done = True  # a body delimited by the connection closing, read to its end
            self._wake()
        else:
            self._fail_lost("closed the connection")

    def pause_writing(self) -> None:
        """Request bodies are written whole and small next to the response; nothing to hold back."""

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or name == b"transfer-encoding":
            self._length_known = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._done:
            raise _Junk
        status = self._parser.get_status_code()
        if status < 200:
            # An interim response (103 Early Hints): skip it, the real one follows.
            self._interim = True
            self._headers.clear()
            self._length_known = False
            return
        self._status = status
        self._headers_done = True
        self._keep_alive = self._parser.should_keep_alive()
        if self._head:
            # httptools cannot be told the request was HEAD, so it would wait for the announced body;
            # the response ends here and the next request gets a fresh parser.
            self._done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._done:
            return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused and not self._unbounded:
            self._paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._done = True
        # Seal the response's header list: headers of a stray second message now fail the parser
        # (and close the connection) instead of landing in it.
        self._headers = _SEALED
        self._wake()

    # -- the request side -------------------------------------------------------------------

    def usable(self, now: float, max_idle: float) -> bool:
        """Whether an idle connection may take a request (the server has not closed it)."""
        transport = self._transport
        return (
            not self._closed
            and transport is not None
            and not transport.is_closing()
            and now - self.idle_since < max_idle
        )

    async def request(self, data: bytes, body: bytes | None, head: bool, label: str) -> Response:
        """Send one request and return once the response head is in.

        ``data`` is the head (with the body when small, else ``body`` follows it). Raises
        ``StaleConnection`` when a reused connection was closed under us before any response byte.
        """
        if self._head:
            self._parser = HttpResponseParser(self)  # the last parser still expects a HEAD's body
        self._idle = False
        self._head = head
        self._label = label
        headers: list[tuple[bytes, bytes]] = []
        self._headers = headers  # replaced by _SEALED when the message ends, so keep our own reference
        self._error = None
        self._done = self._headers_done = self._received = self._length_known = False
        self._unbounded = self._interim = False
        transport = self._transport
        assert transport is not None
        transport.write(data)
        if body is not None:
            transport.write(body)
        self._uses += 1
        loop = self._loop
        self._last_io = loop.time()
        if self._timer is None:
            self._timer = loop.call_later(self._timeout, self._on_timer)
        try:
            while not self._headers_done:
                if self._error is not None:
                    raise self._error
                waiter = self._waiter = loop.create_future()
                await waiter
        except BaseException:
            self._keep_alive = False
            self.close()
            raise
        return Response(self, self._status, headers)

    def release(self) -> None:
        """The response is finished with: pool the connection if it can serve another request."""
        self._chunks.clear()
        self._buffered = 0
        if self._paused:
            self._paused = False
            assert self._transport is not None
            self._transport.resume_reading()
        if self._keep_alive and self._done and self._error is None and not self._closed:
            self._origin.put(self, self._loop.time())
        else:
            self.close()

    def close(self) -> None:
        """Drop the connection; an unfinished response sees ``StreamBroken`` on its next read."""
        self._keep_alive = False
        if self._transport is not None and not self._closed:
            self._transport.close()

    def park(self, now: float) -> None:
        """Mark the connection idle in its pool."""
        self._idle = True
        self.idle_since = now

    # -- internals --------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _fail_lost(self, what: str) -> None:
        if self._headers_done:
            self._fail(StreamBroken(f"{self._label}: upstream {what} mid-body"))
        elif self._uses > 1 and not self._received:
            self._fail(StaleConnection(f"{self._label}: upstream {what} before responding (reused connection)"))
        else:
            self._fail(ConnectFailed(f"{self._label}: upstream {what} before responding"))

    def _on_timer(self) -> None:
        self._timer = None
        if self._idle or self._closed or self._done or self._error is not None:
            return  # nothing awaited from the upstream; the next request re-arms
        loop = self._loop
        if self._paused:
            # We stopped reading, so the silence is ours; count it from the resume.
            self._timer = loop.call_later(self._timeout, self._on_timer)
            return
        remaining = self._last_io + self._timeout - loop.time()
        if remaining > 0.001:
            self._timer = loop.call_later(remaining, self._on_timer)
            return
        where = "mid-stream" if self._headers_done else "waiting for the response"
        self._fail(TimedOut(f"{self._label}: upstream silent for {self._timeout:g}s {where}"))
        self.close()


class Response:
    """An upstream response whose head is in; the body streams from its connection.

    A handle separate from the connection so that a caller holding it after it is finished (an
    ``aclose`` after ``read``) cannot touch the next request the pooled connection serves.
    """

    __slots__ = ("_conn", "raw_headers", "status_code")

    def __init__(self, conn: Connection, status_code: int, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self._conn: Connection | None = conn
        self.status_code = status_code
        self.raw_headers = raw_headers

    async def read(self) -> bytes:
        """The whole body; raises ``UpstreamError`` subclasses; releases the connection."""
        conn = self._conn
        if conn is None:
            return b""
        conn._unbounded = True  # the caller wants it all in memory anyway
        if conn._paused:
            conn._paused = False
            conn._last_io = conn._loop.time()
            assert conn._transport is not None
            conn._transport.resume_reading()
        try:
            while not conn._done:
                if conn._error is not None:
                    raise conn._error
                waiter = conn._waiter = conn._loop.create_future()
                await waiter
        except BaseException:
            self._conn = None
            conn.close()
            raise
        chunks = conn._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._conn = None
        conn.release()
        return body

    def iter_chunks(self) -> Response:
        """Body chunks as they arrive, chunked encoding removed; the response is its own iterator.

        Chunks that arrived together since the last step come out joined as one.
        """
        return self

    def __aiter__(self) -> Response:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None:
            raise StopAsyncIteration
        while True:
            chunks = conn._chunks
            if chunks:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                conn._buffered = 0
                if conn._paused:
                    conn._paused = False
                    conn._last_io = conn._loop.time()
                    assert conn._transport is not None
                    conn._transport.resume_reading()
                return data
            if conn._done:
                self._conn = None
                conn.release()
                raise StopAsyncIteration
            error = conn._error
            if error is not None:
                self._conn = None
                conn.close()
                raise error
            waiter = conn._waiter = conn._loop.create_future()
            await waiter

    async def aclose(self) -> None:
        """Release the connection: pooled when the response came in whole, else closed."""
        conn = self._conn
        if conn is not None:
            self._conn = None
            if conn._done:
                conn.release()
            else:
                conn.close()
