"""What an Anthropic client receives when its upstream spoke another API.

Passthrough never comes here. When the upstream was OpenAI or Gemini, a provider decoder produced
canonical events, and this module writes them as Anthropic SSE (or, for a non-streaming client, one
message body). Decoders are written by different people against upstreams that misbehave, so the
stream renderer does not trust its input: whatever it is fed, what leaves it obeys the invariants
the SDKs and Claude Code enforce (PROTOCOLS A5, PEERS "failures we must not have"):

* ``message_start`` first and once, with ``content: []``, ``stop_reason: null`` and the best input
  usage known (an estimate when the upstream reports it only at the end);
* block indexes dense from 0; ``content_block_start`` before any delta of its block, each delta of
  the block's own type; exactly one ``content_block_stop`` per block (a block still open is closed
  before the next opens and before ``message_delta``);
* a thinking block's signature as one ``signature_delta`` right before its stop (the SDK replaces
  rather than appends signatures, so fragments must be joined here);
* a tool block's ``partial_json`` adds up to a JSON object (closed when cut, else the stream ends
  with an error rather than a tool call the client would hang on);
* one ``message_delta`` with cumulative usage and ``output_tokens``, ``tool_use`` as the stop
  reason whenever a tool was called and the upstream said ``end_turn``, then ``message_stop`` last;
* a ``StreamError`` becomes ``event: error`` and nothing follows it, no ``message_stop``.

``ping`` frames pass wherever they come (also before ``message_start``: both SDKs skip them, and
during a long wait for the first token they keep the client's idle watchdog quiet, PROTOCOLS D7).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from kestrel.edge.assemble import cumulative_usage
from kestrel.edge.canonical import (
    BlockStart,
    BlockStop,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    RedactedThinking,
    Response,
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
from kestrel.edge.errors import GatewayError
from kestrel.edge.formats.anthropic import event_json, frame, response_json, usage_json
from kestrel.edge.providers.base import UpstreamFailure

__all__ = ["AnthropicStreamRenderer", "RenderedError", "render_error", "render_response"]


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _stop_reason(stop: StopReason, called_tool: bool) -> StopReason:
    """``end_turn`` after a tool call would make the client skip the call (PEERS 1)."""
    return StopReason.TOOL_USE if called_tool and stop is StopReason.END_TURN else stop


# -- whole messages ---------------------------------------------------------------------------


def render_response(response: Response) -> bytes:
    """The non-streaming message body (PROTOCOLS A4) for ``response``."""
    content = tuple(
        dataclasses.replace(b, cache=None) if isinstance(b, Text) and b.cache else b for b in response.content
    )
    called = any(isinstance(b, ToolUse) for b in content)
    fixed = dataclasses.replace(response, content=content, stop_reason=_stop_reason(response.stop_reason, called))
    return orjson.dumps(response_json(fixed))


@dataclass(frozen=True, slots=True)
class RenderedError:
    """An error answer before any byte was sent: status, headers and an Anthropic error body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def render_error(error: UpstreamFailure | GatewayError, request_id: str = "") -> RenderedError:
    """The Anthropic error envelope (PROTOCOLS A6) for ``error``.

    ``retry-after`` is written in whole seconds, rounded up, because Claude Code reads nothing else.
    """
    body: dict[str, Any] = {"type": "error", "error": {"type": error.kind, "message": error.message}}
    if request_id:
        body["request_id"] = request_id
    headers = [("content-type", "application/json")]
    retry = error.retry_after_s or 0
    if retry > 0:
        headers.append(("retry-after", str(math.ceil(retry))))
    return RenderedError(error.status, tuple(headers), orjson.dumps(body))


# -- streams ----------------------------------------------------------------------------------


class _State(enum.Enum):
    BEFORE_START = "state_before_start"
    BETWEEN_BLOCKS = "state_between_blocks"
    IN_BLOCK = "state_in_block"
    DONE = "state_done"
    """``message_stop`` or ``error`` was written; nothing else will be."""


@dataclass
class _Open:
    """The one block open on the wire."""

    index: int
    """Index on the wire (dense)."""
    source: int
    """Index in the canonical events it came from."""
    kind: str
    """``text``, ``thinking``, ``tool_use`` or ``redacted_thinking``."""
    signature: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)
    sealed: bool = False
    """The tool input came whole with the start; fragments after it would corrupt it."""


_DELTA_KIND = {TextDelta: "text", ThinkingDelta: "thinking", SignatureDelta: "thinking", ToolInputDelta: "tool_use"}


class AnthropicStreamRenderer:
    """Canonical events → Anthropic SSE bytes, repairing whatever the decoder got wrong.

    ``message_id``, ``model`` and ``estimate`` (input usage counted locally) are used when the
    events do not say: a stream that starts without ``MessageStart``, or one whose start reports
    no input tokens.
    """

    def __init__(
        self,
        *,
        message_id: str = "",
        model: str = "",
        estimate: Usage | None = None,
        new_id: Callable[[str], str] = _new_id,
    ) -> None:
        self._message_id = message_id
        self._model = model
        self._estimate = estimate
        self._new_id = new_id
        self._state = _State.BEFORE_START
        self._usage = Usage()
        """What ``message_start`` said, read over by every ``MessageDelta``."""
        self._pending: MessageDelta | None = None
        """``MessageDelta``s seen so far, merged; written just before ``message_stop``."""
        self._open: _Open | None = None
        self._next_index = 0
        self._called_tool = False

    @property
    def state(self) -> str:
        return self._state.value

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    def render_all(self, events: Iterable[Event]) -> bytes:
        return b"".join(self.render(event) for event in events)

    def render(self, event: Event) -> bytes:
        if self._state is _State.DONE:
            return b""
        out: list[dict[str, Any]] = []
        match event:
            case Ping():
                out.append({"type": "ping"})
            case StreamError():
                out.append(event_json(event))
                self._state = _State.DONE
            case MessageStart() if self._state is not _State.BEFORE_START:
                self._usage = cumulative_usage(self._usage, event.usage)  # too late to send, not to count
            case MessageStart():
                self._start(event, out)
            case _:
                if self._state is _State.BEFORE_START:
                    self._start(None, out)
                self._content(event, out)
        return b"".join(frame(data) for data in out)

    def finish(self) -> bytes:
        """The events ran out: end the message properly if it was ending, else with an error."""
        if self._state is _State.DONE:
            return b""
        if self._pending is not None:
            out: list[dict[str, Any]] = []
            self._end(out)
            return b"".join(frame(data) for data in out)
        return self.render(StreamError("api_error", "upstream stream ended before the message was complete"))

    # -- states ----------------------------------------------------------------------------------

    def _start(self, event: MessageStart | None, out: list[dict[str, Any]]) -> None:
        usage = event.usage if event is not None else Usage()
        if not usage.prompt_tokens and self._estimate is not None:
            usage = cumulative_usage(usage, self._estimate)
        self._usage = usage
        message_id = (event.id if event is not None else "") or self._message_id or self._new_id("msg_")
        model = (event.model if event is not None else "") or self._model
        out.append(event_json(MessageStart(message_id, model, usage)))
        self._state = _State.BETWEEN_BLOCKS

    def _content(self, event: Event, out: list[dict[str, Any]]) -> None:
        match event:
            case BlockStart():
                self._open_block(event.index, event.block, out)
            case TextDelta(index=i, text=text) | ThinkingDelta(index=i, thinking=text):
                self._delta(i, _DELTA_KIND[type(event)], text, event, out)
            case SignatureDelta():
                self._delta(event.index, "thinking", event.signature, event, out)
            case ToolInputDelta():
                self._delta(event.index, "tool_use", event.partial_json, event, out)
            case BlockStop():
                if self._open is not None and self._open.source == event.index:
                    self._close(out)
            case MessageDelta():
                before = self._pending.usage if self._pending is not None else self._usage
                usage = cumulative_usage(before, event.usage)
                self._pending = dataclasses.replace(event, usage=usage)
            case MessageStop():
                self._end(out)

    def _open_block(self, source: int, block: Text | Thinking | ToolUse | RedactedThinking, out: list[Any]) -> None:
        start: dict[str, Any]
        match block:
            case Text():
                start, kind = {"type": "text", "text": ""}, "text"
            case Thinking():
                start, kind = {"type": "thinking", "thinking": "", "signature": ""}, "thinking"
            case ToolUse():
                tool_id = block.id or self._new_id("toolu_")
                start, kind = {"type": "tool_use", "id": tool_id, "name": block.name, "input": {}}, "tool_use"
            case RedactedThinking():
                start, kind = {"type": "redacted_thinking", "data": block.data}, "redacted_thinking"
            case _:
                return  # an input block (image, document …) cannot appear in a stream
        if self._open is not None:
            self._close(out)
            if self._state is _State.DONE:
                return
        index = self._next_index
        self._next_index += 1
        self._called_tool = self._called_tool or kind == "tool_use"
        out.append({"type": "content_block_start", "index": index, "content_block": start})
        self._open = opened = _Open(index, source, kind)
        self._state = _State.IN_BLOCK
        # What a start carried beyond its empty shape is sent as deltas, as Anthropic would.
        match block:
            case Text():
                for citation in block.citations:
                    out.append(_delta_json(index, {"type": "citations_delta", "citation": citation}))
                self._delta(source, "text", block.text, TextDelta(source, block.text), out)
            case Thinking():
                self._delta(source, "thinking", block.thinking, ThinkingDelta(source, block.thinking), out)
                if block.signature:
                    opened.signature.append(block.signature)
            case ToolUse() if block.input:
                arguments = orjson.dumps(block.input).decode()
                self._delta(source, "tool_use", arguments, ToolInputDelta(source, arguments), out)
                opened.sealed = True

    def _delta(self, source: int, kind: str, payload: str, event: Event, out: list[dict[str, Any]]) -> None:
        if not payload:
            return
        opened = self._open
        if opened is None or opened.source != source or opened.kind != kind:
            if kind == "tool_use":
                return  # arguments with no call to belong to: no id or name to invent one
            self._open_block(source, Text("") if kind == "text" else Thinking(""), out)
            opened = self._open
            if opened is None:
                return
        if isinstance(event, SignatureDelta):
            opened.signature.append(payload)
            return
        if kind == "tool_use":
            if opened.sealed:
                return
            opened.arguments.append(payload)
        data = event_json(event)
        data["index"] = opened.index
        out.append(data)

    def _close(self, out: list[dict[str, Any]]) -> None:
        opened = self._open
        assert opened is not None
        self._open = None
        self._state = _State.BETWEEN_BLOCKS
        if opened.signature:
            out.append(event_json(SignatureDelta(opened.index, "".join(opened.signature))))
        if opened.kind == "tool_use":
            suffix = json_object_completion("".join(opened.arguments))
            if suffix is None:
                message = "upstream sent tool arguments that are not a JSON object"
                out.append(event_json(StreamError("api_error", message)))
                self._state = _State.DONE
                return
            if suffix:
                out.append(event_json(ToolInputDelta(opened.index, suffix)))
        out.append({"type": "content_block_stop", "index": opened.index})

    def _end(self, out: list[dict[str, Any]]) -> None:
        if self._open is not None:
            self._close(out)
            if self._state is _State.DONE:
                return
        pending = self._pending
        stop = pending.stop_reason if pending is not None else StopReason.END_TURN
        usage = pending.usage if pending is not None else self._usage
        sequence = pending.stop_sequence if pending is not None else None
        delta = {"stop_reason": _stop_reason(stop, self._called_tool).value, "stop_sequence": sequence}
        out.append({"type": "message_delta", "delta": delta, "usage": usage_json(usage)})
        out.append({"type": "message_stop"})
        self._state = _State.DONE


def _delta_json(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def json_object_completion(text: str) -> str | None:
    """What to append so ``text`` parses as a JSON object: ``""`` if it already does (or is
    empty, which clients read as ``{}``), a closing suffix if it was cut off, ``None`` if no suffix
    can help (not an object, or broken mid-way).
    """
    if not text.strip() or _is_object(text):
        return ""
    closers: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            closers.append("}" if char == "{" else "]")
        elif char in "}]" and (not closers or closers.pop() != char):
            return None
    if not text.lstrip().startswith("{"):
        return None
    close_string = ("\\" if escaped else "") + ('"' if in_string else "")
    tail = "".join(reversed(closers))
    for middle in ("", "null", ":null"):
        suffix = close_string + middle + tail
        if _is_object(text + suffix):
            return suffix
    return None


def _is_object(text: str) -> bool:
    try:
        return isinstance(orjson.loads(text), dict)
    except orjson.JSONDecodeError:
        return False
