"""The C4 state machine: chat-completion chunks in, canonical events out, without I/O.

Bytes may be split anywhere (inside an SSE line or a UTF-8 character): ``FrameCutter`` holds back
the unfinished event. ``finish_reason`` closes the open block but the ``MessageDelta`` is held until
the usage chunk or ``[DONE]``, because the usage chunk comes after it.
"""

from __future__ import annotations

import enum
from typing import Any

import orjson

from kestrel.edge.canonical import (
    BlockStart,
    BlockStop,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    Request,
    SignatureDelta,
    StopReason,
    StreamError,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolInputDelta,
    ToolUse,
    Usage,
)
from kestrel.edge.providers.openai._decode import (
    decode_usage,
    error_fields,
    error_kind,
    inbound_id,
    reasoning_of,
    stop_reason,
    stop_string,
)
from kestrel.edge.providers.openai._encode import estimate_input_tokens, shortened_names
from kestrel.edge.providers.presets import OPENAI, Preset
from kestrel.edge.sse import FrameCutter, iter_events

_CUT = "the upstream stream ended before the response was complete"


class State(enum.Enum):
    """Where the stream decoder is (C4 of PROTOCOLS.md)."""

    BEFORE_FIRST_CHUNK = "state_before_first_chunk"
    BETWEEN_BLOCKS = "state_between_blocks"
    IN_TEXT = "state_in_text"
    IN_THINKING = "state_in_thinking"
    IN_TOOL_CALL = "state_in_tool_call"
    AWAITING_USAGE = "state_awaiting_usage"
    """``finish_reason`` seen; ``MessageDelta`` held until the usage chunk or ``[DONE]``."""
    DONE = "state_done"


class OpenAIStreamDecoder:
    """Chat-completion chunks → canonical events; bytes may be split anywhere, even inside a character."""

    def __init__(self, request: Request, preset: Preset = OPENAI) -> None:
        self.state = State.BEFORE_FIRST_CHUNK
        self._names = shortened_names(request, preset.tool_name_max)
        self._model = request.model
        self._estimate = estimate_input_tokens(request)
        self._cutter = FrameCutter()
        self._next_index = 0
        self._open: int | None = None
        self._tools: dict[object, int] = {}
        self._tool_key: object = None
        self._signature = ""
        self._finish: str | None = None
        self._stop_sequence: str | None = None
        self._usage: Usage | None = None
        self._out_chars = 0
        self._id = ""
        self._flushing = False

    def feed(self, chunk: bytes) -> list[Event]:
        return self._frames(self._cutter.feed(chunk))

    def finish(self) -> list[Event]:
        rest = self._cutter.pending
        self._flushing = True  # a half-written last frame is the cut, not a malformed chunk
        events = self._frames(rest + b"\n\n") if rest.strip() else []
        if self.state is State.DONE:
            return events
        if self._finish is not None:
            return events + self._end()
        return [*events, *self._fail("api_error", _CUT)]

    def _frames(self, frames: bytes) -> list[Event]:
        events: list[Event] = []
        for _, data in iter_events(frames):
            if self.state is State.DONE:
                break
            events.extend(self._data(data.strip()))
        return events

    def _data(self, data: bytes) -> list[Event]:
        if data == b"[DONE]":
            return self._end()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self._fail("api_error", _CUT if self._flushing else "the upstream sent a malformed stream chunk")
        if not isinstance(chunk, dict):
            return []
        choices = chunk.get("choices") or []
        if chunk.get("error") and not choices:
            message, etype, code = error_fields(data)
            return self._fail(error_kind(None, etype, code), message or "upstream stream error")
        events: list[Event] = []
        if self.state is State.BEFORE_FIRST_CHUNK:
            self._start(chunk, events)
        raw_usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")
        if isinstance(raw_usage, dict):
            self._usage = decode_usage(raw_usage)
        for choice in choices:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._delta(choice.get("delta") or {}, events)
                if choice.get("finish_reason") and self.state is not State.DONE:
                    self._close(events)
                    self._finish = choice["finish_reason"]
                    self._stop_sequence = stop_string(choice)
                    self.state = State.AWAITING_USAGE
        if not choices and isinstance(raw_usage, dict) and self._finish is not None:
            events.extend(self._end())
        return events

    def _start(self, chunk: dict[str, Any], events: list[Event]) -> None:
        self._id = str(chunk.get("id") or "")
        self._model = str(chunk.get("model") or self._model)
        raw = chunk.get("usage")
        usage = decode_usage(raw) if isinstance(raw, dict) else Usage()
        if usage.prompt_tokens == 0:
            usage = Usage(input_tokens=self._estimate)
        events.append(MessageStart(self._id, self._model, Usage(usage.input_tokens, 0, usage.cache_read_input_tokens)))
        self.state = State.BETWEEN_BLOCKS

    def _delta(self, delta: dict[str, Any], events: list[Event]) -> None:
        thinking, signature = reasoning_of(delta)
        if thinking or signature:
            self._enter(State.IN_THINKING, Thinking(""), events)
            if thinking:
                events.append(ThinkingDelta(self._next_index - 1, thinking))
                self._out_chars += len(thinking)
            self._signature += signature
        for key in ("content", "refusal"):
            text = delta.get(key)
            if isinstance(text, str) and text:
                self._enter(State.IN_TEXT, Text(""), events)
                events.append(TextDelta(self._next_index - 1, text))
                self._out_chars += len(text)
        for position, fragment in enumerate(delta.get("tool_calls") or ()):
            if isinstance(fragment, dict) and self.state is not State.DONE:
                self._tool_fragment(fragment, position, events)

    def _tool_fragment(self, fragment: dict[str, Any], position: int, events: list[Event]) -> None:
        key: object = fragment.get("index")
        if not isinstance(key, int):  # some servers omit the index; a new id then means a new call
            key = fragment.get("id") or (self._tool_key if self._tool_key is not None else position)
        fn = fragment.get("function") or {}
        if key not in self._tools:
            name = fn.get("name") or ""
            tool_id = inbound_id(fragment.get("id"), self._id, key)
            self._enter(State.IN_TOOL_CALL, ToolUse(tool_id, self._names.get(name, name), {}), events, force=True)
            self._tools[key], self._tool_key = self._next_index - 1, key
        elif self._tools[key] != self._open:
            events.extend(self._fail("api_error", "the upstream interleaved fragments of different tool calls"))
            return
        arguments = fn.get("arguments")
        if isinstance(arguments, dict):
            arguments = orjson.dumps(arguments).decode()
        if isinstance(arguments, str) and arguments:
            events.append(ToolInputDelta(self._tools[key], arguments))
            self._out_chars += len(arguments)

    def _enter(self, state: State, block: Text | Thinking | ToolUse, events: list[Event], force: bool = False) -> None:
        if self.state is state and not force:
            return
        self._close(events)
        self._open = self._next_index
        self._next_index += 1
        events.append(BlockStart(self._open, block))
        self.state = state

    def _close(self, events: list[Event]) -> None:
        if self._open is None:
            return
        if self.state is State.IN_THINKING and self._signature:
            events.append(SignatureDelta(self._open, self._signature))
            self._signature = ""
        events.append(BlockStop(self._open))
        self._open = None
        self.state = State.BETWEEN_BLOCKS

    def _end(self) -> list[Event]:
        events: list[Event] = []
        if self.state is State.BEFORE_FIRST_CHUNK:
            self._start({}, events)
        self._close(events)
        reason = stop_reason(self._finish, tool_called=bool(self._tools), stop_sequence=self._stop_sequence)
        usage = self._usage
        if usage is None:
            usage = Usage(input_tokens=self._estimate, output_tokens=-(-self._out_chars // 4))
        elif usage.prompt_tokens == 0 and self._estimate:
            usage = Usage(self._estimate, usage.output_tokens, 0, 0, usage.reasoning_tokens)
        self.state = State.DONE
        stop_seq = self._stop_sequence if reason is StopReason.STOP_SEQUENCE else None
        return [*events, MessageDelta(reason, stop_seq, usage), MessageStop()]

    def _fail(self, kind: str, message: str) -> list[Event]:
        self.state = State.DONE
        return [StreamError(kind, message)]
