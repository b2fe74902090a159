"""A recording pass-through in front of Kestrel: what the client really sent and read, byte for byte."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Captured:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    answer_type: str = ""
    """The answer's ``content-type``."""
    answer: bytearray = field(default_factory=bytearray)
    """The answer's body as the client read it (raw, as Kestrel does not compress)."""

    @property
    def streamed(self) -> bool:
        return self.answer_type.startswith("text/event-stream")


@dataclass
class CaptureProxy:
    """An ASGI app that records each request, forwards it to ``target`` and streams the answer back."""

    target: str
    seen: list[Captured] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        captured = Captured(scope["method"], scope["path"], headers, body)
        self.seen.append(captured)
        query = scope["query_string"].decode()
        url = self.target + scope["path"] + (f"?{query}" if query else "")
        forward = [(k, v) for k, v in scope["headers"] if k not in (b"host", b"content-length")]
        async with httpx.AsyncClient(timeout=120) as client:
            request = client.build_request(scope["method"], url, headers=forward, content=body)
            response = await client.send(request, stream=True)
            captured.answer_type = response.headers.get("content-type", "")
            out = [
                (k, v) for k, v in response.headers.raw if k.lower() not in (b"content-length", b"transfer-encoding")
            ]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for chunk in response.aiter_raw():
                captured.answer.extend(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            await response.aclose()
