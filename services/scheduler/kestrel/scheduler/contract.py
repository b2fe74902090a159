"""The scheduler contract in Python terms, mirror of ``proto/kestrel/v1/scheduler.proto``.

The edge only ever talks to a ``LeaseClient``. In ``kestrel up`` that is the scheduler service
itself, called in-process; in cluster mode it is the gRPC client. Both speak these types.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol


class Outcome(enum.Enum):
    """What happened to an attempt, as far as the account's health is concerned."""

    SUCCESS = 1
    RATE_LIMITED = 2
    """429: the account cools down for this model."""
    OVERLOADED = 3
    """529: the account backs off."""
    SERVER_ERROR = 4
    """Other 5xx, timeouts, a stream cut short: the account backs off."""
    CONNECT_ERROR = 5
    AUTH_ERROR = 6
    """401/403: the account's credential is rejected; it is left out for a while."""
    CLIENT_ERROR = 7
    """Any other 4xx: the request was at fault, not the account."""
    CANCELLED = 8


class ExhaustedReason(enum.Enum):
    NO_ACCOUNT = 1
    """No configured account serves the model."""
    ALL_BUSY = 2
    """Every account that serves the model is cooling down, backing off or full."""
    ALL_TRIED = 3
    """Every account that serves the model was already tried by this request."""


@dataclass(frozen=True, slots=True)
class LeaseRequest:
    request_id: str
    model: str
    session_id: str = ""
    client_key_id: str = ""
    exclude_accounts: frozenset[str] = frozenset()
    max_wait_s: float = 0.0
    """How long acquire may hold the caller waiting for an account to free up."""


@dataclass(frozen=True, slots=True)
class Lease:
    lease_id: str
    account_id: str
    model: str
    sticky: bool = False
    """True when the session was already bound to this account."""
    ttl_s: float = 600.0


@dataclass(frozen=True, slots=True)
class AccountState:
    account_id: str
    state: str
    """``cooling`` (rate limited), ``backoff`` (errors), ``full``, ``tried`` or ``auth``."""
    free_in_s: float = 0.0
    """Seconds until the account is expected to be free; 0 when unknown."""


@dataclass(frozen=True, slots=True)
class Exhausted:
    reason: ExhaustedReason
    retry_after_s: float = 0.0
    """Seconds until the earliest account frees up; 0 when unknown."""
    accounts: tuple[AccountState, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Completion:
    outcome: Outcome
    http_status: int = 0
    retry_after_s: float = 0.0
    """From the upstream's retry-after headers; 0 when absent."""
    rate_limit_headers: dict[str, str] = field(default_factory=dict)
    """``anthropic-ratelimit-*`` / ``x-ratelimit-*`` headers of the upstream response."""
    usage: Usage = Usage()
    session_id: str = ""


class LeaseClient(Protocol):
    """What the edge needs from a scheduler."""

    async def acquire(self, request: LeaseRequest) -> Lease | Exhausted: ...

    async def renew(self, lease: Lease) -> bool: ...

    async def complete(self, lease: Lease, completion: Completion) -> None: ...
