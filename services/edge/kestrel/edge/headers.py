"""Which headers cross the gateway, in each direction.

Client headers go upstream verbatim (``anthropic-version``, ``anthropic-beta`` and everything
else a client may rely on) except hop-by-hop headers, the client's own credential and
``accept-encoding``: Kestrel asks upstreams for identity encoding so it can tap usage from the
bytes it relays. Upstream headers come back the same way, with ``retry-after`` always made
integer seconds.
"""

from __future__ import annotations

import math
import time
from email.utils import parsedate_to_datetime

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_NOT_UPSTREAM = _HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"x-api-key",
    b"authorization",
    b"accept-encoding",
    b"cookie",
}
_NOT_DOWNSTREAM = _HOP_BY_HOP | {b"content-length", b"content-encoding", b"set-cookie", b"date", b"server"}

RawHeaders = list[tuple[bytes, bytes]]


def upstream_request_headers(client_headers: RawHeaders, credential: tuple[bytes, bytes]) -> RawHeaders:
    """Client headers as the upstream should see them, with the account's credential."""
    out = [(k, v) for k, v in client_headers if k not in _NOT_UPSTREAM and not k.startswith(b"x-kestrel-")]
    out.append(credential)
    out.append((b"accept-encoding", b"identity"))
    return out


def client_response_headers(upstream_headers: RawHeaders, max_retry_after: int) -> RawHeaders:
    """Upstream response headers as the client should see them."""
    out: RawHeaders = []
    for key, value in upstream_headers:
        lower = key.lower()
        if lower in _NOT_DOWNSTREAM:
            continue
        if lower == b"retry-after":
            seconds = retry_after_seconds(value.decode("latin-1"))
            if seconds is None:
                continue
            value = str(min(max_retry_after, max(1, math.ceil(seconds)))).encode()
        out.append((lower, value))
    return out


def retry_after_seconds(value: str) -> float | None:
    """Seconds from a ``retry-after`` value given as seconds or as an HTTP date."""
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def upstream_retry_after(headers: RawHeaders) -> float:
    """The upstream's retry hint in seconds (``retry-after-ms`` preferred), 0 when absent."""
    seconds = 0.0
    for key, value in headers:
        lower = key.lower()
        if lower == b"retry-after-ms":
            try:
                return max(0.0, float(value) / 1000)
            except ValueError:
                continue
        if lower == b"retry-after":
            seconds = retry_after_seconds(value.decode("latin-1")) or 0.0
    return seconds


def rate_limit_headers(headers: RawHeaders) -> dict[str, str]:
    """The rate-limit headers the scheduler learns cooldowns and quotas from."""
    return {
        k.decode("latin-1").lower(): v.decode("latin-1")
        for k, v in headers
        if k.lower().startswith((b"anthropic-ratelimit-", b"x-ratelimit-"))
    }
