"""What each upstream wants back that some clients cannot carry, and how the edge keeps it.

Two upstreams bind the next turn to the last one:

* **Gemini** signs each function call (``thoughtSignature``) and, on Gemini 3, refuses the next turn
  when a call of the current turn comes back without it. Kept per call id: ``g:<call id>`` → the
  signature.
* **Anthropic**, with thinking on, refuses a tool loop whose last assistant turn does not start
  with its thinking ("a final `assistant` message must start with a thinking block"), and the
  thinking must come back byte for byte with its signature. Kept per turn: ``a:<first call id>`` →
  the turn's leading thinking blocks as JSON.

An Anthropic-dialect client carries both itself (thinking blocks); an OpenAI-dialect client has no
field for either. So the attempt loop hands what an answer carries to a ``Keeper`` (``remember``
for a whole answer, ``watching`` for a stream, as the events pass) and, before encoding the next
request, asks it which keys the request lacks (``missing``) and puts back what the store found
(``restore``). A request that already carries everything costs a scan of its last turns and no
lookup.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import orjson

from kestrel.edge.canonical import (
    BlockStart,
    Event,
    Message,
    RedactedThinking,
    Request,
    Response,
    SignatureDelta,
    Thinking,
    ThinkingDelta,
    ToolResult,
    ToolUse,
)
from kestrel.edge.providers.anthropic import turn_missing_its_thinking
from kestrel.edge.providers.base import StreamDecoder
from kestrel.edge.providers.gemini_stream import SIGNATURE_TAG
from kestrel.edge.signatures.base import SignatureStore


class Keeper(Protocol):
    def missing(self, request: Request) -> list[str]:
        """Store keys of what ``request`` lacks and the upstream will check."""
        ...

    def restore(self, request: Request, found: dict[str, str]) -> Request: ...

    def kept(self, response: Response) -> dict[str, str]:
        """Store keys and values of what a whole answer carries."""
        ...

    def watching(self, decoder: StreamDecoder, store: SignatureStore) -> StreamDecoder:
        """``decoder``, remembering in ``store`` what its events carry, as they pass."""
        ...


def _tool_loop_start(messages: tuple[Message, ...]) -> int:
    """Index of the first message of the current turn: after the last user message that is more
    than tool results (0 when there is none)."""
    start = 0
    for index, message in enumerate(messages):
        if message.role == "user" and any(not isinstance(b, ToolResult) for b in message.content):
            start = index + 1
    return start


# -- Gemini: a signature per function call ----------------------------------------------------


class GeminiCallSignatures:
    """Gemini validates the calls of the current turn (every model message after the last real user
    message); older turns get the placeholder, which keeps the lookup small in a long session."""

    def missing(self, request: Request) -> list[str]:
        """Calls with no signature of their own and none from a signed thinking block right before
        them (an Anthropic-dialect client brings it that way; the encoder puts it on the call)."""
        keys = []
        for message in request.messages[_tool_loop_start(request.messages) :]:
            if message.role != "assistant":
                continue
            carried = False
            for block in message.content:
                if isinstance(block, Thinking):
                    carried = carried or block.signature.startswith(SIGNATURE_TAG)
                    continue
                if isinstance(block, ToolUse) and block.id and not block.signature and not carried:
                    keys.append("g:" + block.id)
                carried = False
        return keys

    def restore(self, request: Request, found: dict[str, str]) -> Request:
        if not found:
            return request

        def signed(message: Message) -> Message:
            content = tuple(
                dataclasses.replace(b, signature=found["g:" + b.id])
                if isinstance(b, ToolUse) and not b.signature and "g:" + b.id in found
                else b
                for b in message.content
            )
            return Message(message.role, content)

        messages = tuple(signed(m) if m.role == "assistant" else m for m in request.messages)
        return dataclasses.replace(request, messages=messages)

    def kept(self, response: Response) -> dict[str, str]:
        return {"g:" + b.id: b.signature for b in response.content if isinstance(b, ToolUse) and b.signature}

    def watching(self, decoder: StreamDecoder, store: SignatureStore) -> StreamDecoder:
        return _Watching(decoder, store, _CallSignatureWatch())


class _CallSignatureWatch:
    def see(self, events: list[Event]) -> dict[str, str]:
        return {
            "g:" + e.block.id: e.block.signature
            for e in events
            if isinstance(e, BlockStart) and isinstance(e.block, ToolUse) and e.block.signature
        }


# -- Anthropic: the thinking that leads a tool-calling turn ------------------------------------


class AnthropicThinking:
    def missing(self, request: Request) -> list[str]:
        if not request.thinking.enabled:
            return []
        turn = turn_missing_its_thinking(request.messages)
        if turn is None:
            return []
        first_call = next((b.id for b in request.messages[turn].content if isinstance(b, ToolUse) and b.id), "")
        return ["a:" + first_call] if first_call else []

    def restore(self, request: Request, found: dict[str, str]) -> Request:
        turn = turn_missing_its_thinking(request.messages)
        if turn is None or not found:
            return request
        (value,) = found.values()
        message = request.messages[turn]
        thinking = _blocks_of(value)
        rest = tuple(b for b in message.content if not isinstance(b, Thinking | RedactedThinking))
        messages = list(request.messages)
        messages[turn] = Message(message.role, (*thinking, *rest))
        return dataclasses.replace(request, messages=tuple(messages))

    def kept(self, response: Response) -> dict[str, str]:
        leading: list[Thinking | RedactedThinking] = []
        for block in response.content:
            if not isinstance(block, Thinking | RedactedThinking):
                break
            leading.append(block)
        first_call = next((b.id for b in response.content if isinstance(b, ToolUse)), "")
        return {"a:" + first_call: _json_of(leading)} if leading and first_call else {}

    def watching(self, decoder: StreamDecoder, store: SignatureStore) -> StreamDecoder:
        return _Watching(decoder, store, _LeadingThinkingWatch())


class _LeadingThinkingWatch:
    """Collects the thinking blocks an answer starts with; at its first call, hands them over."""

    def __init__(self) -> None:
        self._blocks: dict[int, list[str]] = {}
        """Block index → [kind, text, signature] (``t``) or [kind, data] (``r``)."""
        self._leading = True
        self._done = False

    def see(self, events: list[Event]) -> dict[str, str]:
        if self._done:
            return {}
        for event in events:
            if isinstance(event, BlockStart):
                block = event.block
                if self._leading and isinstance(block, Thinking):
                    self._blocks[event.index] = ["t", block.thinking, block.signature]
                elif self._leading and isinstance(block, RedactedThinking):
                    self._blocks[event.index] = ["r", block.data]
                else:
                    self._leading = False
                    if not self._blocks:
                        self._done = True
                        return {}
                    if isinstance(block, ToolUse):
                        self._done = True
                        return {"a:" + block.id: orjson.dumps(list(self._blocks.values())).decode()}
            elif isinstance(event, ThinkingDelta) and event.index in self._blocks:
                self._blocks[event.index][1] += event.thinking
            elif isinstance(event, SignatureDelta) and event.index in self._blocks:
                self._blocks[event.index][2] += event.signature
        return {}


def _json_of(blocks: list[Thinking | RedactedThinking]) -> str:
    return orjson.dumps(
        [["t", b.thinking, b.signature] if isinstance(b, Thinking) else ["r", b.data] for b in blocks]
    ).decode()


def _blocks_of(value: str) -> tuple[Thinking | RedactedThinking, ...]:
    try:
        items = orjson.loads(value)
        return tuple(Thinking(i[1], i[2]) if i[0] == "t" else RedactedThinking(i[1]) for i in items)
    except (orjson.JSONDecodeError, IndexError, TypeError, KeyError):
        return ()


# -- the stream wrapper -----------------------------------------------------------------------


class _Watch(Protocol):
    def see(self, events: list[Event]) -> dict[str, str]: ...


class _Watching:
    def __init__(self, inner: StreamDecoder, store: SignatureStore, watch: _Watch) -> None:
        self._inner = inner
        self._store = store
        self._watch = watch

    def feed(self, chunk: bytes) -> list[Event]:
        return self._seen(self._inner.feed(chunk))

    def finish(self) -> list[Event]:
        return self._seen(self._inner.finish())

    def _seen(self, events: list[Event]) -> list[Event]:
        found = self._watch.see(events)
        if found:
            self._store.remember(found)
        return events


KEEPERS: dict[str, Keeper] = {"gemini": GeminiCallSignatures(), "anthropic": AnthropicThinking()}
"""By codec kind: what that upstream wants back. OpenAI-compatible services want nothing back."""
