"""Anthropic content blocks and usage ⇄ canonical ones, and the small typed readers that validate them.

Split from ``anthropic.py`` because requests and responses share every block, and because the
readers raise one exception type carrying a field path (``messages.2.content.0.source.type``), the
way Anthropic words its own 400s: a client sees which field is wrong, not a Python traceback.

Normal form on the way out (what a round trip normalises, all equivalent for the API):
content is always a list of blocks (a string becomes one text block); ``cache_control`` without a
``ttl`` means 5 minutes and is written without one; a text block's ``citations`` are written only
when there are some.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kestrel.edge.canonical import (
    Block,
    CacheControl,
    Document,
    Image,
    RedactedThinking,
    StopReason,
    Text,
    Thinking,
    ToolResult,
    ToolUse,
    Usage,
)

_NO_USAGE = Usage()


class Invalid(Exception):
    """A value in Anthropic JSON that does not fit; ``str()`` reads ``path: message``."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


def at(path: str, key: str | int) -> str:
    return f"{path}.{key}" if path else str(key)


# -- readers: each returns the typed value or raises Invalid with the field's path -------------


def as_dict(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(path, "Input should be a valid dictionary")
    return value


def as_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(path, "Input should be a valid list")
    return value


def need(obj: dict[str, Any], key: str, path: str) -> Any:
    if key not in obj:
        raise Invalid(at(path, key), "Field required")
    return obj[key]


def string(obj: dict[str, Any], key: str, path: str, default: str | None = None) -> str:
    """A string field; required unless ``default`` is given (``null`` then reads as the default)."""
    value = need(obj, key, path) if default is None else obj.get(key, default)
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise Invalid(at(path, key), "Input should be a valid string")
    return value


def integer(obj: dict[str, Any], key: str, path: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(at(path, key), "Input should be a valid integer")
    return value


def number(obj: dict[str, Any], key: str, path: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise Invalid(at(path, key), "Input should be a valid number")
    return value


def boolean(obj: dict[str, Any], key: str, path: str) -> bool:
    value = obj.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise Invalid(at(path, key), "Input should be a valid boolean")
    return value


# -- cache_control ----------------------------------------------------------------------------


def read_cache(obj: dict[str, Any], path: str) -> CacheControl | None:
    raw = obj.get("cache_control")
    if raw is None:
        return None
    path = at(path, "cache_control")
    raw = as_dict(raw, path)
    if raw.get("type") != "ephemeral":
        raise Invalid(at(path, "type"), "Input should be 'ephemeral'")
    return CacheControl(string(raw, "ttl", path, "5m"))


def write_cache(out: dict[str, Any], cache: CacheControl | None) -> dict[str, Any]:
    if cache is not None:
        out["cache_control"] = {"type": "ephemeral"} if cache.ttl == "5m" else {"type": "ephemeral", "ttl": cache.ttl}
    return out


# -- blocks in -------------------------------------------------------------------------------

_TOOL_RESULT_PARTS = ("text", "image", "document")


def read_content(value: Any, path: str, *, allowed: tuple[str, ...] | None = None) -> tuple[Block, ...]:
    """A ``content`` value: a string (one text block; ``""`` is none) or a list of blocks."""
    if isinstance(value, str):
        return (Text(value),) if value else ()
    return tuple(read_block(item, at(path, i), allowed) for i, item in enumerate(as_list(value, path)))


def read_block(raw: Any, path: str, allowed: tuple[str, ...] | None = None) -> Block:
    raw = as_dict(raw, path)
    kind = string(raw, "type", path)
    if allowed is not None and kind not in allowed:
        names = ", ".join(repr(a) for a in allowed)
        raise Invalid(at(path, "type"), f"Input should be one of {names}")
    reader = _READERS.get(kind)
    if reader is None:
        # Server-tool and search blocks have no canonical form: refusing beats silently dropping
        # half of a tool exchange, which the target API would reject less clearly.
        raise Invalid(at(path, "type"), f"'{kind}' blocks cannot be translated to another API")
    return reader(raw, path)


def _text(raw: dict[str, Any], path: str) -> Text:
    citations = raw.get("citations") or []
    as_list(citations, at(path, "citations"))
    return Text(string(raw, "text", path), read_cache(raw, path), tuple(citations))


def _image(raw: dict[str, Any], path: str) -> Image:
    source_path = at(path, "source")
    source = as_dict(need(raw, "source", path), source_path)
    kind = source.get("type")
    cache = read_cache(raw, path)
    if kind == "base64":
        return Image(string(source, "media_type", source_path), string(source, "data", source_path), cache=cache)
    if kind == "url":
        return Image(url=string(source, "url", source_path), cache=cache)
    raise Invalid(at(source_path, "type"), "Input should be 'base64' or 'url'")


def _document(raw: dict[str, Any], path: str) -> Document:
    source_path = at(path, "source")
    source = as_dict(need(raw, "source", path), source_path)
    kind = source.get("type")
    if kind in ("base64", "text"):
        default_type = "text/plain" if kind == "text" else None
        media_type = string(source, "media_type", source_path, default_type)
        data, url = string(source, "data", source_path), ""
    elif kind == "url":
        media_type, data, url = "", "", string(source, "url", source_path)
    else:
        raise Invalid(at(source_path, "type"), "Input should be 'base64', 'text' or 'url'")
    title = string(raw, "title", path, "")
    context = string(raw, "context", path, "")
    return Document(media_type, data, url, title, context, read_cache(raw, path))


def _tool_use(raw: dict[str, Any], path: str) -> ToolUse:
    tool_input = as_dict(raw.get("input", {}), at(path, "input"))
    return ToolUse(string(raw, "id", path), string(raw, "name", path), tool_input)


def _tool_result(raw: dict[str, Any], path: str) -> ToolResult:
    value = raw.get("content")
    content = () if value is None else read_content(value, at(path, "content"), allowed=_TOOL_RESULT_PARTS)
    parts = tuple(p for p in content if isinstance(p, Text | Image | Document))
    return ToolResult(string(raw, "tool_use_id", path), parts, boolean(raw, "is_error", path), read_cache(raw, path))


def _thinking(raw: dict[str, Any], path: str) -> Thinking:
    return Thinking(string(raw, "thinking", path), string(raw, "signature", path, ""))


def _redacted(raw: dict[str, Any], path: str) -> RedactedThinking:
    return RedactedThinking(string(raw, "data", path))


_READERS: dict[str, Callable[[dict[str, Any], str], Block]] = {
    "text": _text,
    "image": _image,
    "document": _document,
    "tool_use": _tool_use,
    "tool_result": _tool_result,
    "thinking": _thinking,
    "redacted_thinking": _redacted,
}


# -- blocks out ------------------------------------------------------------------------------


def write_block(block: Block) -> dict[str, Any]:
    match block:
        case Text():
            out: dict[str, Any] = {"type": "text", "text": block.text}
            if block.citations:
                out["citations"] = list(block.citations)
            return write_cache(out, block.cache)
        case Image():
            if block.url:
                source: dict[str, Any] = {"type": "url", "url": block.url}
            else:
                source = {"type": "base64", "media_type": block.media_type, "data": block.data}
            return write_cache({"type": "image", "source": source}, block.cache)
        case Document():
            return write_cache(_document_json(block), block.cache)
        case ToolUse():
            return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
        case ToolResult():
            out = {"type": "tool_result", "tool_use_id": block.tool_use_id}
            if block.content:
                out["content"] = [write_block(part) for part in block.content]
            if block.is_error:
                out["is_error"] = True
            return write_cache(out, block.cache)
        case Thinking():
            return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
        case RedactedThinking():
            return {"type": "redacted_thinking", "data": block.data}
    raise TypeError(f"not a content block: {block!r}")


def _document_json(block: Document) -> dict[str, Any]:
    if block.url:
        source: dict[str, Any] = {"type": "url", "url": block.url}
    elif block.media_type == "text/plain":
        source = {"type": "text", "media_type": "text/plain", "data": block.data}
    else:
        source = {"type": "base64", "media_type": block.media_type, "data": block.data}
    out: dict[str, Any] = {"type": "document", "source": source}
    if block.title:
        out["title"] = block.title
    if block.context:
        out["context"] = block.context
    return out


# -- usage and stop reasons -----------------------------------------------------------------


def read_stop_reason(value: Any) -> StopReason:
    """A ``stop_reason`` string; one this code does not know reads as ``end_turn``."""
    try:
        return StopReason(value)
    except ValueError:
        return StopReason.END_TURN


def read_usage(raw: Any, base: Usage = _NO_USAGE) -> Usage:
    """``usage`` JSON over ``base``: a field present in ``raw`` replaces the base's (cumulative)."""
    if not isinstance(raw, dict):
        return base

    def pick(key: str, default: int) -> int:
        value = raw.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    return Usage(
        input_tokens=pick("input_tokens", base.input_tokens),
        output_tokens=pick("output_tokens", base.output_tokens),
        cache_read_input_tokens=pick("cache_read_input_tokens", base.cache_read_input_tokens),
        cache_creation_input_tokens=pick("cache_creation_input_tokens", base.cache_creation_input_tokens),
        reasoning_tokens=base.reasoning_tokens,
    )


def usage_json(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "output_tokens": usage.output_tokens,
    }
