"""What each upstream model accepts, so a translated request is one that model will take.

Translation used to know only the provider: Claude Code's ``max_tokens: 32000`` with thinking went
to gpt-4o as ``max_completion_tokens: 32000`` plus ``reasoning_effort`` and earned two 400s. A
``ModelCaps`` says what one model takes (output cap, how thinking is asked for, whether sampling
settings are accepted); ``fit_to_model`` makes a canonical request fit it, and each codec then
writes the wire form (``reasoning_effort`` only for effort models, Gemini ``thinkingLevel`` for
level models, ``thinkingBudget`` clamped into the model's range).

**Unknown models are untouched**: ``UNKNOWN`` (every field at its "don't know" default) makes
``fit_to_model`` a no-op and leaves each codec on the behaviour it had before this table existed.

**Resolution** (``ModelCatalog.caps``), for the name the upstream is asked for (after the account's
``model_map``), lower-cased and without Gemini's ``models/`` prefix:

1. Patterns are ``fnmatch`` globs, matched case-insensitively. The most specific matching pattern
   wins: an exact name (no ``*?[``) beats every glob; among globs, the one with the most literal
   (non-wildcard) characters (``gpt-4o-mini*`` beats ``gpt-4o*``); a tie goes to the one listed
   first. Order in the table therefore only matters between equally specific patterns.
2. A name that matches nothing and carries a vendor prefix (``openai/gpt-4o`` on OpenRouter) is
   tried again without it.
3. Built-in entries and config entries (``routing.models``) are resolved separately, each by the
   rules above; the config entry's keys then replace the built-in entry's, and keys it leaves out
   keep the built-in value (a name no built-in matches starts from ``UNKNOWN``).

**How sure the built-in facts are**: they come from the providers' public docs as remembered, with
no network to check them here (a few were confirmed against error messages quoted in public issue
threads). Entries marked ``# uncertain`` in ``BUILTIN`` are the ones to verify first; a wrong entry
is fixed without a release by a ``routing.models`` entry for the same pattern.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kestrel.edge.canonical import Request, ThinkingConfig

THINKING_KINDS = ("", "none", "budget", "effort", "level")
"""How a model is asked to think: ``""`` unknown (the codec's own behaviour), ``none`` (it cannot
be asked: the request's thinking is dropped), ``budget`` (a token budget: Anthropic
``budget_tokens``, Gemini 2.5 ``thinkingBudget``), ``effort`` (OpenAI ``reasoning_effort``) or
``level`` (Gemini 3 ``thinkingLevel``)."""

EFFORT_SCALE = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
"""Every effort or level word any provider uses, lowest first: the scale ``nearest_effort`` measures on."""


@dataclass(frozen=True, slots=True)
class ModelCaps:
    """What one upstream model accepts. Every default means "not known": the request goes as before."""

    max_output_tokens: int | None = None
    """Largest ``max_tokens`` the model takes (thinking included where the provider counts it
    there); a larger request is clamped to it. None: not known, never clamped."""
    thinking: str = ""
    """One of ``THINKING_KINDS``."""
    thinking_budget: tuple[int, int] | None = None
    """``(min, max)`` of an enabled thinking budget; a budget outside is clamped in (never turned
    off: the client asked for thinking). None: not known, left to the codec."""
    can_disable_thinking: bool = True
    """False for models that always think (Gemini 2.5 Pro, Gemini 3): a request without thinking
    then sends no thinking setting and the model thinks at its default, rather than a 400."""
    efforts: tuple[str, ...] = ()
    """Effort (``effort`` models) or level (``level`` models) words accepted, lowest first; others
    are moved to the nearest. Empty: the codec's default list (an OpenAI preset's, Gemini's low/high)."""
    sampling: bool = True
    """Accepts ``temperature``/``top_p``/``top_k``; False drops them (OpenAI reasoning models take
    only the default and answer anything else with a 400)."""
    stop_sequences: bool = True
    """Accepts stop sequences; False drops them (OpenAI o-series: ``stop`` is a 400)."""

    def __post_init__(self) -> None:
        if self.thinking not in THINKING_KINDS:
            raise ValueError(f"thinking must be one of {THINKING_KINDS[1:]} or empty, got {self.thinking!r}")
        if self.thinking_budget is not None:
            low, high = self.thinking_budget
            if low < 0 or high < low:
                raise ValueError(f"thinking_budget must be (min, max) with 0 <= min <= max, got {self.thinking_budget}")
        if self.max_output_tokens is not None and self.max_output_tokens < 1:
            raise ValueError(f"max_output_tokens must be at least 1, got {self.max_output_tokens}")


UNKNOWN = ModelCaps()
"""A model nothing is known about: ``fit_to_model`` leaves the request as it is."""


_O_SERIES = ModelCaps(
    max_output_tokens=100_000,
    thinking="effort",
    efforts=("low", "medium", "high"),
    sampling=False,
    stop_sequences=False,
)
"""o1, o3, o4-mini: effort, no sampling settings, no ``stop``."""

BUILTIN: tuple[tuple[str, ModelCaps], ...] = (
    # -- OpenAI -------------------------------------------------------------------------------
    ("gpt-4o*", ModelCaps(max_output_tokens=16384, thinking="none")),
    ("gpt-4o-2024-05-13", ModelCaps(max_output_tokens=4096, thinking="none")),  # the first snapshot
    ("chatgpt-4o*", ModelCaps(max_output_tokens=16384, thinking="none")),
    ("gpt-4.1*", ModelCaps(max_output_tokens=32768, thinking="none")),
    ("o1*", _O_SERIES),
    # uncertain: o1-mini and o1-preview predate reasoning_effort and reject it (deprecated models).
    ("o1-mini*", dataclasses.replace(_O_SERIES, max_output_tokens=65536, thinking="none", efforts=())),
    ("o1-preview*", dataclasses.replace(_O_SERIES, max_output_tokens=32768, thinking="none", efforts=())),
    ("o3*", _O_SERIES),
    ("o4*", _O_SERIES),
    # uncertain: whether gpt-5 rejects `stop` (o-series does); sampling is confirmed (only temperature 1).
    (
        "gpt-5*",
        ModelCaps(
            max_output_tokens=128_000,
            thinking="effort",
            efforts=("minimal", "low", "medium", "high"),
            can_disable_thinking=False,
            sampling=False,
            stop_sequences=False,
        ),
    ),
    ("gpt-5-chat*", ModelCaps(max_output_tokens=16384, thinking="none")),
    # uncertain: 5.1 dropped "minimal" for "none"; 5.2 added "xhigh"; both are then thinking-optional.
    (
        "gpt-5.1*",
        ModelCaps(
            max_output_tokens=128_000,
            thinking="effort",
            efforts=("none", "low", "medium", "high"),
            sampling=False,
            stop_sequences=False,
        ),
    ),
    (
        "gpt-5.2*",
        ModelCaps(
            max_output_tokens=128_000,
            thinking="effort",
            efforts=("none", "low", "medium", "high", "xhigh"),
            sampling=False,
            stop_sequences=False,
        ),
    ),
    # -- Gemini -------------------------------------------------------------------------------
    # Output caps: 65536 on Google's model pages (one 2.5 Pro preview took at most 65535); budget
    # ranges from the thinking guide (uncertain: Flash's lower bound of 1; the guide says 0 to 24576).
    (
        "gemini-2.5-pro*",
        ModelCaps(max_output_tokens=65536, thinking="budget", thinking_budget=(128, 32768), can_disable_thinking=False),
    ),
    ("gemini-2.5-flash*", ModelCaps(max_output_tokens=65536, thinking="budget", thinking_budget=(1, 24576))),
    ("gemini-2.5-flash-lite*", ModelCaps(max_output_tokens=65536, thinking="budget", thinking_budget=(512, 24576))),
    ("gemini-2.5-flash-image*", ModelCaps(max_output_tokens=32768, thinking="none")),  # uncertain: the cap
    # uncertain: Gemini 3 Pro took only low/high at launch (medium came later); 3.x Flash also takes
    # minimal (left out: nearest_effort moves it to low). Output cap 65536 on both (some say 64000).
    (
        "gemini-3*",
        ModelCaps(max_output_tokens=65536, thinking="level", efforts=("low", "high"), can_disable_thinking=False),
    ),
    (
        "gemini-3*-flash*",
        ModelCaps(
            max_output_tokens=65536, thinking="level", efforts=("low", "medium", "high"), can_disable_thinking=False
        ),
    ),
    # -- Anthropic ----------------------------------------------------------------------------
    # Budgets are Anthropic's (>= 1024, below max_tokens): ``anthropic.fit_request`` applies them.
    ("claude-3-5-haiku*", ModelCaps(max_output_tokens=8192, thinking="none")),
    ("claude-3-7-sonnet*", ModelCaps(max_output_tokens=64000, thinking="budget")),  # 128k only with a beta
    ("claude-opus-4-0*", ModelCaps(max_output_tokens=32000, thinking="budget")),
    ("claude-opus-4-2025*", ModelCaps(max_output_tokens=32000, thinking="budget")),  # Opus 4.0's dated id
    ("claude-opus-4-1*", ModelCaps(max_output_tokens=32000, thinking="budget")),
    ("claude-opus-4-5*", ModelCaps(max_output_tokens=64000, thinking="budget")),
    # uncertain: later Opus versions (4.6+) are left unknown: their cap may be above 64000.
    ("claude-sonnet-4*", ModelCaps(max_output_tokens=64000, thinking="budget")),
    # Sonnet 4.6 takes adaptive thinking and effort: how thinking is asked for is left as it is.
    ("claude-sonnet-4-6*", ModelCaps(max_output_tokens=64000)),
    ("claude-haiku-4-5*", ModelCaps(max_output_tokens=64000, thinking="budget")),
)
"""The built-in table: ``(glob, caps)``, resolved by specificity (module docstring), not order."""


# -- resolution ----------------------------------------------------------------------------------


def _specificity(pattern: str) -> tuple[int, int]:
    """Sort key, larger is more specific: exact names first, then by literal character count."""
    literal = sum(1 for c in pattern if c not in "*?[]")
    return (0 if any(c in pattern for c in "*?[") else 1, literal)


def _best(patterns: Iterable[str], name: str) -> str | None:
    """The most specific pattern matching ``name`` (first listed on a tie), or None."""
    best: str | None = None
    best_key = (-1, -1)
    for pattern in patterns:
        if fnmatch.fnmatchcase(name, pattern.lower()):
            key = _specificity(pattern)
            if key > best_key:
                best, best_key = pattern, key
    return best


def _lookup(patterns: Iterable[str], name: str) -> str | None:
    patterns = tuple(patterns)
    found = _best(patterns, name)
    if found is None and "/" in name:
        found = _best(patterns, name.rsplit("/", 1)[1])
    return found


class ModelCatalog:
    """Resolves a model name to its ``ModelCaps``: built-in entries, then config overrides on top.

    ``overrides`` maps a glob to the fields it sets (``routing.models``: omitted fields keep the
    built-in value); a ``ModelCaps`` value replaces every field. Results are cached per name.
    """

    def __init__(
        self,
        overrides: Mapping[str, Mapping[str, Any] | ModelCaps] | None = None,
        builtin: Iterable[tuple[str, ModelCaps]] = BUILTIN,
    ) -> None:
        self._builtin = dict(builtin)
        self._overrides: dict[str, dict[str, Any]] = {}
        for pattern, fields in (overrides or {}).items():
            if isinstance(fields, ModelCaps):
                fields = {f.name: getattr(fields, f.name) for f in dataclasses.fields(ModelCaps)}
            self._overrides[pattern] = _normalised(pattern, fields)
            ModelCaps(**self._overrides[pattern])  # refuse a bad override now, not at a request
        self._cache: dict[str, ModelCaps] = {}

    @classmethod
    def from_config(cls, models: Mapping[str, Any]) -> ModelCatalog:
        """From ``RoutingConfig.models`` (pydantic entries: the keys a user wrote are kept)."""
        return cls({pattern: entry.model_dump(exclude_none=True) for pattern, entry in models.items()})

    def caps(self, model: str) -> ModelCaps:
        name = model.lower().removeprefix("models/")
        found = self._cache.get(name)
        if found is None:
            found = self._resolve(name)
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[name] = found
        return found

    def _resolve(self, name: str) -> ModelCaps:
        pattern = _lookup(self._builtin, name)
        caps = self._builtin[pattern] if pattern is not None else UNKNOWN
        override = _lookup(self._overrides, name)
        if override is not None:
            caps = dataclasses.replace(caps, **self._overrides[override])
        return caps


def _normalised(pattern: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(ModelCaps)}
    unknown = set(fields) - known
    if unknown:
        raise ValueError(f"models[{pattern!r}]: unknown field(s) {sorted(unknown)}")
    out = dict(fields)
    if out.get("thinking_budget") is not None:
        out["thinking_budget"] = tuple(out["thinking_budget"])
    if "efforts" in out:
        out["efforts"] = tuple(out["efforts"] or ())
    return out


BUILTIN_CATALOG = ModelCatalog()
"""The built-in table alone: what ``codec_for`` uses when the config sets no ``routing.models``."""


# -- fitting -------------------------------------------------------------------------------------


def fit_to_model(request: Request, caps: ModelCaps) -> Request:
    """``request`` as ``caps`` allows; the same object when nothing needs to change.

    ``max_tokens`` is clamped to the model's cap (None stays None: encoders fill their defaults);
    thinking is dropped for a ``none`` model and an enabled budget is clamped into the model's
    range; sampling settings and stop sequences are dropped where refused. What stays is written
    by the codec in its own terms (effort, level or budget).
    """
    if caps == UNKNOWN:
        return request
    changes: dict[str, Any] = {}
    cap = caps.max_output_tokens
    if cap is not None and request.max_tokens is not None and request.max_tokens > cap:
        changes["max_tokens"] = cap
    thinking = request.thinking
    if caps.thinking == "none":
        thinking = ThinkingConfig()
    elif thinking.enabled and thinking.budget_tokens > 0 and caps.thinking_budget is not None:
        low, high = caps.thinking_budget
        thinking = dataclasses.replace(thinking, budget_tokens=min(max(thinking.budget_tokens, max(low, 1)), high))
    if thinking != request.thinking:
        changes["thinking"] = thinking
    if not caps.sampling:
        for name in ("temperature", "top_p", "top_k"):
            if getattr(request, name) is not None:
                changes[name] = None
    if not caps.stop_sequences and request.stop_sequences:
        changes["stop_sequences"] = ()
    return dataclasses.replace(request, **changes) if changes else request


def effort_of(thinking: ThinkingConfig) -> str:
    """The client's effort word, else its token budget in a bucket: adaptive (0) → ``medium``,
    up to 4096 → ``low``, up to 16384 → ``medium``, more → ``high``."""
    if thinking.effort:
        return thinking.effort
    budget = thinking.budget_tokens
    return "medium" if budget <= 0 else "low" if budget <= 4096 else "medium" if budget <= 16384 else "high"


def nearest_effort(effort: str, allowed: tuple[str, ...]) -> str:
    """``effort`` when ``allowed`` has it (or is empty), else the allowed word nearest on
    ``EFFORT_SCALE``, the higher one on a tie; an unknown word counts as ``medium``."""
    if effort in allowed or not allowed:
        return effort

    def rank(word: str) -> int:
        return EFFORT_SCALE.index(word) if word in EFFORT_SCALE else 3

    target = rank(effort)
    return min(allowed, key=lambda e: (abs(rank(e) - target), -rank(e)))
