"""The sim's one token rule: ``ceil(characters / 4)`` per prompt segment or output block.

Real tokenizers are not reproducible outside Anthropic, and tests need numbers they can compute
by hand. So every count in the sim (usage, ``count_tokens``, rate limits, cache prefixes) comes
from these functions:

* A prompt is cut into *segments*: each tool, each system block (or the system string), each
  message content block (or a message's content string). A segment's tokens are
  ``ceil(chars / 4)`` of its characters; the prompt's tokens are the sum over segments, which
  keeps cache prefixes additive.
* Characters: text for ``text``/``thinking``, ``data`` for ``redacted_thinking``, name plus
  compact JSON input for ``tool_use``, the nested content for ``tool_result``, the text or data of
  a ``document``, a flat 6,400 (1,600 tokens) for an image, and the compact JSON of anything
  else. A custom tool counts name, description and compact JSON schema.
* Output: the same rule per generated block (text, thinking text, tool name plus JSON input), with
  a floor of 1 token per response, as the real API never reports 0.
* OpenAI and Gemini requests use the same rule on their own shapes: a text part counts its text, an
  image part 6,400 characters, a tool call its name plus its arguments (the JSON string for
  OpenAI, compact JSON ``args`` for Gemini), a Gemini ``functionResponse`` its name plus compact
  JSON ``response``, and a function declaration its name, description and compact JSON schema.
  So a tool call costs the same to send back as it cost to generate, whichever API carries it.
"""

from __future__ import annotations

from typing import Any

import orjson

IMAGE_CHARS = 6_400
CHARS_PER_TOKEN = 4


def tokens_for_chars(chars: int) -> int:
    """``ceil(chars / 4)``."""
    return -(-chars // CHARS_PER_TOKEN)


def tokens_for_text(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def block_chars(block: Any) -> int:
    """Characters of one input content block (or a content string)."""
    if isinstance(block, str):
        return len(block)
    kind = block.get("type")
    if kind == "text":
        return _str_len(block.get("text"))
    if kind == "tool_result":
        return content_chars(block.get("content"))
    if kind in ("tool_use", "server_tool_use"):
        return _str_len(block.get("name")) + len(orjson.dumps(block.get("input")))
    if kind == "thinking":
        return _str_len(block.get("thinking"))
    if kind == "redacted_thinking":
        return _str_len(block.get("data"))
    if kind == "image":
        return IMAGE_CHARS
    if kind == "document":
        source = block.get("source") or {}
        if source.get("type") == "content":
            return content_chars(source.get("content"))
        return _str_len(source.get("data")) or _str_len(source.get("url"))
    return len(orjson.dumps(without_cache_control(block)))


def content_chars(content: Any) -> int:
    """Characters of a content value that is a string, a list of blocks or absent."""
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(block_chars(b) for b in content if isinstance(b, str | dict))
    return 0


def tool_chars(tool: dict[str, Any]) -> int:
    """Characters of a tool definition; the cache marker never counts."""
    if tool.get("type") in (None, "custom"):
        return (
            _str_len(tool.get("name")) + _str_len(tool.get("description")) + len(orjson.dumps(tool.get("input_schema")))
        )
    return len(orjson.dumps(without_cache_control(tool)))


def openai_part_chars(part: Any) -> int:
    """Characters of one OpenAI content part (or a content string)."""
    if isinstance(part, str):
        return len(part)
    kind = part.get("type")
    if kind == "text":
        return _str_len(part.get("text"))
    if kind == "refusal":
        return _str_len(part.get("refusal"))
    if kind == "image_url":
        return IMAGE_CHARS
    return len(orjson.dumps(part))


def openai_tool_chars(function: dict[str, Any]) -> int:
    """Characters of an OpenAI ``tools[].function`` (name, description, compact parameters)."""
    return (
        _str_len(function.get("name"))
        + _str_len(function.get("description"))
        + len(orjson.dumps(function.get("parameters")))
    )


def gemini_part_chars(part: dict[str, Any]) -> int:
    """Characters of one Gemini part (its ``thoughtSignature`` never counts)."""
    if "text" in part:
        return _str_len(part["text"])
    if "functionCall" in part:
        call = part["functionCall"]
        return _str_len(call.get("name")) + len(orjson.dumps(call.get("args") or {}))
    if "functionResponse" in part:
        answer = part["functionResponse"]
        return _str_len(answer.get("name")) + len(orjson.dumps(answer.get("response") or {}))
    if "inlineData" in part:
        data = part["inlineData"]
        if str(data.get("mimeType", "")).startswith("image/"):
            return IMAGE_CHARS
        return _str_len(data.get("data"))
    if "fileData" in part:
        return IMAGE_CHARS
    return len(orjson.dumps(part))


def gemini_declaration_chars(declaration: dict[str, Any]) -> int:
    """Characters of one ``functionDeclarations`` entry (name, description, compact schema)."""
    schema = declaration.get("parameters", declaration.get("parametersJsonSchema"))
    return _str_len(declaration.get("name")) + _str_len(declaration.get("description")) + len(orjson.dumps(schema))


def output_block_tokens(block: dict[str, Any]) -> int:
    """Tokens the sim charges for one generated content block."""
    kind = block["type"]
    if kind == "text":
        return tokens_for_text(block["text"])
    if kind == "thinking":
        return tokens_for_text(block["thinking"])
    if kind == "tool_use":
        return tokens_for_chars(len(block["name"]) + len(orjson.dumps(block["input"])))
    return tokens_for_chars(len(orjson.dumps(block)))


def without_cache_control(obj: dict[str, Any]) -> dict[str, Any]:
    """The object minus its ``cache_control`` (a copy only when there is one to drop)."""
    if "cache_control" not in obj:
        return obj
    return {k: v for k, v in obj.items() if k != "cache_control"}


def _str_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0
