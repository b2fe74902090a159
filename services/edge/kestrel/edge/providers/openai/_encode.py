"""Canonical request → chat-completions body (C2 of PROTOCOLS.md), and the names and ids it needs.

Tool names and tool call ids are rewritten by pure functions of the original, so a call and its
result still pair up and the decoder can rebuild the mapping from the request alone.

Structured output (``Request.response_format``) becomes ``response_format`` (``_response_format``),
whichever dialect the client spoke; a service whose preset says it takes no ``json_schema`` gets
``json_object`` and the schema in the system prompt instead.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from kestrel.edge.canonical import (
    Block,
    Document,
    Image,
    Message,
    Request,
    ResponseFormat,
    Text,
    Thinking,
    ThinkingConfig,
    ToolChoiceKind,
    ToolResult,
    ToolUse,
)
from kestrel.edge.providers.capabilities import UNKNOWN, ModelCaps, effort_of, nearest_effort
from kestrel.edge.providers.presets import Preset

_VALID_NAME = re.compile(r"[A-Za-z0-9_-]+")
_INVALID_CHAR = re.compile(r"[^A-Za-z0-9_-]")
_MAX_ID = 40  # OpenAI rejects longer tool call ids
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def wire_tool_name(name: str, limit: int = 64) -> str:
    """``name`` if the service accepts it, else ``prefix_<8 hex of sha256(name)>`` within ``limit``."""
    if len(name) <= limit and _VALID_NAME.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{_INVALID_CHAR.sub('_', name)[: limit - 9]}_{digest}"


def shortened_names(request: Request, limit: int = 64) -> dict[str, str]:
    """Wire name → original name, for every name of ``request`` the service would not accept."""
    names = {t.name for t in request.tools}
    names |= {b.name for m in request.messages for b in m.content if isinstance(b, ToolUse)}
    if request.tool_choice is not None and request.tool_choice.name:
        names.add(request.tool_choice.name)
    return {wire: name for name in names if (wire := wire_tool_name(name, limit)) != name}


def _wire_id(tool_id: str, length: int) -> str:
    """A tool call id the service accepts; a pure function, so a call and its result still pair."""
    digest = hashlib.sha256(tool_id.encode()).digest()
    if length:
        number = int.from_bytes(digest, "big")
        return "".join(_ALNUM[(number >> (6 * i)) % 62] for i in range(length))
    clean = _INVALID_CHAR.sub("_", tool_id)
    return clean if 0 < len(clean) <= _MAX_ID else "call_" + digest.hex()[:32]


def estimate_input_tokens(request: Request) -> int:
    """About chars/4 of everything sent: a stand-in until the upstream reports, never 0 for a prompt."""
    chars = sum(len(t.text) for t in request.system)
    for message in request.messages:
        for block in message.content:
            chars += _block_chars(block)
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description) + len(orjson.dumps(tool.input_schema))
    return -(-chars // 4)


def _block_chars(block: Block) -> int:
    if isinstance(block, Text):
        return len(block.text)
    if isinstance(block, Thinking):
        return len(block.thinking)
    if isinstance(block, ToolUse):
        return len(block.name) + len(orjson.dumps(block.input))
    if isinstance(block, ToolResult):
        return sum(_block_chars(b) for b in block.content)
    if isinstance(block, Document):
        return len(block.data) if block.media_type == "text/plain" else 4000
    return 4000 if isinstance(block, Image) else 0  # an image is roughly a thousand tokens


def encode_body(request: Request, model: str, preset: Preset, caps: ModelCaps = UNKNOWN) -> dict[str, Any]:
    """The chat-completions body for ``request`` (C2 of PROTOCOLS.md), as a dict.

    ``request`` is expected already fitted to ``caps`` (``fit_to_model``); ``caps`` then only
    decides how thinking is asked for (``_reasoning``).
    """
    limit = preset.tool_name_max
    names = {name: wire for wire, name in shortened_names(request, limit).items()}
    body: dict[str, Any] = {"model": model, "messages": _encode_messages(request, preset, names)}
    if request.tools:
        body["tools"] = [
            {"type": "function", "function": _function(names.get(t.name, t.name), t.description, t.input_schema)}
            for t in request.tools
        ]
        choice = request.tool_choice
        if choice is not None:
            body["tool_choice"] = {
                ToolChoiceKind.AUTO: "auto",
                ToolChoiceKind.ANY: "required",
                ToolChoiceKind.NONE: "none",
                ToolChoiceKind.TOOL: {"type": "function", "function": {"name": names.get(choice.name, choice.name)}},
            }[choice.kind]
            if choice.disable_parallel and preset.accepts_parallel_tool_calls:
                body["parallel_tool_calls"] = False
    if request.max_tokens is not None:
        body[preset.max_tokens_field] = request.max_tokens
    for key, value in (("temperature", request.temperature), ("top_p", request.top_p)):
        if value is not None:
            body[key] = value
    if request.stop_sequences:
        body["stop"] = list(request.stop_sequences[: preset.max_stop])
    field, efforts = _reasoning(preset, caps)
    if request.thinking.enabled and field:
        effort = reasoning_effort(request.thinking, efforts)
        body[field] = {"effort": effort} if field == "reasoning" else effort
    if request.stream:
        body["stream"] = True
        if preset.stream_options:  # always: the gateway needs usage even when the client did not ask
            body["stream_options"] = {"include_usage": True}
    if request.response_format is not None:
        body["response_format"] = _response_format(request.response_format, preset)
    if request.user and preset.accepts_user:
        # Claude Code's user_id is a JSON blob; a stable hash keeps per-user grouping within limits.
        user = request.user
        body["user"] = user if len(user) <= 64 else "u_" + hashlib.sha256(user.encode()).hexdigest()[:40]
    for key in preset.extra_fields:
        if key in request.extra:
            body[key] = request.extra[key]
    return body


def reasoning_effort(thinking: ThinkingConfig, allowed: tuple[str, ...]) -> str:
    """The client's effort, else a bucket of its token budget (adaptive → medium), moved into ``allowed``."""
    return nearest_effort(effort_of(thinking), allowed)


def _reasoning(preset: Preset, caps: ModelCaps) -> tuple[str, tuple[str, ...]]:
    """The field thinking is asked for with (empty: never) and the effort values it takes.

    A model known to take an effort gets one even from a preset that sends none by default (the
    preset's field, else ``reasoning_effort``), in the model's own values when known; a model
    known to take none never gets one; any other model gets what its preset says.
    """
    if caps.thinking == "effort":
        return preset.reasoning_field or "reasoning_effort", caps.efforts or preset.reasoning_efforts
    if caps.thinking == "none":
        return "", ()
    return preset.reasoning_field, preset.reasoning_efforts


def _response_format(response_format: ResponseFormat, preset: Preset) -> dict[str, Any]:
    """``response_format``: ``json_object``, or ``json_schema`` with the name (``response`` when
    the client's API has none), description, schema and ``strict`` as the client gave them (left
    out when it did not say: OpenAI then does not enforce the schema strictly, and an Anthropic
    schema need not meet strict mode's rules). A preset without ``json_schema`` gets JSON mode,
    its schema described in the system prompt (``_schema_instruction``)."""
    if response_format.kind != "json_schema" or not preset.accepts_json_schema:
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": response_format.name or "response"}
    if response_format.description:
        spec["description"] = response_format.description
    if response_format.schema is not None:
        spec["schema"] = response_format.schema
    if response_format.strict is not None:
        spec["strict"] = response_format.strict
    return {"type": "json_schema", "json_schema": spec}


def _schema_instruction(response_format: ResponseFormat | None, preset: Preset) -> str:
    """For a preset that takes only JSON mode: the schema, said in words, for the system prompt.

    JSON mode alone would lose it, and such services want "JSON" named in the prompt anyway.
    """
    if response_format is None or response_format.kind != "json_schema" or preset.accepts_json_schema:
        return ""
    if response_format.schema is None:
        return "Answer with a JSON object."
    schema = orjson.dumps(response_format.schema).decode()
    return f"Answer with a JSON object that matches this JSON Schema:\n{schema}"


def _function(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    if description:
        out["description"] = description
    out["parameters"] = schema
    return out


def _encode_messages(request: Request, preset: Preset, names: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = [t.text for t in request.system]
    if instruction := _schema_instruction(request.response_format, preset):
        system.append(instruction)
    if system:
        out.append({"role": "system", "content": "\n\n".join(system)})
    for message in request.messages:
        if message.role == "assistant":
            out.append(_encode_assistant(message, preset, names))
        elif message.role == "system":
            out.append({"role": "system", "content": "\n\n".join(_texts(message.content))})
        else:
            out.extend(_encode_user(message, preset))
    return out


def _encode_assistant(message: Message, preset: Preset, names: dict[str, str]) -> dict[str, Any]:
    text = "\n\n".join(_texts(message.content))
    calls = [
        {
            "id": _wire_id(b.id, preset.tool_call_id_length),
            "type": "function",
            "function": {"name": names.get(b.name, b.name), "arguments": orjson.dumps(b.input).decode()},
        }
        for b in message.content
        if isinstance(b, ToolUse)
    ]
    out: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        out["tool_calls"] = calls
    thinking = "".join(b.thinking for b in message.content if isinstance(b, Thinking))
    if preset.send_reasoning_content and (thinking or calls):
        out["reasoning_content"] = thinking
    return out


def _encode_user(message: Message, preset: Preset) -> list[dict[str, Any]]:
    """Tool results first, as ``tool`` messages, so they directly follow the assistant's calls."""
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in message.content:
        if isinstance(block, ToolResult):
            texts = [p["text"] for b in block.content if (p := _part(b)) and p["type"] == "text"]
            parts.extend(p for b in block.content if (p := _part(b)) and p["type"] != "text")
            tool_id = _wire_id(block.tool_use_id, preset.tool_call_id_length)
            out.append({"role": "tool", "tool_call_id": tool_id, "content": "\n".join(texts)})
    parts.extend(p for b in message.content if not isinstance(b, ToolResult) and (p := _part(b)))
    if parts and all(p["type"] == "text" for p in parts):
        out.append({"role": "user", "content": "\n\n".join(p["text"] for p in parts)})
    elif parts or not out:
        out.append({"role": "user", "content": parts or ""})
    return out


def _part(block: Block) -> dict[str, Any] | None:
    if isinstance(block, Text):
        return {"type": "text", "text": block.text}
    if isinstance(block, Image):
        url = block.url or f"data:{block.media_type};base64,{block.data}"
        return {"type": "image_url", "image_url": {"url": url}}
    if isinstance(block, Document):
        if block.media_type == "text/plain" and not block.url:
            return {"type": "text", "text": block.data}
        if block.data:
            data_url = f"data:{block.media_type};base64,{block.data}"
            return {"type": "file", "file": {"filename": block.title or "document.pdf", "file_data": data_url}}
        return {"type": "text", "text": block.url}
    return None  # thinking in a user turn cannot happen; anything else has no OpenAI form


def _texts(blocks: tuple[Block, ...]) -> list[str]:
    return [b.text for b in blocks if isinstance(b, Text)]
