"""The two stages around a Gemini attempt: remember the calls an answer signs, restore them later."""

from __future__ import annotations

import dataclasses

from kestrel.edge.canonical import BlockStart, Event, Message, Request, Response, ToolResult, ToolUse
from kestrel.edge.providers.base import StreamDecoder
from kestrel.edge.signatures.base import SignatureStore


def current_turn_unsigned(request: Request) -> list[str]:
    """Ids of the calls Gemini will check that arrive without a signature.

    Gemini validates the calls of the current turn: every model message after the last user
    message that is more than tool results. Older turns get the placeholder, which keeps the
    lookup (and the request) small in a long agent session.
    """
    start = 0
    for index, message in enumerate(request.messages):
        if message.role == "user" and any(not isinstance(b, ToolResult) for b in message.content):
            start = index + 1
    return [
        block.id
        for message in request.messages[start:]
        if message.role == "assistant"
        for block in message.content
        if isinstance(block, ToolUse) and block.id and not block.signature
    ]


def restore(request: Request, found: dict[str, str]) -> Request:
    """``request`` with each call in ``found`` carrying its signature again."""
    if not found:
        return request
    messages = tuple(_signed(m, found) if m.role == "assistant" else m for m in request.messages)
    return dataclasses.replace(request, messages=messages)


def _signed(message: Message, found: dict[str, str]) -> Message:
    content = tuple(
        dataclasses.replace(b, signature=found[b.id])
        if isinstance(b, ToolUse) and not b.signature and b.id in found
        else b
        for b in message.content
    )
    return Message(message.role, content)


def signed_calls(response: Response) -> dict[str, str]:
    return {b.id: b.signature for b in response.content if isinstance(b, ToolUse) and b.signature}


class SigningDecoder:
    """A ``StreamDecoder`` that hands every signed call it decodes to the store, as it passes."""

    def __init__(self, inner: StreamDecoder, store: SignatureStore) -> None:
        self._inner = inner
        self._store = store

    def feed(self, chunk: bytes) -> list[Event]:
        return self._kept(self._inner.feed(chunk))

    def finish(self) -> list[Event]:
        return self._kept(self._inner.finish())

    def _kept(self, events: list[Event]) -> list[Event]:
        signed = {
            e.block.id: e.block.signature
            for e in events
            if isinstance(e, BlockStart) and isinstance(e.block, ToolUse) and e.block.signature
        }
        if signed:
            self._store.remember(signed)
        return events
