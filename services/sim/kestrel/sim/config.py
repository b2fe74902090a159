"""What the simulator is told at start: keys and their limits, latency, cache floor, models.

The same ``SimConfig`` comes from three places: a YAML file (``load_config``), CLI flags
(``parse_key_spec`` for ``--key KEY[:rpm[:itpm[:otpm]]]``) and tests building it directly. Values
are validated here once, so the request path never has to second-guess them.

YAML shape (every field optional)::

    open: true                 # accept any API key; false: unknown keys get 401
    ttft_ms: 0                 # sleep before the first content event
    tokens_per_s: 0            # output pacing; 0 = as fast as possible
    chunk_tokens: 4            # tokens per text/thinking delta
    min_cache_tokens: 1024     # prefixes shorter than this are never cached
    strict_models: false       # true: unknown model ids get 404 not_found_error
    verify_signatures: false   # true: thinking blocks sent back must carry a sim signature
    require_thought_signatures: true  # Gemini: function calls sent back need their thoughtSignature
    request_log_size: 200
    keys:
      sk-a: {requests_per_window: 50, input_tokens_per_window: 0,
             output_tokens_per_window: 0, window_s: 60}
      sk-b: {}                 # known, unlimited
    models:
      - {id: claude-opus-4-8, display_name: Claude Opus 4.8}
      - {id: gpt-4o, max_tokens: 16384, reasoning: false}   # limits enforced, see ModelInfo
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file, mapping or flag that cannot describe a simulator."""


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """Budgets for one API key over one fixed window (0 means unlimited)."""

    requests_per_window: int = 0
    """Requests admitted per window."""
    input_tokens_per_window: int = 0
    """Uncached input tokens (input + cache creation) admitted per window; cache reads are free."""
    output_tokens_per_window: int = 0
    """Output tokens per window; a request is refused once the window's output is spent."""
    window_s: float = 60.0
    """Window length in seconds; a window starts at its first request."""

    def __post_init__(self) -> None:
        for name in ("requests_per_window", "input_tokens_per_window", "output_tokens_per_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        if not isinstance(self.window_s, int | float) or self.window_s <= 0:
            raise ConfigError(f"window_s must be positive, got {self.window_s!r}")

    @property
    def limited(self) -> bool:
        """True when any budget is set, i.e. when rate-limit headers are due."""
        return bool(self.requests_per_window or self.input_tokens_per_window or self.output_tokens_per_window)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One entry of ``GET /v1/models``, and the limits a request for that model must respect.

    Only models listed in ``SimConfig.models`` are checked (any other id is served as before), each
    refusal a 400 in the real API's envelope and wording: ``max_tokens`` (Anthropic),
    ``max_completion_tokens``/``max_tokens`` (OpenAI) or ``maxOutputTokens`` (Gemini) above
    ``max_tokens``; ``reasoning_effort`` for a model with ``reasoning`` off; Gemini
    ``thinkingLevel`` for a model with ``thinking_levels`` off.
    """

    id: str
    display_name: str
    created_at: str = "2025-01-01T00:00:00Z"
    max_input_tokens: int = 200_000
    max_tokens: int = 64_000
    """Largest output a request may ask for."""
    reasoning: bool = True
    """Takes OpenAI ``reasoning_effort``; False answers it as gpt-4o does ("Unrecognized request
    argument supplied: reasoning_effort")."""
    thinking_levels: bool = True
    """Takes Gemini ``thinkingConfig.thinkingLevel``; False answers it as Gemini 2.5 does."""

    def __post_init__(self) -> None:
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ConfigError(f"models.{self.id}.max_tokens must be a positive integer, got {self.max_tokens!r}")
        for name in ("reasoning", "thinking_levels"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"models.{self.id}.{name} must be true or false, got {getattr(self, name)!r}")


DEFAULT_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("claude-opus-4-8", "Claude Opus 4.8", "2026-02-01T00:00:00Z", 200_000, 128_000),
    ModelInfo("claude-sonnet-4-6", "Claude Sonnet 4.6", "2025-11-01T00:00:00Z", 1_000_000, 64_000),
    ModelInfo("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-01T00:00:00Z", 200_000, 64_000),
    ModelInfo("claude-opus-4-1", "Claude Opus 4.1", "2025-08-05T00:00:00Z", 200_000, 32_000),
)


@dataclass(slots=True)
class SimConfig:
    """Everything ``create_app`` needs; runtime state (windows, cache, scripts) lives elsewhere."""

    keys: dict[str, KeyLimits] = field(default_factory=dict)
    """Known API keys and their limits."""
    open: bool = True
    """Accept any key (unknown ones are unlimited); False answers unknown keys with 401."""
    ttft_ms: float = 0.0
    """Delay before the first content event (and before a non-streaming answer)."""
    tokens_per_s: float = 0.0
    """Output pacing; 0 sends everything as fast as possible."""
    chunk_tokens: int = 4
    """Tokens per text or thinking delta (4 characters per token)."""
    min_cache_tokens: int = 1024
    """Shortest prefix the prompt cache stores, as Anthropic's minimum cacheable length."""
    models: tuple[ModelInfo, ...] = DEFAULT_MODELS
    """What ``/v1/models`` (and Gemini's ``/v1beta/models``) lists."""
    strict_models: bool = False
    """Reject model ids not in ``models`` with 404, as the real API does."""
    verify_signatures: bool = False
    """Reject thinking blocks whose signature the sim did not mint (400, like a foreign one)."""
    require_thought_signatures: bool = True
    """Gemini: with thinking on, a function call of the current turn sent back without the
    ``thoughtSignature`` the sim issued (or with one it did not mint) is a 400, as on Gemini 3."""
    request_log_size: int = 200
    """How many received requests ``GET /_sim/requests`` can return."""
    organization_id: str = "00000000-0000-4000-8000-00000000516d"
    """Sent as ``anthropic-organization-id`` on every response."""

    def __post_init__(self) -> None:
        if self.chunk_tokens < 1:
            raise ConfigError("chunk_tokens must be at least 1")
        if self.ttft_ms < 0 or self.tokens_per_s < 0 or self.min_cache_tokens < 0:
            raise ConfigError("ttft_ms, tokens_per_s and min_cache_tokens must be >= 0")
        if self.request_log_size < 1:
            raise ConfigError("request_log_size must be at least 1")
        self.models = tuple(self.models)


_KEY_FIELDS = {f.name for f in dataclasses.fields(KeyLimits)}
_MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelInfo)}
_CONFIG_FIELDS = {f.name for f in dataclasses.fields(SimConfig)}


def config_from_mapping(data: Mapping[str, Any]) -> SimConfig:
    """Build a config from parsed YAML/JSON, rejecting unknown fields so typos surface."""
    unknown = set(data) - _CONFIG_FIELDS
    if unknown:
        raise ConfigError(f"unknown sim config fields: {sorted(unknown)}")
    kwargs: dict[str, Any] = dict(data)
    keys = kwargs.get("keys") or {}
    if not isinstance(keys, Mapping):
        raise ConfigError("keys must be a mapping of api key -> limits")
    kwargs["keys"] = {str(k): _key_limits(str(k), v or {}) for k, v in keys.items()}
    if "models" in kwargs:
        kwargs["models"] = tuple(_model(m) for m in kwargs["models"] or ())
    try:
        return SimConfig(**kwargs)
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc


def load_config(path: str | Path) -> SimConfig:
    """Read a YAML file (an empty file gives the defaults)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: top level must be a mapping")
    return config_from_mapping(data)


def parse_key_spec(spec: str) -> tuple[str, KeyLimits]:
    """Parse ``KEY[:rpm[:itpm[:otpm]]]`` (per-minute budgets; empty or 0 means unlimited)."""
    key, *numbers = spec.split(":")
    if not key or len(numbers) > 3:
        raise ConfigError(f"bad key spec {spec!r}: expected KEY[:rpm[:itpm[:otpm]]]")
    try:
        values = [int(n) if n else 0 for n in numbers] + [0] * (3 - len(numbers))
    except ValueError as exc:
        raise ConfigError(f"bad key spec {spec!r}: limits must be integers") from exc
    return key, KeyLimits(values[0], values[1], values[2], 60.0)


def _key_limits(key: str, data: Any) -> KeyLimits:
    if isinstance(data, KeyLimits):
        return data
    if not isinstance(data, Mapping) or set(data) - _KEY_FIELDS:
        raise ConfigError(f"keys.{key}: expected a mapping with fields {sorted(_KEY_FIELDS)}")
    return KeyLimits(**data)


def _model(data: Any) -> ModelInfo:
    if isinstance(data, ModelInfo):
        return data
    if isinstance(data, str):
        return ModelInfo(data, data)
    if not isinstance(data, Mapping) or "id" not in data or set(data) - _MODEL_FIELDS:
        raise ConfigError(f"models: bad entry {data!r}")
    entry = dict(data)
    entry.setdefault("display_name", entry["id"])
    return ModelInfo(**entry)
