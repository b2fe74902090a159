"""Answering the client: whole bodies, relayed streams, and the event each request leaves.

``StreamRelay`` is a plain ASGI callable so it controls exactly when bytes leave: upstream events
go out as they arrive, whole, never buffered beyond one event. A failure after the first byte
becomes an ``event: error`` in the client's dialect; the lease is completed and the request
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
from kestrel.edge.dialects.anthropic import error_event
from kestrel.edge.exchange import Exchange
from kestrel.edge.headers import RawHeaders, as_text, client_response_headers
from kestrel.edge.tap import UsageTap
from kestrel.edge.upstream import UpstreamError
from kestrel.scheduler.contract import Completion, LeaseClient, Outcome
from kestrel.scheduler.ratelimits import rate_limit_headers

Publish = Callable[[RequestEvent], None]
"""Hands a finished request's event to the logger; never blocks."""
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


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
    """Relays an upstream SSE stream to the client and settles the attempt when it ends."""

    def __init__(
        self,
        exchange: Exchange,
        opened: Opened,
        session_id: str,
        scheduler: LeaseClient,
        publish: Publish,
        max_retry_after: int,
    ) -> None:
        self._exchange = exchange
        self._opened = opened
        self._session_id = session_id
        self._scheduler = scheduler
        self._publish = publish
        self._headers = client_response_headers(opened.response.raw_headers, max_retry_after)
        self._headers.append((b"x-kestrel-request-id", exchange.request_id.encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        opened = self._opened
        tap = UsageTap()
        outcome = Outcome.SUCCESS
        lease = opened.lease
        renew_every = lease.ttl_s / 2
        last_renew = time.monotonic()
        # uvicorn drops writes to a client that left without telling the app; the only sign is
        # http.disconnect on receive(). Stop pulling the upstream (and free the slot) at once.
        relay_task = asyncio.current_task()
        watcher = asyncio.ensure_future(receive())
        gone = False

        def on_receive(done: asyncio.Future[Any]) -> None:
            nonlocal gone
            if not done.cancelled() and done.exception() is None and done.result()["type"] == "http.disconnect":
                gone = True
                if relay_task is not None:
                    relay_task.cancel()

        watcher.add_done_callback(on_receive)
        try:
            await send({"type": "http.response.start", "status": opened.response.status_code, "headers": self._headers})
            tap.feed_frames(opened.body)
            self._exchange.mark_first_byte()
            await send({"type": "http.response.body", "body": opened.body, "more_body": True})
            assert opened.cutter is not None and opened.chunks is not None
            try:
                async for chunk in opened.chunks:
                    frames = opened.cutter.feed(chunk)
                    if not frames:
                        continue
                    tap.feed_frames(frames)
                    await send({"type": "http.response.body", "body": frames, "more_body": True})
                    if time.monotonic() - last_renew > renew_every:
                        last_renew = time.monotonic()
                        await self._scheduler.renew(lease)
                tail = opened.cutter.pending
                if tail:
                    tap.feed_frames(tail + b"\n\n")
                    await send({"type": "http.response.body", "body": tail, "more_body": True})
                if tap.error_type:
                    outcome = outcome_for_error_event(tap.error_type)
                    opened.attempt.error = tap.error_type
            except UpstreamError as exc:
                outcome = Outcome.SERVER_ERROR
                opened.attempt.error = exc.kind
                message = f"upstream stream interrupted: {exc}"
                tap.error_type, tap.error_message = "api_error", message
                await send({"type": "http.response.body", "body": error_event("api_error", message), "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except BaseException as exc:
            outcome = Outcome.CANCELLED
            tap.error_type = tap.error_type or "client_disconnected"
            tap.error_message = tap.error_message or "the client went away before the stream ended"
            if not (gone and isinstance(exc, asyncio.CancelledError)):
                raise
            if relay_task is not None:
                relay_task.uncancel()  # our own cancellation: the client left; end quietly
        finally:
            watcher.remove_done_callback(on_receive)
            watcher.cancel()
            with anyio.CancelScope(shield=True):
                await self._settle(tap, outcome)

    async def _settle(self, tap: UsageTap, outcome: Outcome) -> None:
        opened = self._opened
        await opened.response.aclose()
        await self._scheduler.complete(
            opened.lease,
            Completion(
                outcome,
                http_status=opened.response.status_code,
                rate_limit_headers=rate_limit_headers(as_text(opened.response.raw_headers)),
                usage=tap.usage(),
                session_id=self._session_id,
            ),
        )
        event = self._exchange.event
        tap.record(event)
        if tap.model:
            event.served_model = tap.model
        self._publish(self._exchange.finish(opened.response.status_code if outcome is not Outcome.CANCELLED else 499))
