"""A lean HTTP/1.1 client for upstream requests, behind the ``UpstreamTransport`` seam.

httpx costs about 1 ms of CPU per proxied request (httpcore's state machines, anyio, a task
per stream); the passthrough budget is 0.3 ms. This package does only what the edge needs:

- ``_request``: the request head, built in one join with the per-origin parts prepared once.
- ``_connection``: one keep-alive connection as an asyncio Protocol parsing with httptools, its
  read timer and flow control, and the ``Response`` handle the caller reads the body from.
- ``_pool``: one origin's prepared parts and its LIFO stack of idle connections.
- ``_transport``: ``FastTransport``, which ties them together and resends once when a reused
  connection turns out to have been closed by the server.

Errors are the edge's own ``UpstreamError`` family from ``kestrel.edge.upstream``.
"""

from kestrel.edge.http._connection import Response
from kestrel.edge.http._transport import FastTransport

__all__ = ["FastTransport", "Response"]
