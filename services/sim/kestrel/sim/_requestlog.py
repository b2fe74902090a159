"""A bounded ring of the API requests the sim received, exactly as they arrived.

Gateway tests use it to prove passthrough: the body is kept as the received bytes decoded as
UTF-8 (invalid bytes would become U+FFFD, and ``body_utf8`` turns false), headers keep their
received values (names are lowercase, as HTTP/1.1 servers hand them over; a repeated header's
values are joined with ``", "``). Every API request is recorded (Anthropic and OpenAI under
``/v1``, Gemini under ``/v1beta``), never the control API.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import MutableMapping
from typing import Any


class RequestLog:
    """The last ``size`` requests, oldest first."""

    def __init__(self, size: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._seq = 0

    def record(self, scope: MutableMapping[str, Any], body: bytes, request_id: str) -> dict[str, Any]:
        """Store one request; the returned entry's ``status`` is filled in when answered."""
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        try:
            text, utf8 = body.decode("utf-8"), True
        except UnicodeDecodeError:
            text, utf8 = body.decode("utf-8", errors="replace"), False
        self._seq += 1
        entry = {
            "seq": self._seq,
            "time": time.time(),
            "request_id": request_id,
            "method": scope["method"],
            "path": scope["path"],
            "query": scope["query_string"].decode("latin-1"),
            "headers": headers,
            "body": text,
            "body_utf8": utf8,
            "status": None,
        }
        self._entries.append(entry)
        return entry

    def recent(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The last ``limit`` entries (all when None), oldest first."""
        entries = list(self._entries)
        return entries if limit is None else entries[max(0, len(entries) - limit) :]

    def clear(self) -> int:
        count = len(self._entries)
        self._entries.clear()
        return count
