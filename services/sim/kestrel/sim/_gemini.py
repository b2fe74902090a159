"""The Gemini side of the sim: ``/v1beta/models/{model}:generateContent`` and its stream.

Routes: ``POST /v1beta/models/{model}:generateContent``, ``:streamGenerateContent`` (``?alt=sse``:
SSE ``data:`` lines ended by ``\r\n\r\n`` as Google sends them; without it a JSON array sent
element by element), ``:countTokens`` (``{"totalTokens"}``), and ``GET /v1beta/models[/{model}]``.
Generation takes the shared path of ``_exchange`` with this module as its ``Dialect``;
``_gemini_request`` parses and validates the body. Keys, windows, the prompt cache, scripts,
markers and faults are the same as for the other APIs; only the wire differs (PROTOCOLS.md E):

* Auth: ``x-goog-api-key`` or ``?key=``. No key: 403 ``PERMISSION_DENIED``; a refused key
  (closed sim): 400 ``INVALID_ARGUMENT`` "API key not valid" with an ``ErrorInfo`` detail, as
  Google answers.
* Responses (E3): ``candidates[0].content.parts``: thought parts ``{"text", "thought": true}``
  only with ``includeThoughts``, text parts, ``functionCall`` parts whole with an ``id``, the
  first one carrying a ``thoughtSignature`` when thinking is on. ``finishReason`` ``STOP``
  (function calls too), ``MAX_TOKENS``, ``SAFETY`` (a scripted refusal). ``usageMetadata``:
  ``promptTokenCount`` (cached included), ``candidatesTokenCount`` (without thoughts),
  ``totalTokenCount``, and, only when not zero as proto3 JSON does, ``cachedContentTokenCount``
  and ``thoughtsTokenCount``. Then ``modelVersion`` and ``responseId``.
* Streams: each chunk is a whole response with only its new parts and the usage so far
  (cumulative, as Gemini's); the last carries ``finishReason`` and the final usage. There is no
  end marker. ``ttft_ms`` is slept before the first chunk. An ``error_event`` fault cuts the
  stream cleanly after ``after_events`` chunks: no ``finishReason``, no final usage (and, for the
  JSON array, no closing ``]``).
* Errors: ``{"error": {"code", "message", "status"[, "details"]}}`` with gRPC status names.
  Rate limits are 429 ``RESOURCE_EXHAUSTED`` with ``QuotaFailure`` and ``RetryInfo``
  (``retryDelay: "Ns"``) details and no ``retry-after`` or rate-limit headers, like Google.
  Faults: 429 likewise, 529 as 503 ``UNAVAILABLE``, 500 as 500 ``INTERNAL``.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.routing import Route

from kestrel.sim import _ids
from kestrel.sim._answers import Answer
from kestrel.sim._cache import CachePlan
from kestrel.sim._exchange import Exchange
from kestrel.sim._faults import Fault
from kestrel.sim._gemini_request import GeminiError, GeminiOptions, mint_signature, parse_count, parse_generate
from kestrel.sim._limits import Refusal, Window
from kestrel.sim._render import StreamPlan, text_slices
from kestrel.sim._request import MessagesRequest, RequestError
from kestrel.sim._responses import SSE_HEADERS, BytesResponse
from kestrel.sim._state import Simulator
from kestrel.sim._tokens import tokens_for_chars
from kestrel.sim.config import KeyLimits, ModelInfo

Headers = list[tuple[bytes, bytes]]
_ARRAY_HEADERS: Headers = [(b"content-type", b"application/json; charset=UTF-8")]

STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
FINISH_REASONS = {
    "end_turn": "STOP",
    "stop_sequence": "STOP",
    "pause_turn": "STOP",
    "tool_use": "STOP",
    "max_tokens": "MAX_TOKENS",
    "model_context_window_exceeded": "MAX_TOKENS",
    "refusal": "SAFETY",
}
_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or "
    "other form of API consumer identity to call this API."
)
_INTERNAL = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
_OVERLOADED = "The model is overloaded. Please try again later."
_QUOTA = {
    "requests": ("generate_content_requests", "GenerateRequestsPerMinutePerProjectPerModel"),
    "input tokens": ("generate_content_input_token_count", "GenerateContentInputTokensPerModelPerMinute"),
    "output tokens": ("generate_content_output_token_count", "GenerateContentOutputTokensPerModelPerMinute"),
}


class GeminiApi:
    """Handlers for the ``/v1beta`` routes of one simulator; also its ``Dialect``."""

    @staticmethod
    def rate_headers(limits: KeyLimits, window: Window, now: float) -> Headers:
        """None: Google sends no rate-limit headers."""
        return []

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._models = {m.id: model_object(m) for m in sim.config.models}
        self._exchange = Exchange(sim, self)

    def routes(self) -> list[Route]:
        return [
            Route("/v1beta/models", self.list_models, methods=["GET"]),
            Route("/v1beta/models/{target:path}", self.post, methods=["POST"]),
            Route("/v1beta/models/{target:path}", self.get_model, methods=["GET"]),
        ]

    async def post(self, request: Request) -> Any:
        method = request.path_params["target"].rpartition(":")[2]
        if method in ("generateContent", "streamGenerateContent"):
            return await self._exchange.handle(request)
        if method == "countTokens":
            return await self.count_tokens(request)
        entry, refused = self._begin(request, await request.body())
        return refused or _logged(entry, error_response(404, [], f"Method not found: {method}"))

    # -- the Dialect ---------------------------------------------------------------------------

    def base_headers(self, request_id: str) -> Headers:
        return []

    def api_key(self, request: Request) -> str | None:
        return request.headers.get("x-goog-api-key") or request.query_params.get("key") or None

    def auth_error(self, key: str | None, request_id: str, headers: Headers) -> BytesResponse:
        if key is None:
            return error_response(403, headers, _NO_KEY)
        info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
        return error_response(400, headers, "API key not valid. Please pass a valid API key.", [info])

    def parse(self, request: Request, body: bytes) -> tuple[MessagesRequest, GeminiOptions]:
        model, _, method = request.path_params["target"].rpartition(":")
        return parse_generate(
            body,
            model,
            stream=method == "streamGenerateContent",
            sse=request.query_params.get("alt") == "sse",
            require_signatures=self.sim.config.require_thought_signatures,
            model_info=self.sim.models.get(model),
        )

    def error(self, exc: RequestError, request_id: str, headers: Headers) -> BytesResponse:
        return error_response(exc.status, headers, exc.message, getattr(exc, "details", None))

    def model_not_found(self, model: str) -> RequestError:
        return GeminiError(
            f"models/{model} is not found for API version v1beta, or is not supported for generateContent. "
            "Call ListModels to see the list of available models and their supported methods.",
            404,
        )

    def fault_error(self, fault: Fault, streaming: bool, request_id: str, headers: Headers) -> BytesResponse:
        status, _ = fault.http_error(streaming) or (500, "api_error")
        if status == 429:
            message = f"Resource has been exhausted (e.g. check quota). Please retry in {fault.retry_after}s."
            return error_response(429, headers, message, [_retry_info(fault.retry_after)])
        if status == 529:
            return error_response(503, headers, _OVERLOADED)
        return error_response(500, headers, _INTERNAL)

    def rate_limited(
        self, refusal: Refusal, request: MessagesRequest, request_id: str, headers: Headers
    ) -> BytesResponse:
        metric, quota_id = _QUOTA[refusal.unit]
        message = (
            "You exceeded your current quota, please check your plan and billing details. For more information "
            "on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n"
            f"* Quota exceeded for metric: generativelanguage.googleapis.com/{metric}, limit: {refusal.limit}, "
            f"model: {request.model}\nPlease retry in {refusal.retry_after}s."
        )
        failure = {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": request.model},
                    "quotaValue": str(refusal.limit),
                }
            ],
        }
        help_links = {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        }
        return error_response(429, headers, message, [failure, help_links, _retry_info(refusal.retry_after)])

    def render(self, answer: Answer, request: MessagesRequest, options: Any, plan: CachePlan) -> bytes:
        return orjson.dumps(response_json(answer, request.model, plan, options))

    def stream(
        self, answer: Answer, request: MessagesRequest, options: Any, plan: CachePlan, chunk_tokens: int
    ) -> tuple[StreamPlan, Headers]:
        frames = chunk_plan(answer, request.model, plan, options, chunk_tokens)
        return frames, SSE_HEADERS if options.sse else _ARRAY_HEADERS

    # -- countTokens and models ----------------------------------------------------------------

    async def count_tokens(self, request: Request) -> BytesResponse:
        body = await request.body()
        entry, refused = self._begin(request, body)
        if refused is not None:
            return refused
        model = request.path_params["target"].rpartition(":")[0]
        try:
            req = parse_count(body, model)
        except RequestError as exc:
            return _logged(entry, self.error(exc, "", []))
        return _logged(entry, BytesResponse(200, orjson.dumps({"totalTokens": req.prompt.total_tokens}), []))

    async def list_models(self, request: Request) -> BytesResponse:
        entry, refused = self._begin(request, b"")
        listing = orjson.dumps({"models": list(self._models.values())})
        return refused or _logged(entry, BytesResponse(200, listing, []))

    async def get_model(self, request: Request) -> BytesResponse:
        entry, refused = self._begin(request, b"")
        if refused is not None:
            return refused
        target = request.path_params["target"]
        model = self._models.get(target)
        if model is None:
            return _logged(entry, error_response(404, [], f"models/{target} is not found"))
        return _logged(entry, BytesResponse(200, orjson.dumps(model), []))

    def _begin(self, request: Request, body: bytes) -> tuple[dict[str, Any], BytesResponse | None]:
        """Log a request that skips the exchange; its log entry and the auth refusal, if any."""
        rid = _ids.request_id()
        entry = self.sim.log.record(request.scope, body, rid)
        key = self.api_key(request)
        if not key or self.sim.limits_for(key) is None:
            return entry, _logged(entry, self.auth_error(key, rid, []))
        return entry, None


def _logged(entry: dict[str, Any], response: BytesResponse) -> BytesResponse:
    entry["status"] = response.status
    return response


def model_object(model: ModelInfo) -> dict[str, Any]:
    return {
        "name": f"models/{model.id}",
        "version": "001",
        "displayName": model.display_name,
        "inputTokenLimit": model.max_input_tokens,
        "outputTokenLimit": model.max_tokens,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "thinking": True,
    }


def error_response(
    status: int, headers: Headers, message: str, details: list[dict[str, Any]] | None = None
) -> BytesResponse:
    error: dict[str, Any] = {"code": status, "message": message, "status": STATUS.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return BytesResponse(status, orjson.dumps({"error": error}), headers)


def _retry_info(seconds: int) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{seconds}s"}


# -- rendering -----------------------------------------------------------------------------------


def usage_metadata(plan: CachePlan, candidates: int, thoughts: int) -> dict[str, Any]:
    """E3's usageMetadata; zero-valued optional counts are left out, as proto3 JSON does."""
    prompt = plan.input_tokens + plan.cache_creation_input_tokens + plan.cache_read_input_tokens
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
    }
    if plan.cache_read_input_tokens:
        usage["cachedContentTokenCount"] = plan.cache_read_input_tokens
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def response_json(answer: Answer, model: str, plan: CachePlan, options: GeminiOptions) -> dict[str, Any]:
    """The whole ``GenerateContentResponse``."""
    parts: list[dict[str, Any]] = []
    for part, _ in _answer_parts(answer, options, chunk=0):
        last = parts[-1] if parts else None
        if last is not None and "text" in part and "text" in last and last.get("thought") == part.get("thought"):
            last["text"] += part["text"]  # one text (or thought) part per block run, as Gemini answers
        else:
            parts.append(dict(part))
    candidate = {
        "content": {"parts": parts or [{"text": ""}], "role": "model"},
        "finishReason": FINISH_REASONS[answer.stop_reason],
        "index": 0,
    }
    thoughts = answer.thinking_tokens
    return {
        "candidates": [candidate],
        "usageMetadata": usage_metadata(plan, answer.output_tokens - thoughts, thoughts),
        "modelVersion": model,
        "responseId": _ids.opaque_id(22),
    }


def chunk_plan(answer: Answer, model: str, plan: CachePlan, options: GeminiOptions, chunk_tokens: int) -> StreamPlan:
    """One whole response per new part; the last adds ``finishReason`` and the final usage."""
    response_id = _ids.opaque_id(22)
    pieces = _answer_parts(answer, options, chunk=chunk_tokens * 4) or [({"text": ""}, 0)]
    thoughts_total = answer.thinking_tokens
    candidates_total = answer.output_tokens - thoughts_total
    out = StreamPlan(first_content=0)
    seen_candidates = 0
    seen_thoughts = 0 if options.include_thoughts else thoughts_total
    for index, (part, tokens) in enumerate(pieces):
        if part.get("thought"):
            seen_thoughts = min(thoughts_total, seen_thoughts + tokens)
        else:
            seen_candidates = min(candidates_total, seen_candidates + tokens)
        candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}, "index": 0}
        final = index == len(pieces) - 1
        if final:
            candidate["finishReason"] = FINISH_REASONS[answer.stop_reason]
            seen_candidates, seen_thoughts = candidates_total, thoughts_total
        data = orjson.dumps(
            {
                "candidates": [candidate],
                "usageMetadata": usage_metadata(plan, seen_candidates, seen_thoughts),
                "modelVersion": model,
                "responseId": response_id,
            }
        )
        if options.sse:
            frame = b"data: " + data + b"\r\n\r\n"
        else:
            frame = (b"[" if index == 0 else b",\r\n") + data + (b"]" if final else b"")
        out.add_raw(frame, tokens)
    return out


def _answer_parts(answer: Answer, options: GeminiOptions, chunk: int) -> list[tuple[dict[str, Any], int]]:
    """The answer's parts with their output tokens; text cut in ``chunk``-character slices (0: whole)."""
    parts: list[tuple[dict[str, Any], int]] = []
    signed = False
    for block in answer.content:
        kind = block["type"]
        if kind in ("text", "thinking"):
            if kind == "thinking" and not options.include_thoughts:
                continue
            text = block["text"] if kind == "text" else block["thinking"]
            for piece in text_slices(text, chunk) if chunk else [text]:
                if piece:
                    part: dict[str, Any] = {"text": piece, "thought": True} if kind == "thinking" else {"text": piece}
                    parts.append((part, tokens_for_chars(len(piece))))
        elif kind == "tool_use":
            part = {"functionCall": {"id": block["id"], "name": block["name"], "args": block["input"]}}
            if options.thinking and not signed:
                part["thoughtSignature"] = mint_signature(block["name"])
                signed = True
            parts.append((part, tokens_for_chars(len(block["name"]) + len(orjson.dumps(block["input"])))))
    return parts
