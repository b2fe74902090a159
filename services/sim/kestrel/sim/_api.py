"""The Anthropic side of the sim: ``/v1/messages``, ``/v1/messages/count_tokens``, ``/v1/models``.

A Messages request takes the shared path of ``_exchange`` (log, auth, validate, fault, cache,
admit, answer, send); this module is the Anthropic ``Dialect`` for it:

* auth: ``x-api-key`` or ``Authorization: Bearer``; a missing key or, when the sim is not open, an
  unknown one is a 401 ``authentication_error``;
* validation as in ``_request`` (400 ``invalid_request_error``), unknown models with
  ``strict_models`` are 404 ``not_found_error``;
* faults answer with ``rate_limit_error`` / ``overloaded_error`` / ``api_error`` and
  ``x-should-retry: true``; rate limits with 429 ``rate_limit_error`` and an integer
  ``retry-after``.

Every response carries ``request-id`` and ``anthropic-organization-id``, plus the
``anthropic-ratelimit-*`` family when the key has limits. Query strings are ignored, so
Claude Code's ``?beta=true`` works.

``GET /v1/models`` is shared with OpenAI clients, which call the same path: a request with
``Authorization: Bearer`` and neither ``x-api-key`` nor ``anthropic-version`` gets OpenAI's list
shape (``OpenAIApi.list_models``); everything else, including the Anthropic SDKs (which always send
``anthropic-version``) and Claude Code, gets Anthropic's paginated shape.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.routing import Route

from kestrel.sim import _ids, _openai, _render
from kestrel.sim._answers import Answer
from kestrel.sim._cache import CachePlan
from kestrel.sim._exchange import Exchange
from kestrel.sim._faults import MESSAGES as FAULT_MESSAGES
from kestrel.sim._faults import Fault
from kestrel.sim._limits import HeaderStyle, Refusal
from kestrel.sim._render import StreamPlan
from kestrel.sim._request import MessagesRequest, RequestError, parse_messages
from kestrel.sim._responses import SSE_HEADERS, BytesResponse, error_body
from kestrel.sim._state import Simulator
from kestrel.sim.config import KeyLimits

Headers = list[tuple[bytes, bytes]]
_RETRY = (b"x-should-retry", b"true")


class AnthropicApi:
    """Handlers for the Anthropic ``/v1`` routes of one simulator; also its ``Dialect``."""

    rate_headers: HeaderStyle | None = None  # the limiter's default: anthropic-ratelimit-*

    def __init__(self, sim: Simulator, openai: _openai.OpenAIApi | None = None) -> None:
        self.sim = sim
        self._openai = openai
        """Serves ``/v1/models`` to OpenAI clients (see the module docstring)."""
        self._models = [_model_json(m) for m in sim.config.models]
        self._models_by_id = {m["id"]: m for m in self._models}
        self._exchange = Exchange(sim, self)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/messages", self._exchange.handle, methods=["POST"]),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model_id:path}", self.get_model, methods=["GET"]),
        ]

    # -- the Dialect ---------------------------------------------------------------------------

    def base_headers(self, request_id: str) -> Headers:
        return [(b"request-id", request_id.encode()), *self.sim.base_headers]

    def api_key(self, request: Request) -> str | None:
        headers = request.headers
        key = headers.get("x-api-key")
        if not key:
            auth = headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                key = auth[7:].strip()
        return key or None

    def auth_error(self, key: str | None, request_id: str, headers: Headers) -> BytesResponse:
        message = "x-api-key header is required" if key is None else "invalid x-api-key"
        return _error(request_id, headers, 401, "authentication_error", message)

    def parse(self, request: Request, body: bytes) -> tuple[MessagesRequest, None]:
        betas = request.headers.get("anthropic-beta", "")
        parsed = parse_messages(
            body,
            verify_signatures=self.sim.config.verify_signatures,
            interleaved_thinking="interleaved-thinking" in betas,
            system_messages="mid-conversation-system" in betas,
            models=self.sim.models,
        )
        return parsed, None

    def error(self, exc: RequestError, request_id: str, headers: Headers) -> BytesResponse:
        return _error(request_id, headers, exc.status, exc.error_type, exc.message)

    def model_not_found(self, model: str) -> RequestError:
        return RequestError(f"model: {model}", 404, "not_found_error")

    def fault_error(self, fault: Fault, streaming: bool, request_id: str, headers: Headers) -> BytesResponse:
        status, error_type = fault.http_error(streaming) or (500, "api_error")
        headers = [*headers, _RETRY]
        if status == 429:
            headers.append((b"retry-after", str(fault.retry_after).encode()))
        return _error(request_id, headers, status, error_type, FAULT_MESSAGES[error_type])

    def rate_limited(
        self, refusal: Refusal, request: MessagesRequest, request_id: str, headers: Headers
    ) -> BytesResponse:
        extra = [(b"retry-after", str(refusal.retry_after).encode()), _RETRY, *refusal.headers]
        return _error(request_id, [*headers, *extra], 429, "rate_limit_error", refusal.message)

    def render(self, answer: Answer, request: MessagesRequest, options: Any, plan: CachePlan) -> bytes:
        return _render.message_json(answer, request.model, _ids.message_id(), plan)

    def stream(
        self, answer: Answer, request: MessagesRequest, options: Any, plan: CachePlan, chunk_tokens: int
    ) -> tuple[StreamPlan, Headers]:
        frames = _render.stream_plan(answer, request.model, _ids.message_id(), plan, chunk_tokens)
        return frames, SSE_HEADERS

    # -- the other routes ----------------------------------------------------------------------

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
            return _logged_error(entry, rid, base, exc.status, exc.error_type, exc.message)
        entry["status"] = 200
        return BytesResponse(200, orjson.dumps({"input_tokens": req.prompt.total_tokens}), base)

    async def list_models(self, request: Request) -> Any:
        if self._openai is not None and _openai.wants_openai_shape(request):
            return await self._openai.list_models(request)
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
            return _logged_error(
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
        if self._openai is not None and _openai.wants_openai_shape(request):
            return await self._openai.get_model(request)
        entry, rid, base = self._begin(request, b"")
        key_or_error = self._authenticate(request, entry, rid, base)
        if not isinstance(key_or_error, tuple):
            return key_or_error
        model_id = request.path_params["model_id"]
        model = self._models_by_id.get(model_id)
        if model is None:
            return _logged_error(entry, rid, base, 404, "not_found_error", f"model: {model_id}")
        entry["status"] = 200
        return BytesResponse(200, orjson.dumps(model), base)

    def _begin(self, request: Request, body: bytes) -> tuple[dict[str, Any], str, Headers]:
        """Log the request; return its log entry, request id and the headers every answer has."""
        rid = _ids.request_id()
        entry = self.sim.log.record(request.scope, body, rid)
        return entry, rid, self.base_headers(rid)

    def _authenticate(
        self, request: Request, entry: dict[str, Any], rid: str, base: Headers
    ) -> tuple[str, KeyLimits] | BytesResponse:
        """``(key, limits)`` for an acceptable key, else the 401 to send."""
        key = self.api_key(request)
        limits = self.sim.limits_for(key) if key else None
        if key is None or limits is None:
            entry["status"] = 401
            return self.auth_error(key, rid, base)
        return key, limits


def _error(rid: str, headers: Headers, status: int, error_type: str, message: str) -> BytesResponse:
    return BytesResponse(status, error_body(error_type, message, rid), headers)


def _logged_error(
    entry: dict[str, Any], rid: str, headers: Headers, status: int, error_type: str, message: str
) -> BytesResponse:
    entry["status"] = status
    return _error(rid, headers, status, error_type, message)


def _model_json(model: Any) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model.id,
        "display_name": model.display_name,
        "created_at": model.created_at,
        "max_input_tokens": model.max_input_tokens,
        "max_tokens": model.max_tokens,
    }
