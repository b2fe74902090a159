from hypothesis import given
from hypothesis import strategies as st

from kestrel.edge.sse import FrameCutter, iter_events

STREAM = (
    b'event: message_start\ndata: {"type":"message_start"}\n\n'
    b": a comment\n\n"
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"h\xc3\xa9"}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def test_cutter_releases_only_whole_events() -> None:
    cutter = FrameCutter()
    assert cutter.feed(b"event: ping\ndata: {}") == b""
    assert cutter.feed(b"\n\nevent: x") == b"event: ping\ndata: {}\n\n"
    assert cutter.pending == b"event: x"


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12))
def test_any_rechunking_yields_the_same_bytes_and_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    cutter = FrameCutter()
    out = b"".join(cutter.feed(c) for c in chunks)
    assert out == STREAM
    assert cutter.pending == b""
    assert [name for name, _ in iter_events(out)] == ["message_start", "content_block_delta", "message_stop"]


def test_iter_events_handles_crlf_and_multiline_data() -> None:
    events = list(iter_events(b"event: a\r\ndata: 1\r\ndata: 2\r\n\r\ndata:3\n\n"))
    assert events == [("a", b"1\n2"), ("", b"3")]
