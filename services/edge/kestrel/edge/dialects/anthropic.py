"""The Anthropic Messages dialect: what the edge reads from a request, how it writes errors.

Passthrough reads only what routing needs (model, stream flag, session id) and leaves the body
bytes alone; ``replace_model`` rewrites the one top-level value routing may change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from kestrel.edge.errors import GatewayError, InvalidRequest

SESSION_HEADER = "x-claude-code-session-id"
FALLBACK_SESSION_HEADER = "x-session-id"


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    """What routing needs from a ``POST /v1/messages`` body."""

    model: str
    stream: bool
    session_id: str
    body: bytes
    """The body exactly as the client sent it."""


def parse_messages(body: bytes, headers: dict[str, str], *, count_tokens: bool = False) -> MessagesRequest:
    """Validate the fields Kestrel relies on; the upstream validates the rest."""
    data = _load(body)
    model = data.get("model")
    if model is None:
        raise InvalidRequest("model: Field required")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: Input should be a non-empty string")
    messages = data.get("messages")
    if messages is None:
        raise InvalidRequest("messages: Field required")
    if not isinstance(messages, list):
        raise InvalidRequest("messages: Input should be a valid list")
    stream = False
    if not count_tokens:
        max_tokens = data.get("max_tokens")
        if max_tokens is None:
            raise InvalidRequest("max_tokens: Field required")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
            raise InvalidRequest("max_tokens: Input should be a non-negative integer")
        stream_value = data.get("stream", False)
        if not isinstance(stream_value, bool):
            raise InvalidRequest("stream: Input should be a valid boolean")
        stream = stream_value
    return MessagesRequest(model, stream, session_id(data, headers), body)


def _load(body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object")
    return data


def session_id(data: dict[str, Any], headers: dict[str, str]) -> str:
    """The conversation id: Claude Code's header, else ``metadata.user_id``, else ``x-session-id``."""
    value = headers.get(SESSION_HEADER)
    if value:
        return value
    metadata = data.get("metadata")
    if isinstance(metadata, dict):
        user_id = metadata.get("user_id")
        if isinstance(user_id, str) and user_id:
            found = _session_from_user_id(user_id)
            if found:
                return found
    return headers.get(FALLBACK_SESSION_HEADER, "")


def _session_from_user_id(user_id: str) -> str:
    # Claude Code 2.x sends a JSON object; 1.x sent "user_<h>_account_<id>_session_<uuid>".
    if user_id.startswith("{"):
        try:
            parsed = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            return ""
        found = parsed.get("session_id") if isinstance(parsed, dict) else None
        return found if isinstance(found, str) else ""
    _, sep, tail = user_id.rpartition("_session_")
    return tail if sep else ""


_MODEL_VALUE = re.compile(rb'"model"\s*:\s*"(?:[^"\\]|\\.)*"')
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]]')
_KEY_COLON = re.compile(rb"\s*:\s*")


def replace_model(body: bytes, model: str) -> bytes:
    """Return ``body`` with the top-level ``model`` value replaced and every other byte kept."""
    matches = list(_MODEL_VALUE.finditer(body))
    span = (matches[0].start(), matches[0].end()) if len(matches) == 1 else _top_level_model_span(body)
    if span is None:
        raise InvalidRequest("model: Field required")
    start, end = span
    return body[:start] + b'"model":' + orjson.dumps(model) + body[end:]


def _top_level_model_span(body: bytes) -> tuple[int, int] | None:
    """Find ``"model": "..."`` at depth one when the quick search was ambiguous."""
    depth = 0
    for match in _TOKEN.finditer(body):
        first = body[match.start()]
        if first in b"{[":
            depth += 1
        elif first in b"}]":
            depth -= 1
        elif depth == 1 and match.group() == b'"model"':
            colon = _KEY_COLON.match(body, match.end())
            if colon is None:
                continue
            value = _TOKEN.match(body, colon.end())
            if value is not None and body[value.start()] == ord('"'):
                return match.start(), value.end()
    return None


def error_body(error: GatewayError, request_id: str) -> bytes:
    return orjson.dumps(
        {"type": "error", "error": {"type": error.kind, "message": error.message}, "request_id": request_id}
    )


def error_event(kind: str, message: str) -> bytes:
    """An ``event: error`` frame, as Anthropic sends after the stream has started."""
    data = orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    return b"event: error\ndata: " + data + b"\n\n"
