"""The OpenAI side of the sim: ``POST /v1/chat/completions`` (and ``/v1/models`` in OpenAI's shape).

A chat completion takes the shared path of ``_exchange`` with this module as its ``Dialect``;
``_openai_request`` parses and validates the body. Same key table, windows, prompt cache,
scripts, markers and faults as the Anthropic API; only the wire differs (PROTOCOLS.md B):

* Auth: ``Authorization: Bearer KEY`` only. Missing or refused keys are 401 in OpenAI's envelope
  ``{"error": {"message", "type", "param", "code"}}`` (``code: invalid_api_key`` for a refused one).
* The answer: thinking (``reasoning_effort``) is sent DeepSeek-style as
  ``message.reasoning_content`` / streamed ``delta.reasoning_content`` and counted in
  ``completion_tokens_details.reasoning_tokens`` (and in ``completion_tokens``). Text blocks are
  joined into ``content``; tool calls get ``call_`` ids and compact JSON ``arguments``.
  ``finish_reason``: ``stop`` (end of turn, stop string), ``length`` (max tokens),
  ``tool_calls``, ``content_filter`` (a scripted ``refusal``).
* Usage: ``prompt_tokens`` is the whole prompt, cached tokens included;
  ``prompt_tokens_details.cached_tokens`` is the cached part (the longest prefix of at least
  ``min_cache_tokens`` seen before on the key: OpenAI caches automatically).
* Streams (B3): a role chunk, ``reasoning_content`` / ``content`` deltas, ``tool_calls`` deltas
  (the first fragment carries ``index``, ``id``, ``type`` and ``function.name`` with empty
  arguments; later ones only ``index`` and argument slices that split the JSON mid-string), a
  chunk with ``finish_reason``, then with ``stream_options.include_usage`` the ``choices: []``
  usage chunk (earlier chunks then carry ``usage: null``), then ``data: [DONE]``. ``ttft_ms`` is
  slept after the role chunk. An ``error_event`` fault sends ``data: {"error": {...}}`` and ends.
* Rate limits: 429 ``{"type": "requests"|"tokens", "code": "rate_limit_exceeded"}`` with an
  integer ``retry-after``. Limited keys get ``x-ratelimit-{limit,remaining,reset}-requests`` and
  ``-tokens`` (input and output budgets summed) on every answer; resets are durations rounded up
  to the millisecond, written like Go's (``12ms``, ``1.5s``, ``6m0s``). Faults: 429 as a rate
  limit, 529 as 503 ``server_error`` ("overloaded"), 500 as 500 ``server_error``.
* Every answer carries ``x-request-id``.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.routing import Route

from kestrel.sim import _ids
from kestrel.sim._answers import Answer
from kestrel.sim._cache import CachePlan
from kestrel.sim._exchange import Exchange
from kestrel.sim._faults import Fault
from kestrel.sim._limits import Refusal, Window
from kestrel.sim._openai_request import ChatOptions, parse_chat
from kestrel.sim._render import StreamPlan, json_slices, text_slices
from kestrel.sim._request import MessagesRequest, RequestError
from kestrel.sim._responses import SSE_HEADERS, BytesResponse
from kestrel.sim._state import Simulator
from kestrel.sim._tokens import tokens_for_chars
from kestrel.sim.config import KeyLimits, ModelInfo

Headers = list[tuple[bytes, bytes]]

FINGERPRINT = "fp_kestrelsim"
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}
_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
_OVERLOADED = "The server is overloaded or not ready yet."
_ERROR_FRAME = (
    b'data: {"error":{"message":"' + _SERVER_ERROR.encode() + b'","type":"server_error","param":null,"code":null}}\n\n'
)
_DONE = b"data: [DONE]\n\n"
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header using "
    "Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if "
    "you're accessing the API from your browser and are prompted for a username and password. You can "
    "obtain an API key from https://platform.openai.com/account/api-keys."
)


class OpenAIApi:
    """Handlers for the OpenAI routes of one simulator; also its ``Dialect``."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._models = {m.id: model_object(m) for m in sim.config.models}
        self._exchange = Exchange(sim, self)

    def routes(self) -> list[Route]:
        return [Route("/v1/chat/completions", self._exchange.handle, methods=["POST"])]

    # -- the Dialect ---------------------------------------------------------------------------

    @staticmethod
    def rate_headers(limits: KeyLimits, window: Window, now: float) -> Headers:
        """``x-ratelimit-*``: requests, and tokens as input plus output budgets."""
        reset = duration(window.end - now).encode()
        headers: Headers = []
        if limits.requests_per_window:
            remaining = max(0, limits.requests_per_window - window.requests)
            headers += _family(b"requests", limits.requests_per_window, remaining, reset)
        token_limit = limits.input_tokens_per_window + limits.output_tokens_per_window
        if token_limit:
            remaining = 0
            if limits.input_tokens_per_window:
                remaining += max(0, limits.input_tokens_per_window - window.input_tokens)
            if limits.output_tokens_per_window:
                remaining += max(0, limits.output_tokens_per_window - window.output_tokens)
            headers += _family(b"tokens", token_limit, remaining, reset)
        return headers

    def base_headers(self, request_id: str) -> Headers:
        return [(b"x-request-id", request_id.encode())]

    def api_key(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        return auth[7:].strip() or None if auth[:7].lower() == "bearer " else None

    def auth_error(self, key: str | None, request_id: str, headers: Headers) -> BytesResponse:
        if key is None:
            return error_response(401, headers, _NO_KEY)
        shown = key[:6] + "*" * max(0, len(key) - 10) + key[-4:] if len(key) > 10 else "*" * len(key)
        message = (
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        return error_response(401, headers, message, code="invalid_api_key")

    def parse(self, request: Request, body: bytes) -> tuple[MessagesRequest, ChatOptions]:
        return parse_chat(body, self.sim.models)

    def error(self, exc: RequestError, request_id: str, headers: Headers) -> BytesResponse:
        return error_response(exc.status, headers, exc.message, param=exc.param, code=exc.code)

    def model_not_found(self, model: str) -> RequestError:
        return RequestError(
            f"The model `{model}` does not exist or you do not have access to it.", 404, code="model_not_found"
        )

    def fault_error(self, fault: Fault, streaming: bool, request_id: str, headers: Headers) -> BytesResponse:
        status, _ = fault.http_error(streaming) or (500, "api_error")
        if status == 429:
            headers = [*headers, (b"retry-after", str(fault.retry_after).encode())]
            message = f"Rate limit reached for requests. Please try again in {fault.retry_after}s."
            return error_response(429, headers, message, "requests", code="rate_limit_exceeded")
        if status == 529:
            return error_response(503, headers, _OVERLOADED, "server_error")
        return error_response(500, headers, _SERVER_ERROR, "server_error")

    def rate_limited(
        self, refusal: Refusal, request: MessagesRequest, request_id: str, headers: Headers
    ) -> BytesResponse:
        kind, short = ("requests", "RPM") if refusal.unit == "requests" else ("tokens", "TPM")
        period = f"per min ({short})" if refusal.window_s == 60 else f"per {refusal.window_s:g}s"
        message = (
            f"Rate limit reached for {request.model} in organization org-kestrelsim on {kind} {period}: "
            f"Limit {refusal.limit}, Used {refusal.used}, Requested {refusal.requested}. Please try again in "
            f"{refusal.retry_after}s. Visit https://platform.openai.com/account/rate-limits to learn more."
        )
        extra = [(b"retry-after", str(refusal.retry_after).encode()), *refusal.headers]
        return error_response(429, [*headers, *extra], message, kind, code="rate_limit_exceeded")

    def render(self, answer: Answer, request: MessagesRequest, options: Any, plan: CachePlan) -> bytes:
        return completion_json(answer, request.model, plan)

    def stream(
        self, answer: Answer, request: MessagesRequest, options: Any, plan: CachePlan, chunk_tokens: int
    ) -> tuple[StreamPlan, Headers]:
        include_usage = isinstance(options, ChatOptions) and options.include_usage
        return chunk_plan(answer, request.model, plan, chunk_tokens, include_usage), SSE_HEADERS

    # -- /v1/models in OpenAI's shape ----------------------------------------------------------

    async def list_models(self, request: Request) -> BytesResponse:
        refused, headers = self._models_auth(request)
        if refused is not None:
            return refused
        listing = {"object": "list", "data": list(self._models.values())}
        return BytesResponse(200, orjson.dumps(listing), headers)

    async def get_model(self, request: Request) -> BytesResponse:
        refused, headers = self._models_auth(request)
        if refused is not None:
            return refused
        model_id = request.path_params["model_id"]
        model = self._models.get(model_id)
        if model is None:
            message = f"The model '{model_id}' does not exist"
            return error_response(404, headers, message, param="model", code="model_not_found")
        return BytesResponse(200, orjson.dumps(model), headers)

    def _models_auth(self, request: Request) -> tuple[BytesResponse | None, Headers]:
        rid = _ids.request_id()
        entry = self.sim.log.record(request.scope, b"", rid)
        headers = self.base_headers(rid)
        key = self.api_key(request)
        refused = self.auth_error(key, rid, headers) if not key or self.sim.limits_for(key) is None else None
        entry["status"] = refused.status if refused is not None else 200
        return refused, headers


def wants_openai_shape(request: Request) -> bool:
    """True for a ``/v1/models`` call from an OpenAI client (see ``_api``'s docstring)."""
    headers = request.headers
    bearer = headers.get("authorization", "")[:7].lower() == "bearer "
    return bearer and "x-api-key" not in headers and "anthropic-version" not in headers


def model_object(model: ModelInfo) -> dict[str, Any]:
    created = int(datetime.fromisoformat(model.created_at.replace("Z", "+00:00")).timestamp())
    return {"id": model.id, "object": "model", "created": created, "owned_by": "system"}


def error_response(
    status: int,
    headers: Headers,
    message: str,
    error_type: str = "invalid_request_error",
    *,
    param: str | None = None,
    code: str | None = None,
) -> BytesResponse:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return BytesResponse(status, orjson.dumps(body), headers)


def duration(seconds: float) -> str:
    """A wait as OpenAI writes it (Go durations), rounded up to the millisecond: never early."""
    ms = max(0, math.ceil(round(seconds * 1000, 6)))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, frac = divmod(rest, 1000)
    text = f"{secs}.{frac:03d}".rstrip("0") if frac else str(secs)
    if hours:
        return f"{hours}h{minutes}m{text}s"
    if minutes:
        return f"{minutes}m{text}s"
    return f"{text}s"


# -- rendering -----------------------------------------------------------------------------------


def usage(answer: Answer, plan: CachePlan) -> dict[str, Any]:
    """B2's usage: ``prompt_tokens`` includes the cached part."""
    prompt_tokens = plan.input_tokens + plan.cache_creation_input_tokens + plan.cache_read_input_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": prompt_tokens + answer.output_tokens,
        "prompt_tokens_details": {"cached_tokens": plan.cache_read_input_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": answer.thinking_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion_json(answer: Answer, model: str, plan: CachePlan) -> bytes:
    """The ``chat.completion`` body (B2)."""
    texts, reasoning, calls = [], [], []
    for block in answer.content:
        kind = block["type"]
        if kind == "text":
            texts.append(block["text"])
        elif kind == "thinking":
            reasoning.append(block["thinking"])
        elif kind == "tool_use":
            calls.append(_tool_call(block))
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
        "annotations": [],
    }
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    return orjson.dumps(
        {
            "id": _completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": FINISH_REASONS[answer.stop_reason],
                }
            ],
            "usage": usage(answer, plan),
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
    )


def chunk_plan(answer: Answer, model: str, plan: CachePlan, chunk_tokens: int, include_usage: bool) -> StreamPlan:
    """The ``chat.completion.chunk`` frames of a stream, in B3 order."""
    chunk = chunk_tokens * 4
    head = {
        "id": _completion_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    out = StreamPlan(first_content=1, error_frame=_ERROR_FRAME)

    def add(delta: dict[str, Any], tokens: int = 0, finish: str | None = None) -> None:
        frame: dict[str, Any] = {
            **head,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            frame["usage"] = None
        out.add_raw(b"data: " + orjson.dumps(frame) + b"\n\n", tokens)

    add({"role": "assistant", "content": "", "refusal": None})
    tool_index = 0
    for block in answer.content:
        kind = block["type"]
        if kind in ("text", "thinking"):
            field = "content" if kind == "text" else "reasoning_content"
            for piece in text_slices(block[kind], chunk):
                if piece:
                    add({field: piece}, tokens_for_chars(len(piece)))
        elif kind == "tool_use":
            call = _tool_call(block)
            first = {**call, "index": tool_index, "function": {"name": call["function"]["name"], "arguments": ""}}
            add({"tool_calls": [first]}, tokens_for_chars(len(block["name"])))
            for piece in json_slices(call["function"]["arguments"], chunk):
                fragment = {"index": tool_index, "function": {"arguments": piece}}
                add({"tool_calls": [fragment]}, tokens_for_chars(len(piece)))
            tool_index += 1
    add({}, finish=FINISH_REASONS[answer.stop_reason])
    if include_usage:
        frame = {**head, "choices": [], "usage": usage(answer, plan)}
        out.add_raw(b"data: " + orjson.dumps(frame) + b"\n\n")
    out.add_raw(_DONE)
    return out


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    arguments = orjson.dumps(block["input"]).decode()
    return {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}


def _completion_id() -> str:
    return "chatcmpl-" + _ids.opaque_id(29)


def _family(name: bytes, limit: int, remaining: int, reset: bytes) -> Headers:
    return [
        (b"x-ratelimit-limit-" + name, str(limit).encode()),
        (b"x-ratelimit-remaining-" + name, str(remaining).encode()),
        (b"x-ratelimit-reset-" + name, reset),
    ]
