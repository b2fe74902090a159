"""Chat-completion bodies and error answers → canonical ``Response`` / ``UpstreamFailure`` (C1, C3).

Shared with the stream decoder: usage arithmetic (``prompt_tokens`` includes cached tokens, canonical
``input_tokens`` does not), the stop-reason rule, and reading the many error shapes in the wild.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from kestrel.edge.canonical import (
    Block,
    Response,
    StopReason,
    Text,
    Thinking,
    ToolUse,
    Usage,
)
from kestrel.scheduler.ratelimits import parse_duration

_INVALID_CHAR = re.compile(r"[^A-Za-z0-9_-]")


def decode_usage(raw: dict[str, Any]) -> Usage:
    """OpenAI usage → canonical: ``prompt_tokens`` includes cached tokens, ``input_tokens`` does not."""
    prompt = _int(raw.get("prompt_tokens"))
    cached = _int((raw.get("prompt_tokens_details") or {}).get("cached_tokens") or raw.get("prompt_cache_hit_tokens"))
    return Usage(
        input_tokens=max(prompt - cached, 0),
        output_tokens=_int(raw.get("completion_tokens")),
        cache_read_input_tokens=cached,
        reasoning_tokens=_int((raw.get("completion_tokens_details") or {}).get("reasoning_tokens")),
    )


def inbound_id(raw: Any, salt: str, position: object) -> str:
    """A valid Anthropic tool id (``[A-Za-z0-9_-]+``) for an upstream id such as ``functions.Bash:0``."""
    if isinstance(raw, str) and raw:
        return _INVALID_CHAR.sub("_", raw)
    return "toolu_" + hashlib.sha256(f"{salt}:{position}".encode()).hexdigest()[:24]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def stop_reason(finish: str | None, *, tool_called: bool, stop_sequence: str | None = None) -> StopReason:
    """C1, keyed on what happened: ``tool_use`` exactly when a tool was called (unless cut by length),
    even if the upstream said ``stop``; a ``tool_calls`` finish without any call is an ``end_turn``."""
    if finish == "length":
        return StopReason.MAX_TOKENS
    if finish == "content_filter":
        return StopReason.REFUSAL
    if tool_called:
        return StopReason.TOOL_USE
    if finish in ("tool_calls", "function_call"):
        return StopReason.END_TURN
    return StopReason.STOP_SEQUENCE if stop_sequence else StopReason.END_TURN


def parse_arguments(raw: Any) -> dict[str, Any]:
    """Tool arguments → ``input``; text that is not a JSON object is kept under ``_raw_arguments``."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"_raw_arguments": raw}


def reasoning_of(delta: dict[str, Any]) -> tuple[str, str]:
    """(text, signature) from ``reasoning_content`` (DeepSeek), ``reasoning`` or ``thinking`` (CCR)."""
    for key in ("reasoning_content", "reasoning", "thinking"):
        value = delta.get(key)
        if isinstance(value, str) and value:
            return value, ""
        if isinstance(value, dict):
            text, sig = value.get("content"), value.get("signature")
            return (text if isinstance(text, str) else ""), (sig if isinstance(sig, str) else "")
    return "", ""


def stop_string(choice: dict[str, Any]) -> str | None:
    value = choice.get("stop_reason")  # vLLM names the stop string that matched
    return value if isinstance(value, str) and value and choice.get("finish_reason") == "stop" else None


def decode_response_body(body: bytes, names: dict[str, str]) -> Response:
    """A ``chat.completion`` body → ``Response`` (C3): thinking first, then text, then tool calls."""
    data = orjson.loads(body)
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices:
        raise ValueError("upstream chat completion has no choices")
    choice, message = choices[0], choices[0].get("message") or {}
    content: list[Block] = []
    thinking, signature = reasoning_of(message)
    if thinking:
        content.append(Thinking(thinking, signature))
    text = message.get("content")
    if isinstance(text, list):
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if text or message.get("refusal"):
        content.append(Text(text or message["refusal"]))
    for i, call in enumerate(message.get("tool_calls") or ()):
        fn = call.get("function") or {}
        name = fn.get("name") or ""
        content.append(ToolUse(inbound_id(call.get("id"), str(data.get("id")), i), names.get(name, name),
                               parse_arguments(fn.get("arguments"))))  # fmt: skip
    called = any(isinstance(b, ToolUse) for b in content)
    stop_seq = stop_string(choice)
    reason = stop_reason(choice.get("finish_reason"), tool_called=called, stop_sequence=stop_seq)
    if reason is StopReason.END_TURN and message.get("refusal"):
        reason = StopReason.REFUSAL
    usage = decode_usage(data["usage"]) if isinstance(data.get("usage"), dict) else Usage()
    return Response(str(data.get("id") or ""), str(data.get("model") or ""), tuple(content), reason, stop_seq, usage)


def error_kind(status: int | None, etype: Any = "", code: Any = "") -> str:
    """An OpenAI-style error (HTTP status, ``type``, ``code``) in Anthropic's vocabulary."""
    text = f"{etype} {code}".lower()
    if isinstance(code, int) and status is None:
        status = code  # OpenRouter puts the HTTP status in error.code, also mid-stream
    if "overloaded" in text:
        return "overloaded_error"
    if "rate_limit" in text or etype in ("requests", "tokens"):
        return "rate_limit_error"
    by_status = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                 403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                 422: "invalid_request_error", 429: "rate_limit_error", 503: "overloaded_error",
                 504: "timeout_error", 529: "overloaded_error"}  # fmt: skip
    if status in by_status:
        return by_status[status]
    if status is None and etype in ("invalid_request_error", "authentication_error", "permission_error"):
        return str(etype)
    return "invalid_request_error" if status is not None and 400 <= status < 500 else "api_error"


def error_fields(body: bytes) -> tuple[str, Any, Any]:
    """(message, type, code) from any of the error shapes OpenAI-compatible services send."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")[:2000], "", ""
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return str(data), "", ""
    error = data.get("error", data)
    if isinstance(error, str):
        return error, "", ""
    if not isinstance(error, dict):
        return str(error), "", ""
    message = error.get("message", "")
    if not isinstance(message, str):  # Mistral nests validation details here
        message = orjson.dumps(message).decode()
    return message, error.get("type", ""), error.get("code", "")


def reset_wait(headers: dict[str, str]) -> float:
    """Seconds until the exhausted ``x-ratelimit-reset-*`` window (durations such as ``6m0s``)."""
    waits = {}
    for family in ("requests", "tokens"):
        value = parse_duration(headers.get(f"x-ratelimit-reset-{family}", ""))
        if value is not None:
            waits[family] = value
    exhausted = [w for f, w in waits.items() if headers.get(f"x-ratelimit-remaining-{f}", "").strip() == "0"]
    return max(exhausted) if exhausted else min(waits.values(), default=0.0)
