"""One generation request's path through the sim, shared by the Anthropic, OpenAI and Gemini APIs.

Each API is a ``Dialect``: where it finds the API key, how it parses a body into the neutral
``MessagesRequest``, and how it renders errors, rate-limit headers and answers. The steps, their
order and the state they touch are the same for all three, so limits, the prompt cache, scripts,
faults, latency and the request log behave alike whichever API a test drives:

1. record the request in the log (whatever its fate);
2. find the key; a missing or (when the sim is not open) unknown one gets the dialect's auth error;
3. parse and validate the body (the dialect's 400s) and read markers from the last user text;
   with ``strict_models``, an unknown model gets the dialect's 404;
4. take the next queued fault: 429/529/500 (and ``error_event`` without a stream) answer here;
5. plan the prompt cache, then admit against the key's window (the dialect's 429);
6. commit the cache, build the answer (script, markers, default), charge its output tokens;
7. send JSON or a stream after the latency model's delays, with a stream fault riding along.

Refusals before step 5 carry the window's headers as they stand; nothing there is charged.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Protocol

from starlette.requests import Request

from kestrel.sim import _ids
from kestrel.sim._answers import Answer, build_answer, marker_blocks
from kestrel.sim._cache import CachePlan
from kestrel.sim._faults import Fault
from kestrel.sim._limits import HeaderStyle, Refusal
from kestrel.sim._render import StreamPlan
from kestrel.sim._request import MessagesRequest, RequestError
from kestrel.sim._responses import BytesResponse, SSEResponse, TruncatedResponse
from kestrel.sim._state import Simulator

Headers = list[tuple[bytes, bytes]]


class Dialect(Protocol):
    """What differs between the APIs; ``options`` is whatever ``parse`` returns for ``render``."""

    rate_headers: HeaderStyle | None
    """How this API spells rate-limit headers (None: Anthropic's family)."""

    def base_headers(self, request_id: str) -> Headers:
        """Headers on every answer (request ids and the like)."""
        ...

    def api_key(self, request: Request) -> str | None:
        """The key the request authenticates with, None when it carries none."""
        ...

    def auth_error(self, key: str | None, request_id: str, headers: Headers) -> BytesResponse:
        """The answer to a missing (``key`` None) or refused key."""
        ...

    def parse(self, request: Request, body: bytes) -> tuple[MessagesRequest, Any]:
        """The neutral request plus the dialect's render options; raises ``RequestError``."""
        ...

    def error(self, exc: RequestError, request_id: str, headers: Headers) -> BytesResponse:
        """A validation error (400, or the 404 of ``model_not_found``) in this API's envelope."""
        ...

    def model_not_found(self, model: str) -> RequestError: ...

    def fault_error(self, fault: Fault, streaming: bool, request_id: str, headers: Headers) -> BytesResponse:
        """The error an injected 429/529/500 fault answers with, before any header."""
        ...

    def rate_limited(
        self, refusal: Refusal, request: MessagesRequest, request_id: str, headers: Headers
    ) -> BytesResponse: ...

    def render(self, answer: Answer, request: MessagesRequest, options: Any, plan: CachePlan) -> bytes:
        """The non-streaming body."""
        ...

    def stream(
        self, answer: Answer, request: MessagesRequest, options: Any, plan: CachePlan, chunk_tokens: int
    ) -> tuple[StreamPlan, Headers]:
        """The streamed frames and the headers (content type) that go with them."""
        ...


class Exchange:
    """Serves generation requests of one dialect against one simulator's state."""

    def __init__(self, sim: Simulator, dialect: Dialect) -> None:
        self.sim = sim
        self.dialect = dialect

    async def handle(self, request: Request) -> Any:
        """The Starlette endpoint: an ASGI response that marks the request finished when sent."""
        sim, dialect = self.sim, self.dialect
        body = await request.body()
        rid = _ids.request_id()
        entry = sim.log.record(request.scope, body, rid)
        base = dialect.base_headers(rid)
        key = dialect.api_key(request)
        if not key or sim.limits_for(key) is None:
            return _logged(entry, dialect.auth_error(key or None, rid, base))
        sim.enter(key)
        try:
            response = self._answer(request, body, entry, rid, base, key)
        except BaseException:
            sim.leave(key)
            raise
        return _Counted(response, sim, key)

    def _answer(self, request: Request, body: bytes, entry: dict[str, Any], rid: str, base: Headers, key: str) -> Any:
        sim, config, dialect = self.sim, self.sim.config, self.dialect
        limits = sim.limits_for(key)
        assert limits is not None
        style = dialect.rate_headers
        try:
            req, options = dialect.parse(request, body)
            markers = marker_blocks(req.last_user_text)
            if config.strict_models and req.model not in sim.model_ids:
                raise dialect.model_not_found(req.model)
        except RequestError as exc:
            return _logged(entry, dialect.error(exc, rid, base + sim.limiter.peek(key, limits, style)))

        fault = sim.faults.pop(key)
        if fault is not None and fault.http_error(req.stream) is not None:
            peeked = base + sim.limiter.peek(key, limits, style)
            return _logged(entry, dialect.fault_error(fault, req.stream, rid, peeked))

        plan = sim.cache.plan(key, req.prompt)
        refusal = sim.limiter.admit(key, limits, plan.input_tokens + plan.cache_creation_input_tokens, style)
        if refusal is not None:
            return _logged(entry, dialect.rate_limited(refusal, req, rid, base))
        sim.cache.commit(key, plan)

        answer = build_answer(req, sim.scripts.pop(key), markers)
        headers = base + sim.limiter.charge_output(key, limits, answer.output_tokens, style)
        entry["status"] = 200
        ttft_s = config.ttft_ms / 1000
        if req.stream:
            frames, stream_headers = dialect.stream(answer, req, options, plan, config.chunk_tokens)
            return SSEResponse(frames, headers + stream_headers, ttft_s, config.tokens_per_s, fault)

        body_out = dialect.render(answer, req, options, plan)
        delay = ttft_s
        if config.tokens_per_s:
            delay += answer.output_tokens / config.tokens_per_s
        if fault is not None and fault.kind == "stall":
            delay += fault.stall_s
        if fault is not None and fault.kind == "reset":
            return TruncatedResponse(200, body_out, headers, delay)
        return BytesResponse(200, body_out, headers, delay)


def _logged(entry: dict[str, Any], response: BytesResponse) -> BytesResponse:
    entry["status"] = response.status
    return response


class _Counted:
    """Runs a response and marks its request finished when the last byte is out (or it fails)."""

    __slots__ = ("_inner", "_key", "_sim")

    def __init__(self, inner: Any, sim: Simulator, key: str) -> None:
        self._inner = inner
        self._sim = sim
        self._key = key

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        try:
            await self._inner(scope, receive, send)
        finally:
            self._sim.leave(self._key)
