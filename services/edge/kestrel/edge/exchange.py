"""One client request as it moves through the edge, and the record it leaves behind."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from kestrel.common.events import Attempt, RequestEvent
from kestrel.edge.headers import RawHeaders


def new_request_id() -> str:
    return "req_kst_" + os.urandom(12).hex()


@dataclass(slots=True)
class Exchange:
    """Carries the request's identity, timing and event from stage to stage."""

    request_id: str
    started: float
    event: RequestEvent
    headers: dict[str, str]
    raw_headers: RawHeaders
    target: str
    """Path and query string, forwarded upstream as they came."""
    first_byte_at: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)

    @classmethod
    def begin(cls, method: str, path: str, query: bytes, raw_headers: RawHeaders) -> Exchange:
        request_id = new_request_id()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw_headers}
        event = RequestEvent(
            request_id=request_id,
            started_at_ms=time.time_ns() // 1_000_000,
            method=method,
            path=path,
            user_agent=headers.get("user-agent", ""),
        )
        target = path + ("?" + query.decode("latin-1") if query else "")
        return cls(request_id, time.perf_counter(), event, headers, raw_headers, target)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def mark_first_byte(self) -> None:
        if not self.first_byte_at:
            self.first_byte_at = time.perf_counter()
            self.event.ttfb_ms = (self.first_byte_at - self.started) * 1000

    def finish(self, status: int) -> RequestEvent:
        event = self.event
        event.status = status
        event.duration_ms = self.elapsed_ms()
        event.attempts = self.attempts
        return event
