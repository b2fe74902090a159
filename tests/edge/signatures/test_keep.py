"""The stages around a Gemini attempt: which calls get looked up, how they are signed again."""

from __future__ import annotations

import orjson

from kestrel.edge.canonical import (
    BlockStart,
    BlockStop,
    Event,
    Message,
    Request,
    Response,
    StopReason,
    Text,
    ToolInputDelta,
    ToolResult,
    ToolUse,
)
from kestrel.edge.providers.gemini import GeminiCodec
from kestrel.edge.signatures import MemorySignatureStore
from kestrel.edge.signatures.keep import SigningDecoder, current_turn_unsigned, restore, signed_calls


def call(call_id: str, signature: str = "") -> ToolUse:
    return ToolUse(call_id, "Read", {"path": "a.py"}, signature)


def result(call_id: str) -> ToolResult:
    return ToolResult(call_id, (Text("ok"),))


def conversation() -> Request:
    return Request(
        model="gemini-3-pro",
        messages=(
            Message("user", (Text("first task"),)),
            Message("assistant", (call("old_1"),)),
            Message("user", (result("old_1"),)),
            Message("assistant", (Text("done"),)),
            Message("user", (Text("second task"),)),
            Message("assistant", (Text("looking"), call("new_1"), call("new_2", "already"))),
            Message("user", (result("new_1"), result("new_2"))),
            Message("assistant", (call("new_3"),)),
            Message("user", (result("new_3"),)),
        ),
    )


def test_only_unsigned_calls_of_the_current_turn_are_looked_up() -> None:
    """The current turn starts after the last user message that is more than tool results."""
    assert current_turn_unsigned(conversation()) == ["new_1", "new_3"]


def test_a_conversation_without_calls_needs_no_lookup() -> None:
    request = Request(model="m", messages=(Message("user", (Text("hi"),)),))
    assert current_turn_unsigned(request) == []


def test_restore_signs_exactly_the_calls_found_and_keeps_everything_else() -> None:
    request = conversation()
    restored = restore(request, {"new_1": "sig-1", "new_2": "other", "old_1": "sig-old"})
    calls = {b.id: b.signature for m in restored.messages for b in m.content if isinstance(b, ToolUse)}
    assert calls == {"old_1": "sig-old", "new_1": "sig-1", "new_2": "already", "new_3": ""}
    assert restored.messages[5].content[0] == Text("looking")
    assert restore(request, {}) is request


def test_the_restored_signature_is_what_gemini_receives() -> None:
    """Without a kept signature the encoder can only send Google's placeholder."""
    request = Request(
        model="gemini-3-pro",
        messages=(
            Message("user", (Text("go"),)),
            Message("assistant", (call("c1"),)),
            Message("user", (result("c1"),)),
        ),
    )

    def sent_signature(req: Request) -> str:
        body = orjson.loads(GeminiCodec().encode(req, "gemini-3-pro").body)
        return body["contents"][1]["parts"][0]["thoughtSignature"]

    assert sent_signature(request) == "skip_thought_signature_validator"
    assert sent_signature(restore(request, {"c1": "CiQBreal"})) == "CiQBreal"


def test_signed_calls_of_a_whole_answer() -> None:
    response = Response("msg_1", "m", (Text("x"), call("a", "sig-a"), call("b")), StopReason.TOOL_USE)
    assert signed_calls(response) == {"a": "sig-a"}


async def test_the_signing_decoder_remembers_calls_as_they_pass_and_changes_nothing() -> None:
    events: list[Event] = [BlockStart(0, call("a", "sig-a")), ToolInputDelta(0, '{"path":"a.py"}'), BlockStop(0)]

    class Fixed:
        def __init__(self) -> None:
            self.fed: list[bytes] = []

        def feed(self, chunk: bytes) -> list[Event]:
            self.fed.append(chunk)
            return events if len(self.fed) == 1 else []

        def finish(self) -> list[Event]:
            return [BlockStart(1, call("b", "sig-b")), BlockStop(1)]

    store = MemorySignatureStore()
    decoder = SigningDecoder(Fixed(), store)
    assert decoder.feed(b"chunk") == events
    assert await store.recall(["a", "b"]) == {"a": "sig-a"}
    decoder.finish()
    assert await store.recall(["a", "b"]) == {"a": "sig-a", "b": "sig-b"}
