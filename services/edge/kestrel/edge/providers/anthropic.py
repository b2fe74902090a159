"""The Anthropic Messages API as the upstream of a request that arrived in another dialect.

An Anthropic client talking to an Anthropic upstream never comes here: that is passthrough, bytes
forwarded untouched. This codec serves translation (an OpenAI or Gemini client, or a fallback chain
that crossed families), so ``encode`` also makes a foreign request acceptable to Anthropic: it
fills the required ``max_tokens``, keeps only Anthropic's own extra fields, and drops what
Anthropic would answer with a 400 (unsigned thinking, thinking while a tool is forced, sampling
settings thinking forbids, empty text blocks).

Structured output (``Request.response_format``): a ``json_schema`` goes as ``output_config.format``
``{type: "json_schema", schema}`` (next to any ``effort``); OpenAI's ``name``, ``strict`` and
``description`` have no Anthropic field and are dropped (Anthropic always constrains decoding to the
schema). The schema is sent as the client wrote it: Anthropic reportedly refuses some JSON Schema
features (objects without ``additionalProperties: false``, numeric and length bounds; third-party
summaries of its docs, unverified here), and a 400 naming the schema beats silently answering to
a different contract. OpenAI's ``json_object`` (any JSON object) has no Anthropic equivalent and
is **left off**: a ``{"type": "object"}`` schema is not known to be accepted (Anthropic wants
``additionalProperties: false``, which would force ``{}``), and OpenAI's JSON mode already makes
the client say "JSON" in its prompt, which Claude follows. Structured output is GA on Claude 4.5
models and later; older models are expected to refuse it (not checked here).

The stream decoder is a small state machine fed bytes in any chunking: ``FrameCutter`` releases
whole SSE events only, so a chunk that ends mid line or mid UTF-8 character is simply held back.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from kestrel.edge.canonical import (
    Block,
    BlockStart,
    BlockStop,
    Event,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
    RedactedThinking,
    Request,
    Response,
    SignatureDelta,
    StreamError,
    Text,
    TextDelta,
    Thinking,
    ThinkingConfig,
    ThinkingDelta,
    ToolChoiceKind,
    ToolInputDelta,
    ToolResult,
    ToolUse,
    Usage,
)
from kestrel.edge.errors import UpstreamUnavailable
from kestrel.edge.formats.anthropic import Invalid, parse_event, parse_response, request_json
from kestrel.edge.providers.base import Encoded, UpstreamFailure
from kestrel.edge.providers.capabilities import UNKNOWN, ModelCaps, ModelCatalog, effort_of, fit_to_model
from kestrel.edge.sse import FrameCutter, iter_events

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 8192
"""``max_tokens`` when the client did not say (OpenAI makes it optional; Anthropic requires it)."""
MIN_THINKING_BUDGET = 1024

EXTRA_FIELDS = frozenset(
    {
        "context_management",
        "output_config",
        "service_tier",
        "container",
        "inference_geo",
        "mcp_servers",
        "cache_control",
    }
)
"""``Request.extra`` keys sent upstream. Extras from another dialect (OpenAI ``seed``, ``n`` …)
would earn ``400 …: Extra inputs are not permitted`` (PROTOCOLS D7), so only Anthropic's own pass."""

_KIND_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class AnthropicCodec:
    """``Codec`` for ``POST /v1/messages``."""

    kind = "anthropic"

    def __init__(
        self,
        *,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        clock: Callable[[], float] = time.time,
        catalog: ModelCatalog | None = None,
    ) -> None:
        self._default_max_tokens = default_max_tokens
        self._clock = clock
        """Only to turn an HTTP-date ``retry-after`` into seconds."""
        self.catalog = catalog
        """What each model accepts (``capabilities``); None knows nothing (``codec_for`` gives one)."""

    def encode(self, request: Request, model: str) -> Encoded:
        caps = self.catalog.caps(model) if self.catalog is not None else UNKNOWN
        body = request_json(fit_request(request, model, self._default_max_tokens, caps))
        body["stream"] = request.stream
        headers = ((b"content-type", b"application/json"), (b"anthropic-version", ANTHROPIC_VERSION.encode()))
        return Encoded("/v1/messages", headers, orjson.dumps(body))

    def decode_response(self, body: bytes) -> Response:
        try:
            return parse_response(body)
        except Invalid as exc:
            raise UpstreamUnavailable(f"upstream sent a malformed message: {exc}") from None

    def stream_decoder(self, request: Request) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder()

    def decode_error(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> UpstreamFailure:
        kind, message = _error_envelope(body)
        fallback = _KIND_BY_STATUS.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
        if status == 529 or not kind:
            kind = fallback
        if not message:
            snippet = body.decode("utf-8", "replace").strip()[:200]
            message = f"upstream answered HTTP {status}" + (f": {snippet}" if snippet else "")
        return UpstreamFailure(status, kind, message, _retry_after(headers, self._clock))


EFFORT_BUDGETS = {"minimal": 1024, "low": 4096, "medium": 10_000, "high": 24_000, "xhigh": 32_000, "max": 32_000}
"""Thinking budget for an effort word, on a model that takes only budgets; low, medium and high
fall in ``effort_of``'s buckets for those words, so the budget reads back as the same effort."""


def fit_request(
    request: Request, model: str, default_max_tokens: int = DEFAULT_MAX_TOKENS, caps: ModelCaps = UNKNOWN
) -> Request:
    """``request`` as Anthropic will accept it, for ``model`` (which ``caps`` describes); a no-op on
    an Anthropic-born request within the model's limits.

    ``caps`` first (``fit_to_model``: ``max_tokens`` clamped to the model's output cap, thinking
    dropped on a model without it); a default ``max_tokens`` is capped the same way. A model that
    takes only budgets gets adaptive thinking (an OpenAI client's effort) as ``EFFORT_BUDGETS``
    says, and no ``output_config.effort``. The thinking budget then fits below ``max_tokens``.
    """
    request = fit_to_model(request, caps)
    thinking = request.thinking
    forced = request.tool_choice is not None and request.tool_choice.kind in (ToolChoiceKind.ANY, ToolChoiceKind.TOOL)
    max_tokens = request.max_tokens
    if max_tokens is None:
        max_tokens = default_max_tokens + (thinking.budget_tokens if thinking.enabled else 0)
        if caps.max_output_tokens is not None:
            max_tokens = min(max_tokens, caps.max_output_tokens)
    if caps.thinking in ("budget", "none"):
        # Adaptive thinking and ``output_config.effort`` came with later models: these take a budget.
        if thinking.enabled and not thinking.budget_tokens:
            thinking = ThinkingConfig(enabled=True, budget_tokens=EFFORT_BUDGETS.get(effort_of(thinking), 10_000))
        thinking = dataclasses.replace(thinking, effort="")
    if thinking.enabled and thinking.budget_tokens:
        budget = min(max(thinking.budget_tokens, MIN_THINKING_BUDGET), max_tokens - 1)
        thinking = dataclasses.replace(thinking, budget_tokens=budget)
        if budget < MIN_THINKING_BUDGET:
            thinking = ThinkingConfig(effort=thinking.effort)
    messages = _sendable(request.messages)
    if thinking.enabled and turn_missing_its_thinking(messages) is not None:
        # "A final assistant message must start with a thinking block": the client (or a fallback
        # from another provider) lost it and the edge kept none, so this turn goes without.
        thinking = ThinkingConfig(effort=thinking.effort)
    if thinking.enabled and forced:
        # "Thinking may not be enabled when tool_choice forces tool use": the forced call is what
        # the client asked for explicitly, so thinking gives way.
        thinking = ThinkingConfig(effort=thinking.effort)
    temperature, top_p, top_k = request.temperature, request.top_p, request.top_k
    if temperature is not None:
        temperature = min(temperature, 1.0)  # OpenAI allows up to 2
    if thinking.enabled:
        temperature, top_k = None, None
        top_p = top_p if top_p is not None and top_p >= 0.95 else None
    return dataclasses.replace(
        request,
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        thinking=thinking,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        extra={k: v for k, v in request.extra.items() if k in EXTRA_FIELDS},
    )


_FOREIGN_SIGNATURES = ("gemini:",)
"""Signature tags other codecs put on thinking they issued (a conversation that fell back here)."""


def _sendable(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """Drop blocks Anthropic refuses: empty text, and thinking without a signature it can verify."""
    out = []
    for message in messages:
        content = tuple(
            b
            for b in message.content
            if not (isinstance(b, Text) and not b.text) and not (isinstance(b, Thinking) and not _verifiable(b))
        )
        if content:
            out.append(dataclasses.replace(message, content=content))
    return tuple(out)


def turn_missing_its_thinking(messages: tuple[Message, ...]) -> int | None:
    """The assistant turn whose tool calls the last message answers, when it does not start with
    thinking Anthropic can verify; None otherwise (no tool loop, or the thinking is there).

    With thinking on, Anthropic refuses such a request ("a final `assistant` message must start
    with a thinking block"): the edge then puts back the thinking it kept (``edge.signatures``) or,
    failing that, ``fit_request`` sends the turn without thinking.
    """
    if not messages or messages[-1].role != "user":
        return None
    if not any(isinstance(b, ToolResult) for b in messages[-1].content):
        return None
    for index in range(len(messages) - 2, -1, -1):
        message = messages[index]
        if message.role == "assistant":
            if not any(isinstance(b, ToolUse) for b in message.content) or _verifiable(message.content[0]):
                return None
            return index
    return None


def _verifiable(block: Block) -> bool:
    """Thinking Anthropic accepts back: redacted, or signed by Anthropic (not another provider)."""
    if isinstance(block, RedactedThinking):
        return True
    return isinstance(block, Thinking) and bool(block.signature) and not block.signature.startswith(_FOREIGN_SIGNATURES)


def _error_envelope(body: bytes) -> tuple[str, str]:
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", ""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "", ""
    kind, message = error.get("type"), error.get("message")
    return (kind if isinstance(kind, str) else ""), (message if isinstance(message, str) else "")


def _retry_after(headers: list[tuple[bytes, bytes]], clock: Callable[[], float]) -> float:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    found = {name.decode("latin-1").lower(): value.decode("latin-1").strip() for name, value in headers}
    try:
        if "retry-after-ms" in found:
            return max(0.0, float(found["retry-after-ms"]) / 1000)
        value = found.get("retry-after", "")
        if not value:
            return 0.0
        try:
            seconds = float(value)
        except ValueError:
            seconds = parsedate_to_datetime(value).timestamp() - clock()
        return max(0.0, seconds) if math.isfinite(seconds) else 0.0
    except (ValueError, TypeError):
        return 0.0


class _State(enum.Enum):
    BEFORE_START = "state_before_start"
    STREAMING = "state_streaming"
    DONE = "state_done"
    """``message_stop`` or an error was seen; anything after is ignored."""


class AnthropicStreamDecoder:
    """Anthropic SSE bytes → canonical events.

    Block indexes are renumbered densely from 0 because blocks with no canonical form (server-tool
    calls and results) are skipped with their deltas. ``message_delta`` usage is read over what
    ``message_start`` said, so the canonical ``MessageDelta`` is cumulative even when the upstream
    leaves input counts out. A cut before ``message_stop`` is reported by ``finish`` as an error,
    never as a normal end: the client would otherwise take half an answer for a whole one.
    """

    def __init__(self) -> None:
        self._cutter = FrameCutter()
        self._state = _State.BEFORE_START
        self._usage = Usage()
        self._indexes: dict[int, int] = {}
        """Upstream block index → canonical index, for the blocks kept."""
        self._skipped: set[int] = set()

    @property
    def state(self) -> str:
        return self._state.value

    @property
    def done(self) -> bool:
        """``message_stop`` or an error was decoded: the stream needs nothing more."""
        return self._state is _State.DONE

    def feed(self, chunk: bytes) -> list[Event]:
        if self._state is _State.DONE:
            return []
        return self._frames(self._cutter.feed(chunk))

    def finish(self) -> list[Event]:
        if self._state is _State.DONE:
            return []
        # A last event without its blank line still counts when it is whole; half an event is
        # just the cut, reported as such below rather than as malformed data.
        events = self._frames(self._cutter.pending + b"\n\n", cut=True) if self._cutter.pending.strip() else []
        if not self.done:
            events.append(StreamError("api_error", "upstream stream ended before message_stop"))
            self._state = _State.DONE
        return events

    def _frames(self, frames: bytes, *, cut: bool = False) -> list[Event]:
        events: list[Event] = []
        for _name, data in iter_events(frames):
            if self._state is _State.DONE:
                break
            if not data.strip():
                continue
            try:
                parsed = orjson.loads(data)
                if not isinstance(parsed, dict):
                    raise Invalid("", "event data is not a JSON object")
                event = self._event(parsed)
            except (orjson.JSONDecodeError, Invalid) as exc:
                if cut:
                    break
                events.append(StreamError("api_error", f"upstream sent a malformed stream event: {exc}"))
                self._state = _State.DONE
                break
            if event is not None:
                events.append(event)
        return events

    def _event(self, data: dict[str, Any]) -> Event | None:
        event = parse_event(data, self._usage)
        if event is None:
            if data.get("type") == "content_block_start" and isinstance(data.get("index"), int):
                self._skipped.add(data["index"])
            return None
        match event:
            case MessageStart():
                if self._state is not _State.BEFORE_START:
                    return None  # a second message_start would make the SDK throw; drop it
                self._state = _State.STREAMING
                self._usage = event.usage
            case BlockStart():
                self._skipped.discard(event.index)
                self._indexes[event.index] = new = len(self._indexes)
                return dataclasses.replace(event, index=new)
            case TextDelta() | ThinkingDelta() | SignatureDelta() | ToolInputDelta() | BlockStop():
                if event.index in self._skipped or event.index not in self._indexes:
                    return None
                return dataclasses.replace(event, index=self._indexes[event.index])
            case MessageDelta():
                self._usage = event.usage
            case MessageStop() | StreamError():
                self._state = _State.DONE
        return event
