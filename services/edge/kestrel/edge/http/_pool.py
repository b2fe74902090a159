"""One upstream origin (scheme, host, port): what its requests share, and its idle connections.

Everything derivable from the base URL (address, TLS name, ``host`` header, path prefix) is
computed here once, so a request only looks the origin up by its base URL string.

Idle connections are a LIFO stack: the most recently used one is the least likely to have been
closed by the server's keep-alive timer, and the rest age out. Active connections are not tracked
or capped (the scheduler's leases bound concurrency); idle ones are capped per origin.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

from kestrel.edge.http._connection import Connection
from kestrel.edge.upstream import ConnectFailed

MAX_IDLE = 256
"""Idle keep-alive connections kept per origin; more are closed when released."""

MAX_IDLE_SECONDS = 60.0
"""An idle connection older than this is closed rather than reused, as httpx's keepalive_expiry."""


class Origin:
    """The connection pool and prepared request parts of one upstream origin."""

    __slots__ = ("closed", "host", "host_line", "idle", "path_prefix", "port", "server_hostname", "ssl")

    def __init__(self, base_url: str, ssl_context: ssl.SSLContext | None) -> None:
        """``ssl_context`` is used for https origins only (and must be given for them)."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream base_url must be an http(s) URL with a host, not {base_url!r}")
        secure = parts.scheme == "https"
        default_port = 443 if secure else 80
        self.host = parts.hostname
        self.port = parts.port or default_port
        self.ssl = ssl_context if secure else None
        self.server_hostname = self.host if secure else None
        name = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != default_port:
            name = f"{name}:{self.port}"
        self.host_line = f" HTTP/1.1\r\nhost: {name}\r\n".encode("ascii")
        self.path_prefix = parts.path.rstrip("/").encode("ascii")
        self.idle: list[Connection] = []
        self.closed = False

    def take(self, loop: asyncio.AbstractEventLoop) -> Connection | None:
        """The most recently used idle connection still open, or None."""
        idle = self.idle
        if not idle:
            return None
        now = loop.time()
        while idle:
            conn = idle.pop()
            if conn.usable(now, MAX_IDLE_SECONDS):
                return conn
            conn.close()
        return None

    def put(self, conn: Connection, now: float) -> None:
        """Park a connection whose response is finished, or close it when the pool is full or shut."""
        idle = self.idle
        if self.closed or len(idle) >= MAX_IDLE:
            conn.close()
            return
        if idle and now - idle[0].idle_since > MAX_IDLE_SECONDS:
            # LIFO reuse never reaches the bottom of a stack that shrank; retire its oldest here.
            idle.pop(0).close()
        conn.park(now)
        idle.append(conn)

    def discard(self, conn: Connection) -> None:
        """Forget an idle connection the server closed."""
        if conn in self.idle:
            self.idle.remove(conn)

    async def connect(
        self, loop: asyncio.AbstractEventLoop, connect_timeout: float, read_timeout: float, label: str
    ) -> Connection:
        """A new connection; DNS, refusal, TLS and connect timeout failures raise ``ConnectFailed``."""
        conn = Connection(loop, self, read_timeout)
        try:
            async with asyncio.timeout(connect_timeout):
                await loop.create_connection(
                    lambda: conn, self.host, self.port, ssl=self.ssl, server_hostname=self.server_hostname
                )
        except TimeoutError:
            conn.close()
            raise ConnectFailed(f"{label}: connecting to the upstream timed out after {connect_timeout:g}s") from None
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            raise ConnectFailed(f"{label}: cannot reach upstream ({type(exc).__name__}: {exc})") from None
        return conn

    def close(self) -> None:
        """Close the idle connections; active ones close when their responses finish."""
        self.closed = True
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()
