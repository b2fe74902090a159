"""The request event, mirror of ``proto/kestrel/v1/events.proto``.

The edge builds one per client request and publishes it without waiting; the logger stores it.
A plain dataclass keeps the in-process path free of serialisation; ``to_dict``/``from_dict`` give
the wire form used by the cluster adapters and the read API.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Attempt:
    """One try of a request against one upstream account."""

    account_id: str
    model: str
    status: int = 0
    """HTTP status the upstream answered; 0 when it was never reached."""
    error: str = ""
    """Short error class such as ``rate_limited`` or ``connect_error``; empty on success."""
    duration_ms: float = 0.0


@dataclass(slots=True)
class RequestEvent:
    """Everything recorded about one client request."""

    request_id: str
    started_at_ms: int
    method: str = ""
    path: str = ""
    dialect: str = "anthropic"
    event_id: str = field(default_factory=lambda: os.urandom(16).hex())
    duration_ms: float = 0.0
    ttfb_ms: float = 0.0
    client_key_id: str = ""
    session_id: str = ""
    requested_model: str = ""
    served_model: str = ""
    account_id: str = ""
    status: int = 0
    stream: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    stop_reason: str = ""
    error_type: str = ""
    error_message: str = ""
    user_agent: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RequestEvent:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["attempts"] = [Attempt(**a) for a in values.get("attempts", [])]
        return cls(**values)
