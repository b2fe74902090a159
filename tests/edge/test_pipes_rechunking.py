"""Any re-chunking of an upstream stream gives the client the same bytes, for every pipe the edge runs.

The network cuts an upstream stream wherever it likes: inside an SSE line, inside ``\\r\\n\\r\\n``,
inside a multi-byte UTF-8 character. For each direction the edge runs (``attempts.py`` builds these
exact pipes: ``PassthroughPipe`` for a same-API upstream, ``TranslatedPipe(codec decoder, dialect
renderer)`` otherwise) a random answer is written in the upstream's wire format, cut at random byte
positions, fed chunk by chunk to a fresh pipe, and compared with feeding it whole. The client's bytes
must be identical (only OpenAI's ``created`` timestamp, taken from the clock, is normalised), the
recorded usage must be identical, and the bytes must pass the strict validator of the client's
dialect. Content must also leave as soon as it arrived: after a whole stream, ``finish()`` may add
only the message's end, so no decoder sits on content until the connection closes. Streams cut
short by the upstream (a prefix of the stream, then a clean end) are included: they must end in a
well-formed error, equally for every chunking.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kestrel.edge.assemble import events_of
from kestrel.edge.canonical import Message, Request, Response, StopReason, Text, Thinking, Tool, ToolUse, Usage
from kestrel.edge.dialects.anthropic_render import AnthropicStreamRenderer
from kestrel.edge.dialects.clients import ANTHROPIC, OPENAI
from kestrel.edge.dialects.openai import OpenAIStreamRenderer
from kestrel.edge.pipes import PassthroughPipe, Pipe, TranslatedPipe
from kestrel.edge.providers.anthropic import AnthropicCodec
from kestrel.edge.providers.gemini import GeminiCodec
from kestrel.edge.providers.openai import OpenAICodec, wire_tool_name
from kestrel.edge.sse import iter_events
from kestrel.edge.testing import gemini_wire
from kestrel.edge.testing.canonical_strategies import upstream_responses
from kestrel.edge.testing.openai_stream import validate_openai_sse
from kestrel.edge.testing.stream_validators import validate_anthropic_sse

NAMES = ("Read", "get_weather", "mcp__github__" + "create_pull_request_review_comment_" * 3, "9-lives")


def client_request(include_usage: bool) -> Request:
    return Request(
        model="claude-x",
        messages=(Message("user", (Text("list my files, s'il te plaît"),)),),
        tools=tuple(Tool(name) for name in NAMES),
        stream=True,
        include_usage=include_usage,
    )


# -- what the upstream sends ----------------------------------------------------------------------


def _with_wire_names(response: Response) -> Response:
    """Tool calls named as an OpenAI service knows them (long names shortened by the codec)."""
    content = tuple(
        dataclasses.replace(b, name=wire_tool_name(b.name)) if isinstance(b, ToolUse) else b for b in response.content
    )
    return dataclasses.replace(response, content=content)


def anthropic_upstream(response: Response, fragment: int, request: Request, crlf: bool) -> bytes:
    renderer = AnthropicStreamRenderer()
    return renderer.render_all(events_of(response, fragment=fragment)) + renderer.finish()


def openai_upstream(response: Response, fragment: int, request: Request, crlf: bool) -> bytes:
    """An OpenAI upstream asked by the edge, which always asks for the usage chunk."""
    renderer = OpenAIStreamRenderer("gpt-x", include_usage=True, id=response.id, created=1_700_000_000)
    return renderer.render_all(events_of(_with_wire_names(response), fragment=fragment))


def openai_upstream_as_asked(response: Response, fragment: int, request: Request, crlf: bool) -> bytes:
    """An OpenAI upstream sent the client's own body (passthrough): usage only when the client asked."""
    renderer = OpenAIStreamRenderer("gpt-x", request.include_usage, id=response.id, created=1_700_000_000)
    return renderer.render_all(events_of(_with_wire_names(response), fragment=fragment))


def gemini_upstream(response: Response, fragment: int, request: Request, crlf: bool) -> bytes:
    """Google's servers end frames with ``\\r\\n\\r\\n`` (``crlf``); proxies in front of them may not."""
    return gemini_wire.stream_sse(response, fragment=fragment, sep=b"\r\n\r\n" if crlf else b"\n\n")


# -- the pipes, as attempts.py builds them ----------------------------------------------------------


@dataclass(frozen=True)
class Direction:
    name: str
    upstream: Callable[[Response, int, Request, bool], bytes]
    """The upstream's stream of an answer: (answer, fragment size, client request, CRLF frames)."""
    pipe: Callable[[Request], Pipe]
    client: str
    """``anthropic`` or ``openai``: whose validator the output must pass."""


DIRECTIONS = [  # the dialects' own renderer factories: ids come from the upstream, only `created` from the clock
    Direction(
        "anthropic passthrough",
        anthropic_upstream,
        lambda request: PassthroughPipe(ANTHROPIC.name, ANTHROPIC.error_frame),
        "anthropic",
    ),
    Direction(
        "openai passthrough",
        openai_upstream_as_asked,
        lambda request: PassthroughPipe(OPENAI.name, OPENAI.error_frame),
        "openai",
    ),
    Direction(
        "openai upstream → anthropic client",
        openai_upstream,
        lambda request: TranslatedPipe(
            OpenAICodec().stream_decoder(request), ANTHROPIC.stream_renderer(request, "claude-x")
        ),
        "anthropic",
    ),
    Direction(
        "anthropic upstream → openai client",
        anthropic_upstream,
        lambda request: TranslatedPipe(
            AnthropicCodec().stream_decoder(request), OPENAI.stream_renderer(request, "gpt-x")
        ),
        "openai",
    ),
    Direction(
        "gemini upstream → anthropic client",
        gemini_upstream,
        lambda request: TranslatedPipe(
            GeminiCodec().stream_decoder(request), ANTHROPIC.stream_renderer(request, "claude-x")
        ),
        "anthropic",
    ),
    Direction(
        "gemini upstream → openai client",
        gemini_upstream,
        lambda request: TranslatedPipe(GeminiCodec().stream_decoder(request), OPENAI.stream_renderer(request, "gpt-x")),
        "openai",
    ),
]
BY_NAME = {d.name: d for d in DIRECTIONS}
TRANSLATED = [d.name for d in DIRECTIONS if "passthrough" not in d.name]

_CREATED = re.compile(rb'"created":\d+')


def normalised(raw: bytes) -> bytes:
    """``raw`` with OpenAI's ``created`` (the clock when the renderer was made) set to 0."""
    return _CREATED.sub(b'"created":0', raw)


@dataclass(frozen=True)
class Output:
    fed: bytes
    """What the client got while the upstream was still sending (normalised)."""
    finished: bytes
    """What ``finish()`` added when the upstream ended."""
    usage: object

    @property
    def raw(self) -> bytes:
        return self.fed + self.finished


def run(direction: Direction, request: Request, chunks: list[bytes]) -> Output:
    """What the client receives, and the recorded usage, for ``chunks`` fed in order."""
    pipe = direction.pipe(request)
    fed = b"".join(pipe.feed(chunk) for chunk in chunks)
    return Output(normalised(fed), normalised(pipe.finish()), pipe.usage())


def no_content_held_back(direction: Direction, output: Output) -> bool:
    """A whole stream fed at once leaves ``finish()`` nothing but the message's end: no decoder may
    sit on content until the connection closes (Gemini streams have no terminator, so their end
    comes from ``finish()``; the others end in-band)."""
    if direction.client == "anthropic":
        return all(name in ("message_delta", "message_stop") for name, _ in iter_events(output.finished))
    chunks = [orjson.loads(data) for _, data in iter_events(output.finished) if data != b"[DONE]"]
    deltas = [choice["delta"] for chunk in chunks for choice in chunk.get("choices") or ()]
    return not any(d.get(k) for d in deltas for k in ("content", "reasoning_content", "tool_calls"))


def validate(direction: Direction, request: Request, raw: bytes) -> None:
    if direction.client == "anthropic":
        validate_anthropic_sse(raw)
    else:
        validate_openai_sse(raw, include_usage=request.include_usage)


def cut(raw: bytes, positions: list[int]) -> list[bytes]:
    bounds = [0, *sorted({p for p in positions if 0 < p < len(raw)}), len(raw)]
    return [raw[a:b] for a, b in itertools.pairwise(bounds)]


def awkward_positions(raw: bytes) -> list[int]:
    """Byte offsets where a cut hurts most: inside a UTF-8 character, inside a line ending or a frame
    separator, right after ``data:``."""
    inside_char = [i for i, byte in enumerate(raw) if 0x80 <= byte < 0xC0]
    line_ends = [m.start() + 1 for m in re.finditer(rb"\r\n|\n\n", raw)]
    fields = [m.end() for m in re.finditer(rb"data:|event:", raw)]
    return inside_char + line_ends + fields


@st.composite
def chunkings(draw: st.DrawFn, raw: bytes) -> list[int]:
    awkward = awkward_positions(raw)
    anywhere = st.integers(0, len(raw))
    position = st.one_of(anywhere, st.sampled_from(awkward)) if awkward else anywhere
    return draw(st.lists(position, max_size=24))


# -- properties -----------------------------------------------------------------------------------


PER_DIRECTION = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", [d.name for d in DIRECTIONS])
@PER_DIRECTION
@given(
    response=upstream_responses(NAMES),
    fragment=st.integers(0, 5),
    include_usage=st.booleans(),
    crlf=st.booleans(),
    data=st.data(),
)
def test_any_rechunking_of_a_whole_stream_gives_the_same_valid_client_stream(
    name: str, response: Response, fragment: int, include_usage: bool, crlf: bool, data: st.DataObject
) -> None:
    direction = BY_NAME[name]
    request = client_request(include_usage)
    raw = direction.upstream(response, fragment, request, crlf)
    whole = run(direction, request, [raw])
    chunked = run(direction, request, cut(raw, data.draw(chunkings(raw), label="cuts")))
    assert chunked == whole
    validate(direction, request, whole.raw)
    assert no_content_held_back(direction, whole)
    if "passthrough" in name:
        assert whole.raw == normalised(raw), "passthrough forwards the upstream's bytes untouched"


@pytest.mark.parametrize("name", TRANSLATED)
@PER_DIRECTION
@given(
    response=upstream_responses(NAMES),
    fragment=st.integers(0, 5),
    include_usage=st.booleans(),
    crlf=st.booleans(),
    data=st.data(),
)
def test_a_stream_cut_short_ends_in_the_same_well_formed_error_for_any_chunking(
    name: str, response: Response, fragment: int, include_usage: bool, crlf: bool, data: st.DataObject
) -> None:
    """The upstream closes cleanly after any prefix of its stream (mid-line, mid-character …).

    Translated pipes only: a passthrough pipe forwards even a cut stream as it came (a lost
    connection is ``interrupted()``, which writes an error; a clean end mid-event is forwarded as is).
    """
    direction = BY_NAME[name]
    request = client_request(include_usage)
    full = direction.upstream(response, fragment, request, crlf)
    raw = full[: data.draw(st.integers(0, len(full)), label="length")]
    whole = run(direction, request, [raw])
    chunked = run(direction, request, cut(raw, data.draw(chunkings(raw), label="cuts")))
    assert chunked == whole
    validate(direction, request, whole.raw)


# -- the worst case, spelled out --------------------------------------------------------------------

EAGLE = Response(
    "msg_eagle",
    "model-x",
    (
        Thinking("héllo 🦅, let me think", "c2lnbmF0dXJl"),
        Text('héllo 🦅 — 日本語 "quoted" \\ and\nnew line'),
        ToolUse("toolu_eagle", "Read", {"path": "nid/🦅.txt", "note": "é"}),
    ),
    StopReason.TOOL_USE,
    None,
    Usage(11, 22, 3, 0, 5),
)


def test_every_byte_in_its_own_chunk_gives_the_same_client_stream_in_every_direction() -> None:
    for direction in DIRECTIONS:
        for include_usage in (False, True):
            request = client_request(include_usage)
            raw = direction.upstream(EAGLE, 3, request, True)
            whole = run(direction, request, [raw])
            assert run(direction, request, [raw[i : i + 1] for i in range(len(raw))]) == whole, direction.name
            validate(direction, request, whole.raw)
            assert "🦅".encode() in whole.fed, direction.name


def test_passthrough_ends_a_stream_cut_mid_event_with_an_error_not_half_a_frame() -> None:
    from kestrel.edge.dialects.clients import ANTHROPIC
    from kestrel.edge.pipes import PassthroughPipe

    pipe = PassthroughPipe("anthropic", ANTHROPIC.error_frame)
    start = b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":3}}}\n\n'
    assert pipe.feed(start + b'event: content_block_delta\ndata: {"type":"content_bl') == start
    tail = pipe.finish()
    assert tail.startswith(b"event: error\n") and tail.endswith(b"\n\n")
    assert b"content_bl" not in tail

    done = PassthroughPipe("openai", ANTHROPIC.error_frame)
    done.feed(b'data: {"id":"c","choices":[]}\n\n')
    assert done.feed(b"data: [DONE]") == b""
    assert done.finish() == b"data: [DONE]\n\n"
