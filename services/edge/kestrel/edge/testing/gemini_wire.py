"""A test-only Gemini upstream: a canonical ``Response`` written as Gemini would send it (PROTOCOLS E3).

``generate_content`` gives the ``generateContent`` body, ``stream_chunks`` / ``stream_sse`` the
``streamGenerateContent?alt=sse`` stream of the same answer. They are the mirror of
``providers/gemini_stream.py`` for the shapes a real Gemini sends, so a property test can go
canonical → Gemini wire → ``GeminiCodec`` → canonical and compare. The rules, as Gemini does it:

* **Parts**: text → ``{"text"}``; thinking → ``{"text", "thought": true}``; a tool call →
  ``{"functionCall": {"id", "name", "args"}}``, always whole (never fragmented, also in a stream).
  Tool names go out as ``upstream_name`` writes them (the decoder maps them back).
* **Thought signatures** ride on a part, never alone: a thinking block's signature (``gemini:`` tag
  removed) goes on the ``functionCall`` part right after it when that call carries the same
  signature (how Gemini signs a call); for an empty thinking block right before text, on that
  text's first part (how Gemini signs a text answer without showing thoughts); else on the thinking
  block's last thought part (an empty thought part when the thinking text is empty). A call's own
  signature goes on its part.
* **Stream**: one chunk per part, text and thinking cut into ``fragment``-character pieces (0: whole);
  the first chunk carries the prompt's ``usageMetadata`` (as Gemini sends partial usage early), the
  last one ``finishReason`` and the full ``usageMetadata``. There is no ``[DONE]``; frames end with
  ``\\r\\n\\r\\n`` (what Google's servers send) unless ``sep`` says otherwise.
* **Finish reasons**: ``max_tokens`` and ``model_context_window_exceeded`` → ``MAX_TOKENS``,
  ``refusal`` → ``SAFETY``, everything else → ``STOP`` (Gemini has no tool-call or stop-sequence
  finish reason).
* **Ids**: ``responseId`` is the response's id without ``msg_`` (the decoder puts it back), and
  ``modelVersion`` its model.
* **Usage**: ``promptTokenCount`` is the whole prompt (cached and cache-write tokens included),
  ``cachedContentTokenCount`` the cache-read part, ``candidatesTokenCount`` the output minus
  ``thoughtsTokenCount`` (the reasoning part), ``totalTokenCount`` their sum.

What Gemini cannot say is simply not written: redacted thinking, empty text, a stop sequence,
cache-write counts (folded into the prompt), ``pause_turn``.
"""

from __future__ import annotations

from typing import Any

import orjson

from kestrel.edge.canonical import RedactedThinking, Response, StopReason, Text, Thinking, ToolUse, Usage
from kestrel.edge.providers.gemini import upstream_name
from kestrel.edge.providers.gemini_stream import SIGNATURE_TAG

__all__ = ["finish_reason", "generate_content", "parts_of", "stream_chunks", "stream_sse", "usage_metadata"]

_FINISH = {
    StopReason.MAX_TOKENS: "MAX_TOKENS",
    StopReason.CONTEXT_WINDOW: "MAX_TOKENS",
    StopReason.REFUSAL: "SAFETY",
}


def finish_reason(stop: StopReason) -> str:
    return _FINISH.get(stop, "STOP")


def usage_metadata(usage: Usage) -> dict[str, int]:
    prompt = usage.prompt_tokens
    thoughts = min(usage.reasoning_tokens, usage.output_tokens)
    meta = {"promptTokenCount": prompt, "candidatesTokenCount": usage.output_tokens - thoughts}
    if usage.cache_read_input_tokens:
        meta["cachedContentTokenCount"] = usage.cache_read_input_tokens
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    meta["totalTokenCount"] = prompt + usage.output_tokens
    return meta


def _raw(signature: str) -> str:
    return signature.removeprefix(SIGNATURE_TAG)


def _pieces(text: str, size: int) -> list[str]:
    if size <= 0 or len(text) <= size:
        return [text]
    return [text[i : i + size] for i in range(0, len(text), size)]


def parts_of(response: Response, *, fragment: int = 0) -> list[dict[str, Any]]:
    """The parts Gemini would send for ``response``'s content, in order (pieces when ``fragment`` > 0)."""
    parts: list[dict[str, Any]] = []
    pending = ""
    """A signature waiting for the next part to ride on."""
    blocks = response.content
    for position, block in enumerate(blocks):
        following = blocks[position + 1] if position + 1 < len(blocks) else None
        match block:
            case Text() if block.text:
                pieces = [{"text": piece} for piece in _pieces(block.text, fragment)]
                if pending:
                    pieces[0]["thoughtSignature"], pending = pending, ""
                parts += pieces
            case Thinking():
                signature = _raw(block.signature)
                thoughts = [{"text": p, "thought": True} for p in _pieces(block.thinking, fragment) if p]
                if not signature:
                    parts += thoughts
                    continue
                if isinstance(following, ToolUse) and _raw(following.signature) == signature:
                    pass  # the call carries it
                elif not thoughts and isinstance(following, Text) and following.text:
                    pending = signature  # a text answer signed without visible thoughts
                else:
                    thoughts = thoughts or [{"text": "", "thought": True}]
                    thoughts[-1]["thoughtSignature"] = signature
                parts += thoughts
            case ToolUse():
                call: dict[str, Any] = {"name": upstream_name(block.name), "args": block.input}
                if block.id:
                    call = {"id": block.id, **call}
                part: dict[str, Any] = {"functionCall": call}
                if block.signature:
                    part["thoughtSignature"] = _raw(block.signature)
                parts.append(part)
            case Text() | RedactedThinking():
                pass  # nothing Gemini could have sent
    return parts


def _chunk(
    response: Response, parts: list[dict[str, Any]], finish: str = "", usage: dict[str, int] | None = None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    chunk: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        chunk["usageMetadata"] = usage
    chunk["modelVersion"] = response.model
    chunk["responseId"] = response.id.removeprefix("msg_")
    return chunk


def generate_content(response: Response) -> bytes:
    """The ``generateContent`` body for ``response``."""
    finish = finish_reason(response.stop_reason)
    return orjson.dumps(_chunk(response, parts_of(response), finish, usage_metadata(response.usage)))


def stream_chunks(response: Response, *, fragment: int = 0) -> list[dict[str, Any]]:
    """The ``GenerateContentResponse`` objects of ``response``'s stream, in order."""
    parts = parts_of(response, fragment=fragment)
    first_usage = {"promptTokenCount": response.usage.prompt_tokens}
    if response.usage.cache_read_input_tokens:
        first_usage["cachedContentTokenCount"] = response.usage.cache_read_input_tokens
    first_usage["totalTokenCount"] = response.usage.prompt_tokens
    chunks = [_chunk(response, [part]) for part in parts] or [_chunk(response, [])]
    chunks[0]["usageMetadata"] = first_usage
    last = chunks[-1]
    last["candidates"][0]["finishReason"] = finish_reason(response.stop_reason)
    last["usageMetadata"] = usage_metadata(response.usage)
    return chunks


def stream_sse(response: Response, *, fragment: int = 0, sep: bytes = b"\r\n\r\n") -> bytes:
    """``streamGenerateContent?alt=sse`` bytes for ``response``: one ``data:`` frame per chunk."""
    return b"".join(b"data: " + orjson.dumps(c) + sep for c in stream_chunks(response, fragment=fragment))
