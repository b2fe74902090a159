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

from kestrel.scheduler.ratelimits import retry_after_seconds

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
            seconds = retry_after_seconds({"retry-after": value.decode("latin-1")}, time.time())
            value = str(min(max_retry_after, max(1, math.ceil(seconds)))).encode()
        out.append((lower, value))
    return out


def as_text(headers: RawHeaders) -> dict[str, str]:
    """Decoded header names and values, for the scheduler's rate-limit readers."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}
