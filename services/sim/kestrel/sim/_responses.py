"""Raw ASGI responses: a byte body, a stream with latency and faults, a torn body.

``SSEResponse`` sends any ``StreamPlan``: Anthropic's and OpenAI's SSE, Gemini's SSE or its
streamed JSON array; the plan also says what an ``error_event`` fault sends.

Starlette's response classes rebuild headers from dicts and, for streams, spawn a task to watch
for disconnects on every request. These take ready-made header lists and only watch for a
disconnect while they actually sleep, which keeps a benchmark's per-request cost small.

Aborting a connection mid-body uses the one tool ASGI offers: return without finishing the
response. uvicorn then logs "ASGI callable returned without completing response." and closes
the socket, so the client sees a chunked body with no terminator (or a short fixed-length one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from kestrel.sim._faults import Fault
from kestrel.sim._render import StreamPlan

Headers = list[tuple[bytes, bytes]]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

JSON_TYPE = (b"content-type", b"application/json")
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]


def error_body(error_type: str, message: str, request_id: str) -> bytes:
    """Anthropic's error envelope (A6)."""
    return orjson.dumps(
        {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": request_id,
        }
    )


class BytesResponse:
    """A complete JSON body; ``delay_s`` is slept first (latency model, stall fault)."""

    __slots__ = ("body", "delay_s", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: Headers, delay_s: float = 0.0) -> None:
        self.status = status
        self.body = body
        self.headers = headers
        self.delay_s = delay_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.delay_s > 0:
            watcher = _DisconnectWatcher(receive)
            try:
                if await watcher.sleep(self.delay_s):
                    return
            finally:
                watcher.close()
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [*self.headers, JSON_TYPE, (b"content-length", b"%d" % len(self.body))],
            }
        )
        await self._send_body(send)

    async def _send_body(self, send: Send) -> None:
        await send({"type": "http.response.body", "body": self.body})


class TruncatedResponse(BytesResponse):
    """Announces the full length, sends half, then drops the connection (``reset`` fault)."""

    async def _send_body(self, send: Send) -> None:
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True})


class SSEResponse:
    """Sends a ``StreamPlan`` frame by frame with TTFT, pacing and an optional fault."""

    __slots__ = ("fault", "headers", "plan", "tokens_per_s", "ttft_s")

    def __init__(
        self,
        plan: StreamPlan,
        headers: Headers,
        ttft_s: float = 0.0,
        tokens_per_s: float = 0.0,
        fault: Fault | None = None,
    ) -> None:
        self.plan = plan
        self.headers = headers
        self.ttft_s = ttft_s
        self.tokens_per_s = tokens_per_s
        self.fault = fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        watcher = _DisconnectWatcher(receive)
        try:
            if await self._send_frames(send, watcher):
                await send({"type": "http.response.body", "body": b""})
        finally:
            watcher.close()

    async def _send_frames(self, send: Send, watcher: _DisconnectWatcher) -> bool:
        """Send every frame; False when the response must be left unfinished or is moot."""
        plan, fault = self.plan, self.fault
        strike_at = fault.after_events if fault is not None else -1
        paced_from = 0.0
        paced_tokens = 0
        for i, frame in enumerate(plan.frames):
            if i == strike_at and not await self._strike(send, watcher):
                return False
            if i == plan.first_content and self.ttft_s > 0 and await watcher.sleep(self.ttft_s):
                return False
            if self.tokens_per_s > 0 and plan.tokens[i]:
                if not paced_from:
                    paced_from = time.monotonic()
                paced_tokens += plan.tokens[i]
                wait = paced_from + paced_tokens / self.tokens_per_s - time.monotonic()
                if wait > 0 and await watcher.sleep(wait):
                    return False
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        if strike_at >= len(plan.frames):
            return await self._strike(send, watcher)
        return True

    async def _strike(self, send: Send, watcher: _DisconnectWatcher) -> bool:
        """Apply the fault; True when the stream goes on afterwards."""
        assert self.fault is not None
        if self.fault.kind == "stall":
            return not await watcher.sleep(self.fault.stall_s)
        if self.fault.kind == "error_event":
            if self.plan.error_frame is not None:
                await send({"type": "http.response.body", "body": self.plan.error_frame, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        return False  # reset: return with the body unfinished; error_event: already finished


class _DisconnectWatcher:
    """Sleeps that end early when the client goes away; reads ``receive`` only when sleeping."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[None] | None = None

    async def sleep(self, seconds: float) -> bool:
        """Sleep; True if the client disconnected meanwhile."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._wait())
        done, _ = await asyncio.wait({self._task}, timeout=seconds)
        return bool(done)

    async def _wait(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
