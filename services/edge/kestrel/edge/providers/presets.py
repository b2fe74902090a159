"""Known services that speak OpenAI chat completions, and how each one differs.

``OpenAICodec`` reads one ``Preset`` instead of testing provider names, so adding a service is adding
a preset here (or, for a service too odd for flags, its own module). Only facts stated with
confidence become flags; each preset's ``notes`` says which facts are less certain and why, so the
next person knows what to verify before relying on it.

``base_url`` is the origin the account config's ``base_url`` replaces; ``path`` is appended to it
(``https://api.groq.com`` + ``/openai/v1/chat/completions``).
"""

from __future__ import annotations

from dataclasses import dataclass

_OPENAI_EXTRAS = (
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "service_tier",
    "verbosity",
    "prediction",
    "prompt_cache_key",
    "safety_identifier",
)
"""OpenAI-only request fields an OpenAI-dialect client may send, forwarded from ``Request.extra``."""

_COMMON_EXTRAS = ("seed", "frequency_penalty", "presence_penalty")


@dataclass(frozen=True, slots=True)
class Preset:
    """What one OpenAI-compatible service accepts; defaults are OpenAI's own behaviour."""

    name: str
    base_url: str
    """Origin (and any prefix before ``path``); an account's ``base_url`` overrides it."""
    path: str = "/v1/chat/completions"
    models_path: str = "/v1/models"
    max_tokens_field: str = "max_tokens"
    """``max_tokens`` or ``max_completion_tokens`` (OpenAI reasoning models reject the former)."""
    stream_options: bool = True
    """Accepts ``stream_options: {include_usage: true}``; without it usage may never arrive."""
    send_reasoning_content: bool = False
    """Assistant turns carry their thinking back as ``reasoning_content`` (else thinking is dropped)."""
    reasoning_field: str = ""
    """How thinking is asked for: ``reasoning_effort``, ``reasoning`` (an ``{effort}`` object) or
    empty (never: the service rejects the field, or it depends on the model). A model whose
    capabilities (``capabilities.py``) say ``effort`` or ``none`` overrides this either way."""
    reasoning_efforts: tuple[str, ...] = ("low", "medium", "high")
    """Effort values the service accepts, lowest first; others are moved to the nearest."""
    tool_name_max: int = 64
    """Longer (or otherwise invalid) tool names are shortened to ``prefix_<8 hex>`` and restored."""
    tool_call_id_length: int = 0
    """0: tool call ids pass through (made ``[A-Za-z0-9_-]``); N: hashed to exactly N alphanumerics."""
    max_stop: int = 4
    accepts_user: bool = True
    accepts_parallel_tool_calls: bool = True
    accepts_json_schema: bool = True
    """Takes ``response_format: {type: "json_schema"}``; False: only ``json_object``, so a schema
    goes as JSON mode plus the schema in the system prompt (``response_format`` itself is canonical,
    not an extra field, and always sent when the client asked for structured output)."""
    extra_fields: tuple[str, ...] = _COMMON_EXTRAS
    """Fields forwarded from ``Request.extra`` (OpenAI-dialect clients); everything else is dropped."""
    models: tuple[str, ...] = ()
    """Model ids to advertise when the service's own list is not fetched; empty for local servers."""
    notes: str = ""
    """Less certain facts and open questions about this service."""


OPENAI = Preset(
    name="openai",
    base_url="https://api.openai.com",
    max_tokens_field="max_completion_tokens",
    reasoning_field="reasoning_effort",
    extra_fields=_OPENAI_EXTRAS,
    models=("gpt-5", "gpt-5-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4o", "gpt-4o-mini", "o3", "o4-mini"),
    notes=(
        "reasoning_effort is rejected by non-reasoning models (gpt-4o, gpt-4.1) and `stop` and a "
        "non-default temperature by reasoning models: model facts, kept in capabilities.py (per "
        "model, overridable with routing.models), not here."
    ),
)

GROQ = Preset(
    name="groq",
    base_url="https://api.groq.com",
    path="/openai/v1/chat/completions",
    models_path="/openai/v1/models",
    models=("llama-3.3-70b-versatile", "llama-3.1-8b-instant", "openai/gpt-oss-120b", "openai/gpt-oss-20b"),
    notes=(
        "Usage also arrives as x_groq.usage (read as a fallback). reasoning_effort values differ per "
        "model (gpt-oss: low/medium/high; qwen3: none/default), so it is not sent. Groq documents "
        "max_completion_tokens and calls max_tokens deprecated; max_tokens still works (medium confidence). "
        "response_format json_schema is documented only for some models (gpt-oss, Kimi K2, Llama 4); others "
        "take json_object alone and may answer json_schema with a 400 (medium confidence; per model, so the "
        "flag stays on)."
    ),
)

XAI = Preset(
    name="xai",
    base_url="https://api.x.ai",
    models=("grok-4", "grok-3", "grok-3-mini", "grok-code-fast-1"),
    notes=(
        "reasoning_effort is accepted only by a few models (grok-3-mini, grok-4.3) and is a 400 on "
        "the others, so it is not sent. The model list changes fast (medium confidence). Structured "
        "outputs (response_format json_schema) are documented (medium confidence)."
    ),
)

MISTRAL = Preset(
    name="mistral",
    base_url="https://api.mistral.ai",
    stream_options=False,
    tool_call_id_length=9,
    accepts_user=False,
    accepts_parallel_tool_calls=False,
    extra_fields=(),
    models=("mistral-large-latest", "mistral-medium-latest", "mistral-small-latest", "codestral-latest"),
    notes=(
        "Unknown fields are a 422 (stream_options, max_completion_tokens, user, n seen in reports); "
        "usage comes in the last chunk without asking. Tool call ids must be 9 alphanumerics. "
        "parallel_tool_calls is probably accepted but unverified, so it is not sent. Older versions "
        "rejected a user message right after tool messages (unverified today). response_format "
        "json_schema (custom structured outputs) is documented alongside json_object (medium confidence)."
    ),
)

TOGETHER = Preset(
    name="together",
    base_url="https://api.together.xyz",
    models=("meta-llama/Llama-3.3-70B-Instruct-Turbo", "deepseek-ai/DeepSeek-V3"),
    notes=(
        "stream_options support is assumed from OpenAI compatibility (medium confidence). response_format "
        "json_schema is taken by the models with structured outputs; older docs showed json_object with a "
        "schema key instead (unverified which models need which)."
    ),
)

DEEPSEEK = Preset(
    name="deepseek",
    base_url="https://api.deepseek.com",
    path="/chat/completions",
    models_path="/models",
    send_reasoning_content=True,
    accepts_json_schema=False,
    models=("deepseek-chat", "deepseek-reasoner"),
    notes=(
        "Thinking mode with tools is a 400 unless every assistant turn with tool_calls carries its "
        "reasoning_content back, so it is always sent on those turns. Cache hits are reported as "
        "prompt_cache_hit_tokens (read as a fallback). reasoning_effort exists on newer models but "
        "the accepted values are unverified, so it is not sent; the model names change with releases. "
        "JSON Output is response_format json_object only (its docs name no json_schema) and wants the word "
        "json and an example in the prompt, hence the schema written into the system prompt."
    ),
)

OPENROUTER = Preset(
    name="openrouter",
    base_url="https://openrouter.ai",
    path="/api/v1/chat/completions",
    models_path="/api/v1/models",
    reasoning_field="reasoning",
    notes=(
        "Sends `: OPENROUTER PROCESSING` SSE comments (skipped) and reasoning as `reasoning` deltas; "
        "usage is always included. Tool-name and id rules are the routed provider's: a request "
        "routed to Mistral needs 9-character ids (not handled here). response_format json_schema "
        "reaches models that support structured outputs; whether others ignore or refuse it is up to the "
        "routed provider (unverified)."
    ),
)

VLLM = Preset(
    name="vllm",
    base_url="http://localhost:8000",
    notes=(
        "Reasoning arrives as reasoning_content (newer: reasoning) only with a reasoning parser "
        "enabled. choices[].stop_reason names the matched stop string (read for stop_sequence). "
        "response_format json_schema is served by guided decoding (medium confidence)."
    ),
)

OLLAMA = Preset(
    name="ollama",
    base_url="http://localhost:11434",
    notes=(
        "Thinking models stream `reasoning` deltas; tool calls arrive whole in one chunk. "
        "stream_options.include_usage is honoured by recent versions (medium confidence), as is "
        "response_format json_schema (structured outputs since 0.5; medium confidence)."
    ),
)

PRESETS: dict[str, Preset] = {
    p.name: p for p in (OPENAI, GROQ, XAI, MISTRAL, TOGETHER, DEEPSEEK, OPENROUTER, VLLM, OLLAMA)
}


def preset(name: str) -> Preset:
    """The preset called ``name``; an empty name means OpenAI itself."""
    try:
        return PRESETS[name or "openai"]
    except KeyError:
        raise KeyError(f"unknown OpenAI-compatible preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None
