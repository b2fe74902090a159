"""The Anthropic side of the sim: ``/v1/messages``, ``/v1/messages/count_tokens``, ``/v1/models``.

A Messages request goes through these steps, each able to answer early:

1. record it in the request log (every ``/v1`` request, whatever its fate);
2. authenticate: ``x-api-key`` or ``Authorization: Bearer``; a missing key or, when the sim is
   not open, an unknown one is a 401 ``authentication_error``;
3. validate the body (400) and, with ``strict_models``, the model (404);
4. take the next queued fault: 429/529/500 answer here, stream faults ride along;
5. plan the prompt cache, then admit against the key's rate window (429 with ``retry-after``);
6. commit the cache, pick the answer (script, markers, default), charge its output tokens;
7. send it as JSON or as an SSE stream, after the latency model's delays.

Every response carries ``request-id`` and ``anthropic-organization-id``, plus the
``anthropic-ratelimit-*`` family when the key has limits. Query strings are ignored, so
Claude Code's ``?beta=true`` works.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.routing import Route

from kestrel.sim import _ids, _render
from kestrel.sim._answers import build_answer, marker_blocks
from kestrel.sim._faults import MESSAGES as FAULT_MESSAGES
from kestrel.sim._faults import Fault
from kestrel.sim._request import RequestError, parse_messages
from kestrel.sim._responses import SSE_HEADERS, BytesResponse, SSEResponse, TruncatedResponse, error_body
from kestrel.sim._state import Simulator
from kestrel.sim.config import KeyLimits

Headers = list[tuple[bytes, bytes]]
_RETRY = (b"x-should-retry", b"true")


class AnthropicApi:
    """Handlers for the ``/v1`` routes of one simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._models = [_model_json(m) for m in sim.config.models]
        self._models_by_id = {m["id"]: m for m in self._models}

    def routes(self) -> list[Route]:
        return [
            Route("/v1/messages", self.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", self.get_model, methods=["GET"]),
        ]

    async def messages(self, request: Request) -> Any:
        sim = self.sim
        body = await request.body()
        entry, rid, base = self._begin(request, body)
        key_or_error = self._authenticate(request, entry, rid, base)
        if not isinstance(key_or_error, tuple):
            return key_or_error
        key, limits = key_or_error
        sim.enter(key)
        try:
            response = await self._messages(request, body, entry, rid, base, key, limits)
        except BaseException:
            sim.leave(key)
            raise
        return _Counted(response, sim, key)

    async def _messages(
        self, request: Request, body: bytes, entry: Any, rid: str, base: Any, key: str, limits: Any
    ) -> Any:
        sim, config = self.sim, self.sim.config
        try:
            betas = request.headers.get("anthropic-beta", "")
            req = parse_messages(
                body,
                verify_signatures=config.verify_signatures,
                interleaved_thinking="interleaved-thinking" in betas,
                system_messages="mid-conversation-system" in betas,
            )
            markers = marker_blocks(req.last_user_text)
        except RequestError as exc:
            peeked = base + sim.limiter.peek(key, limits)
            return _error(entry, rid, peeked, exc.status, exc.error_type, exc.message)
        if config.strict_models and req.model not in sim.model_ids:
            peeked = base + sim.limiter.peek(key, limits)
            return _error(entry, rid, peeked, 404, "not_found_error", f"model: {req.model}")

        fault = sim.faults.pop(key)
        if fault is not None and fault.http_error(req.stream) is not None:
            return _fault_error(fault, req.stream, entry, rid, base + sim.limiter.peek(key, limits))

        plan = sim.cache.plan(key, req.prompt)
        refusal = sim.limiter.admit(key, limits, plan.input_tokens + plan.cache_creation_input_tokens)
        if refusal is not None:
            extra = [(b"retry-after", str(refusal.retry_after).encode()), _RETRY, *refusal.headers]
            return _error(entry, rid, [*base, *extra], 429, "rate_limit_error", refusal.message)
        sim.cache.commit(key, plan)

        answer = build_answer(req, sim.scripts.pop(key), markers)
        headers = base + sim.limiter.charge_output(key, limits, answer.output_tokens)
        entry["status"] = 200
        ttft_s = config.ttft_ms / 1000
        message_id = _ids.message_id()
        if req.stream:
            frames = _render.stream_plan(answer, req.model, message_id, plan, config.chunk_tokens)
            return SSEResponse(frames, headers + SSE_HEADERS, ttft_s, config.tokens_per_s, fault)

        body_out = _render.message_json(answer, req.model, message_id, plan)
        delay = ttft_s
        if config.tokens_per_s:
            delay += answer.output_tokens / config.tokens_per_s
        if fault is not None and fault.kind == "stall":
            delay += fault.stall_s
        if fault is not None and fault.kind == "reset":
            return TruncatedResponse(200, body_out, headers, delay)
        return BytesResponse(200, body_out, headers, delay)

    async def count_tokens(self, request: Request) -> Any:
        body = await request.body()
        entry, rid, base = self._begin(request, body)
        key_or_error = self._authenticate(request, entry, rid, base)
        if not isinstance(key_or_error, tuple):
            return key_or_error
        try:
            req = parse_messages(
                body,
                count_only=True,
                system_messages="mid-conversation-system" in request.headers.get("anthropic-beta", ""),
            )
        except RequestError as exc:
            return _error(entry, rid, base, exc.status, exc.error_type, exc.message)
        entry["status"] = 200
        return BytesResponse(200, orjson.dumps({"input_tokens": req.prompt.total_tokens}), base)

    async def list_models(self, request: Request) -> Any:
        entry, rid, base = self._begin(request, b"")
        key_or_error = self._authenticate(request, entry, rid, base)
        if not isinstance(key_or_error, tuple):
            return key_or_error
        params = request.query_params
        try:
            limit = int(params.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return _error(
                entry, rid, base, 400, "invalid_request_error", "limit: Input should be an integer between 1 and 1000"
            )
        models = self._models
        if "after_id" in params:
            ids = [m["id"] for m in models]
            after = params["after_id"]
            models = models[ids.index(after) + 1 :] if after in ids else []
            page, has_more = models[:limit], len(models) > limit
        elif "before_id" in params:
            ids = [m["id"] for m in models]
            before = params["before_id"]
            models = models[: ids.index(before)] if before in ids else []
            page, has_more = models[-limit:], len(models) > limit
        else:
            page, has_more = models[:limit], len(models) > limit
        entry["status"] = 200
        listing = {
            "data": page,
            "has_more": has_more,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }
        return BytesResponse(200, orjson.dumps(listing), base)

    async def get_model(self, request: Request) -> Any:
        entry, rid, base = self._begin(request, b"")
        key_or_error = self._authenticate(request, entry, rid, base)
        if not isinstance(key_or_error, tuple):
            return key_or_error
        model_id = request.path_params["model_id"]
        model = self._models_by_id.get(model_id)
        if model is None:
            return _error(entry, rid, base, 404, "not_found_error", f"model: {model_id}")
        entry["status"] = 200
        return BytesResponse(200, orjson.dumps(model), base)

    def _begin(self, request: Request, body: bytes) -> tuple[dict[str, Any], str, Headers]:
        """Log the request; return its log entry, request id and the headers every answer has."""
        rid = _ids.request_id()
        entry = self.sim.log.record(request.scope, body, rid)
        return entry, rid, [(b"request-id", rid.encode()), *self.sim.base_headers]

    def _authenticate(
        self, request: Request, entry: dict[str, Any], rid: str, base: Headers
    ) -> tuple[str, KeyLimits] | BytesResponse:
        """``(key, limits)`` for an acceptable key, else the 401 to send."""
        headers = request.headers
        key = headers.get("x-api-key")
        if not key:
            auth = headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                key = auth[7:].strip()
        if not key:
            return _error(entry, rid, base, 401, "authentication_error", "x-api-key header is required")
        limits = self.sim.limits_for(key)
        if limits is None:
            return _error(entry, rid, base, 401, "authentication_error", "invalid x-api-key")
        return key, limits


def _error(
    entry: dict[str, Any], rid: str, headers: Headers, status: int, error_type: str, message: str
) -> BytesResponse:
    entry["status"] = status
    return BytesResponse(status, error_body(error_type, message, rid), headers)


def _fault_error(fault: Fault, streaming: bool, entry: dict[str, Any], rid: str, base: Headers) -> BytesResponse:
    """The real error response for a fault that strikes before headers."""
    status, error_type = fault.http_error(streaming) or (500, "api_error")
    headers = [*base, _RETRY]
    if status == 429:
        headers.append((b"retry-after", str(fault.retry_after).encode()))
    return _error(entry, rid, headers, status, error_type, FAULT_MESSAGES[error_type])


def _model_json(model: Any) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model.id,
        "display_name": model.display_name,
        "created_at": model.created_at,
        "max_input_tokens": model.max_input_tokens,
        "max_tokens": model.max_tokens,
    }


class _Counted:
    """Runs a response and marks its request finished when the last byte is out (or it fails)."""

    __slots__ = ("_inner", "_key", "_sim")

    def __init__(self, inner: Any, sim: Simulator, key: str) -> None:
        self._inner = inner
        self._sim = sim
        self._key = key

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self._inner(scope, receive, send)
        finally:
            self._sim.leave(self._key)
