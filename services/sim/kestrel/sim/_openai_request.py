"""Parse and validate a chat completions body into the sim's neutral ``MessagesRequest``.

Like ``_request`` for Anthropic, one pass checks what OpenAI would refuse, cuts the prompt into
cache segments (tools, then messages in order, each content part or tool call one segment;
token rule in ``_tokens``) and keeps the last user text for markers and the default answer.

Checks, each a 400 ``invalid_request_error`` with OpenAI's wording, ``param`` and ``code``:

* body is a JSON object with ``model`` and a non-empty ``messages`` list;
* roles ``system``/``developer``/``user``/``assistant``/``tool`` (and the legacy ``function``);
  parts are typed (``text`` needs ``text``); user content is not null;
* an assistant's ``tool_calls`` have ``id``, ``type`` and ``function.name``, and ``arguments`` is
  a JSON *string*; every id is answered by a ``tool`` message right after it ("An assistant
  message with 'tool_calls' must be followed by tool messages ..."), and a ``tool`` message
  answers an open call of the message before;
* ``tools``: 1 to 128 ``{type: function, function: {name, description?, parameters?}}`` with
  names ``[a-zA-Z0-9_-]{1,64}``; ``tool_choice`` only with tools and naming one of them;
* ``max_completion_tokens`` / ``max_tokens`` integers >= 1 (the former wins when both are sent);
  ``stop`` a string or up to 4; ``stream_options`` only with ``stream: true``;
  ``reasoning_effort`` one of OpenAI's values;
* ``response_format``: ``text``, ``json_object`` (then some message text must say "json", as
  OpenAI insists) or ``json_schema`` with a ``name`` (``[a-zA-Z0-9_-]{1,64}``) and an object
  ``schema``; with ``strict: true`` every object in the schema must have ``additionalProperties:
  false`` and list all its properties in ``required`` (OpenAI's wording; its other strict-mode
  limits are not checked);
* for a model in ``SimConfig.models``: no ``reasoning_effort`` unless the model has ``reasoning``
  ("Unrecognized request argument supplied: reasoning_effort", as gpt-4o answers), and the max
  tokens field at most the model's ``max_tokens`` ("max_tokens is too large: …").

What it turns on: ``reasoning_effort`` other than ``none`` is thinking; ``tool_choice:
"required"`` (the first tool) or a named function is ``forced_tool``; a JSON ``response_format``
is ``json_schema`` (``{}`` for JSON mode), so the default answer is JSON; every segment boundary is
a cache point (OpenAI caches prefixes automatically). A ``tool`` message clears the last user
text, so the markers of the question that started a tool loop do not fire again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from kestrel.sim._request import MessagesRequest, Prompt, RequestError
from kestrel.sim._tokens import openai_part_chars, openai_tool_chars
from kestrel.sim.config import ModelInfo

DEFAULT_MAX_TOKENS = 65_536
"""Output budget when the request sets none (the sim's answers are far shorter anyway)."""
"""Output budget when the request sets none (the sim's answers are far shorter anyway)."""
MAX_TOOLS = 128
MAX_STOPS = 4
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_PART_TYPES = ("text", "image_url", "input_audio", "refusal", "audio", "file")
_RESPONSE_FORMATS = ("text", "json_object", "json_schema")
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
    "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you "
    "have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)"
)


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """What rendering needs beyond the neutral request."""

    include_usage: bool = False


def parse_chat(body: bytes, models: Mapping[str, ModelInfo] | None = None) -> tuple[MessagesRequest, ChatOptions]:
    """Validate a chat completions body and cut its prompt into cache segments.

    ``models`` holds the configured models: a request for one of them is held to its limits.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(_BAD_JSON) from exc
    if not isinstance(data, dict):
        raise _invalid_type("body", "an object", data)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("you must provide a model parameter")
    messages = data.get("messages")
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list):
        raise _invalid_type("messages", "an array", messages)
    if not messages:
        raise _empty_array("messages")
    stream = data.get("stream") or False
    if not isinstance(stream, bool):
        raise _invalid_type("stream", "a boolean", stream)
    stream_options = data.get("stream_options")
    if stream_options is not None and not stream:
        raise RequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", param="stream_options"
        )
    if stream_options is not None and not isinstance(stream_options, dict):
        raise _invalid_type("stream_options", "an object", stream_options)
    effort = data.get("reasoning_effort")
    if effort is not None and effort not in _EFFORTS:
        raise _invalid_value("reasoning_effort", effort, _EFFORTS)
    max_tokens = _max_tokens(data)
    info = (models or {}).get(model)
    if info is not None:
        _check_model(data, info, max_tokens)

    json_schema = _response_format(data.get("response_format"), messages)

    prompt = Prompt(model)
    names = _add_tools(prompt, data.get("tools"))
    forced = _forced_tool(data.get("tool_choice"), names)
    last_user_text = _add_messages(prompt, messages)
    prompt.cache_every_boundary()
    request = MessagesRequest(
        model=model,
        max_tokens=max_tokens,
        stream=stream,
        thinking="enabled" if effort not in (None, "none") else None,
        thinking_display="summarized",
        stop_sequences=_stops(data.get("stop")),
        prompt=prompt,
        last_user_text=last_user_text,
        message_count=len(messages),
        forced_tool=forced,
        tool_id_prefix="call_",
        json_schema=json_schema,
    )
    return request, ChatOptions(include_usage=bool((stream_options or {}).get("include_usage")))


def _max_tokens(data: dict[str, Any]) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid_type(name, "an integer", value)
        if value < 1:
            raise RequestError(
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {value} instead.",
                param=name,
                code="integer_below_min_value",
            )
        return value
    return DEFAULT_MAX_TOKENS


def _check_model(data: dict[str, Any], info: ModelInfo, max_tokens: int) -> None:
    """What this model refuses: reasoning on a non-reasoning model, more output than it can give."""
    if data.get("reasoning_effort") is not None and not info.reasoning:
        raise RequestError("Unrecognized request argument supplied: reasoning_effort")
    if max_tokens > info.max_tokens:
        name = "max_completion_tokens" if data.get("max_completion_tokens") is not None else "max_tokens"
        if data.get(name) is not None:  # the default of a request that set none is never refused
            raise RequestError(
                f"{name} is too large: {max_tokens}. This model supports at most {info.max_tokens} completion "
                f"tokens, whereas you provided {max_tokens}.",
                param=name,
            )


def _response_format(value: Any, messages: list[Any]) -> dict[str, Any] | None:
    """The schema the answer must match (``{}`` for JSON mode), or None for text."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid_type("response_format", "an object", value)
    kind = value.get("type")
    if kind is None:
        raise _missing("response_format.type")
    if kind not in _RESPONSE_FORMATS:
        raise _invalid_value("response_format.type", kind, _RESPONSE_FORMATS)
    if kind == "text":
        return None
    if kind == "json_object":
        if not any("json" in text.lower() for text in _message_texts(messages)):
            raise RequestError(
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
                param="messages",
            )
        return {}
    spec = value.get("json_schema")
    if spec is None:
        raise _missing("response_format.json_schema")
    if not isinstance(spec, dict):
        raise _invalid_type("response_format.json_schema", "an object", spec)
    name = spec.get("name")
    if name is None:
        raise _missing("response_format.json_schema.name")
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise RequestError(
            "Invalid 'response_format.json_schema.name': string does not match pattern. Expected a string that "
            "matches the pattern '^[a-zA-Z0-9_-]+$'.",
            param="response_format.json_schema.name",
            code="invalid_value",
        )
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise _invalid_type("response_format.json_schema.schema", "an object", schema)
    if spec.get("strict") is True:
        _check_strict(schema, name)
    return schema


def _check_strict(schema: dict[str, Any], name: str) -> None:
    """Strict mode's two structural rules, at every object: ``additionalProperties: false`` and
    every property ``required`` (OpenAI checks more: unsupported keywords, depth, sizes)."""

    def visit(node: Any, context: tuple[str, ...]) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item, context)
            return
        if not isinstance(node, dict):
            return
        properties = node.get("properties")
        if node.get("type") == "object" or isinstance(properties, dict):
            where = f"In context={context!r}"
            if node.get("additionalProperties") is not False:
                raise _bad_schema(name, f"{where}, 'additionalProperties' is required to be supplied and to be false.")
            missing = [key for key in properties or {} if key not in (node.get("required") or [])]
            if missing:
                raise _bad_schema(
                    name,
                    f"{where}, 'required' is required to be supplied and to be an array including every key in "
                    f"properties. Missing '{missing[0]}'.",
                )
        for key, value in node.items():
            if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
                for child, sub in value.items():
                    visit(sub, (*context, key, child))
            elif key in ("items", "anyOf", "allOf", "oneOf"):
                visit(value, (*context, key))

    visit(schema, ())


def _bad_schema(name: str, detail: str) -> RequestError:
    return RequestError(
        f"Invalid schema for response_format '{name}': {detail}",
        param="response_format",
        code="invalid_json_schema",
    )


def _message_texts(messages: list[Any]) -> list[str]:
    """Every text of every message: string contents and ``text`` parts."""
    texts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return texts


def _stops(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _invalid_type("stop", "a string or an array of strings", value)
    if len(value) > MAX_STOPS:
        raise _too_long("stop", MAX_STOPS, len(value))
    return tuple(s for s in value if s)


def _add_tools(prompt: Prompt, tools: Any) -> list[str]:
    """Add each function tool as a segment; return their names in order."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _invalid_type("tools", "an array", tools)
    if not tools:
        raise _empty_array("tools")
    if len(tools) > MAX_TOOLS:
        raise _too_long("tools", MAX_TOOLS, len(tools))
    names = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _invalid_type(where, "an object", tool)
        if tool.get("type") is None:
            raise _missing(f"{where}.type")
        if tool["type"] != "function":
            raise _invalid_value(f"{where}.type", tool["type"], ("function",))
        function = tool.get("function")
        if not isinstance(function, dict):
            raise _missing(f"{where}.function")
        name = function.get("name")
        if not isinstance(name, str):
            raise _missing(f"{where}.function.name")
        if not _TOOL_NAME.fullmatch(name):
            raise RequestError(
                f"Invalid '{where}.function.name': string does not match pattern. Expected a string that "
                "matches the pattern '^[a-zA-Z0-9_-]+$'.",
                param=f"{where}.function.name",
                code="invalid_value",
            )
        if "parameters" in function and not isinstance(function["parameters"], dict):
            raise _invalid_type(f"{where}.function.parameters", "an object", function["parameters"])
        prompt.add(b"T", tool, openai_tool_chars(function))
        names.append(name)
    return names


def _forced_tool(choice: Any, names: list[str]) -> str | None:
    if choice is None:
        return None
    if not names:
        raise RequestError(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
        )
    if choice in ("none", "auto"):
        return None
    if choice == "required":
        return names[0]
    function = choice.get("function") if isinstance(choice, dict) and choice.get("type") == "function" else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise RequestError(
            "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or "
            '{"type": "function", "function": {"name": ...}}.',
            param="tool_choice",
            code="invalid_value",
        )
    if name not in names:
        raise RequestError(
            f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'.", param="tool_choice"
        )
    return name


def _add_messages(prompt: Prompt, messages: list[Any]) -> str:
    """Add every message's segments; check tool-call pairing; return the last user text."""
    last_user_text = ""
    pending: list[str] = []  # tool_call ids of the last assistant message not yet answered
    opened_at = -1  # that assistant message's index, or -1 when tool messages are not expected
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid_type(f"messages[{i}]", "an object", message)
        role = message.get("role")
        if role is None:
            raise _missing(f"messages[{i}].role")
        if role not in _ROLES:
            raise _invalid_value(f"messages[{i}].role", role, _ROLES)
        if role == "tool":
            call_id = message.get("tool_call_id")
            if opened_at < 0:
                raise RequestError(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
            if not isinstance(call_id, str):
                raise RequestError(
                    "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'.",
                    param=f"messages.[{i}].tool_call_id",
                )
            if call_id not in pending:
                raise RequestError(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message.",
                    param=f"messages.[{i}].tool_call_id",
                )
            pending.remove(call_id)
            _add_content(prompt, b"U", message.get("content"), f"messages[{i}].content")
            last_user_text = ""  # a tool round trip: the markers of the question are spent
            continue
        if pending:
            raise _unanswered(pending, opened_at)
        opened_at = -1
        content = message.get("content")
        where = f"messages[{i}].content"
        if role in ("system", "developer"):
            _add_content(prompt, b"S", content, where)
        elif role in ("user", "function"):
            if content is None:
                raise RequestError(
                    "Invalid value for 'content': expected a string, got null.", param=f"messages.[{i}].content"
                )
            last_user_text = _add_content(prompt, b"U", content, where)
        else:
            calls = message.get("tool_calls")
            if calls == []:
                raise _empty_array(f"messages[{i}].tool_calls")
            if content is None and not calls:
                raise RequestError(
                    "Invalid value for 'content': expected a string, got null.", param=f"messages.[{i}].content"
                )
            tag = b"A"
            if content is not None:
                _add_content(prompt, b"A", content, where)
                tag = b"+"
            if calls:
                pending = _add_tool_calls(prompt, tag, calls, i)
                opened_at = i
    if pending:
        raise _unanswered(pending, opened_at)
    return last_user_text


def _add_content(prompt: Prompt, tag: bytes, content: Any, where: str) -> str:
    """Add a message's content (string or parts) as segments; return its text."""
    if isinstance(content, str):
        prompt.add(tag, content, len(content))
        return content
    if content is None:
        return ""
    if not isinstance(content, list):
        raise _invalid_type(where, "a string or an array", content)
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            raise _invalid_type(f"{where}[{j}]", "an object", part)
        kind = part.get("type")
        if kind is None:
            raise _missing(f"{where}[{j}].type")
        if kind not in _PART_TYPES:
            raise _invalid_value(f"{where}[{j}].type", kind, _PART_TYPES)
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise _missing(f"{where}[{j}].text")
            texts.append(part["text"])
        prompt.add(tag if j == 0 else b"+", part, openai_part_chars(part))
    return "\n".join(texts)


def _add_tool_calls(prompt: Prompt, tag: bytes, calls: Any, i: int) -> list[str]:
    where = f"messages[{i}].tool_calls"
    if not isinstance(calls, list):
        raise _invalid_type(where, "an array", calls)
    ids = []
    for k, call in enumerate(calls):
        at = f"{where}[{k}]"
        if not isinstance(call, dict):
            raise _invalid_type(at, "an object", call)
        for name in ("id", "type", "function"):
            if call.get(name) is None:
                raise _missing(f"{at}.{name}")
        function = call["function"]
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _missing(f"{at}.function.name")
        arguments = function.get("arguments")
        if arguments is None:
            raise _missing(f"{at}.function.arguments")
        if not isinstance(arguments, str):
            raise _invalid_type(f"{at}.function.arguments", "a string", arguments)
        ids.append(str(call["id"]))
        prompt.add(tag if k == 0 else b"+", call, len(function["name"]) + len(arguments))
    return ids


def _unanswered(pending: list[str], at: int) -> RequestError:
    return RequestError(
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}",
        param=f"messages.[{at}].role",
    )


def _missing(param: str) -> RequestError:
    return RequestError(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def _invalid_type(param: str, expected: str, value: Any) -> RequestError:
    return RequestError(
        f"Invalid type for '{param}': expected {expected}, but got {_json_kind(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _invalid_value(param: str, value: Any, allowed: tuple[str, ...]) -> RequestError:
    listed = ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'" if len(allowed) > 1 else allowed[0]
    return RequestError(f"Invalid value: '{value}'. Supported values are: {listed}.", param=param, code="invalid_value")


def _empty_array(param: str) -> RequestError:
    return RequestError(
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        param=param,
        code="empty_array",
    )


def _too_long(param: str, most: int, got: int) -> RequestError:
    return RequestError(
        f"Invalid '{param}': array too long. Expected an array with maximum length {most}, but got an array "
        f"with length {got} instead.",
        param=param,
        code="array_above_max_length",
    )


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
