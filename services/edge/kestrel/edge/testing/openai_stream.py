"""A strict checker for OpenAI chat-completion streams, the rules clients rely on (PROTOCOLS.md B3).

Used on everything the OpenAI stream renderer writes: the SDKs tolerate some slips, but other
clients (and the SDK's own accumulation of tool calls) break on a missing role, a tool call without
its id and name in the first fragment, arguments that do not add up to JSON, a second
``finish_reason`` or a usage chunk in the wrong place. Each failure names the frame and the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

_FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})


class StreamViolation(AssertionError):
    """The stream broke a rule; the message says which frame and which rule."""


@dataclass
class Collected:
    """What a client accumulates from a valid stream."""

    content: str = ""
    reasoning: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """``{id, name, arguments}`` per call, in index order, arguments as the joined JSON text."""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def validate_openai_sse(raw: bytes, include_usage: bool) -> list[dict[str, Any]]:
    """Check a whole stream; return its chunks (without ``[DONE]`` or a final error frame).

    A stream may end with an error frame (``data: {"error": {...}}``) instead of ``[DONE]``; it must
    then be the last frame. Comment frames (``: ping``) are allowed anywhere before the end.
    """
    payloads = _payloads(raw)
    chunks: list[dict[str, Any]] = []
    ended = False
    for n, payload in enumerate(payloads):
        if ended:
            raise StreamViolation(f"frame {n}: nothing may follow [DONE] or an error frame")
        if payload == b"[DONE]":
            ended = True
            continue
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise StreamViolation(f"frame {n}: data is not JSON ({exc})") from None
        if not isinstance(value, dict):
            raise StreamViolation(f"frame {n}: data is not a JSON object")
        if "error" in value and "choices" not in value:
            _check_error(n, value)
            ended = True
            continue
        chunks.append(value)
    if not ended:
        raise StreamViolation("the stream ended without [DONE] or an error frame")
    finished_cleanly = payloads[-1] == b"[DONE]"
    _check_chunks(chunks, include_usage, complete=finished_cleanly)
    return chunks


def collect(chunks: list[dict[str, Any]]) -> Collected:
    """Accumulate validated chunks the way a client does."""
    out = Collected()
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        if chunk.get("usage"):
            out.usage = chunk["usage"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            out.content += delta.get("content") or ""
            out.reasoning += delta.get("reasoning_content") or ""
            for fragment in delta.get("tool_calls") or ():
                call = calls.setdefault(fragment["index"], {"id": "", "name": "", "arguments": ""})
                call["id"] = fragment.get("id") or call["id"]
                call["name"] = (fragment.get("function") or {}).get("name") or call["name"]
                call["arguments"] += (fragment.get("function") or {}).get("arguments") or ""
            out.finish_reason = choice.get("finish_reason") or out.finish_reason
    out.tool_calls = [calls[i] for i in sorted(calls)]
    return out


def _payloads(raw: bytes) -> list[bytes]:
    if not raw.endswith(b"\n\n"):
        raise StreamViolation("the stream does not end on a frame boundary (a blank line)")
    payloads = []
    for n, frame in enumerate(raw[:-2].split(b"\n\n")):
        lines = frame.split(b"\n")
        if all(line.startswith(b":") for line in lines):
            continue
        if len(lines) != 1 or not lines[0].startswith(b"data: "):
            raise StreamViolation(f"frame {n}: expected one `data: ` line, got {frame[:80]!r}")
        payloads.append(lines[0][6:])
    if not payloads:
        raise StreamViolation("the stream has no data frames")
    return payloads


def _check_error(n: int, value: dict[str, Any]) -> None:
    error = value["error"]
    if not isinstance(error, dict) or not isinstance(error.get("message"), str) or not error.get("type"):
        raise StreamViolation(f"frame {n}: an error frame needs error.message and error.type")


def _check_chunks(chunks: list[dict[str, Any]], include_usage: bool, *, complete: bool) -> None:
    if not chunks:
        if complete:
            raise StreamViolation("[DONE] without any chunk")
        return
    first = chunks[0]
    identity = (first.get("id"), first.get("created"), first.get("model"))
    if not isinstance(identity[0], str) or not isinstance(identity[1], int) or not isinstance(identity[2], str):
        raise StreamViolation("chunk 0: id (string), created (integer) and model (string) are required")
    finish_at: int | None = None
    usage_at: int | None = None
    tools: dict[int, str] = {}
    for n, chunk in enumerate(chunks):
        if chunk.get("object") != "chat.completion.chunk":
            raise StreamViolation(f"chunk {n}: object must be chat.completion.chunk")
        if (chunk.get("id"), chunk.get("created"), chunk.get("model")) != identity:
            raise StreamViolation(f"chunk {n}: id, created and model must match the first chunk")
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise StreamViolation(f"chunk {n}: choices must be a list")
        if include_usage:
            if not choices:
                if usage_at is not None or finish_at is None:
                    raise StreamViolation(f"chunk {n}: one usage chunk, after the finish_reason chunk")
                _check_usage(n, chunk.get("usage"))
                usage_at = n
                continue
            if "usage" not in chunk or chunk["usage"] is not None:
                raise StreamViolation(f"chunk {n}: with include_usage every other chunk has usage: null")
        elif not choices or chunk.get("usage") is not None:
            raise StreamViolation(f"chunk {n}: usage chunk without include_usage")
        if usage_at is not None:
            raise StreamViolation(f"chunk {n}: nothing may follow the usage chunk")
        if len(choices) != 1 or not isinstance(choices[0], dict) or choices[0].get("index") != 0:
            raise StreamViolation(f"chunk {n}: exactly one choice, with index 0")
        choice = choices[0]
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            raise StreamViolation(f"chunk {n}: delta must be an object")
        if n == 0 and delta.get("role") != "assistant":
            raise StreamViolation("chunk 0: the first delta must have role assistant")
        if finish_at is not None and any(delta.get(k) for k in ("content", "reasoning_content", "tool_calls")):
            raise StreamViolation(f"chunk {n}: content after the finish_reason chunk")
        _check_tool_fragments(n, delta.get("tool_calls"), tools)
        reason = choice.get("finish_reason")
        if reason is not None:
            if finish_at is not None:
                raise StreamViolation(f"chunk {n}: a second finish_reason (first at chunk {finish_at})")
            if reason not in _FINISH_REASONS:
                raise StreamViolation(f"chunk {n}: unknown finish_reason {reason!r}")
            if tools and reason == "stop":
                raise StreamViolation(f"chunk {n}: tools were called but finish_reason is stop")
            finish_at = n
    if complete and finish_at is None:
        raise StreamViolation("[DONE] without a finish_reason chunk")
    if complete and include_usage and usage_at is None:
        raise StreamViolation("include_usage was asked for but no usage chunk came")
    for index, arguments in tools.items():
        if complete and not isinstance(_json(arguments), dict):
            raise StreamViolation(f"tool call {index}: arguments do not join into a JSON object: {arguments!r}")


def _check_tool_fragments(n: int, fragments: Any, tools: dict[int, str]) -> None:
    if fragments is None:
        return
    if not isinstance(fragments, list) or not fragments:
        raise StreamViolation(f"chunk {n}: tool_calls must be a non-empty list")
    for fragment in fragments:
        index = fragment.get("index") if isinstance(fragment, dict) else None
        fn = fragment.get("function") if isinstance(fragment, dict) else None
        if not isinstance(index, int) or not isinstance(fn, dict):
            raise StreamViolation(f"chunk {n}: a tool call fragment needs index and function")
        arguments = fn.get("arguments", "")
        if not isinstance(arguments, str):
            raise StreamViolation(f"chunk {n}: tool call {index}: arguments must be a string")
        if index not in tools:
            if index != len(tools):
                raise StreamViolation(f"chunk {n}: tool call index {index} skips ahead (expected {len(tools)})")
            ok = fragment.get("type") == "function" and isinstance(fragment.get("id"), str) and fragment["id"]
            if not ok or not isinstance(fn.get("name"), str) or not fn["name"]:
                raise StreamViolation(f"chunk {n}: the first fragment of tool call {index} needs id, type, name")
            tools[index] = arguments
            continue
        if fragment.get("id") or fn.get("name") or set(fragment) - {"index", "function"}:
            raise StreamViolation(f"chunk {n}: later fragments of tool call {index} carry only arguments")
        if index != max(tools):
            raise StreamViolation(f"chunk {n}: tool call {index} continued after a later call started")
        tools[index] += arguments


def _check_usage(n: int, usage: Any) -> None:
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    if not isinstance(usage, dict) or not all(isinstance(usage.get(k), int) for k in keys):
        raise StreamViolation(f"chunk {n}: the usage chunk needs integer {', '.join(keys)}")
    if usage["total_tokens"] != usage["prompt_tokens"] + usage["completion_tokens"]:
        raise StreamViolation(f"chunk {n}: total_tokens is not prompt_tokens + completion_tokens")


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
