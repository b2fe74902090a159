"""What each upstream wants back, and how the edge remembers and restores it."""

from __future__ import annotations

import orjson

from kestrel.edge.canonical import (
    BlockStart,
    BlockStop,
    Event,
    Message,
    RedactedThinking,
    Request,
    Response,
    SignatureDelta,
    StopReason,
    Text,
    TextDelta,
    Thinking,
    ThinkingConfig,
    ThinkingDelta,
    ToolInputDelta,
    ToolResult,
    ToolUse,
)
from kestrel.edge.providers.anthropic import AnthropicCodec
from kestrel.edge.providers.gemini import GeminiCodec
from kestrel.edge.signatures import MemorySignatureStore
from kestrel.edge.signatures.keep import AnthropicThinking, GeminiCallSignatures

GEMINI = GeminiCallSignatures()
ANTHROPIC = AnthropicThinking()
THINKING = ThinkingConfig(enabled=True, budget_tokens=2048)
THINKING_OFF = ThinkingConfig()


def call(call_id: str, signature: str = "") -> ToolUse:
    return ToolUse(call_id, "Read", {"path": "a.py"}, signature)


def result(call_id: str) -> ToolResult:
    return ToolResult(call_id, (Text("ok"),))


def conversation(thinking: ThinkingConfig = THINKING_OFF) -> Request:
    return Request(
        model="m",
        thinking=thinking,
        max_tokens=8000,
        messages=(
            Message("user", (Text("first task"),)),
            Message("assistant", (call("old_1"),)),
            Message("user", (result("old_1"),)),
            Message("assistant", (Text("done"),)),
            Message("user", (Text("second task"),)),
            Message("assistant", (Text("looking"), call("new_1"), call("new_2", "already"))),
            Message("user", (result("new_1"), result("new_2"))),
            Message("assistant", (Text("and"), call("new_3"), call("new_4"))),
            Message("user", (result("new_3"), result("new_4"))),
        ),
    )


class Fixed:
    """A stream decoder that yields given events on the first feed and at finish."""

    def __init__(self, first: list[Event], last: list[Event]) -> None:
        self._first, self._last, self._fed = first, last, 0

    def feed(self, chunk: bytes) -> list[Event]:
        self._fed += 1
        return self._first if self._fed == 1 else []

    def finish(self) -> list[Event]:
        return self._last


# -- Gemini ----------------------------------------------------------------------------------


def test_gemini_looks_up_only_unsigned_calls_of_the_current_turn() -> None:
    """The current turn starts after the last user message that is more than tool results."""
    assert GEMINI.missing(conversation()) == ["g:new_1", "g:new_3", "g:new_4"]
    assert GEMINI.missing(Request(model="m", messages=(Message("user", (Text("hi"),)),))) == []


def test_gemini_needs_no_lookup_for_calls_a_signed_thinking_block_carries() -> None:
    """How an Anthropic-dialect client (Claude Code) brings Gemini's signature: on the thinking
    block right before the call; only a call without one is looked up."""
    carried = Message("assistant", (Thinking("", "gemini:S1"), call("c1"), Text("and"), call("c2")))
    request = Request(
        model="m", messages=(Message("user", (Text("go"),)), carried, Message("user", (result("c1"), result("c2"))))
    )
    assert GEMINI.missing(request) == ["g:c2"]


def test_gemini_restore_signs_exactly_the_calls_found() -> None:
    request = conversation()
    restored = GEMINI.restore(request, {"g:new_1": "sig-1", "g:new_2": "other", "g:old_1": "sig-old"})
    calls = {b.id: b.signature for m in restored.messages for b in m.content if isinstance(b, ToolUse)}
    assert calls == {"old_1": "sig-old", "new_1": "sig-1", "new_2": "already", "new_3": "", "new_4": ""}
    assert restored.messages[5].content[0] == Text("looking")
    assert GEMINI.restore(request, {}) is request


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
    assert sent_signature(GEMINI.restore(request, {"g:c1": "CiQBreal"})) == "CiQBreal"


async def test_gemini_keeps_signed_calls_of_whole_answers_and_streams() -> None:
    response = Response("msg_1", "m", (Text("x"), call("a", "sig-a"), call("b")), StopReason.TOOL_USE)
    assert GEMINI.kept(response) == {"g:a": "sig-a"}
    store = MemorySignatureStore()
    events: list[Event] = [BlockStart(0, call("a", "sig-a")), ToolInputDelta(0, '{"path":"a.py"}'), BlockStop(0)]
    decoder = GEMINI.watching(Fixed(events, [BlockStart(1, call("b", "sig-b")), BlockStop(1)]), store)
    assert decoder.feed(b"chunk") == events, "events pass unchanged"
    assert await store.recall(["g:a", "g:b"]) == {"g:a": "sig-a"}, "remembered as it passed"
    decoder.finish()
    assert await store.recall(["g:a", "g:b"]) == {"g:a": "sig-a", "g:b": "sig-b"}


# -- Anthropic --------------------------------------------------------------------------------


def test_anthropic_wants_the_thinking_of_the_answered_turn_only_with_thinking_on() -> None:
    assert ANTHROPIC.missing(conversation(THINKING)) == ["a:new_3"]
    assert ANTHROPIC.missing(conversation()) == [], "thinking off: nothing to keep"
    asked = conversation(THINKING)
    asked = Request(model="m", thinking=THINKING, messages=(*asked.messages, Message("assistant", (Text("ok"),))))
    asked = Request(model="m", thinking=THINKING, messages=(*asked.messages, Message("user", (Text("next"),))))
    assert ANTHROPIC.missing(asked) == [], "a new question is not a tool loop"
    led = conversation(THINKING)
    messages = list(led.messages)
    messages[7] = Message("assistant", (Thinking("hm", "sig"), *messages[7].content))
    assert ANTHROPIC.missing(Request(model="m", thinking=THINKING, messages=tuple(messages))) == []
    messages[7] = Message("assistant", (Thinking("hm", "gemini:xyz"), *messages[7].content[1:]))
    assert ANTHROPIC.missing(Request(model="m", thinking=THINKING, messages=tuple(messages))) == ["a:new_3"]


async def test_anthropic_keeps_the_leading_thinking_of_a_streamed_answer_and_puts_it_back() -> None:
    store = MemorySignatureStore()
    events: list[Event] = [
        BlockStart(0, Thinking("")),
        ThinkingDelta(0, "Let me "),
        ThinkingDelta(0, "read it."),
        SignatureDelta(0, "EqQBsig"),
        BlockStop(0),
        BlockStart(1, RedactedThinking("opaque")),
        BlockStop(1),
        BlockStart(2, Text("")),
        TextDelta(2, "Reading."),
        BlockStop(2),
    ]
    later: list[Event] = [BlockStart(3, call("new_3")), BlockStop(3)]
    decoder = ANTHROPIC.watching(Fixed(events, later), store)
    decoder.feed(b"x")
    decoder.finish()
    found = await store.recall(["a:new_3"])
    assert found, "remembered at the turn's first call"
    restored = ANTHROPIC.restore(conversation(THINKING), found)
    assert restored.messages[7].content == (
        Thinking("Let me read it.", "EqQBsig"),
        RedactedThinking("opaque"),
        Text("and"),
        call("new_3"),
        call("new_4"),
    )
    body = orjson.loads(AnthropicCodec().encode(restored, "claude-sonnet-4-5").body)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}, "thinking stays on"
    assert body["messages"][7]["content"][0] == {
        "type": "thinking",
        "thinking": "Let me read it.",
        "signature": "EqQBsig",
    }


def test_anthropic_keeps_a_whole_answer_only_when_thinking_leads_a_turn_with_a_call() -> None:
    whole = Response("msg_1", "m", (Thinking("t", "s"), Text("x"), call("c"), call("d")), StopReason.TOOL_USE)
    assert orjson.loads(ANTHROPIC.kept(whole)["a:c"]) == [["t", "t", "s"]]
    assert ANTHROPIC.kept(Response("msg_1", "m", (call("c"),), StopReason.TOOL_USE)) == {}
    answer = Response("msg_1", "m", (Thinking("t", "s"), Text("x")), StopReason.END_TURN)
    assert ANTHROPIC.kept(answer) == {}, "no call: no tool loop will need it"


def test_without_the_thinking_anthropic_gets_the_turn_with_thinking_off() -> None:
    """The safety net: a tool loop whose turn lost its thinking is sent without thinking, not refused."""
    body = orjson.loads(AnthropicCodec().encode(conversation(THINKING), "claude-sonnet-4-5").body)
    assert "thinking" not in body
    fresh = Request(model="m", thinking=THINKING, max_tokens=8000, messages=(Message("user", (Text("hi"),)),))
    assert "thinking" in orjson.loads(AnthropicCodec().encode(fresh, "claude-sonnet-4-5").body)
