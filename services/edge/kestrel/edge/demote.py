"""Serving a non-streaming request from an upstream stream (``edge.demote_non_streaming``).

Long non-streaming calls can hit idle timeouts between proxies; asking the upstream for a stream
and reassembling it keeps bytes moving. Off by default: the body changes (``stream: true``).
"""

from __future__ import annotations

import re

import orjson

from kestrel.edge.assemble import StreamFailed, assemble
from kestrel.edge.dialects.anthropic_render import render_response
from kestrel.edge.providers.anthropic import AnthropicStreamDecoder

_STREAM_FALSE = re.compile(rb'"stream"\s*:\s*false')
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "overloaded_error": 529,
}


def force_stream(body: bytes) -> bytes:
    """The same request body asking for a stream."""
    matches = _STREAM_FALSE.findall(body)
    if len(matches) == 1:
        return _STREAM_FALSE.sub(b'"stream":true', body, count=1)
    if b'"stream"' not in body:
        start = body.index(b"{") + 1
        return body[:start] + b'"stream":true,' + body[start:]
    data = orjson.loads(body)
    data["stream"] = True
    return orjson.dumps(data)


def assemble_message(stream: bytes) -> tuple[bytes, int]:
    """The non-streaming message (or error) an Anthropic stream describes: ``(body, status)``."""
    decoder = AnthropicStreamDecoder()
    try:
        response = assemble([*decoder.feed(stream), *decoder.finish()])
    except StreamFailed as failed:
        body = {"type": "error", "error": {"type": failed.kind, "message": failed.message}}
        return orjson.dumps(body), _ERROR_STATUS.get(failed.kind, 500)
    return render_response(response), 200
