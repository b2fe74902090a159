import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kestrel.edge.assemble import StreamFailed, assemble, cumulative_usage, events_of
from kestrel.edge.canonical import (
    BlockStart,
    BlockStop,
    Image,
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
from kestrel.edge.testing.canonical_strategies import event_sequences, responses

RESPONSE = Response(
    "msg_1",
    "claude-x",
    (Thinking("let me look", "sig=="), Text("Reading é"), ToolUse("toolu_1", "Read", {"path": "a.py"})),
    StopReason.TOOL_USE,
    None,
    Usage(12, 40, 2048, 5),
)


@given(responses(), st.integers(min_value=0, max_value=7))
def test_assemble_inverts_events_of_for_any_fragment_size(response: Response, fragment: int) -> None:
    assert assemble(events_of(response, fragment=fragment)) == response


def test_events_of_streams_the_way_anthropic_does() -> None:
    assert events_of(RESPONSE, fragment=8) == [
        MessageStart("msg_1", "claude-x", Usage(12, 0, 2048, 5)),
        BlockStart(0, Thinking("")),
        ThinkingDelta(0, "let me l"),
        ThinkingDelta(0, "ook"),
        SignatureDelta(0, "sig=="),
        BlockStop(0),
        BlockStart(1, Text("")),
        TextDelta(1, "Reading "),
        TextDelta(1, "é"),
        BlockStop(1),
        BlockStart(2, ToolUse("toolu_1", "Read", {})),
        ToolInputDelta(2, '{"path":'),
        ToolInputDelta(2, '"a.py"}'),
        BlockStop(2),
        MessageDelta(StopReason.TOOL_USE, None, Usage(12, 40, 2048, 5)),
        MessageStop(),
    ]


def test_input_blocks_are_left_out_of_a_stream() -> None:
    response = Response("m", "x", (Image("image/png", "AAAA"), RedactedThinking("opaque")), StopReason.END_TURN)
    assert [type(e).__name__ for e in events_of(response)[1:4]] == ["BlockStart", "BlockStop", "MessageDelta"]


def test_an_error_in_the_stream_fails_the_assembly() -> None:
    with pytest.raises(StreamFailed) as caught:
        assemble([MessageStart("m", "x", Usage()), StreamError("overloaded_error", "Overloaded")])
    assert (caught.value.kind, caught.value.message) == ("overloaded_error", "Overloaded")


def test_a_stream_without_message_delta_ends_as_its_content_says() -> None:
    tool = [MessageStart("m", "x", Usage(3)), BlockStart(0, ToolUse("t", "f", {})), ToolInputDelta(0, "{}")]
    assert assemble(tool).stop_reason is StopReason.TOOL_USE
    assert assemble([MessageStart("m", "x", Usage(3)), BlockStart(0, Text("hi"))]).stop_reason is StopReason.END_TURN


def test_tool_arguments_come_from_fragments_or_else_from_the_start() -> None:
    events = [
        BlockStart(0, ToolUse("a", "f", {"whole": True})),
        BlockStart(1, ToolUse("b", "g", {})),
        ToolInputDelta(1, '{"x": [1,'),
        ToolInputDelta(1, " 2]}"),
        BlockStart(2, ToolUse("c", "h", {})),
        ToolInputDelta(2, '{"cut'),
    ]
    content = assemble(events).content
    assert [b.input for b in content if isinstance(b, ToolUse)] == [{"whole": True}, {"x": [1, 2]}, {}]


def test_deltas_of_the_wrong_kind_or_for_no_block_are_ignored() -> None:
    events = [
        TextDelta(5, "lost"),
        BlockStart(0, Text("")),
        ThinkingDelta(0, "wrong kind"),
        TextDelta(0, "kept"),
        SignatureDelta(0, "no"),
        Ping(),
    ]
    assert assemble(events).content == (Text("kept"),)


def test_signature_fragments_are_joined() -> None:
    events = [BlockStart(0, Thinking("t", "ab")), SignatureDelta(0, "cd"), SignatureDelta(0, "ef")]
    assert assemble(events).content == (Thinking("t", "abcdef"),)


def test_usage_is_cumulative_and_input_survives_a_delta_without_it() -> None:
    start = Usage(100, 1, 50, 7)
    assert cumulative_usage(start, Usage(0, 30)) == Usage(100, 30, 50, 7)
    assert cumulative_usage(start, Usage(90, 30, 0, 0)) == Usage(90, 30, 0, 0)
    assert cumulative_usage(Usage(0, 40), Usage(5, 10)) == Usage(5, 40)


@given(event_sequences())
def test_assemble_never_crashes_on_malformed_sequences(events: list) -> None:
    with contextlib.suppress(StreamFailed):
        assemble(events)
