"""Gemini error answers in Anthropic's vocabulary.

Gemini wraps errors in ``{"error": {"code", "message", "status", "details"}}`` where ``status`` is a
gRPC code name. The retry delay of a 429 sits in a ``google.rpc.RetryInfo`` entry of ``details``
(``"retryDelay": "22s"``), not in a header, so it is read here or the attempt loop would retry blind.
An invalid API key is a 400 ``INVALID_ARGUMENT`` with ``ErrorInfo.reason = API_KEY_INVALID``; it is
reported as ``authentication_error`` so the account, not the client's request, takes the blame.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from kestrel.edge.providers.base import UpstreamFailure

_BY_STATUS: dict[str, tuple[str, int]] = {
    "INVALID_ARGUMENT": ("invalid_request_error", 400),
    "FAILED_PRECONDITION": ("invalid_request_error", 400),
    "OUT_OF_RANGE": ("invalid_request_error", 400),
    "UNAUTHENTICATED": ("authentication_error", 401),
    "PERMISSION_DENIED": ("permission_error", 403),
    "NOT_FOUND": ("not_found_error", 404),
    "RESOURCE_EXHAUSTED": ("rate_limit_error", 429),
    "CANCELLED": ("api_error", 500),
    "UNKNOWN": ("api_error", 500),
    "INTERNAL": ("api_error", 500),
    "UNAVAILABLE": ("overloaded_error", 503),
    "DEADLINE_EXCEEDED": ("timeout_error", 504),
}
_BY_HTTP: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_BAD_KEY = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})
_BLOCKED_KEY = frozenset({"API_KEY_SERVICE_BLOCKED", "CONSUMER_SUSPENDED", "SERVICE_DISABLED"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)s\s*$")


def parse_duration(text: Any) -> float:
    """Seconds in a protobuf ``Duration`` string (``"22s"``, ``"1.5s"``); 0 when unreadable."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    return float(match.group(1)) if match else 0.0


def _retry_header(headers: Iterable[tuple[bytes, bytes]]) -> float:
    for name, value in headers:
        if name.lower() == b"retry-after":
            try:
                return max(0.0, float(value.decode("latin-1").strip()))
            except ValueError:
                return 0.0  # an HTTP date: the attempt loop's own backoff is close enough
    return 0.0


def failure_from_error(
    error: Mapping[str, Any], status: int, headers: Iterable[tuple[bytes, bytes]] = ()
) -> UpstreamFailure:
    """One ``error`` object (from a body or a mid-stream chunk) as an ``UpstreamFailure``."""
    code = _str(error.get("status"))
    http = error.get("code") if isinstance(error.get("code"), int) else status
    kind, mapped = _BY_STATUS.get(code, ("", 0))
    if not kind:
        kind, mapped = _by_http(http or status)
    retry = 0.0
    reasons: set[str] = set()
    details = error.get("details")
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        kind_url = str(detail.get("@type", ""))
        if kind_url.endswith("google.rpc.RetryInfo"):
            retry = parse_duration(detail.get("retryDelay"))
        elif kind_url.endswith("google.rpc.ErrorInfo") and isinstance(detail.get("reason"), str):
            reasons.add(detail["reason"])
    message = _str(error.get("message"))
    if reasons & _BAD_KEY or "API key not valid" in message:
        kind, mapped = "authentication_error", 401
    elif reasons & _BLOCKED_KEY:
        kind, mapped = "permission_error", 403
    return UpstreamFailure(
        status=mapped,
        kind=kind,
        message=message or f"Gemini answered {code or http or 'an error'}",
        retry_after_s=retry or _retry_header(headers),
    )


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _by_http(status: int) -> tuple[str, int]:
    if status in _BY_HTTP:
        return _BY_HTTP[status], status
    if 400 <= status < 500:
        return "invalid_request_error", status
    return "api_error", status if status >= 500 else 500


def decode_error(status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> UpstreamFailure:
    """An error answer (any status, any body) as an ``UpstreamFailure``."""
    headers = list(headers)
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, list) and data:  # streamGenerateContent without alt=sse answers a JSON array
        data = data[0]
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return failure_from_error(data["error"], status, headers)
    kind, mapped = _by_http(status)
    text = body[:500].decode("utf-8", "replace").strip()
    return UpstreamFailure(mapped, kind, text or f"Gemini answered HTTP {status}", _retry_header(headers))
