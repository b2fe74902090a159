"""Parse and validate a Messages (or count_tokens) body in one pass over its content.

The pass does three jobs at once so a request is walked only once: it checks what the real API
would reject (and answers with the real API's wording where the wording matters to clients), it
cuts the prompt into cache segments in Anthropic's order (tools, system, messages) with their
token counts and ``cache_control`` breakpoints, and it keeps the last user message's text, which
drives markers and the default answer.

Checks, each a 400 ``invalid_request_error`` unless noted:

* body is a JSON object; ``model`` (string), ``messages`` (non-empty list) and, for Messages,
  ``max_tokens`` (integer >= 0) are present, and for a model in ``SimConfig.models`` at most its
  ``max_tokens`` ("max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens
  for …");
* roles are ``user``/``assistant``; content is a string or a list of typed blocks;
* every ``tool_use`` is answered by a ``tool_result`` in the next message, and every
  ``tool_result`` answers a ``tool_use`` of the previous message;
* ``thinking.enabled`` has ``budget_tokens >= 1024`` and below ``max_tokens`` (unless the
  interleaved-thinking beta is on);
* at most 4 ``cache_control`` blocks, ``ttl`` is ``5m`` or ``1h``;
* ``output_config.format`` (or the deprecated beta ``output_format``), when set, is
  ``{type: "json_schema", schema: {...}}``; it makes the default answer JSON (``json_schema``);
* with ``verify_signatures``: thinking blocks carry a signature the sim minted;
* with ``thinking.type: enabled``, when the last message answers tool calls, the assistant turn
  that made them starts with a thinking block (the API's "a final `assistant` message must start
  with a thinking block"). Not checked for ``adaptive``, where the model may choose not to think
  (and scripted answers, sent as scripted, may have no thinking).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from kestrel.sim import _ids
from kestrel.sim._tokens import block_chars, tokens_for_chars, tool_chars
from kestrel.sim.config import ModelInfo

MAX_BREAKPOINTS = 4


class RequestError(Exception):
    """A request the real API would refuse; carries the status and error type to answer with.

    ``param`` and ``code`` are OpenAI's extra error fields (the other dialects ignore them).
    """

    def __init__(
        self,
        message: str,
        status: int = 400,
        error_type: str = "invalid_request_error",
        *,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.param = param
        self.code = code


@dataclass(slots=True)
class Prompt:
    """The prompt as cache segments, in the order Anthropic builds its cache prefix."""

    model: str
    """Part of every prefix: a cache entry never serves another model."""
    segments: list[Any] = field(default_factory=list)
    """Tool dicts, system blocks or string, message blocks or content strings."""
    tags: list[bytes] = field(default_factory=list)
    """What each segment is (tool, system, first block of a user/assistant turn, continuation)."""
    cumulative: list[int] = field(default_factory=list)
    """Tokens of segments ``0..i`` inclusive."""
    breakpoints: list[tuple[int, str]] = field(default_factory=list)
    """``(segment index, ttl)`` for each ``cache_control``, in prompt order."""

    @property
    def total_tokens(self) -> int:
        return self.cumulative[-1] if self.cumulative else 0

    def add(self, tag: bytes, segment: Any, chars: int) -> None:
        self.segments.append(segment)
        self.tags.append(tag)
        self.cumulative.append(self.total_tokens + tokens_for_chars(chars))
        if isinstance(segment, dict) and "cache_control" in segment:
            self.breakpoints.append((len(self.segments) - 1, _ttl(segment["cache_control"])))

    def cache_every_boundary(self) -> None:
        """Automatic caching (OpenAI, Gemini): every segment boundary is a breakpoint.

        Then the cache reads the longest prefix seen before on the key and stores every prefix
        of at least ``min_cache_tokens``, which is "prefixes seen before are cached".
        """
        self.breakpoints = [(i, "5m") for i in range(len(self.segments))]


@dataclass(slots=True)
class MessagesRequest:
    """What the sim needs from a validated request."""

    model: str
    max_tokens: int
    stream: bool
    thinking: str | None
    """``enabled``, ``adaptive`` or None (absent or disabled)."""
    thinking_display: str
    """``summarized`` or ``omitted``."""
    stop_sequences: tuple[str, ...]
    prompt: Prompt
    last_user_text: str
    """Text blocks of the last user message, joined by newlines (markers are read from here)."""
    message_count: int
    forced_tool: str | None = None
    """A tool the request forces (OpenAI ``tool_choice``, Gemini ``ANY``); default answers call it."""
    tool_id_prefix: str = "toolu_"
    """How minted tool-call ids start (``toolu_``, ``call_``, ...), as each API's own ids do."""
    json_schema: dict[str, Any] | None = None
    """Structured output asked for (Anthropic ``output_config.format``, OpenAI ``response_format``,
    Gemini ``responseMimeType: application/json``): the schema the answer's text must match, ``{}``
    for any JSON (JSON mode); None for plain text. The default answer is then JSON (``_instance``)."""


def parse_messages(
    body: bytes,
    *,
    count_only: bool = False,
    verify_signatures: bool = False,
    interleaved_thinking: bool = False,
    system_messages: bool = False,
    models: Mapping[str, ModelInfo] | None = None,
) -> MessagesRequest:
    """Validate a body for ``/v1/messages`` (or ``count_tokens`` with ``count_only``).

    ``models`` holds the configured models: a request for one of them is held to its output cap.

    ``system_messages`` is set when ``anthropic-beta`` carries ``mid-conversation-system-…``:
    then ``messages`` may hold ``role: "system"`` entries, as Claude Code sends.

    ``interleaved_thinking`` is set when ``anthropic-beta`` carries ``interleaved-thinking-…``:
    under that beta the thinking budget may exceed ``max_tokens``, and Claude Code sends it so.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"There was an error parsing the body of your request: {exc}") from exc
    if not isinstance(data, dict):
        raise RequestError("Request body must be a JSON object")

    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("model: Field required" if model is None else "model: Input should be a valid string")
    max_tokens = 0
    if not count_only:
        max_tokens = data.get("max_tokens")
        if max_tokens is None:
            raise RequestError("max_tokens: Field required")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
            raise RequestError("max_tokens: Input should be a valid non-negative integer")
        info = (models or {}).get(model)
        if info is not None and max_tokens > info.max_tokens:
            raise RequestError(
                f"max_tokens: {max_tokens} > {info.max_tokens}, which is the maximum allowed number of output "
                f"tokens for {model}"
            )
    messages = data.get("messages")
    if messages is None:
        raise RequestError("messages: Field required")
    if not isinstance(messages, list):
        raise RequestError("messages: Input should be a valid list")
    if not messages:
        raise RequestError("messages: at least one message is required")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("stream: Input should be a valid boolean")

    thinking, display = _thinking(data.get("thinking"), max_tokens, count_only or interleaved_thinking)
    json_schema = _output_format(data.get("output_config"), data.get("output_format"))
    stops = data.get("stop_sequences") or ()
    if not isinstance(stops, list | tuple) or not all(isinstance(s, str) and s for s in stops):
        raise RequestError("stop_sequences: Input should be a list of non-empty strings")

    prompt = Prompt(model)
    _add_tools(prompt, data.get("tools"))
    _add_system(prompt, data.get("system"))
    last_user_text = _add_messages(prompt, messages, verify_signatures, system_messages)
    if thinking == "enabled" and not count_only:
        _check_thinking_leads_the_tool_loop(messages)
    if "cache_control" in data and prompt.segments:
        last = len(prompt.segments) - 1
        if not any(index == last for index, _ in prompt.breakpoints):
            prompt.breakpoints.append((last, _ttl(data["cache_control"])))
    if len(prompt.breakpoints) > MAX_BREAKPOINTS:
        raise RequestError(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(prompt.breakpoints)}."
        )
    return MessagesRequest(
        model=model,
        max_tokens=max_tokens,
        stream=stream,
        thinking=thinking,
        thinking_display=display,
        stop_sequences=tuple(stops),
        prompt=prompt,
        last_user_text=last_user_text,
        message_count=len(messages),
        json_schema=json_schema,
    )


def _output_format(config: Any, legacy: Any) -> dict[str, Any] | None:
    """The schema of ``output_config.format`` (else of the deprecated beta ``output_format``), if any."""
    if config is not None and not isinstance(config, dict):
        raise RequestError("output_config: Input should be a valid dictionary")
    value = (config or {}).get("format")
    where = "output_config.format"
    if value is None:
        where, value = "output_format", legacy
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RequestError(f"{where}: Input should be a valid dictionary")
    if value.get("type") != "json_schema":
        raise RequestError(f"{where}.type: Input should be 'json_schema'")
    schema = value.get("schema")
    if schema is None:
        raise RequestError(f"{where}.schema: Field required")
    if not isinstance(schema, dict):
        raise RequestError(f"{where}.schema: Input should be a valid dictionary")
    return schema


def _thinking(value: Any, max_tokens: int, any_budget: bool) -> tuple[str | None, str]:
    if value is None:
        return None, "summarized"
    if not isinstance(value, dict) or value.get("type") not in ("enabled", "adaptive", "disabled"):
        raise RequestError("thinking: Input tag should be one of 'enabled', 'disabled', 'adaptive'")
    kind = value["type"]
    if kind == "disabled":
        return None, "summarized"
    display = value.get("display") or "summarized"
    if display not in ("summarized", "omitted"):
        raise RequestError(f"thinking.{kind}.display: Input should be 'summarized' or 'omitted'")
    if kind == "enabled":
        budget = value.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise RequestError("thinking.enabled.budget_tokens: Field required")
        if budget < 1024:
            raise RequestError("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if not any_budget and budget >= max_tokens:
            raise RequestError(
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                "documentation at https://docs.claude.com/en/docs/build-with-claude/"
                "extended-thinking#max-tokens-and-context-window-size"
            )
    return kind, display


def _add_tools(prompt: Prompt, tools: Any) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise RequestError("tools: Input should be a valid list")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise RequestError(f"tools.{i}.name: Field required")
        prompt.add(b"T", tool, tool_chars(tool))


def _add_system(prompt: Prompt, system: Any) -> None:
    if system is None:
        return
    if isinstance(system, str):
        if system:
            prompt.add(b"S", system, len(system))
        return
    if not isinstance(system, list):
        raise RequestError("system: Input should be a valid string or list of text blocks")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise RequestError(f"system.{i}.type: Input should be 'text'")
        if not isinstance(block.get("text"), str):
            raise RequestError(f"system.{i}.text: Field required")
        prompt.add(b"S", block, len(block["text"]))


def _add_messages(prompt: Prompt, messages: list[Any], verify_signatures: bool, system_messages: bool = False) -> str:
    """Add every message's blocks; check tool pairing; return the last user message's text."""
    last_user_text = ""
    open_tool_ids: list[str] = []  # tool_use ids of the previous assistant turn
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RequestError(f"messages.{i}: Input should be a valid dictionary")
        role = message.get("role")
        if role == "system" and system_messages:
            _add_system(prompt, message.get("content"))  # does not break tool_use/tool_result pairing
            continue
        if role not in ("user", "assistant"):
            raise RequestError(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        tag = b"U" if role == "user" else b"A"
        if isinstance(content, str):
            prompt.add(tag, content, len(content))
            blocks: list[Any] = []
        elif isinstance(content, list):
            blocks = content
        else:
            raise RequestError(f"messages.{i}.content: Input should be a valid string or list")
        tool_use_ids: list[str] = []
        result_ids: list[str] = []
        texts: list[str] = []
        for j, block in enumerate(blocks):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise RequestError(f"messages.{i}.content.{j}.type: Field required")
            kind = block["type"]
            if kind == "text":
                if not isinstance(block.get("text"), str):
                    raise RequestError(f"messages.{i}.content.{j}.text: Field required")
                texts.append(block["text"])
            elif kind == "tool_use":
                if role != "assistant":
                    raise RequestError(f"messages.{i}.content.{j}: tool_use blocks must be in assistant turns")
                tool_use_ids.append(str(block.get("id")))
            elif kind == "tool_result":
                result_ids.append(str(block.get("tool_use_id")))
                if str(block.get("tool_use_id")) not in open_tool_ids:
                    raise RequestError(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                        f"blocks: {block.get('tool_use_id')}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message."
                    )
            elif kind == "thinking" and verify_signatures:
                _check_signature(block, i, j)
            prompt.add(tag if j == 0 else b"+", block, block_chars(block))
        missing = [tid for tid in open_tool_ids if tid not in result_ids]
        if missing:
            raise RequestError(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
                f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                "`tool_result` block in the next message."
            )
        open_tool_ids = tool_use_ids
        if role == "user":
            last_user_text = content if isinstance(content, str) else "\n".join(texts)
    return last_user_text


def _check_thinking_leads_the_tool_loop(messages: list[Any]) -> None:
    """With thinking on, the assistant turn whose tool calls the last message answers must start
    with its thinking (the API's own rule: the model resumes that reasoning)."""
    last = messages[-1]
    content = last.get("content") if last.get("role") == "user" else None
    if not isinstance(content, list) or not any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content
    ):
        return
    i = max((k for k, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    blocks = messages[i].get("content") if i >= 0 else None
    if not isinstance(blocks, list) or not blocks:
        return
    first = blocks[0].get("type") if isinstance(blocks[0], dict) else None
    if first not in ("thinking", "redacted_thinking"):
        raise RequestError(
            f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. "
            "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
            "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include "
            "thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult "
            "our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
        )


def _check_signature(block: dict[str, Any], i: int, j: int) -> None:
    thinking, signature = block.get("thinking"), block.get("signature")
    if not (isinstance(thinking, str) and isinstance(signature, str) and _ids.signature_valid(thinking, signature)):
        raise RequestError(f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")


def _ttl(cache_control: Any) -> str:
    if not isinstance(cache_control, dict) or cache_control.get("type") != "ephemeral":
        raise RequestError("cache_control.type: Input should be 'ephemeral'")
    ttl = cache_control.get("ttl", "5m")
    if ttl not in ("5m", "1h"):
        raise RequestError("cache_control.ttl: Input should be '5m' or '1h'")
    return str(ttl)
