"""``FastTransport``: the ``UpstreamTransport`` seam on the lean HTTP/1.1 client.

A request is: look the origin up by base URL, encode the head in one join, take the newest idle
connection (or open one), write once, await the response head. When a reused keep-alive
connection dies before a single response byte (the server closed it as we wrote), the request
goes once more on a fresh connection: the upstream sent nothing, so nothing is lost or doubled
from the client's point of view.
"""

from __future__ import annotations

import asyncio
import ssl

from kestrel.common.config import EdgeConfig
from kestrel.edge.http._connection import Response, StaleConnection
from kestrel.edge.http._pool import Origin
from kestrel.edge.http._request import INLINE_BODY_LIMIT, encode_request, encode_target
from kestrel.edge.upstream import Upstream, UpstreamError

_METHODS = {name: name.encode("ascii") for name in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")}


class FastTransport:
    """Pooled HTTP/1.1 to upstream accounts on asyncio Protocols and httptools; no per-request task.

    ``ssl_context`` defaults to ``ssl.create_default_context()`` (the system's CAs), made on the
    first https origin and shared by all; pass one to trust a private CA.
    """

    __slots__ = ("_closed", "_connect_timeout", "_origins", "_read_timeout", "_ssl")

    def __init__(self, config: EdgeConfig, ssl_context: ssl.SSLContext | None = None) -> None:
        self._connect_timeout = config.connect_timeout_seconds
        self._read_timeout = config.read_timeout_seconds
        self._ssl = ssl_context
        self._origins: dict[str, Origin] = {}
        self._closed = False

    async def open(
        self, upstream: Upstream, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Response:
        """Send the request and return once the response head is in."""
        if self._closed:
            raise UpstreamError(f"{upstream.account_id}: the upstream transport is closed")
        origin = self._origins.get(upstream.base_url)
        if origin is None:
            origin = self._add_origin(upstream.base_url)
        method_bytes = _METHODS.get(method) or method.encode("ascii")
        data = encode_request(method_bytes, origin.path_prefix, encode_target(target), origin.host_line, headers, body)
        rest = body if len(body) > INLINE_BODY_LIMIT else None
        head = method_bytes == b"HEAD"
        label = upstream.account_id
        loop = asyncio.get_running_loop()
        conn = origin.take(loop)
        if conn is not None:
            try:
                return await conn.request(data, rest, head, label)
            except StaleConnection:
                pass  # closed under us before any response byte: safe to send again, once
        conn = await origin.connect(loop, self._connect_timeout, self._read_timeout, label)
        return await conn.request(data, rest, head, label)

    async def aclose(self) -> None:
        """Close idle connections and refuse new requests; responses being read finish, then close."""
        self._closed = True
        for origin in self._origins.values():
            origin.close()

    def _add_origin(self, base_url: str) -> Origin:
        if base_url.startswith("https:") and self._ssl is None:
            self._ssl = ssl.create_default_context()
            self._ssl.set_alpn_protocols(["http/1.1"])
        origin = self._origins[base_url] = Origin(base_url, self._ssl)
        return origin
