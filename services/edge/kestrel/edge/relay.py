"""Answering the client: whole bodies, relayed streams, and the event each request leaves.

``StreamRelay`` is a plain ASGI callable so it controls exactly when bytes leave: what the pipe
makes of each upstream chunk goes out at once, never buffered beyond one event. A failure after
the first byte becomes an error in the client's dialect; the lease is completed and the request
recorded however the stream ends (done, broken, or the client gone).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from kestrel.common.events import RequestEvent
from kestrel.edge.attempts import Opened, outcome_for_error_event
from kestrel.edge.exchange import Exchange
from kestrel.edge.headers import RawHeaders, as_text, client_response_headers
from kestrel.edge.pipes import Pipe
from kestrel.edge.upstream import UpstreamError
from kestrel.scheduler.contract import Completion, LeaseClient, Outcome
from kestrel.scheduler.ratelimits import rate_limit_headers

Publish = Callable[[RequestEvent], None]
"""Hands a finished request's event to the logger; never blocks."""
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_SSE = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


class RawResponse:
    """A complete response with headers already in ASGI form."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: RawHeaders, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [*self.headers, (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        body = b"" if scope.get("method") == "HEAD" else self.body
        await send({"type": "http.response.body", "body": body})


class StreamRelay:
    """Relays an upstream stream to the client through its pipe; settles the attempt at the end."""

    def __init__(
        self,
        exchange: Exchange,
        opened: Opened,
        session_id: str,
        scheduler: LeaseClient,
        publish: Publish,
        max_retry_after: int,
    ) -> None:
        assert opened.pipe is not None and opened.chunks is not None
        self._exchange = exchange
        self._opened = opened
        self._pipe: Pipe = opened.pipe
        self._session_id = session_id
        self._scheduler = scheduler
        self._publish = publish
        if opened.translated:
            self._headers = list(_SSE)
        else:
            self._headers = client_response_headers(opened.response.raw_headers, max_retry_after)
        self._headers.append((b"x-kestrel-request-id", exchange.request_id.encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        opened, pipe = self._opened, self._pipe
        assert opened.chunks is not None
        outcome = Outcome.SUCCESS
        lease = opened.lease
        renew_every = lease.ttl_s / 2
        last_renew = time.monotonic()
        # uvicorn drops writes to a client that left without telling the app; the only sign is
        # http.disconnect on receive(). Stop pulling the upstream (and free the slot) at once.
        relay_task = asyncio.current_task()
        watcher = asyncio.ensure_future(receive())
        gone = False
        error = ""

        def on_receive(done: asyncio.Future[Any]) -> None:
            nonlocal gone
            if not done.cancelled() and done.exception() is None and done.result()["type"] == "http.disconnect":
                gone = True
                if relay_task is not None:
                    relay_task.cancel()

        watcher.add_done_callback(on_receive)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self._headers})
            self._exchange.mark_first_byte()
            if opened.body:
                await send({"type": "http.response.body", "body": opened.body, "more_body": True})
            try:
                async for chunk in opened.chunks:
                    out = pipe.feed(chunk)
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                    if time.monotonic() - last_renew > renew_every:
                        last_renew = time.monotonic()
                        await self._scheduler.renew(lease)
                tail = pipe.finish()
                if tail:
                    await send({"type": "http.response.body", "body": tail, "more_body": True})
            except UpstreamError as exc:
                outcome = Outcome.SERVER_ERROR
                opened.attempt.error = exc.kind
                error = f"upstream stream interrupted: {exc}"
                await send({"type": "http.response.body", "body": pipe.interrupted(error), "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except BaseException as exc:
            outcome = Outcome.CANCELLED
            event = self._exchange.event
            event.error_type = event.error_type or "client_disconnected"
            event.error_message = event.error_message or "the client went away before the stream ended"
            if not (gone and isinstance(exc, asyncio.CancelledError)):
                raise
            if relay_task is not None:
                relay_task.uncancel()  # our own cancellation: the client left; end quietly
        finally:
            watcher.remove_done_callback(on_receive)
            watcher.cancel()
            with anyio.CancelScope(shield=True):
                await self._settle(outcome, error)

    async def _settle(self, outcome: Outcome, error: str) -> None:
        opened, pipe = self._opened, self._pipe
        await opened.response.aclose()
        event = self._exchange.event
        pipe.record(event)
        if error:
            event.error_type, event.error_message = "api_error", error
        if outcome is Outcome.SUCCESS and event.error_type:
            outcome = outcome_for_error_event(event.error_type)
            opened.attempt.error = event.error_type
        await self._scheduler.complete(
            opened.lease,
            Completion(
                outcome,
                http_status=opened.response.status_code,
                rate_limit_headers=rate_limit_headers(as_text(opened.response.raw_headers)),
                usage=pipe.usage(),
                session_id=self._session_id,
            ),
        )
        self._publish(self._exchange.finish(opened.response.status_code if outcome is not Outcome.CANCELLED else 499))
