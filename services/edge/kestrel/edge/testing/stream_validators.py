"""A strict checker for Anthropic Messages streams: the rules the SDKs and Claude Code rely on.

Every test that produces Anthropic SSE (renderer, passthrough relay, simulator) runs its bytes
through ``validate_anthropic_sse``. Clients are unforgiving in ways a unit test easily misses: the
SDKs throw on an event before ``message_start``, look blocks up by index (so indexes must be dense
and started first), replace usage on ``message_delta``, and run a tool twice when its block is
stopped twice (PROTOCOLS A5, PEERS). Each rule below fails with the frame number and the rule.

Accepted beyond what Anthropic itself sends: ``ping`` anywhere before the end (also before
``message_start``; SDKs skip pings wherever they are), and ``:`` comment lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn

import orjson

__all__ = ["AnthropicStreamViolation", "validate_anthropic_sse"]

STOP_REASONS = frozenset(
    {
        *("end_turn", "max_tokens", "stop_sequence", "tool_use"),
        *("pause_turn", "refusal", "model_context_window_exceeded"),
    }
)
DELTAS_BY_BLOCK = {
    "text": frozenset({"text_delta", "citations_delta"}),
    "thinking": frozenset({"thinking_delta", "signature_delta"}),
    "tool_use": frozenset({"input_json_delta"}),
    "server_tool_use": frozenset({"input_json_delta"}),
    "redacted_thinking": frozenset(),
}
"""Block types and the deltas each accepts; ``*_tool_result`` blocks (server tools) take none."""
EMPTY_START: dict[str, dict[str, Any]] = {
    "text": {"text": ""},
    "thinking": {"thinking": "", "signature": ""},
    "tool_use": {"input": {}},
}
"""What a block's fields must hold in its ``content_block_start``: content arrives as deltas."""


class AnthropicStreamViolation(AssertionError):
    """The stream broke a rule; the message names the frame and the rule."""


def validate_anthropic_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Check a whole Anthropic stream; return its ``(event name, data)`` pairs in order.

    Raises ``AnthropicStreamViolation`` (an ``AssertionError``) on the first broken rule.
    """
    frames = _frames(raw)
    checker = _Checker()
    for number, (name, data) in enumerate(frames):
        checker.check(number, name, data)
    checker.check_end()
    return frames


def _fail(message: str) -> NoReturn:
    raise AnthropicStreamViolation(message)


def _frames(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AnthropicStreamViolation(f"stream is not valid UTF-8: {exc}") from None
    text = text.replace("\r\n", "\n")
    if not text:
        _fail("stream is empty")
    if not text.endswith("\n\n"):
        _fail(f"stream does not end with a blank line (a frame is cut): {text[-80:]!r}")
    frames = []
    for number, block in enumerate(text[:-2].split("\n\n")):
        name, data_lines = None, []
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            field_name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field_name == "event":
                if name is not None:
                    _fail(f"frame {number}: two event: lines")
                name = value
            elif field_name == "data":
                data_lines.append(value)
            elif field_name not in ("id", "retry"):
                _fail(f"frame {number}: unexpected line {line!r}")
        if name is None and not data_lines:
            continue  # a comment-only frame
        if not name:
            _fail(f"frame {number}: data without an event: name (SDKs drop it silently): {block!r}")
        try:
            data = orjson.loads("\n".join(data_lines))
        except orjson.JSONDecodeError as exc:
            raise AnthropicStreamViolation(f"frame {number} ({name}): data is not JSON: {exc}") from None
        if not isinstance(data, dict):
            _fail(f"frame {number} ({name}): data is not a JSON object")
        if data.get("type") != name:
            _fail(f"frame {number}: event name {name!r} but data type {data.get('type')!r}")
        frames.append((str(name), data))
    return frames


@dataclass
class _Checker:
    started: bool = False
    ended: str = ""
    """``message_stop`` or ``error`` once the stream is over."""
    blocks: list[str] = field(default_factory=list)
    """Type of each block started, by index."""
    open: int | None = None
    stopped: set[int] = field(default_factory=set)
    arguments: dict[int, list[str]] = field(default_factory=dict)
    delta_seen: bool = False
    output_tokens: int = 0
    stop_reason: str | None = None

    def check(self, number: int, name: str, data: dict[str, Any]) -> None:
        where = f"frame {number} ({name})"
        if self.ended:
            _fail(f"{where}: event after {self.ended}; {self.ended} must be last")
        if name == "ping":
            return
        if name == "error":
            self._error(where, data)
            return
        if not self.started and name != "message_start":
            _fail(f"{where}: first event must be message_start (SDK: 'Unexpected event order')")
        handler = getattr(self, "_" + name, None)
        if handler is None:
            _fail(f"{where}: unknown event type")
        handler(where, data)

    def check_end(self) -> None:
        if not self.ended:
            _fail("stream ended without message_stop or error")

    # -- one method per event type ------------------------------------------------------------

    def _message_start(self, where: str, data: dict[str, Any]) -> None:
        if self.started:
            _fail(f"{where}: second message_start")
        self.started = True
        message = data.get("message")
        if not isinstance(message, dict):
            _fail(f"{where}: message missing")
            return
        for key, wanted in (("type", "message"), ("role", "assistant"), ("content", []), ("stop_reason", None)):
            if message.get(key, "<missing>") != wanted:
                _fail(f"{where}: message.{key} must be {wanted!r}, got {message.get(key, '<missing>')!r}")
        if not isinstance(message.get("id"), str) or not message["id"]:
            _fail(f"{where}: message.id must be a non-empty string")
        usage = message.get("usage")
        if not isinstance(usage, dict) or not all(_count(usage.get(k)) for k in ("input_tokens", "output_tokens")):
            _fail(f"{where}: message.usage needs integer input_tokens and output_tokens, got {usage!r}")
            return
        self.output_tokens = usage["output_tokens"]

    def _content_block_start(self, where: str, data: dict[str, Any]) -> None:
        self._no_content_after_delta(where)
        index, block = data.get("index"), data.get("content_block")
        if index != len(self.blocks):
            _fail(f"{where}: index {index!r}, expected {len(self.blocks)} (dense, increasing from 0)")
        if self.open is not None:
            _fail(f"{where}: block {index} starts while block {self.open} is still open")
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            _fail(f"{where}: content_block with a type required")
            return
        kind = block["type"]
        if kind not in DELTAS_BY_BLOCK and not kind.endswith("_tool_result"):
            _fail(f"{where}: unknown block type {kind!r}")
        for key, wanted in EMPTY_START.get(kind, {}).items():
            if block.get(key, "<missing>") != wanted:
                _fail(f"{where}: a {kind} block starts with {key}={wanted!r}, got {block.get(key, '<missing>')!r}")
        if kind == "tool_use" and not (_text(block.get("id")) and isinstance(block.get("name"), str)):
            _fail(f"{where}: a tool_use block needs an id and a name")
        self.blocks.append(kind)
        self.open = len(self.blocks) - 1
        if kind in ("tool_use", "server_tool_use"):
            self.arguments[self.open] = []

    def _content_block_delta(self, where: str, data: dict[str, Any]) -> None:
        self._no_content_after_delta(where)
        index, delta = data.get("index"), data.get("delta")
        if not isinstance(index, int) or index >= len(self.blocks):
            _fail(f"{where}: delta for block {index!r}, which was never started")
        if index != self.open:
            _fail(f"{where}: delta for block {index}, which is not open (stopped or superseded)")
        if not isinstance(delta, dict):
            _fail(f"{where}: delta object required")
            return
        kind = self.blocks[index]
        if delta.get("type") not in DELTAS_BY_BLOCK.get(kind, frozenset()):
            _fail(f"{where}: {delta.get('type')!r} does not belong in a {kind} block")
        field_name = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature"}.get(
            delta["type"], "partial_json" if delta["type"] == "input_json_delta" else "citation"
        )
        value = delta.get(field_name)
        if not (isinstance(value, dict) if field_name == "citation" else isinstance(value, str)):
            _fail(f"{where}: {delta['type']} needs {field_name}")
        if field_name == "partial_json":
            self.arguments[index].append(str(value))

    def _content_block_stop(self, where: str, data: dict[str, Any]) -> None:
        self._no_content_after_delta(where)
        index = data.get("index")
        if index in self.stopped:
            _fail(f"{where}: block {index} stopped twice (a client runs its tool twice)")
        if index != self.open or self.open is None:
            _fail(f"{where}: stop for block {index!r}, which is not open")
        index = self.open
        self.open = None
        self.stopped.add(index)
        if index in self.arguments:
            joined = "".join(self.arguments[index])
            try:
                parsed = orjson.loads(joined) if joined.strip() else {}
            except orjson.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                _fail(f"{where}: partial_json of block {index} adds up to {joined!r}, not a JSON object")

    def _message_delta(self, where: str, data: dict[str, Any]) -> None:
        if self.open is not None:
            _fail(f"{where}: block {self.open} still open at message_delta")
        delta, usage = data.get("delta"), data.get("usage")
        if not isinstance(delta, dict) or delta.get("stop_reason") not in STOP_REASONS:
            _fail(f"{where}: delta.stop_reason must be one of {sorted(STOP_REASONS)}, got {delta!r}")
            return
        if not isinstance(usage, dict) or not _count(usage.get("output_tokens")):
            _fail(f"{where}: usage.output_tokens (an integer) is required, got {usage!r}")
            return
        if usage["output_tokens"] < self.output_tokens:
            went = f"{self.output_tokens} → {usage['output_tokens']}"
            _fail(f"{where}: output_tokens went down ({went}); usage is cumulative")
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            if usage.get(key) is not None and not _count(usage[key]):
                _fail(f"{where}: usage.{key} must be an integer or null")
        if delta["stop_reason"] == "end_turn" and "tool_use" in self.blocks:
            _fail(f"{where}: stop_reason end_turn after a tool_use block (the client would skip the call)")
        self.output_tokens = usage["output_tokens"]
        self.stop_reason = delta["stop_reason"]
        self.delta_seen = True

    def _message_stop(self, where: str, data: dict[str, Any]) -> None:
        if self.open is not None:
            _fail(f"{where}: block {self.open} still open at message_stop")
        if not self.delta_seen:
            _fail(f"{where}: message_stop without a message_delta (no stop_reason, no output usage)")
        self.ended = "message_stop"

    def _error(self, where: str, data: dict[str, Any]) -> None:
        error = data.get("error")
        if not isinstance(error, dict) or not _text(error.get("type")) or not isinstance(error.get("message"), str):
            _fail(f"{where}: error needs error.type and error.message, got {data!r}")
        self.ended = "error"

    def _no_content_after_delta(self, where: str) -> None:
        if self.delta_seen:
            _fail(f"{where}: content after message_delta")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)
