"""Errors the edge answers with, one class per kind of failure.

Every failure a client can see is a ``GatewayError``; the client's dialect renders it into its
own envelope and status (see ``dialects``). Transport errors are mapped to ``UpstreamError`` at the upstream
boundary (``upstream.py``, ``http/``), so nothing above it knows which HTTP client is in use.

    GatewayError
    ├── InvalidRequest          400  malformed JSON, missing fields
    ├── AuthenticationFailed    401  missing or unknown client key
    ├── NotFound                404  unknown path, model served by no account
    ├── MethodNotAllowed        405
    ├── RequestTooLarge         413  body over edge.max_body_bytes
    ├── RateLimited             429  every account busy or cooling; carries retry-after
    ├── UpstreamUnavailable     502  no upstream could be reached
    └── SchedulerUnavailable    503  no scheduler replica answered (cluster mode); carries retry-after
"""

from __future__ import annotations


class GatewayError(Exception):
    status: int = 500
    kind: str = "api_error"
    """The Anthropic ``error.type``; other dialects map it to their own."""

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class InvalidRequest(GatewayError):
    status = 400
    kind = "invalid_request_error"


class AuthenticationFailed(GatewayError):
    status = 401
    kind = "authentication_error"


class NotFound(GatewayError):
    status = 404
    kind = "not_found_error"


class MethodNotAllowed(GatewayError):
    status = 405
    kind = "invalid_request_error"


class RequestTooLarge(GatewayError):
    status = 413
    kind = "request_too_large"


class RateLimited(GatewayError):
    status = 429
    kind = "rate_limit_error"


class UpstreamUnavailable(GatewayError):
    status = 502
    kind = "api_error"


class SchedulerUnavailable(GatewayError):
    """No scheduler replica answered, so no account may be chosen (``clients/scheduler.py``)."""

    status = 503
    kind = "overloaded_error"
