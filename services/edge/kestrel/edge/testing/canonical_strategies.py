"""Hypothesis strategies for canonical values: requests, responses, and event sequences of any shape.

Shared by the tests of every decoder, renderer and ``assemble``: ``responses()`` gives messages a
correct upstream could send, ``event_sequences()`` gives what a buggy decoder could emit (events out
of order, unknown indexes, blocks stopped twice, tool fragments that are not JSON) so renderers can
be shown to repair all of it. The round-trip properties use two more: ``conversations()`` gives
requests an Anthropic client could validly send (tools, thinking, images, tool results answering
every call), and ``upstream_responses()`` gives answers as a real upstream sends them (non-empty
text, unique tool ids, usage that reports a prompt). Imports hypothesis, so only tests import this
module.
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import strategies as st

from kestrel.edge.canonical import (
    BlockStart,
    BlockStop,
    CacheControl,
    Event,
    Image,
    Message,
    MessageDelta,
    MessageStart,
    MessageStop,
    Ping,
    RedactedThinking,
    Request,
    Response,
    ResponseFormat,
    SignatureDelta,
    StopReason,
    StreamError,
    Text,
    TextDelta,
    Thinking,
    ThinkingConfig,
    ThinkingDelta,
    Tool,
    ToolChoice,
    ToolChoiceKind,
    ToolInputDelta,
    ToolResult,
    ToolUse,
    Usage,
)
from kestrel.edge.providers.gemini_stream import SIGNATURE_TAG

__all__ = [
    "conversations",
    "event_sequences",
    "ids",
    "images",
    "json_objects",
    "prose",
    "responses",
    "texts",
    "tool_definitions",
    "tool_names",
    "upstream_responses",
    "usages",
]

TRICKY = 'é日本🦀"\\\n\t\u2028</script>'
"""Characters that break naive escaping or split across chunk boundaries in UTF-8."""


def texts(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    """Short strings, often made of multi-byte and escape-worthy characters."""
    return st.text(
        st.one_of(st.sampled_from(TRICKY), st.characters(exclude_categories=["Cs"])),
        min_size=min_size,
        max_size=max_size,
    )


def ids(prefix: str) -> st.SearchStrategy[str]:
    return st.from_regex(r"[A-Za-z0-9_]{1,16}", fullmatch=True).map(lambda s: prefix + s)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    texts(),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def json_objects() -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects, as a tool call's input."""
    return st.dictionaries(texts(max_size=8), _json, max_size=5)


def usages() -> st.SearchStrategy[Usage]:
    count = st.integers(min_value=0, max_value=200_000)
    return st.builds(Usage, count, count, count, count)


_citation = st.fixed_dictionaries(
    {
        "type": st.just("char_location"),
        "cited_text": texts(),
        "document_index": st.integers(0, 3),
        "document_title": st.one_of(st.none(), texts(max_size=8)),
        "start_char_index": st.integers(0, 100),
        "end_char_index": st.integers(100, 200),
    }
)
"""A citation as the Anthropic SDK types it (``CitationCharLocation``)."""

_response_blocks = st.one_of(
    st.builds(Text, texts(), st.none(), st.lists(_citation, max_size=2).map(tuple)),
    st.builds(Thinking, texts(), texts(max_size=12)),
    st.builds(RedactedThinking, texts(min_size=1)),
    st.builds(ToolUse, ids("toolu_"), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True), json_objects()),
)


def responses() -> st.SearchStrategy[Response]:
    """Messages a correct upstream could answer with (stop sequence only with its stop reason)."""

    def build(content: list[Any], stop: StopReason, sequence: str, usage: Usage, message_id: str) -> Response:
        matched = sequence if stop is StopReason.STOP_SEQUENCE else None
        return Response(message_id, "model-x", tuple(content), stop, matched, usage)

    return st.builds(
        build, st.lists(_response_blocks, max_size=5), st.sampled_from(StopReason), texts(1, 5), usages(), ids("msg_")
    )


def event_sequences(max_size: int = 30) -> st.SearchStrategy[list[Event]]:
    """Any sequence of events, malformed ones included: what a buggy decoder might produce."""
    index = st.integers(min_value=0, max_value=3)
    block = st.one_of(
        st.builds(Text, texts(max_size=5)),
        st.builds(Thinking, texts(max_size=5), texts(max_size=5)),
        st.builds(
            ToolUse, st.one_of(st.just(""), ids("toolu_")), texts(max_size=6), st.one_of(st.just({}), json_objects())
        ),
        st.builds(RedactedThinking, texts(max_size=5)),
    )
    fragment = st.one_of(st.sampled_from(['{"a', '":', "1}", '{"k": [1, ', '"x"', "}", "{}", "]"]), texts(max_size=4))
    event = st.one_of(
        st.builds(MessageStart, ids("msg_"), st.just("m"), usages()),
        st.builds(BlockStart, index, block),
        st.builds(TextDelta, index, texts(max_size=6)),
        st.builds(ThinkingDelta, index, texts(max_size=6)),
        st.builds(SignatureDelta, index, texts(max_size=6)),
        st.builds(ToolInputDelta, index, fragment),
        st.builds(BlockStop, index),
        st.builds(MessageDelta, st.sampled_from(StopReason), st.one_of(st.none(), texts(max_size=3)), usages()),
        st.just(MessageStop()),
        st.just(Ping()),
        st.builds(StreamError, st.sampled_from(["api_error", "overloaded_error"]), texts(max_size=10)),
    )
    return st.lists(event, max_size=max_size)


# -- valid conversations and real-looking answers (round-trip properties) ---------------------

WORDS = ("héllo 🦅", "naïve café", "日本語の文", "👩‍💻 zwj", 'a "quoted" \\ path', "line\nbreak", "\u2028", "ok")
"""Whole words with multi-byte characters, so streams cut at random bytes split them."""


def prose(min_size: int = 1, max_size: int = 4) -> st.SearchStrategy[str]:
    """Text a model or a user writes: ``min_size``..``max_size`` pieces, each a word or random text."""
    piece = st.one_of(st.sampled_from(WORDS), texts(1, 12))
    return st.lists(piece, min_size=min_size, max_size=max_size).map("".join)


def tool_names() -> st.SearchStrategy[str]:
    """Names Anthropic accepts (``[A-Za-z0-9_-]{1,128}``): mostly short ones every API takes as they
    are, some Claude Code MCP names too long for OpenAI and Gemini (64 at most), some with a leading
    digit, which Gemini refuses; translators shorten those and must restore them."""
    return st.one_of(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True),
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True),
        st.from_regex(r"mcp__[a-z_]{3,12}__[a-z0-9_-]{50,100}", fullmatch=True),
        st.from_regex(r"[0-9][A-Za-z0-9_-]{0,20}", fullmatch=True),
    )


_MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def images(*, urls: bool = True) -> st.SearchStrategy[Image]:
    """Base64 images of any type Anthropic accepts, and (when ``urls``) images by URL."""
    inline = st.builds(
        lambda kind, raw: Image(kind, base64.b64encode(raw).decode()),
        st.sampled_from(_MEDIA_TYPES),
        st.binary(min_size=1, max_size=24),
    )
    if not urls:
        return inline
    by_url = st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True).map(lambda n: Image(url=f"https://img.example/{n}.png"))
    return st.one_of(inline, by_url)


_PROPERTY_TYPES = st.sampled_from(
    [
        {"type": "string"},
        {"type": "integer"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "array", "items": {"type": "string"}},
        {"type": "string", "enum": ["a", "b"]},
    ]
)


@st.composite
def _schema(draw: st.DrawFn) -> dict[str, Any]:
    properties = draw(st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), _PROPERTY_TYPES, max_size=3))
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [name for name in properties if draw(st.booleans())]
    if required:
        schema["required"] = required
    return schema


def tool_definitions(min_size: int = 0, max_size: int = 3) -> st.SearchStrategy[tuple[Tool, ...]]:
    """Client tools with distinct names and simple JSON schemas, some with a cache marker."""
    tool = st.builds(
        Tool,
        tool_names(),
        st.one_of(st.just(""), prose(1, 2)),
        _schema(),
        st.one_of(st.none(), st.just(CacheControl())),
    )
    return st.lists(tool, min_size=min_size, max_size=max_size, unique_by=lambda t: t.name).map(tuple)


def _cached() -> st.SearchStrategy[CacheControl | None]:
    return st.one_of(st.none(), st.none(), st.sampled_from([CacheControl(), CacheControl("1h")]))


@st.composite
def _user_turn(draw: st.DrawFn, calls: list[str]) -> Message:
    """Results for every call first (as Anthropic requires), then text and images."""
    results: list[ToolResult] = []
    for call in calls:
        parts = draw(st.lists(st.one_of(st.builds(Text, prose()), images(urls=False)), max_size=2))
        results.append(ToolResult(call, tuple(parts), draw(st.booleans()), draw(_cached())))
    extra = st.one_of(st.builds(Text, prose(), _cached()), images())
    rest = draw(st.lists(extra, min_size=0 if calls else 1, max_size=3))
    return Message("user", (*results, *rest))


@st.composite
def _assistant_turn(draw: st.DrawFn, names: list[str], thinking: bool, serial: int) -> Message:
    """Signed thinking first (when thinking is on), then text, then tool calls; never empty.

    Thinking is signed by Anthropic or, for history that came from a Gemini upstream, carries a
    ``gemini:`` signature; then, as the Gemini decoder writes a signed part, an empty thinking block
    with a ``gemini:`` signature may also precede a text or a call, or end the turn.
    """
    blocks: list[Any] = []
    signature = st.from_regex(r"[A-Za-z0-9+/]{4,24}={0,2}", fullmatch=True)
    gemini = st.builds(Thinking, st.just(""), signature.map(lambda s: SIGNATURE_TAG + s))
    if thinking:
        signed = st.builds(Thinking, prose(), st.one_of(signature, signature.map(lambda s: SIGNATURE_TAG + s)))
        blocks += draw(st.lists(st.one_of(signed, st.builds(RedactedThinking, ids("r"))), max_size=2))
    texts_ = draw(st.lists(st.builds(Text, prose()), max_size=2))
    calls = []
    if names:
        count = draw(st.sampled_from([0, 1, 1, 2, 3]))
        for n in range(count):
            call_id = draw(ids("toolu_")) + f"_{serial}_{n}"
            calls.append(ToolUse(call_id, draw(st.sampled_from(names)), draw(json_objects())))
    if not texts_ and not calls:
        texts_ = [Text(draw(prose()))]
    for block in (*texts_, *calls):
        if thinking and draw(st.booleans()):
            blocks.append(draw(gemini))
        blocks.append(block)
    if thinking:
        blocks += draw(st.lists(gemini, max_size=1))
    return Message("assistant", tuple(blocks))


@st.composite
def conversations(draw: st.DrawFn, max_exchanges: int = 3) -> Request:
    """A request an Anthropic client could validly send.

    Turns alternate user/assistant from a user turn to a user turn; every tool call is answered by
    a ``tool_result`` at the start of the next user turn; calls name only declared tools; thinking
    blocks (signed, or redacted) lead assistant turns only when thinking is on, and then empty ones
    signed by Gemini may also sit before a text or a call (history from a Gemini upstream, as its
    decoder writes it); text is never empty.
    Cache markers sit here and there, as Claude Code places them. A third asks for structured output
    (``output_config.format``: a ``json_schema``, as Anthropic has no other kind).
    """
    tools = draw(st.one_of(tool_definitions(), tool_definitions(min_size=1)))
    names = [t.name for t in tools]
    thinking = draw(
        st.sampled_from(
            [ThinkingConfig(), ThinkingConfig(True, 0), ThinkingConfig(True, 2048), ThinkingConfig(True, 20000)]
        )
    )
    messages = [draw(_user_turn([]))]
    exchanges = draw(st.sampled_from(range(max_exchanges + 1)))
    for serial in range(exchanges):
        assistant = draw(_assistant_turn(names, thinking.enabled, serial))
        messages += [assistant, draw(_user_turn([b.id for b in assistant.content if isinstance(b, ToolUse)]))]
    choice = None
    if tools and draw(st.booleans()):
        kind = draw(st.sampled_from(ToolChoiceKind))
        name = draw(st.sampled_from(names)) if kind is ToolChoiceKind.TOOL else ""
        choice = ToolChoice(kind, name, draw(st.booleans()))
    unit = st.floats(0, 1, allow_nan=False)
    return Request(
        model="claude-x",
        messages=tuple(messages),
        system=tuple(draw(st.lists(st.builds(Text, prose(), _cached()), max_size=2))),
        max_tokens=draw(st.integers(1, 128_000)),
        stream=draw(st.booleans()),
        temperature=draw(st.one_of(st.none(), unit)),
        top_p=draw(st.one_of(st.none(), unit)),
        top_k=draw(st.one_of(st.none(), st.integers(1, 500))),
        stop_sequences=tuple(draw(st.lists(prose(1, 1), max_size=6))),
        tools=tools,
        tool_choice=choice,
        thinking=thinking,
        user=draw(st.one_of(st.just(""), ids("user_"))),
        response_format=draw(
            st.one_of(st.none(), st.none(), st.builds(ResponseFormat, st.just("json_schema"), _schema()))
        ),
    )


@st.composite
def upstream_responses(draw: st.DrawFn, names: tuple[str, ...] = ("Read", "Bash", "get_weather")) -> Response:
    """An answer as a real upstream sends it: what ``responses()`` gives, made realistic.

    Text blocks are non-empty; thinking may be empty only when signed; tool calls have distinct
    ids, declared names (``names``) and sometimes a signature of their own (Gemini signs calls);
    ``tool_use`` is the stop reason exactly when a tool was called, unless ``max_tokens`` cut the
    turn; usage always reports a prompt, and reasoning never exceeds the output.
    """
    signature = st.from_regex(r"[A-Za-z0-9+/]{4,24}={0,2}", fullmatch=True)
    text = st.builds(Text, prose())
    call = st.builds(ToolUse, ids("toolu_"), st.sampled_from(names), json_objects(), st.one_of(st.just(""), signature))
    block = st.one_of(
        text,
        call,
        st.builds(Thinking, prose(), st.one_of(st.just(""), signature)),
        text,
        call,
        st.builds(Thinking, st.just(""), signature),
        st.builds(RedactedThinking, ids("redacted_")),
    )
    content = draw(st.one_of(st.lists(block, max_size=6), st.lists(block, min_size=2, max_size=6)))
    content = [
        ToolUse(f"{b.id}_{n}", b.name, b.input, b.signature) if isinstance(b, ToolUse) else b
        for n, b in enumerate(content)
    ]
    called = any(isinstance(b, ToolUse) for b in content)
    if called:
        stop = draw(st.sampled_from([StopReason.TOOL_USE, StopReason.TOOL_USE, StopReason.MAX_TOKENS]))
    else:
        stop = draw(st.sampled_from([s for s in StopReason if s is not StopReason.TOOL_USE]))
    sequence = draw(prose(1, 1)) if stop is StopReason.STOP_SEQUENCE else None
    count = st.integers(0, 200_000)
    output = draw(count)
    usage = Usage(draw(st.integers(1, 200_000)), output, draw(count), draw(count), draw(st.integers(0, output)))
    return Response(draw(ids("msg_")), "model-x", tuple(content), stop, sequence, usage)
