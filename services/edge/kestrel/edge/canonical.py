"""The neutral model every dialect and provider translates through.

Client dialects parse into a ``Request`` and render ``Event``s (or a ``Response``); providers encode
a ``Request`` for their upstream and decode what comes back into ``Event``s. N dialects and M
providers then need N + M translators, not N x M. Passthrough (client dialect equals upstream
dialect) never comes here: the bytes are forwarded untouched.

The shapes follow Anthropic's Messages API, the richest of the three: blocks with indexes,
thinking with signatures, cache markers, usage split into uncached, cache-read and cache-write
input. What one side cannot express is dropped by that side's translator, never here.

Usage arithmetic: ``input_tokens`` counts only the uncached part of the prompt; the whole prompt is
``input_tokens + cache_read_input_tokens + cache_creation_input_tokens`` (Anthropic's convention;
OpenAI's ``prompt_tokens`` and Gemini's ``promptTokenCount`` include cached tokens and are split on
the way in).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

# -- content blocks ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheControl:
    """A prompt-cache breakpoint (Anthropic ``cache_control``); other providers ignore it."""

    ttl: str = "5m"
    """``5m`` or ``1h``."""


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    cache: CacheControl | None = None
    citations: tuple[dict[str, Any], ...] = ()
    """Anthropic citation objects, carried opaquely."""


@dataclass(frozen=True, slots=True)
class Image:
    media_type: str = ""
    """``image/png`` etc.; empty for a URL whose type is unknown."""
    data: str = ""
    """Base64 payload; empty when ``url`` is set."""
    url: str = ""
    cache: CacheControl | None = None


@dataclass(frozen=True, slots=True)
class Document:
    """A PDF or text document; targets that cannot carry one get its text or nothing."""

    media_type: str = ""
    data: str = ""
    """Base64 for PDFs, plain text for ``text/plain``."""
    url: str = ""
    title: str = ""
    context: str = ""
    cache: CacheControl | None = None


@dataclass(frozen=True, slots=True)
class ToolUse:
    id: str
    name: str
    input: dict[str, Any]
    signature: str = ""
    """A provider's opaque token bound to this call (Gemini ``thoughtSignature``), sent back as is."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    tool_use_id: str
    content: tuple[Text | Image | Document, ...]
    is_error: bool = False
    cache: CacheControl | None = None


@dataclass(frozen=True, slots=True)
class Thinking:
    thinking: str
    signature: str = ""
    """Opaque proof the upstream issued this thinking; must travel back unchanged."""


@dataclass(frozen=True, slots=True)
class RedactedThinking:
    data: str


Block = Text | Image | Document | ToolUse | ToolResult | Thinking | RedactedThinking


# -- request ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    """``user``, ``assistant``, or ``system`` for an instruction in the middle of a conversation."""
    content: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str = ""
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    cache: CacheControl | None = None


class ToolChoiceKind(enum.Enum):
    AUTO = "auto"
    ANY = "any"
    """The model must call some tool (OpenAI ``required``, Gemini ``ANY``)."""
    TOOL = "tool"
    """The model must call the tool named in ``ToolChoice.name``."""
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ToolChoice:
    kind: ToolChoiceKind = ToolChoiceKind.AUTO
    name: str = ""
    disable_parallel: bool = False


@dataclass(frozen=True, slots=True)
class ThinkingConfig:
    enabled: bool = False
    budget_tokens: int = 0
    """0 when the upstream should decide (Anthropic ``adaptive``)."""
    effort: str = ""
    """``low``/``medium``/``high`` when the client spoke in effort, not tokens."""


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """Structured output: the answer's text must be JSON (OpenAI ``response_format``, Anthropic
    ``output_config.format``, Gemini ``responseMimeType`` and ``responseSchema``). Plain text is no
    ``ResponseFormat`` at all (``Request.response_format`` None, OpenAI's ``{type: "text"}``)."""

    kind: str
    """``json_object`` (any JSON object: OpenAI's JSON mode) or ``json_schema`` (JSON matching ``schema``)."""
    schema: dict[str, Any] | None = None
    """The JSON Schema the answer must match; None for ``json_object`` (or a ``json_schema`` the
    client sent without one, which OpenAI allows)."""
    name: str = ""
    """OpenAI's ``json_schema.name``; empty when the client's API has none (Anthropic)."""
    strict: bool | None = None
    """OpenAI's ``json_schema.strict``; None when the client did not say."""
    description: str = ""
    """OpenAI's ``json_schema.description``."""


@dataclass(frozen=True, slots=True)
class Request:
    model: str
    messages: tuple[Message, ...]
    system: tuple[Text, ...] = ()
    max_tokens: int | None = None
    """None when the client did not say (OpenAI); encoders fill a default where one is required."""
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: tuple[str, ...] = ()
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig = ThinkingConfig()
    user: str = ""
    """The end user's id (Anthropic ``metadata.user_id``, OpenAI ``user``)."""
    include_usage: bool = True
    """OpenAI clients ask for the usage chunk; other dialects always get usage."""
    response_format: ResponseFormat | None = None
    """Structured output the client asked for; None for plain text."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields of the client's dialect this model does not carry, for a same-family upstream."""


# -- response ---------------------------------------------------------------------------------


class StopReason(enum.Enum):
    END_TURN = "end_turn"
    MAX_TOKENS = "max_tokens"
    STOP_SEQUENCE = "stop_sequence"
    TOOL_USE = "tool_use"
    PAUSE_TURN = "pause_turn"
    REFUSAL = "refusal"
    CONTEXT_WINDOW = "model_context_window_exceeded"


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    """Uncached prompt tokens only."""
    output_tokens: int = 0
    """Visible output plus reasoning."""
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    reasoning_tokens: int = 0
    """The part of ``output_tokens`` spent thinking, when the upstream says."""

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens


@dataclass(frozen=True, slots=True)
class Response:
    id: str
    model: str
    content: tuple[Block, ...]
    stop_reason: StopReason
    stop_sequence: str | None = None
    usage: Usage = Usage()


# -- stream events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageStart:
    id: str
    model: str
    usage: Usage
    """Input usage known at the start (estimated when the upstream reports it only at the end)."""


@dataclass(frozen=True, slots=True)
class BlockStart:
    index: int
    block: Text | Thinking | ToolUse | RedactedThinking
    """The block as it starts: empty text/thinking, a tool call with ``input={}``."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    index: int
    text: str


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    index: int
    thinking: str


@dataclass(frozen=True, slots=True)
class SignatureDelta:
    index: int
    signature: str


@dataclass(frozen=True, slots=True)
class ToolInputDelta:
    index: int
    partial_json: str
    """A fragment of the arguments' JSON text, passed through untouched (never re-escaped)."""


@dataclass(frozen=True, slots=True)
class BlockStop:
    index: int


@dataclass(frozen=True, slots=True)
class MessageDelta:
    stop_reason: StopReason
    stop_sequence: str | None
    usage: Usage
    """Cumulative: replaces what ``MessageStart`` said."""


@dataclass(frozen=True, slots=True)
class MessageStop:
    pass


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class StreamError:
    kind: str
    """Anthropic ``error.type`` (``overloaded_error``, ``api_error`` …); dialects map it."""
    message: str


Event = (
    MessageStart
    | BlockStart
    | TextDelta
    | ThinkingDelta
    | SignatureDelta
    | ToolInputDelta
    | BlockStop
    | MessageDelta
    | MessageStop
    | Ping
    | StreamError
)
