"""Request heads on the wire: one join per request, with the per-origin parts prepared once.

The head is built as a list of byte strings joined once, never through string formatting per
header, because this runs for every proxied request. Framing headers are ours to set (the body is
always sent whole with a ``content-length``), so any the caller passes are dropped rather than
trusted: a stale ``content-length`` or a ``transfer-encoding`` would desynchronise the connection.
"""

from __future__ import annotations

from urllib.parse import quote

_FRAMING = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})
_FRAMING_LENGTHS = frozenset(len(name) for name in _FRAMING)
"""Only names of these lengths can be framing headers: a set lookup that skips ``lower()`` for most."""

_TARGET_SAFE = "!#$%&'()*+,/:;=?@[]~"
"""Kept as is when re-quoting a target; ``%`` included so an already-encoded target stays as sent."""

_BODY_METHODS = frozenset({b"POST", b"PUT", b"PATCH"})
"""Methods that always carry a ``content-length``; others only when they have a body (RFC 9110 8.6)."""

INLINE_BODY_LIMIT = 64 * 1024
"""Bodies up to this size are joined into the head (one write); larger ones are written after it."""


def encode_target(target: str) -> bytes:
    """The request target as ASCII, re-quoting what ASGI's percent-decoded path may contain.

    The path reaching the edge is decoded, so a client's ``%0d%0a`` or ``%20`` arrives as a real
    CR LF or space; sent raw that would split the request line. Quoting them again (as httpx does)
    keeps the request line intact; the common all-printable-ASCII case costs two C-level checks.
    """
    if target.isascii() and target.isprintable() and " " not in target:
        return target.encode("ascii")
    return quote(target, safe=_TARGET_SAFE).encode("ascii")


def encode_request(
    method: bytes, path_prefix: bytes, target: bytes, host_line: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> bytes:
    """The request head, with the body joined in when it is small, ready for one ``write``.

    Bodies over ``INLINE_BODY_LIMIT`` are left out, for the caller to write after the head
    rather than copy into it.

    ``host_line`` is the origin's `` HTTP/1.1\\r\\nhost: NAME\\r\\n``, built once per origin.
    Raises ``ValueError`` when a header name or value holds a line break, which would let it
    smuggle a header or a second request to the upstream.
    """
    parts = [method, b" ", path_prefix, target, host_line]
    kept = 0
    for name, value in headers:
        if len(name) in _FRAMING_LENGTHS and name.lower() in _FRAMING:
            continue
        parts += (name, b": ", value, b"\r\n")
        kept += 1
    if body or method in _BODY_METHODS:
        parts.append(b"content-length: %d\r\n\r\n" % len(body))
        lines = kept + 4
    else:
        parts.append(b"\r\n")
        lines = kept + 3
    inline = 0 < len(body) <= INLINE_BODY_LIMIT
    if inline:
        parts.append(body)
    data = b"".join(parts)
    # Request line, host, each header, content-length and the blank line end in exactly one LF each.
    if data.count(b"\n", 0, len(data) - len(body) if inline else len(data)) != lines:
        raise ValueError("upstream request: a header name or value contains a line break")
    return data
