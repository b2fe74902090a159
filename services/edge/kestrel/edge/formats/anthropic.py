"""Anthropic Messages JSON ⇄ the canonical model: requests, responses and stream events.

Both directions use it. The Anthropic provider writes a canonical request as a Messages body and
reads Anthropic answers back; the Anthropic dialect reads a client's body into a canonical request
(when the upstream speaks another API) and writes canonical answers as Anthropic JSON. Passthrough
(Anthropic client, Anthropic upstream) never comes here: its bytes travel untouched.

Top-level fields the canonical model has no slot for (``context_management``, ``service_tier``,
``container`` …) go to ``Request.extra`` and are written back as they came. ``output_config.effort``
is read into ``ThinkingConfig.effort`` and ``output_config.format`` (structured output,
``{type: "json_schema", schema}``; also the deprecated top-level beta ``output_format`` of the same
shape) into ``Request.response_format``, so other APIs can honour them; the rest of
``output_config`` stays in ``extra``. A format of any other shape stays in ``extra`` untouched. A
response format is written as ``output_config.format`` (the current spelling, whichever the client
used); one Anthropic cannot express (OpenAI's ``json_object``, a ``json_schema`` without a schema)
is not written. Lost on the way in, because no other API can use them: thinking ``display``,
client-tool ``strict``/``input_examples``/``defer_loading``, server tools (``web_search_…``),
document ``citations`` settings, ``metadata`` keys other than ``user_id``. Block types with no
canonical form are refused with a 400 naming the block (``_anthropic_blocks``).

The pieces live in private modules (blocks and usage in ``_anthropic_blocks``, stream events in
``_anthropic_events``); this module is the one to import.
"""

from __future__ import annotations

from typing import Any

import orjson

from kestrel.edge.canonical import (
    Message,
    Request,
    Response,
    ResponseFormat,
    Text,
    ThinkingConfig,
    Tool,
    ToolChoice,
    ToolChoiceKind,
)
from kestrel.edge.errors import InvalidRequest
from kestrel.edge.formats._anthropic_blocks import (
    Invalid,
    as_dict,
    as_list,
    at,
    boolean,
    integer,
    need,
    number,
    read_block,
    read_cache,
    read_content,
    read_stop_reason,
    read_usage,
    string,
    usage_json,
    write_block,
    write_cache,
)
from kestrel.edge.formats._anthropic_events import event_json, frame, parse_event

__all__ = [
    "KNOWN_FIELDS",
    "Invalid",
    "event_json",
    "frame",
    "parse_event",
    "parse_request",
    "parse_response",
    "read_stop_reason",
    "read_usage",
    "request_json",
    "response_json",
    "usage_json",
]

KNOWN_FIELDS = frozenset(
    {
        *("model", "messages", "system", "max_tokens", "stream", "temperature", "top_p", "top_k"),
        *("stop_sequences", "tools", "tool_choice", "thinking", "metadata", "output_config"),
    }
)
"""Top-level request fields with a canonical slot; every other field goes to ``Request.extra``."""

_ROLES = ("user", "assistant", "system")


# -- requests ---------------------------------------------------------------------------------


def parse_request(body: bytes | dict[str, Any]) -> Request:
    """A Messages request body as a canonical ``Request``; ``InvalidRequest`` names the bad field."""
    try:
        if isinstance(body, bytes | bytearray):
            try:
                body = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise Invalid("", f"request body is not valid JSON: {exc}") from None
        return _request(as_dict(body, "body"))
    except Invalid as exc:
        raise InvalidRequest(str(exc)) from None


def _request(data: dict[str, Any]) -> Request:
    model = string(data, "model", "")
    raw_messages = as_list(need(data, "messages", ""), "messages")
    messages = tuple(_message(m, at("messages", i)) for i, m in enumerate(raw_messages))
    system = data.get("system")
    system_blocks = () if system is None else read_content(system, "system", allowed=("text",))
    max_tokens = integer(data, "max_tokens", "")
    if max_tokens is not None and max_tokens < 0:
        raise Invalid("max_tokens", "Input should be greater than or equal to 0")
    stop = as_list(data.get("stop_sequences") or [], "stop_sequences")
    for i, item in enumerate(stop):
        if not isinstance(item, str):
            raise Invalid(at("stop_sequences", i), "Input should be a valid string")
    metadata = as_dict(data.get("metadata") or {}, "metadata")
    extra = {k: v for k, v in data.items() if k not in KNOWN_FIELDS}
    effort, response_format = _output_config(data.get("output_config"), extra)
    if response_format is None and (response_format := _response_format(extra.get("output_format"))) is not None:
        del extra["output_format"]
    choice = data.get("tool_choice")
    return Request(
        model=model,
        messages=messages,
        system=tuple(b for b in system_blocks if isinstance(b, Text)),
        max_tokens=max_tokens,
        stream=boolean(data, "stream", ""),
        temperature=number(data, "temperature", ""),
        top_p=number(data, "top_p", ""),
        top_k=integer(data, "top_k", ""),
        stop_sequences=tuple(stop),
        tools=_tools(data.get("tools")),
        tool_choice=None if choice is None else _tool_choice(choice, "tool_choice"),
        thinking=_thinking(data.get("thinking"), effort),
        user=string(metadata, "user_id", "metadata", ""),
        response_format=response_format,
        extra=extra,
    )


def _message(raw: Any, path: str) -> Message:
    raw = as_dict(raw, path)
    role = need(raw, "role", path)
    if role not in _ROLES:
        raise Invalid(at(path, "role"), "Input should be 'user', 'assistant' or 'system'")
    return Message(role, read_content(need(raw, "content", path), at(path, "content")))


def _tools(raw: Any) -> tuple[Tool, ...]:
    tools = []
    for i, item in enumerate(as_list(raw or [], "tools")):
        path = at("tools", i)
        item = as_dict(item, path)
        if item.get("type") not in (None, "custom"):
            continue  # a server tool (web search, code execution …): no other API can run it
        schema = as_dict(need(item, "input_schema", path), at(path, "input_schema"))
        description = string(item, "description", path, "")
        tools.append(Tool(string(item, "name", path), description, schema, read_cache(item, path)))
    return tuple(tools)


def _tool_choice(raw: Any, path: str) -> ToolChoice:
    raw = as_dict(raw, path)
    try:
        kind = ToolChoiceKind(raw.get("type"))
    except ValueError:
        raise Invalid(at(path, "type"), "Input should be 'auto', 'any', 'tool' or 'none'") from None
    name = string(raw, "name", path) if kind is ToolChoiceKind.TOOL else ""
    return ToolChoice(kind, name, boolean(raw, "disable_parallel_tool_use", path))


def _output_config(raw: Any, extra: dict[str, Any]) -> tuple[str, ResponseFormat | None]:
    """Take ``effort`` and a ``json_schema`` ``format`` out of ``output_config``; what remains stays
    in ``extra`` for Anthropic."""
    if raw is None:
        return "", None
    config = raw if isinstance(raw, dict) else {}
    effort = config.get("effort") if isinstance(config.get("effort"), str) else None
    response_format = _response_format(config.get("format"))
    taken = {k for k, value in (("effort", effort), ("format", response_format)) if value is not None}
    if not taken:
        extra["output_config"] = raw
        return "", None
    rest = {k: v for k, v in config.items() if k not in taken}
    if rest:
        extra["output_config"] = rest
    return effort or "", response_format


def _response_format(raw: Any) -> ResponseFormat | None:
    """``{type: "json_schema", schema: {...}}`` (exactly that) as canonical; anything else None,
    and then it stays in ``extra`` as it came, for Anthropic to judge."""
    if not isinstance(raw, dict) or raw.keys() != {"type", "schema"} or raw["type"] != "json_schema":
        return None
    return ResponseFormat("json_schema", raw["schema"]) if isinstance(raw["schema"], dict) else None


def _thinking(raw: Any, effort: str) -> ThinkingConfig:
    if raw is None:
        return ThinkingConfig(effort=effort)
    raw = as_dict(raw, "thinking")
    kind = raw.get("type")
    if kind == "enabled":
        budget = integer(raw, "budget_tokens", "thinking")
        if budget is None:
            raise Invalid("thinking.budget_tokens", "Field required")
        return ThinkingConfig(True, budget, effort)
    if kind == "adaptive":
        return ThinkingConfig(True, 0, effort)
    if kind == "disabled":
        return ThinkingConfig(False, 0, effort)
    raise Invalid("thinking.type", "Input should be 'enabled', 'adaptive' or 'disabled'")


def request_json(request: Request) -> dict[str, Any]:
    """The Messages body for ``request``: the inverse of ``parse_request`` up to normal form.

    Every ``Request.extra`` entry is written; a provider filters ``extra`` first when the request
    came from another dialect.
    """
    out: dict[str, Any] = {"model": request.model}
    if request.max_tokens is not None:
        out["max_tokens"] = request.max_tokens
    out["messages"] = [{"role": m.role, "content": [write_block(b) for b in m.content]} for m in request.messages]
    if request.system:
        out["system"] = [write_block(b) for b in request.system]
    optional = {"temperature": request.temperature, "top_p": request.top_p, "top_k": request.top_k}
    out.update({k: v for k, v in optional.items() if v is not None})
    if request.stop_sequences:
        out["stop_sequences"] = list(request.stop_sequences)
    if request.tools:
        out["tools"] = [_tool_json(t) for t in request.tools]
    if request.tool_choice is not None:
        out["tool_choice"] = _tool_choice_json(request.tool_choice)
    thinking = request.thinking
    if thinking.enabled:
        budget = thinking.budget_tokens
        out["thinking"] = {"type": "enabled", "budget_tokens": budget} if budget else {"type": "adaptive"}
    if request.user:
        out["metadata"] = {"user_id": request.user}
    if request.stream:
        out["stream"] = True
    for key, value in request.extra.items():
        out.setdefault(key, value)  # a canonical field always wins over a stray extra
    response_format = request.response_format
    if response_format is not None and response_format.kind == "json_schema" and response_format.schema is not None:
        config = out.get("output_config")
        schema = {"type": "json_schema", "schema": response_format.schema}
        out["output_config"] = {**(config if isinstance(config, dict) else {}), "format": schema}
    if thinking.effort:
        config = out.get("output_config")
        out["output_config"] = {**(config if isinstance(config, dict) else {}), "effort": thinking.effort}
    return out


def _tool_json(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description:
        out["description"] = tool.description
    out["input_schema"] = tool.input_schema
    return write_cache(out, tool.cache)


def _tool_choice_json(choice: ToolChoice) -> dict[str, Any]:
    out: dict[str, Any] = {"type": choice.kind.value}
    if choice.kind is ToolChoiceKind.TOOL:
        out["name"] = choice.name
    if choice.disable_parallel:
        out["disable_parallel_tool_use"] = True
    return out


# -- responses --------------------------------------------------------------------------------


def parse_response(body: bytes | dict[str, Any]) -> Response:
    """A Messages response as a canonical ``Response``; raises ``Invalid`` on a malformed body.

    Blocks with no canonical form (server-tool calls and results) are skipped: the answer is
    already paid for, and the client's API could not show them anyway.
    """
    if isinstance(body, bytes | bytearray):
        try:
            body = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Invalid("", f"response body is not valid JSON: {exc}") from None
    data = as_dict(body, "body")
    content = []
    for i, raw in enumerate(as_list(need(data, "content", ""), "content")):
        kind = as_dict(raw, at("content", i)).get("type")
        if kind in ("text", "thinking", "redacted_thinking", "tool_use"):
            content.append(read_block(raw, at("content", i)))
    return Response(
        id=string(data, "id", ""),
        model=string(data, "model", "", ""),
        content=tuple(content),
        stop_reason=read_stop_reason(data.get("stop_reason")),
        stop_sequence=data.get("stop_sequence") if isinstance(data.get("stop_sequence"), str) else None,
        usage=read_usage(data.get("usage")),
    )


def response_json(response: Response) -> dict[str, Any]:
    """The non-streaming message (PROTOCOLS A4) for ``response``."""
    return {
        "id": response.id,
        "type": "message",
        "role": "assistant",
        "model": response.model,
        "content": [write_block(b) for b in response.content],
        "stop_reason": response.stop_reason.value,
        "stop_sequence": response.stop_sequence,
        "usage": usage_json(response.usage),
    }
