"""Canonical events → one canonical ``Response``, and a ``Response`` → the events of its stream.

``assemble`` serves a non-streaming client whose upstream streamed (and any test that wants the
message a stream adds up to); ``events_of`` serves a streaming client whose upstream answered in
one body. Each dialect then renders only one shape per direction, and ``assemble(events_of(r)) ==
r`` ties the two together. Both are dialect-free: they live next to ``canonical`` and know no JSON
beyond parsing a tool call's accumulated arguments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from kestrel.edge.canonical import (
    Block,
    BlockStart,
    BlockStop,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
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

__all__ = ["StreamFailed", "assemble", "cumulative_usage", "events_of"]


class StreamFailed(Exception):
    """The stream carried an error: there is no message to assemble."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def cumulative_usage(before: Usage, after: Usage) -> Usage:
    """``after`` (a ``MessageDelta``'s usage) read over ``before``.

    Input counts come from ``after`` when it has any, else they stay (a decoder that learnt nothing
    new about the prompt must not zero it: a client then shows an empty context meter). Output
    counts never go down.
    """
    inputs = after if after.prompt_tokens else before
    return Usage(
        input_tokens=inputs.input_tokens,
        output_tokens=max(before.output_tokens, after.output_tokens),
        cache_read_input_tokens=inputs.cache_read_input_tokens,
        cache_creation_input_tokens=inputs.cache_creation_input_tokens,
        reasoning_tokens=max(before.reasoning_tokens, after.reasoning_tokens),
    )


@dataclass
class _Partial:
    """A block being accumulated: what its start said plus the fragments since."""

    start: Text | Thinking | ToolUse | RedactedThinking
    parts: list[str] = field(default_factory=list)
    """Text, thinking or tool-argument fragments."""
    signature: list[str] = field(default_factory=list)

    def build(self) -> Block:
        start = self.start
        joined = "".join(self.parts)
        match start:
            case Text():
                return Text(start.text + joined, start.cache, start.citations)
            case Thinking():
                return Thinking(start.thinking + joined, start.signature + "".join(self.signature))
            case ToolUse():
                return ToolUse(
                    start.id, start.name, _tool_input(joined) if self.parts else start.input, start.signature
                )
        return start


def _tool_input(text: str) -> dict[str, object]:
    """The arguments a tool call's fragments spell; ``{}`` when they spell nothing whole.

    Fragments that do not parse (a call cut by ``max_tokens``) leave ``{}`` rather than failing the
    whole message: the stop reason already tells the client the call is incomplete.
    """
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def assemble(events: Iterable[Event]) -> Response:
    """The message ``events`` add up to; raises ``StreamFailed`` if they carry an error.

    Tolerant of what a renderer would repair: deltas without a started block are ignored, a
    missing ``MessageDelta`` gives ``tool_use`` when a tool was called and ``end_turn`` otherwise.
    """
    message_id, model, usage = "", "", Usage()
    started = False
    stop_reason: StopReason | None = None
    stop_sequence: str | None = None
    blocks: dict[int, _Partial] = {}
    for event in events:
        match event:
            case MessageStart() if not started:
                started = True
                message_id, model, usage = event.id, event.model, event.usage
            case BlockStart():
                blocks[event.index] = _Partial(event.block)
            case TextDelta(index=i, text=fragment) | ThinkingDelta(index=i, thinking=fragment):
                partial = blocks.get(i)
                wanted = Text if isinstance(event, TextDelta) else Thinking
                if partial is not None and isinstance(partial.start, wanted):
                    partial.parts.append(fragment)
            case ToolInputDelta():
                partial = blocks.get(event.index)
                if partial is not None and isinstance(partial.start, ToolUse):
                    partial.parts.append(event.partial_json)
            case SignatureDelta():
                partial = blocks.get(event.index)
                if partial is not None and isinstance(partial.start, Thinking):
                    partial.signature.append(event.signature)
            case MessageDelta():
                stop_reason, stop_sequence = event.stop_reason, event.stop_sequence
                usage = cumulative_usage(usage, event.usage)
            case StreamError():
                raise StreamFailed(event.kind, event.message)
            case BlockStop() | MessageStop() | MessageStart():
                pass
    content = tuple(blocks[i].build() for i in sorted(blocks))
    if stop_reason is None:
        called = any(isinstance(b, ToolUse) for b in content)
        stop_reason = StopReason.TOOL_USE if called else StopReason.END_TURN
    return Response(message_id, model, content, stop_reason, stop_sequence, usage)


def events_of(response: Response, *, fragment: int = 0) -> list[Event]:
    """``response`` as the events of a stream, in the order an Anthropic upstream sends them.

    ``fragment`` > 0 cuts text, thinking and tool arguments into pieces of that many characters
    (streams in tests should look like real ones); 0 sends each in one delta. Input blocks (image,
    document, tool result) cannot appear in a stream and are left out.
    """
    usage = response.usage
    prompt = Usage(usage.input_tokens, 0, usage.cache_read_input_tokens, usage.cache_creation_input_tokens)
    events: list[Event] = [MessageStart(response.id, response.model, prompt)]
    index = 0
    for block in response.content:
        match block:
            case Text():
                events.append(BlockStart(index, Text("", block.cache, block.citations)))
                events += [TextDelta(index, piece) for piece in _pieces(block.text, fragment)]
            case Thinking():
                events.append(BlockStart(index, Thinking("")))
                events += [ThinkingDelta(index, piece) for piece in _pieces(block.thinking, fragment)]
                if block.signature:
                    events.append(SignatureDelta(index, block.signature))
            case ToolUse():
                events.append(BlockStart(index, ToolUse(block.id, block.name, {}, block.signature)))
                arguments = orjson.dumps(block.input).decode()
                events += [ToolInputDelta(index, piece) for piece in _pieces(arguments, fragment)]
            case RedactedThinking():
                events.append(BlockStart(index, block))
            case _:
                continue
        events.append(BlockStop(index))
        index += 1
    events += [MessageDelta(response.stop_reason, response.stop_sequence, usage), MessageStop()]
    return events


def _pieces(text: str, size: int) -> list[str]:
    if not text:
        return []
    if size <= 0:
        return [text]
    return [text[i : i + size] for i in range(0, len(text), size)]
