"""What the sim answers: a scripted response, the blocks named by markers, or a default echo.

Precedence for each ``/v1/messages`` request: the next scripted response (the key's queue, then
the global queue); else markers found in the last user message; else the default answer.

Markers (in the text blocks of the last user message, any number, answered in order):

* ``[[sim:text SOME TEXT]]``: a text block ``SOME TEXT``.
* ``[[sim:think SOME TEXT]]``: a thinking block.
* ``[[sim:tool NAME {"json": "object"}]]``: a ``tool_use`` block calling ``NAME`` with that input.

A marker ends at the first ``]]`` (for ``tool``: the first ``]]`` after which the JSON parses).
A tool marker whose JSON is not an object answers 400, so a typo in a test shows up at once.

Default answer: one text block that echoes the request deterministically (same request, same
text), long enough to stream as several deltas. When the request asks for structured output
(Anthropic ``output_config.format``, OpenAI ``response_format`` ``json_object``/``json_schema``,
Gemini ``responseMimeType: application/json``), that text is instead a small JSON value matching
the schema (``_instance``: each required property with a placeholder; ``{}`` for JSON mode), so an
SDK's ``.parse()`` succeeds on simple schemas. When the request enables thinking (``enabled``
or ``adaptive``; OpenAI's ``reasoning_effort``; Gemini's ``thinkingConfig``), default and marker
answers start with a thinking block unless a marker already supplied one. When the request
forces a tool (OpenAI ``tool_choice`` required or named, Gemini mode ``ANY``) and neither markers
nor the default name one, the answer is a call of that tool with ``{}`` input instead of the echo
(after marker text, if any). Scripted responses are sent exactly as scripted.

The answer is the same for every API: each dialect renders these Anthropic-shaped blocks in its
own form (``_render`` for Anthropic, ``_openai``, ``_gemini``).

Then the answer is cut as a model would stop: at the first stop sequence inside a text block
(``stop_reason: stop_sequence``), or when the output would pass ``max_tokens`` (text and thinking
are truncated, a tool call that does not fit is dropped; ``stop_reason: max_tokens``). Otherwise
``stop_reason`` is the scripted one, else ``tool_use`` when a tool call is present, else
``end_turn``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from kestrel.sim import _ids
from kestrel.sim._instance import instance
from kestrel.sim._request import MessagesRequest, RequestError
from kestrel.sim._tokens import CHARS_PER_TOKEN, output_block_tokens

STOP_REASONS = (
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
)
_MARKER = re.compile(r"\[\[sim:(text|think|tool)\s")


class ScriptError(ValueError):
    """A scripted response the control API refuses."""


@dataclass(frozen=True, slots=True)
class ScriptedResponse:
    """One queued answer: content blocks (tool ids and signatures filled in when sent)."""

    content: tuple[dict[str, Any], ...]
    stop_reason: str | None = None


@dataclass(slots=True)
class Answer:
    """The generated message body, identical for the streamed and non-streamed form."""

    content: list[dict[str, Any]]
    stop_reason: str
    stop_sequence: str | None
    output_tokens: int
    thinking_tokens: int = 0
    """The part of ``output_tokens`` spent on thinking blocks (before display omission)."""


def parse_script(data: Any) -> ScriptedResponse:
    """Validate one entry of ``POST /_sim/script``'s ``responses``."""
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        raise ScriptError("each response needs a content list")
    stop_reason = data.get("stop_reason")
    if stop_reason is not None and stop_reason not in STOP_REASONS:
        raise ScriptError(f"stop_reason must be one of {list(STOP_REASONS)}")
    blocks = []
    for i, block in enumerate(data["content"]):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            blocks.append({"type": "text", "text": block["text"]})
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            blocks.append(_pick(block, "type", "thinking", "signature"))
        elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
            blocks.append({"type": "redacted_thinking", "data": block["data"]})
        elif kind == "tool_use" and isinstance(block.get("name"), str):
            if not isinstance(block.get("input", {}), dict):
                raise ScriptError(f"content.{i}.input must be an object")
            blocks.append(
                {"type": "tool_use", "id": block.get("id"), "name": block["name"], "input": block.get("input", {})}
            )
        else:
            raise ScriptError(
                f"content.{i}: expected text{{text}}, thinking{{thinking}}, "
                "redacted_thinking{data} or tool_use{name, input}"
            )
    return ScriptedResponse(tuple(blocks), stop_reason)


def build_answer(
    request: MessagesRequest,
    scripted: ScriptedResponse | None,
    markers: list[dict[str, Any]] | None = None,
) -> Answer:
    """Choose the blocks, cut them at a stop sequence or ``max_tokens``, fill ids and signatures.

    ``markers`` is ``marker_blocks(request.last_user_text)``, read by the caller before the
    request is admitted so that a malformed marker is refused without being charged.
    """
    if scripted is not None:
        blocks = list(scripted.content)
        stop_reason = scripted.stop_reason
    else:
        blocks = list(markers or ()) or ([] if request.forced_tool else [default_text(request)])
        stop_reason = None
        if request.forced_tool and not any(b["type"] == "tool_use" for b in blocks):
            blocks.append({"type": "tool_use", "id": None, "name": request.forced_tool, "input": {}})
        if request.thinking and not any(b["type"] == "thinking" for b in blocks):
            blocks.insert(0, {"type": "thinking", "thinking": default_thinking(request)})
    return _finish(request, blocks, stop_reason)


def marker_blocks(text: str) -> list[dict[str, Any]]:
    """Blocks named by ``[[sim:...]]`` markers, in order (empty when there are none)."""
    if "[[sim:" not in text:
        return []
    blocks: list[dict[str, Any]] = []
    for match in _MARKER.finditer(text):
        kind, start = match.group(1), match.end()
        if kind == "tool":
            blocks.append(_tool_marker(text, start))
            continue
        end = text.find("]]", start)
        if end < 0:
            continue
        body = text[start:end]
        blocks.append({"type": "text", "text": body} if kind == "text" else {"type": "thinking", "thinking": body})
    return blocks


def default_text(request: MessagesRequest) -> dict[str, Any]:
    if request.json_schema is not None:
        return {"type": "text", "text": orjson.dumps(instance(request.json_schema)).decode()}
    snippet = " ".join(request.last_user_text.split())
    if len(snippet) > 160:
        snippet = snippet[:157] + "..."
    text = (
        f"Simulated reply from {request.model} to message {request.message_count} "
        f"({request.prompt.total_tokens} prompt tokens). You said: {snippet or '(no text)'}"
    )
    return {"type": "text", "text": text}


def default_thinking(request: MessagesRequest) -> str:
    words = request.last_user_text.split()
    topic = " ".join(words[:12]) if words else "the tool results"
    return f"The user is asking about: {topic}. I will answer briefly and directly."


def _tool_marker(text: str, start: int) -> dict[str, Any]:
    name, _, _rest = text[start:].partition(" ")
    json_start = start + len(name) + 1
    end = text.find("]]", json_start)
    while end >= 0:
        try:
            value = orjson.loads(text[json_start:end])
        except orjson.JSONDecodeError:
            end = text.find("]]", end + 1)
            continue
        if not isinstance(value, dict):
            break
        return {"type": "tool_use", "id": None, "name": name, "input": value}
    raise RequestError(f"sim marker: [[sim:tool {name} ...]] needs a JSON object input")


def _finish(request: MessagesRequest, blocks: list[dict[str, Any]], stop_reason: str | None) -> Answer:
    budget = request.max_tokens
    used = thinking_used = 0
    content: list[dict[str, Any]] = []
    stop_sequence = None
    cut_reason = None
    for block in blocks:
        block = dict(block)
        kind = block["type"]
        if kind == "text" and request.stop_sequences:
            stop_sequence = _first_stop(block["text"], request.stop_sequences)
            if stop_sequence is not None:
                block["text"] = block["text"][: block["text"].find(stop_sequence)]
                cut_reason = "stop_sequence"
        tokens = output_block_tokens(block)
        if used + tokens > budget:
            cut_reason, stop_sequence = "max_tokens", None
            room = (budget - used) * CHARS_PER_TOKEN
            if kind in ("text", "thinking"):
                field = "text" if kind == "text" else "thinking"
                block[field] = block[field][:room]
                tokens = output_block_tokens(block)
            else:
                block, tokens = None, 0  # a tool call or redacted block cannot be cut in half
        if block is not None and not (cut_reason and _empty(block)):
            content.append(_complete(block, request))
            used += tokens
            if kind == "thinking":
                thinking_used += tokens
        if cut_reason:
            break
    if cut_reason is None:
        has_tool = any(b["type"] == "tool_use" for b in content)
        cut_reason = stop_reason or ("tool_use" if has_tool else "end_turn")
    return Answer(content, cut_reason, stop_sequence, max(1, used), thinking_used)


def _complete(block: dict[str, Any], request: MessagesRequest) -> dict[str, Any]:
    """Fill what only the moment of sending decides: tool ids, signatures, omitted thinking."""
    if block["type"] == "tool_use" and not block.get("id"):
        block["id"] = _ids.tool_use_id(request.tool_id_prefix)
    elif block["type"] == "thinking":
        if request.thinking_display == "omitted":
            block["thinking"] = ""
        if not block.get("signature"):
            block["signature"] = _ids.mint_signature(block["thinking"])
        block = {"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]}
    return block


def _first_stop(text: str, stops: tuple[str, ...]) -> str | None:
    best, best_at = None, len(text) + 1
    for stop in stops:
        at = text.find(stop)
        if 0 <= at < best_at:
            best, best_at = stop, at
    return best


def _empty(block: dict[str, Any]) -> bool:
    return (block["type"] == "text" and not block["text"]) or (block["type"] == "thinking" and not block["thinking"])


def _pick(block: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: block[name] for name in names if name in block}
