"""Reading a chat-completions request into the canonical ``Request``.

The shapes differ in two ways that matter: OpenAI tool results are separate ``tool`` messages while
the canonical (Anthropic) model wants them as the first blocks of the next user turn, and tool
arguments travel as a JSON *string* that must be parsed here (a client sending broken JSON gets a
400 naming the field now, rather than a confusing upstream error later).

``response_format`` becomes ``Request.response_format`` (every upstream has a form of it), not an
extra: ``json_object`` and ``json_schema`` (name, schema, strict, description) are kept, ``text``
is the same as leaving it out.
"""

from __future__ import annotations

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
    Tool,
    ToolChoice,
    ToolChoiceKind,
    ToolResult,
    ToolUse,
)
from kestrel.edge.errors import InvalidRequest

EXTRA_FIELDS = (
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
    "metadata",
)
"""OpenAI-only fields kept in ``Request.extra`` for an OpenAI-family upstream (its preset filters)."""

_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_TOOL_CHOICES = {"none": ToolChoiceKind.NONE, "auto": ToolChoiceKind.AUTO, "required": ToolChoiceKind.ANY}


def parse_request(body: bytes) -> Request:
    """A chat-completions body → ``Request``; raises ``InvalidRequest`` naming the bad field."""
    data = _load(body)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model: a non-empty string is required")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise InvalidRequest("messages: a non-empty list is required")
    system, messages = _parse_messages(raw_messages)
    if data.get("n") not in (None, 1):
        raise InvalidRequest("n: only 1 is supported")
    stream = data.get("stream") or False
    if not isinstance(stream, bool):
        raise InvalidRequest("stream: must be a boolean")
    options = data.get("stream_options") or {}
    return Request(
        model=model,
        messages=messages,
        system=system,
        max_tokens=_max_tokens(data),
        stream=stream,
        temperature=_number(data, "temperature"),
        top_p=_number(data, "top_p"),
        stop_sequences=_stop(data.get("stop")),
        tools=_parse_tools(data.get("tools"), data.get("functions")),
        tool_choice=_parse_tool_choice(
            data.get("tool_choice", data.get("function_call")), data.get("parallel_tool_calls")
        ),
        thinking=_thinking(data.get("reasoning_effort")),
        user=data["user"] if isinstance(data.get("user"), str) else "",
        include_usage=not stream or (isinstance(options, dict) and options.get("include_usage") is True),
        response_format=_response_format(data.get("response_format")),
        extra={k: data[k] for k in EXTRA_FIELDS if data.get(k) is not None},
    )


def _load(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object")
    return data


def _parse_messages(raw: list[Any]) -> tuple[tuple[Text, ...], tuple[Message, ...]]:
    """System messages before the conversation become ``Request.system``; later ones stay in place."""
    system: list[Text] = []
    out: list[Message] = []
    results: list[Block] = []  # tool messages waiting for the user turn they belong to
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where}: must be an object")
        role = message.get("role")
        if role != "tool" and results:
            if role == "user":
                out.append(Message("user", (*results, *_user_content(message.get("content"), where))))
                results = []
                continue
            out.append(Message("user", tuple(results)))
            results = []
        if role in ("system", "developer"):
            texts = [Text(t) for t in _texts(message.get("content"), where) if t]
            if out and texts:
                out.append(Message("system", tuple(texts)))
            elif not out:
                system.extend(texts)
        elif role == "user":
            out.append(Message("user", _user_content(message.get("content"), where)))
        elif role == "assistant":
            out.append(Message("assistant", _assistant_content(message, where)))
        elif role == "tool":
            tool_id = message.get("tool_call_id")
            if not isinstance(tool_id, str) or not tool_id:
                raise InvalidRequest(f"{where}.tool_call_id: a non-empty string is required")
            texts = tuple(Text(t) for t in _texts(message.get("content"), where) if t)
            results.append(ToolResult(tool_id, texts))
        else:
            raise InvalidRequest(f"{where}.role: must be system, developer, user, assistant or tool")
    if results:
        out.append(Message("user", tuple(results)))
    return tuple(system), tuple(out)


def _texts(content: Any, where: str) -> list[str]:
    """A string or a list of ``text`` / ``refusal`` parts → its strings."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        values = [
            p.get(p.get("type")) if isinstance(p, dict) and p.get("type") in ("text", "refusal") else None
            for p in content
        ]
        if all(isinstance(v, str) for v in values):
            return values
    raise InvalidRequest(f"{where}.content: must be a string or a list of text parts")


def _user_content(content: Any, where: str) -> tuple[Block, ...]:
    if isinstance(content, str):
        return (Text(content),)
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content: must be a string or a list of parts")
    return tuple(_user_part(part, f"{where}.content[{j}]") for j, part in enumerate(content))


def _user_part(part: Any, where: str) -> Block:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return Text(part["text"])
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url:
            raise InvalidRequest(f"{where}.image_url.url: a non-empty string is required")
        media_type, data = _data_url(url)
        return Image(media_type=media_type, data=data) if data else Image(url=url)
    if kind == "file":
        file = part.get("file") if isinstance(part.get("file"), dict) else {}
        media_type, data = _data_url(file.get("file_data") or "")
        if not data:
            raise InvalidRequest(f"{where}.file: only inline file_data (a data: URL) is supported")
        return Document(media_type=media_type or "application/pdf", data=data, title=file.get("filename") or "")
    raise InvalidRequest(f"{where}.type: {kind!r} parts are not supported (text, image_url and file are)")


def _data_url(url: str) -> tuple[str, str]:
    """``data:<mime>;base64,<payload>`` → (mime, payload); ("", "") for any other URL."""
    head, sep, payload = url.partition(",")
    if not (sep and head.startswith("data:") and head.endswith(";base64")):
        return "", ""
    return head[5:-7], payload


def _assistant_content(message: dict[str, Any], where: str) -> tuple[Block, ...]:
    blocks: list[Block] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        blocks.append(Thinking(reasoning))  # unsigned: Anthropic upstreams must drop it
    blocks.extend(Text(t) for t in _texts(message.get("content"), where) if t)
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequest(f"{where}.tool_calls: must be a list")
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not isinstance(call.get("id"), str):
            raise InvalidRequest(f"{at}: id and function.name are required")
        blocks.append(ToolUse(call["id"], fn["name"], _arguments(fn.get("arguments"), f"{at}.function.arguments")))
    return tuple(blocks)


def _arguments(raw: Any, where: str) -> dict[str, Any]:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    if not isinstance(raw, str):
        raise InvalidRequest(f"{where}: must be a JSON string")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest(f"{where}: is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}: must encode a JSON object")
    return value


def _parse_tools(tools: Any, functions: Any) -> tuple[Tool, ...]:
    if tools is None and isinstance(functions, list):  # the deprecated pre-tools form
        tools = [{"type": "function", "function": f} for f in functions]
    if tools is None:
        return ()
    if not isinstance(tools, list):
        raise InvalidRequest("tools: must be a list")
    out = []
    for j, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type", "function") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise InvalidRequest(f"tools[{j}]: only function tools with a name are supported")
        schema = (
            fn.get("parameters") if isinstance(fn.get("parameters"), dict) else {"type": "object", "properties": {}}
        )
        out.append(Tool(fn["name"], fn.get("description") or "", schema))
    return tuple(out)


def _parse_tool_choice(choice: Any, parallel: Any) -> ToolChoice | None:
    disable_parallel = parallel is False
    if choice is None:
        return ToolChoice(disable_parallel=True) if disable_parallel else None
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        return ToolChoice(_TOOL_CHOICES[choice], disable_parallel=disable_parallel)
    if isinstance(choice, dict):
        fn = choice.get("function") if isinstance(choice.get("function"), dict) else choice
        if isinstance(fn.get("name"), str) and fn["name"]:
            return ToolChoice(ToolChoiceKind.TOOL, fn["name"], disable_parallel)
    raise InvalidRequest('tool_choice: must be "none", "auto", "required" or {"type":"function","function":{"name"}}')


def _max_tokens(data: dict[str, Any]) -> int | None:
    key = "max_completion_tokens" if data.get("max_completion_tokens") is not None else "max_tokens"
    value = data.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InvalidRequest(f"{key}: must be a positive integer")
    return value


def _number(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
        raise InvalidRequest(f"{key}: must be a number")
    return value


def _stop(stop: Any) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return tuple(stop)
    raise InvalidRequest("stop: must be a string or a list of strings")


def _response_format(raw: Any) -> ResponseFormat | None:
    """``response_format`` → canonical; ``{type: "text"}`` (and no field) is plain text, None."""
    if raw is None:
        return None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind != "json_schema":
        raise InvalidRequest('response_format.type: must be "text", "json_object" or "json_schema"')
    spec = raw.get("json_schema")
    if not isinstance(spec, dict):
        raise InvalidRequest("response_format.json_schema: an object is required")
    name, schema, strict = spec.get("name", ""), spec.get("schema"), spec.get("strict")
    description = spec.get("description") or ""
    if not isinstance(name, str):
        raise InvalidRequest("response_format.json_schema.name: must be a string")
    if schema is not None and not isinstance(schema, dict):
        raise InvalidRequest("response_format.json_schema.schema: must be an object")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequest("response_format.json_schema.strict: must be a boolean")
    if not isinstance(description, str):
        raise InvalidRequest("response_format.json_schema.description: must be a string")
    return ResponseFormat("json_schema", schema, name, strict, description)


def _thinking(effort: Any) -> ThinkingConfig:
    if effort is None or effort == "none":
        return ThinkingConfig()
    if effort not in _EFFORTS:
        raise InvalidRequest(f"reasoning_effort: must be one of {', '.join(_EFFORTS)}")
    return ThinkingConfig(enabled=True, effort=effort)
