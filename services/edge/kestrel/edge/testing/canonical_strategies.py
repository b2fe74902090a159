"""Hypothesis strategies for canonical values: responses, and event sequences of any shape.

Shared by the tests of every decoder, renderer and ``assemble``: ``responses()`` gives messages a
correct upstream could send, ``event_sequences()`` gives what a buggy decoder could emit (events out
of order, unknown indexes, blocks stopped twice, tool fragments that are not JSON) so renderers can
be shown to repair all of it. Imports hypothesis, so only tests import this module.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

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

__all__ = ["event_sequences", "ids", "json_objects", "responses", "texts", "usages"]

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
