"""Round trips through the canonical model: what both sides can express survives, for any valid input.

Two directions, because the edge translates both ways:

* **Requests** (Anthropic client → OpenAI or Gemini upstream): a random valid conversation is
  written as Anthropic JSON, parsed, encoded by the upstream's codec and read back, then written for
  Anthropic again. The OpenAI body is read by the OpenAI dialect's own parser (as if an OpenAI client
  had sent it); nobody sends Gemini requests to the edge, so the Gemini body is read by the
  test-only ``testing/gemini_request.py``, which mirrors the encoder's rules.
* **Answers** (OpenAI or Gemini upstream → Anthropic client): a random answer is written in the
  upstream's wire format (the OpenAI dialect's renderer, ``testing/gemini_wire.py`` for Gemini),
  decoded by that provider's codec, compared with what the upstream could say, then rendered for an
  Anthropic client, checked by the strict stream validator and assembled back. The same for an
  OpenAI client over an Anthropic or Gemini upstream, compared with what the OpenAI SDK accumulates.

Each ``*_view`` / ``*_expressible`` function below is the written-down contract of one leg: what it
keeps, what it reshapes and what it drops. A property failing means a translator lost or changed
something that both sides have a place for.
"""

from __future__ import annotations

import dataclasses
import mimetypes
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kestrel.edge.assemble import assemble, events_of
from kestrel.edge.canonical import (
    Block,
    Document,
    Event,
    Image,
    Message,
    RedactedThinking,
    Request,
    Response,
    ResponseFormat,
    StopReason,
    Text,
    Thinking,
    ThinkingConfig,
    Tool,
    ToolChoice,
    ToolChoiceKind,
    ToolResult,
    ToolUse,
    Usage,
)
from kestrel.edge.dialects import openai as openai_dialect
from kestrel.edge.dialects.anthropic_render import AnthropicStreamRenderer, render_response
from kestrel.edge.formats import anthropic as anthropic_json
from kestrel.edge.providers.anthropic import AnthropicCodec
from kestrel.edge.providers.gemini import (
    BILLING_PREFIX,
    DUMMY_SIGNATURE,
    MAX_STOP_SEQUENCES,
    MAX_THINKING_BUDGET,
    GeminiCodec,
    upstream_name,
)
from kestrel.edge.providers.gemini_schema import function_parameters
from kestrel.edge.providers.gemini_stream import SIGNATURE_TAG
from kestrel.edge.providers.openai import OpenAICodec, wire_tool_name
from kestrel.edge.providers.presets import OPENAI
from kestrel.edge.testing import gemini_request, gemini_wire
from kestrel.edge.testing.canonical_strategies import conversations, prose, upstream_responses
from kestrel.edge.testing.openai_stream import collect, validate_openai_sse
from kestrel.edge.testing.stream_validators import validate_anthropic_sse

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ("Read", "get_weather", "mcp__github__" + "create_pull_request_review_comment_" * 3, "9-lives")
"""Tool names of the answers: two every API takes, one too long for OpenAI and Gemini, one Gemini refuses."""
UPSTREAM_REQUEST = Request(
    model="claude-x",
    messages=(Message("user", (Text("hi"),)),),
    tools=tuple(Tool(name) for name in NAMES),
    stream=True,
)
"""What the client asked: the decoders need its tool names (and estimate its prompt from it)."""
OPENAI_MODEL = "gpt-x"


# -- requests: Anthropic → OpenAI → Anthropic -----------------------------------------------------


def _wire(name: str) -> str:
    """The name an OpenAI service sees: itself, or ``prefix_<8 hex>`` when too long or invalid (the
    codec restores it in answers; the request itself keeps the short form)."""
    return wire_tool_name(name, OPENAI.tool_name_max)


def _openai_turn(message: Message) -> Message:
    """One turn as the OpenAI chat format can carry it (PROTOCOLS C2), blocks in canonical form.

    Assistant: all text joined by a blank line into one block, then the tool calls in order (id
    and input kept, the name as ``_wire`` writes it); thinking, redacted thinking and signatures
    dropped (OpenAI has no place for signed thinking). User: the tool results first, each reduced
    to its text (parts joined by a newline; ``is_error`` and cache markers dropped), then the
    images that were inside results, then the turn's own text and images; when all of those are
    text they arrive as one block joined by a blank line.
    """
    if message.role == "assistant":
        texts = [b.text for b in message.content if isinstance(b, Text)]
        calls = [ToolUse(b.id, _wire(b.name), b.input) for b in message.content if isinstance(b, ToolUse)]
        return Message("assistant", (*([Text("\n\n".join(texts))] if texts else []), *calls))
    results: list[Block] = []
    rest: list[Block] = []
    for block in message.content:
        if isinstance(block, ToolResult):
            joined = "\n".join(p.text for p in block.content if isinstance(p, Text))
            results.append(ToolResult(block.tool_use_id, (Text(joined),) if joined else ()))
            rest += [_bare(p) for p in block.content if isinstance(p, Image)]
    rest += [_bare(b) for b in message.content if not isinstance(b, ToolResult)]
    if rest and all(isinstance(b, Text) for b in rest):
        rest = [Text("\n\n".join(b.text for b in rest if isinstance(b, Text)))]
    return Message("user", (*results, *rest))


def _bare(block: Block) -> Block:
    """A text or image without its cache marker (OpenAI has none)."""
    if isinstance(block, Text | Image):
        return dataclasses.replace(block, cache=None)
    return block


def openai_view(request: Request) -> dict[str, Any]:
    """What an Anthropic request keeps through the OpenAI chat format.

    Kept: the turns (``_openai_turn``), the system text (blocks joined by a blank line), tool
    definitions (description, schema; names as ``_wire`` writes them, consistently with the calls
    and the tool choice), tool choice (kind, name, parallel calls), the first four stop sequences
    (OpenAI's limit), ``max_tokens``, temperature, ``top_p``, the stream flag, the user id, whether
    thinking is on, the response format (kind and schema; OpenAI adds a name). Dropped: ``top_k``,
    cache markers, the thinking budget (OpenAI takes an effort), thinking blocks.
    """
    system = "\n\n".join(t.text for t in request.system)
    choice = request.tool_choice
    if choice is not None and choice.name:
        choice = dataclasses.replace(choice, name=_wire(choice.name))
    return {
        "messages": tuple(_openai_turn(m) for m in request.messages),
        "system": (Text(system),) if system else (),
        "tools": tuple(Tool(_wire(t.name), t.description, t.input_schema) for t in request.tools),
        "tool_choice": choice if request.tools else None,
        "stop_sequences": request.stop_sequences[: OPENAI.max_stop],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stream": request.stream,
        "user": request.user,
        "thinking": request.thinking.enabled,
        "response_format": _format_view(request.response_format),
    }


def _format_view(response_format: ResponseFormat | None) -> tuple[str, dict[str, Any] | None] | None:
    """A response format without what only OpenAI has a field for (name, strictness, description)."""
    return None if response_format is None else (response_format.kind, response_format.schema)


def _conversation_view(request: Request) -> dict[str, Any]:
    """The part of ``openai_view`` an Anthropic upstream is sent unchanged (``fit_request`` may drop
    sampling settings and thinking, which the Anthropic provider's own tests cover)."""
    view = openai_view(request)
    keys = ("messages", "system", "tools", "tool_choice", "stop_sequences", "max_tokens", "response_format")
    return {k: view[k] for k in keys}


@PROPERTY
@given(conversations())
def test_an_anthropic_conversation_survives_openai_and_back(request: Request) -> None:
    """Anthropic JSON → canonical → OpenAI body → (as an OpenAI client's body) → canonical → Anthropic.

    Compared (``openai_view``): text, base64 and URL images, tool calls with their ids, names (long
    ones shortened the same way everywhere) and inputs, tool results as text, roles and turn
    structure, system text, tool definitions, tool choice, stop sequences, ``max_tokens``, sampling,
    the stream flag, the user id, the response format (kind and schema). Knowingly dropped:
    thinking blocks and their signatures, ``is_error`` on results, cache markers, ``top_k``, the
    thinking budget, stop sequences beyond four; merged: several text blocks of one turn.
    """
    body = orjson.dumps(anthropic_json.request_json(request))
    parsed = anthropic_json.parse_request(body)
    assert parsed == request, "Anthropic JSON itself is lossless"

    encoded = OpenAICodec().encode(parsed, OPENAI_MODEL)
    via_openai = openai_dialect.parse_request(encoded.body)
    assert openai_view(via_openai) == openai_view(request)
    assert via_openai.include_usage

    back = anthropic_json.parse_request(AnthropicCodec().encode(via_openai, "claude-x").body)
    assert _conversation_view(back) == _conversation_view(request)


# -- requests: Anthropic → Gemini → Anthropic -----------------------------------------------------

GEMINI_MODEL = "gemini-x"
BILLING = Text("x-anthropic-billing-header: cc_version=2.1.3.abc; cc_entrypoint=cli; cch=00000;")


def _gemini_media(block: Image | Document) -> Block:
    """An image or document as Gemini gets it and the reader gives it back: a ``text/plain``
    document with data becomes its text (title first); anything else keeps its data or URL under its
    type (given, else guessed from the URL, else ``image/jpeg`` or ``application/pdf``) and comes
    back as an ``Image`` when that type is ``image/*``, else as a ``Document``. Dropped: cache
    markers, a PDF's title and context."""
    if isinstance(block, Document) and block.data and (block.media_type or "text/plain") == "text/plain":
        return Text(f"{block.title}\n\n{block.data}" if block.title else block.data)
    fallback = "image/jpeg" if isinstance(block, Image) else "application/pdf"
    if block.data:
        mime, data, url = block.media_type or fallback, block.data, ""
    else:
        mime, data, url = block.media_type or mimetypes.guess_type(block.url)[0] or fallback, "", block.url
    return Image(mime, data, url) if mime.startswith("image/") else Document(mime, data, url)


def _gemini_model_turn(blocks: tuple[Block, ...], calls: set[str]) -> list[Block]:
    """An assistant turn as a Gemini ``model`` content carries it, read back.

    Kept in order: text, images and documents (``_gemini_media``), tool calls (id, input, the name
    as ``upstream_name`` writes it). Dropped: thinking text, redacted thinking, empty text, and
    every signature not tagged ``gemini:`` (another provider's is a 400 at Gemini). Placement of the
    ``gemini:`` signatures: a call's own goes on its part; a thinking block's goes on the next part
    (text, media or call), unless that call has its own (the same token); one followed by another
    signed thinking block, or by nothing, goes on an empty text part of its own. The first call of
    the turn that still has none gets ``DUMMY_SIGNATURE``. Read back, each signed part is a
    ``Thinking("", "gemini:…")`` block right before the part's block (alone for an empty text
    part), and a call's signature is also its ``ToolUse.signature``, untagged, as the Gemini
    decoder gives it.
    """
    parts: list[tuple[Block | None, str]] = []
    pending = ""
    first_call = True
    for block in blocks:
        if isinstance(block, Thinking):
            if block.signature.startswith(SIGNATURE_TAG):
                if pending:
                    parts.append((None, pending))
                pending = block.signature.removeprefix(SIGNATURE_TAG)
            continue
        if isinstance(block, ToolUse):
            calls.add(block.id)
            signature = block.signature.removeprefix(SIGNATURE_TAG) or pending
            signature = signature or (DUMMY_SIGNATURE if first_call else "")
            first_call = False
            parts.append((ToolUse(block.id, upstream_name(block.name), block.input, signature), signature))
        elif isinstance(block, Text) and (block.text or pending):
            parts.append((Text(block.text) if block.text else None, pending))
        elif isinstance(block, Image | Document):
            parts.append((_gemini_media(block), pending))
        else:
            continue
        pending = ""
    if pending:
        parts.append((None, pending))
    out: list[Block] = []
    for part, signature in parts:
        out += [Thinking("", SIGNATURE_TAG + signature)] if signature else []
        out += [part] if part is not None else []
    return out


def _gemini_user_turn(blocks: tuple[Block, ...], calls: set[str]) -> tuple[list[Block], list[Block]]:
    """A user turn as Gemini ``functionResponse`` and other parts carry it: (results, the rest).

    A tool result whose call an earlier turn made is reduced to its text (parts joined by a newline;
    ``is_error`` kept, as ``error`` instead of ``result``; the cache marker dropped) and the images
    in it follow among the rest, as their own blocks. A result whose call is not in the history is
    a text ``[result of tool call ID]\n…`` (``error of`` for an error). Text (empty dropped),
    images and documents keep their order; thinking and tool calls cannot come from a user: dropped.
    """
    results: list[Block] = []
    rest: list[Block] = []
    for block in blocks:
        if isinstance(block, ToolResult):
            text = "\n".join(p.text for p in block.content if isinstance(p, Text))
            if block.tool_use_id in calls:
                results.append(ToolResult(block.tool_use_id, (Text(text),) if text else (), block.is_error))
            else:
                label = "error of" if block.is_error else "result of"
                rest.append(Text(f"[{label} tool call {block.tool_use_id}]\n{text}"))
            rest += [_gemini_media(p) for p in block.content if isinstance(p, Image | Document)]
        elif isinstance(block, Text) and block.text:
            rest.append(Text(block.text))
        elif isinstance(block, Image | Document):
            rest.append(_gemini_media(block))
    return results, rest


def _gemini_turns(messages: tuple[Message, ...]) -> tuple[Message, ...]:
    """The conversation as Gemini ``contents``, read back one message per content.

    Assistant turns are ``model`` contents (``_gemini_model_turn``); user turns
    (``_gemini_user_turn``) and system messages are ``user`` contents, a system message as one text
    ``<system>\n…\n</system>`` per text block (other blocks dropped). A turn with nothing to send
    vanishes; consecutive turns of one role merge into one message, and inside a user message the
    tool results come first.
    """
    turns: list[tuple[str, list[Block], list[Block]]] = []
    calls: set[str] = set()
    for message in messages:
        results: list[Block] = []
        if message.role == "assistant":
            role, rest = "assistant", _gemini_model_turn(message.content, calls)
        elif message.role == "system":
            role = "user"
            rest = [Text(f"<system>\n{b.text}\n</system>") for b in message.content if isinstance(b, Text)]
        else:
            role = "user"
            results, rest = _gemini_user_turn(message.content, calls)
        if not results and not rest:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(results)
            turns[-1][2].extend(rest)
        else:
            turns.append((role, results, rest))
    return tuple(Message(role, (*results, *rest)) for role, results, rest in turns)


def gemini_view(request: Request) -> dict[str, Any]:
    """What an Anthropic request keeps through a Gemini ``GenerateContentRequest`` (the rules in the
    docstring of ``providers/gemini.py``), in the form ``testing/gemini_request.py`` reads it back.

    Kept: the turns (``_gemini_turns``); the system text (blocks joined by a blank line, blank ones
    and Claude Code's ``x-anthropic-billing-header:`` block dropped); tool definitions (the name as
    ``upstream_name`` writes it, consistently with the calls and the tool choice; the description;
    the schema as ``gemini_schema.function_parameters`` sanitizes it, None for a tool declared
    without parameters); the tool choice when there are tools (kind and name; a forced tool without
    a name is ``any``); the first five stop sequences; ``max_tokens``, temperature, ``top_p``,
    ``top_k``; the stream flag (it travels in the URL); thinking on or off, with its budget capped at
    24576 and an adaptive one (0) sent as dynamic (-1), which reads back as adaptive; the response
    format (``_gemini_format``). Dropped: cache markers, ``disable_parallel``, the user id,
    ``include_usage``, ``extra``, the thinking effort.
    """
    system = "\n\n".join(
        t.text for t in request.system if t.text.strip() and not t.text.lstrip().startswith(BILLING_PREFIX)
    )
    choice = request.tool_choice
    if choice is not None:
        kind = ToolChoiceKind.ANY if choice.kind is ToolChoiceKind.TOOL and not choice.name else choice.kind
        choice = ToolChoice(kind, upstream_name(choice.name) if kind is ToolChoiceKind.TOOL else "")
    budget = request.thinking.budget_tokens
    return {
        "messages": _gemini_turns(request.messages),
        "system": (Text(system),) if system else (),
        "tools": tuple(
            (upstream_name(t.name), t.description, function_parameters(t.input_schema)) for t in request.tools
        ),
        "tool_choice": choice if request.tools else None,
        "stop_sequences": request.stop_sequences[:MAX_STOP_SEQUENCES],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "stream": request.stream,
        "thinking": (
            ThinkingConfig(True, min(budget, MAX_THINKING_BUDGET) if budget > 0 else 0)
            if request.thinking.enabled
            else ThinkingConfig()
        ),
        "response_format": _gemini_format(request),
    }


def _gemini_format(request: Request) -> ResponseFormat | None:
    """The response format as Gemini carries it: none while a declared tool may be called; else a
    ``json_schema`` with the schema sanitized as tool parameters are, or ``json_object`` (JSON mode
    alone) when nothing of it survives as an object with properties."""
    choice = request.tool_choice
    if request.response_format is None or (
        request.tools and (choice is None or choice.kind is not ToolChoiceKind.NONE)
    ):
        return None
    schema = (
        function_parameters(request.response_format.schema) if request.response_format.kind == "json_schema" else None
    )
    return ResponseFormat("json_schema", schema) if schema is not None else ResponseFormat("json_object")


def _unsigned(blocks: tuple[Block, ...]) -> tuple[Block, ...]:
    """``blocks`` without thinking and without call signatures."""
    return tuple(
        dataclasses.replace(b, signature="") if isinstance(b, ToolUse) else b
        for b in blocks
        if not isinstance(b, Thinking | RedactedThinking)
    )


def _gemini_conversation_view(request: Request) -> dict[str, Any]:
    """The part of ``gemini_view`` an Anthropic upstream is sent unchanged: the conversation without
    thinking and signatures (``fit_request`` drops ``gemini:`` thinking, which Anthropic would
    refuse, and ``tool_use`` has no signature field, so the ``DUMMY_SIGNATURE`` placeholders go
    too), the system text, tools, tool choice, stop sequences and ``max_tokens`` (``fit_request``
    may drop sampling settings and thinking, which the Anthropic provider's own tests cover)."""
    messages = tuple(Message(m.role, _unsigned(m.content)) for m in request.messages)
    view = gemini_view(dataclasses.replace(request, messages=messages))
    return {
        "messages": tuple(Message(m.role, _unsigned(m.content)) for m in view["messages"]),
        **{k: view[k] for k in ("system", "tools", "tool_choice", "stop_sequences", "max_tokens")},
    }


@st.composite
def _claude_code_conversations(draw: st.DrawFn) -> Request:
    """``conversations()`` plus two things only the Gemini leg reshapes: sometimes Claude Code's
    billing block first in the system prompt, and sometimes system messages between the turns."""
    request = draw(conversations())
    messages = list(request.messages)
    for _ in range(draw(st.integers(0, 2))):
        messages.insert(draw(st.integers(0, len(messages))), Message("system", (Text(draw(prose())),)))
    system = ((BILLING,) if draw(st.booleans()) else ()) + request.system
    return dataclasses.replace(request, messages=tuple(messages), system=system)


def _responses_name_their_calls(body: bytes) -> None:
    """Every ``functionResponse`` names the function of the call with its id (``gemini_view`` cannot
    see it: a canonical tool result has no name)."""
    names: dict[str, str] = {}
    for content in orjson.loads(body)["contents"]:
        for part in content["parts"]:
            if "functionCall" in part:
                names[part["functionCall"].get("id", "")] = part["functionCall"]["name"]
            if "functionResponse" in part:
                response = part["functionResponse"]
                assert response["name"] == names[response["id"]]


@PROPERTY
@given(_claude_code_conversations())
def test_an_anthropic_conversation_survives_gemini_and_back(request: Request) -> None:
    """Anthropic JSON → canonical → Gemini body → (``testing/gemini_request.py``) → canonical → Anthropic.

    Compared (``gemini_view``): text, base64 and URL images, tool calls with their ids, names
    (shortened the same way everywhere, and restored when read with the tool list) and inputs, tool
    results as text with ``is_error``, roles and turn structure (same-role turns merged, results
    first), system text (billing block dropped), system messages as ``<system>`` user text, Gemini's
    own thought signatures where the encoder puts them (plus the placeholder on unsigned first
    calls), tool definitions with sanitized schemas, tool choice, stop sequences up to five,
    ``max_tokens``, sampling including ``top_k``, the stream flag, the thinking budget, the response
    format (sanitized as tool schemas are; none while a tool may be called). Knowingly dropped:
    thinking text, redacted thinking, other providers' signatures, cache markers,
    ``disable_parallel``, the user id. Reading the body back and encoding it again gives the same
    bytes. The Anthropic leg keeps ``_gemini_conversation_view``.
    """
    body = orjson.dumps(anthropic_json.request_json(request))
    parsed = anthropic_json.parse_request(body)
    assert parsed == request, "Anthropic JSON itself is lossless"

    encoded = GeminiCodec().encode(parsed, GEMINI_MODEL)
    _responses_name_their_calls(encoded.body)
    stream = encoded.path.endswith(":streamGenerateContent?alt=sse")
    names = [t.name for t in parsed.tools]
    via_gemini = gemini_request.parse_request(encoded.body, model=GEMINI_MODEL, stream=stream, names=names)
    assert gemini_view(via_gemini) == gemini_view(request)
    assert [t.name for t in via_gemini.tools] == names, "shortened names are restored"
    assert GeminiCodec().encode(via_gemini, GEMINI_MODEL) == encoded, "what was read encodes to the same body"

    back = anthropic_json.parse_request(AnthropicCodec().encode(via_gemini, "claude-x").body)
    assert _gemini_conversation_view(back) == _gemini_conversation_view(request)


# -- answers: shared contract -------------------------------------------------------------------


def _stop_expressible(stop: StopReason, called: bool) -> StopReason:
    """Neither OpenAI nor Gemini can say ``stop_sequence`` (without the string), ``pause_turn`` or a
    full context window: those come back as a normal end (``tool_use`` when a tool was called) or as
    ``max_tokens``. ``tool_use`` follows the calls actually made."""
    if stop in (StopReason.MAX_TOKENS, StopReason.CONTEXT_WINDOW):
        return StopReason.MAX_TOKENS
    if stop is StopReason.REFUSAL:
        return StopReason.REFUSAL
    return StopReason.TOOL_USE if called else StopReason.END_TURN


def _usage_expressible(usage: Usage) -> Usage:
    """OpenAI and Gemini count the whole prompt and the cache-read part: cache writes become plain
    input (they are billed as input there), everything else stays."""
    return Usage(
        usage.input_tokens + usage.cache_creation_input_tokens,
        usage.output_tokens,
        usage.cache_read_input_tokens,
        0,
        usage.reasoning_tokens,
    )


def _merge(blocks: list[Block], block: Block) -> None:
    """Append ``block``, joining it to the previous one when a stream could not tell them apart:
    text after text, or thinking after thinking that no signature closed."""
    last = blocks[-1] if blocks else None
    if isinstance(block, Text) and isinstance(last, Text):
        blocks[-1] = Text(last.text + block.text)
    elif isinstance(block, Thinking) and isinstance(last, Thinking) and not last.signature:
        blocks[-1] = Thinking(last.thinking + block.thinking, block.signature)
    else:
        blocks.append(block)


def anthropic_client_expressible(response: Response) -> Response:
    """What the Anthropic Messages format can say about a decoded answer: all of it, except the
    ``signature`` of a ``tool_use`` block (the thinking block before a signed call carries the same
    signature, which is what an Anthropic client sends back) and ``reasoning_tokens`` (Anthropic
    counts reasoning inside ``output_tokens`` and reports no split)."""
    content = tuple(dataclasses.replace(b, signature="") if isinstance(b, ToolUse) else b for b in response.content)
    usage = dataclasses.replace(response.usage, reasoning_tokens=0)
    return dataclasses.replace(response, content=content, usage=usage)


def _anthropic_client_sees(events: list[Event]) -> Response:
    """Render ``events`` for an Anthropic streaming client, validate strictly, and read them back."""
    renderer = AnthropicStreamRenderer(new_id=lambda prefix: prefix + "generated")
    raw = renderer.render_all(events) + renderer.finish()
    validate_anthropic_sse(raw)
    decoder = AnthropicCodec().stream_decoder(UPSTREAM_REQUEST)
    return assemble(decoder.feed(raw) + decoder.finish())


# -- answers: OpenAI upstream ---------------------------------------------------------------------


def _with_wire_names(response: Response) -> Response:
    """``response`` as an OpenAI service says it: calling tools by the (maybe shortened) names it was sent."""
    content = tuple(
        dataclasses.replace(b, name=_wire(b.name)) if isinstance(b, ToolUse) else b for b in response.content
    )
    return dataclasses.replace(response, content=content)


def openai_body_expressible(response: Response) -> Response:
    """What a ``chat.completion`` body can say about ``response`` (PROTOCOLS C3).

    One thinking block (all reasoning joined, unsigned), one text block (all text joined), then the
    tool calls (id, name, input). Dropped: signatures, redacted thinking, the stop sequence, empty
    blocks. The id gains the ``chatcmpl-`` prefix; the model is what the body names.
    """
    thinking = "".join(b.thinking for b in response.content if isinstance(b, Thinking))
    text = "".join(b.text for b in response.content if isinstance(b, Text))
    calls = [ToolUse(b.id, b.name, b.input) for b in response.content if isinstance(b, ToolUse)]
    content = (*([Thinking(thinking)] if thinking else []), *([Text(text)] if text else []), *calls)
    return Response(
        openai_dialect.chat_id(response.id),
        OPENAI_MODEL,
        content,
        _stop_expressible(response.stop_reason, bool(calls)),
        None,
        _usage_expressible(response.usage),
    )


def openai_stream_expressible(response: Response) -> Response:
    """What ``chat.completion.chunk``s can say about ``response`` (PROTOCOLS C4).

    Blocks keep their order, but adjacent text (or adjacent thinking) arrives as one block, since
    deltas carry no block boundary; thinking is unsigned; empty blocks and redacted thinking are
    not sent. Stop reason, usage and ids as in ``openai_body_expressible``.
    """
    blocks: list[Block] = []
    for block in response.content:
        match block:
            case Text() if block.text:
                _merge(blocks, Text(block.text))
            case Thinking() if block.thinking:
                _merge(blocks, Thinking(block.thinking))
            case ToolUse():
                blocks.append(ToolUse(block.id, block.name, block.input))
    called = any(isinstance(b, ToolUse) for b in blocks)
    return dataclasses.replace(
        openai_body_expressible(response),
        content=tuple(blocks),
        stop_reason=_stop_expressible(response.stop_reason, called),
    )


@PROPERTY
@given(upstream_responses(NAMES))
def test_an_openai_answer_survives_decoding_and_reaches_an_anthropic_client(response: Response) -> None:
    """Canonical → ``chat.completion`` body (OpenAI dialect renderer) → ``OpenAICodec`` → canonical →
    Anthropic message body → canonical.

    Compared: everything in ``openai_body_expressible`` (thinking text, text, tool calls, stop
    reason, usage, id); the Anthropic leg drops only what ``anthropic_client_expressible`` says.
    """
    body = openai_dialect.render_response(_with_wire_names(response), OPENAI_MODEL, created=0)
    decoded = OpenAICodec().decode_response(body, UPSTREAM_REQUEST)
    assert decoded == openai_body_expressible(response)
    assert anthropic_json.parse_response(render_response(decoded)) == anthropic_client_expressible(decoded)


@PROPERTY
@given(upstream_responses(NAMES), st.integers(0, 6))
def test_an_openai_stream_survives_decoding_and_reaches_an_anthropic_client(response: Response, fragment: int) -> None:
    """Canonical → OpenAI chunks (``OpenAIStreamRenderer`` over ``events_of``, deltas of
    ``fragment`` characters) → ``OpenAICodec`` stream decoder → canonical → Anthropic SSE
    (validated strictly) → canonical.

    Compared: everything in ``openai_stream_expressible``; the Anthropic leg drops only what
    ``anthropic_client_expressible`` says.
    """
    renderer = openai_dialect.OpenAIStreamRenderer(OPENAI_MODEL, True, id=response.id, created=0)
    wire = renderer.render_all(events_of(_with_wire_names(response), fragment=fragment))
    decoder = OpenAICodec().stream_decoder(UPSTREAM_REQUEST)
    events = decoder.feed(wire) + decoder.finish()
    expected = openai_stream_expressible(response)
    assert assemble(events) == expected
    assert _anthropic_client_sees(events) == anthropic_client_expressible(expected)


# -- answers: Gemini upstream ---------------------------------------------------------------------


def _tag(signature: str) -> str:
    return signature if not signature or signature.startswith(SIGNATURE_TAG) else SIGNATURE_TAG + signature


def gemini_expressible(response: Response) -> Response:
    """What Gemini can say about ``response`` (PROTOCOLS E3, ``testing/gemini_wire.py``), in canonical form.

    Kept: text, thinking text, tool calls (id, name, args), thought signatures, stop reason as in
    ``_stop_expressible``, usage as in ``_usage_expressible``, id and model. Reshaped the way the
    decoder reads Gemini: signatures are tagged ``gemini:``; a call carrying a signature is preceded
    by a thinking block holding it (an empty one when there was no thinking, as Gemini signs a call
    without showing thoughts; the previous signed thinking's own signature when there was one);
    adjacent text, or thinking after unsigned thinking, becomes one block. Dropped: redacted
    thinking, empty text, the stop sequence.
    """
    blocks: list[Block] = []
    for block in response.content:
        match block:
            case Text() if block.text:
                _merge(blocks, Text(block.text))
            case Thinking() if block.thinking or block.signature:
                _merge(blocks, Thinking(block.thinking, _tag(block.signature)))
            case ToolUse():
                signature = block.signature.removeprefix(SIGNATURE_TAG)
                if signature:
                    last = blocks[-1] if blocks else None
                    if isinstance(last, Thinking) and last.signature:
                        signature = last.signature.removeprefix(SIGNATURE_TAG)
                    else:
                        _merge(blocks, Thinking("", _tag(signature)))
                blocks.append(ToolUse(block.id, block.name, block.input, signature))
            case Text() | Thinking() | RedactedThinking():
                pass
    called = any(isinstance(b, ToolUse) for b in blocks)
    return Response(
        response.id,
        response.model,
        tuple(blocks),
        _stop_expressible(response.stop_reason, called),
        None,
        _usage_expressible(response.usage),
    )


@PROPERTY
@given(upstream_responses(NAMES).map(gemini_expressible))
def test_a_gemini_answer_survives_decoding_and_reaches_an_anthropic_client(response: Response) -> None:
    """Canonical (Gemini-expressible) → ``generateContent`` body → ``GeminiCodec`` → canonical →
    Anthropic message body → canonical.

    Compared: the whole answer, which ``gemini_expressible`` already cut to what Gemini can say;
    the Anthropic leg drops only what ``anthropic_client_expressible`` says (call signatures, the
    reasoning-token split).
    """
    decoded = GeminiCodec().decode_response(gemini_wire.generate_content(response), UPSTREAM_REQUEST)
    assert decoded == response
    assert anthropic_json.parse_response(render_response(decoded)) == anthropic_client_expressible(response)


@PROPERTY
@given(upstream_responses(NAMES).map(gemini_expressible), st.integers(0, 6), st.sampled_from([b"\r\n\r\n", b"\n\n"]))
def test_a_gemini_stream_survives_decoding_and_reaches_an_anthropic_client(
    response: Response, fragment: int, sep: bytes
) -> None:
    """Canonical (Gemini-expressible) → ``streamGenerateContent?alt=sse`` (one part per chunk, text cut
    into ``fragment``-character pieces, usage early and final) → ``GeminiCodec`` stream decoder →
    canonical → Anthropic SSE (validated strictly) → canonical.

    Compared: the whole answer; the Anthropic leg drops only what ``anthropic_client_expressible`` says.
    """
    decoder = GeminiCodec().stream_decoder(UPSTREAM_REQUEST)
    events = decoder.feed(gemini_wire.stream_sse(response, fragment=fragment, sep=sep)) + decoder.finish()
    assert assemble(events) == response
    assert _anthropic_client_sees(events) == anthropic_client_expressible(response)


def test_gemini_expressible_spells_out_the_signature_rules() -> None:
    """The contract above on one answer: a signed text answer, a signed call after unsigned thinking,
    a bare signed call; and the parts Gemini sends for it."""
    response = Response(
        "msg_r",
        "gemini-x",
        (
            Thinking("", "S0"),
            Text("hi"),
            Thinking("plan", ""),
            ToolUse("a", "Read", {}, "S1"),
            Text("é"),
            RedactedThinking("gone"),
            Text("🦅"),
            ToolUse("b", "Bash", {"c": 1}, "S2"),
        ),
        StopReason.STOP_SEQUENCE,
        "END",
        Usage(3, 4, 5, 6, 1),
    )
    assert gemini_expressible(response) == Response(
        "msg_r",
        "gemini-x",
        (
            Thinking("", "gemini:S0"),
            Text("hi"),
            Thinking("plan", "gemini:S1"),
            ToolUse("a", "Read", {}, "S1"),
            Text("é🦅"),
            Thinking("", "gemini:S2"),
            ToolUse("b", "Bash", {"c": 1}, "S2"),
        ),
        StopReason.TOOL_USE,
        None,
        Usage(9, 4, 5, 0, 1),
    )
    expressible = gemini_expressible(response)
    assert gemini_wire.parts_of(expressible) == [
        {"text": "hi", "thoughtSignature": "S0"},
        {"text": "plan", "thought": True},
        {"functionCall": {"id": "a", "name": "Read", "args": {}}, "thoughtSignature": "S1"},
        {"text": "é🦅"},
        {"functionCall": {"id": "b", "name": "Bash", "args": {"c": 1}}, "thoughtSignature": "S2"},
    ]
    decoded = GeminiCodec().decode_response(gemini_wire.generate_content(expressible), UPSTREAM_REQUEST)
    assert decoded == expressible


# -- answers: an OpenAI client over Anthropic or Gemini ----------------------------------------------


def openai_client_expected(response: Response, include_usage: bool) -> dict[str, Any]:
    """What an OpenAI client accumulates from a stream of ``response`` (PROTOCOLS B3): all text joined,
    all reasoning joined (signatures and redacted thinking have no place), the calls (id, name,
    input), the finish reason C1 maps the stop reason to, and the usage chunk when asked for."""
    calls = [(b.id, b.name, b.input) for b in response.content if isinstance(b, ToolUse)]
    return {
        "content": "".join(b.text for b in response.content if isinstance(b, Text)),
        "reasoning": "".join(b.thinking for b in response.content if isinstance(b, Thinking)),
        "tool_calls": calls,
        "finish_reason": openai_dialect.finish_reason(response.stop_reason, tool_called=bool(calls)),
        "usage": openai_dialect.render_usage(response.usage) if include_usage else None,
    }


def _openai_client_sees(events: list[Event], include_usage: bool) -> dict[str, Any]:
    """Render ``events`` for an OpenAI streaming client, validate strictly, accumulate like the SDK."""
    renderer = openai_dialect.OpenAIStreamRenderer(OPENAI_MODEL, include_usage, created=0)
    collected = collect(validate_openai_sse(renderer.render_all(events), include_usage))
    return {
        "content": collected.content,
        "reasoning": collected.reasoning,
        "tool_calls": [(c["id"], c["name"], orjson.loads(c["arguments"] or "{}")) for c in collected.tool_calls],
        "finish_reason": collected.finish_reason,
        "usage": collected.usage,
    }


@PROPERTY
@given(upstream_responses(NAMES), st.integers(0, 6), st.booleans())
def test_an_anthropic_stream_reaches_an_openai_client(response: Response, fragment: int, include_usage: bool) -> None:
    """Canonical → Anthropic SSE (as Anthropic streams it) → ``AnthropicCodec`` stream decoder → OpenAI
    chunks (validated strictly) → what the client accumulates.

    Compared: ``openai_client_expected`` of what the Anthropic wire carries
    (``anthropic_client_expressible``). Dropped: block boundaries, signatures, redacted thinking,
    the stop sequence, the cache-write split of the prompt (``prompt_tokens`` includes it).
    """
    upstream = AnthropicStreamRenderer()
    wire = upstream.render_all(events_of(response, fragment=fragment)) + upstream.finish()
    decoder = AnthropicCodec().stream_decoder(UPSTREAM_REQUEST)
    seen = _openai_client_sees(decoder.feed(wire) + decoder.finish(), include_usage)
    assert seen == openai_client_expected(anthropic_client_expressible(response), include_usage)


@PROPERTY
@given(upstream_responses(NAMES).map(gemini_expressible), st.integers(0, 6), st.booleans())
def test_a_gemini_stream_reaches_an_openai_client(response: Response, fragment: int, include_usage: bool) -> None:
    """Canonical (Gemini-expressible) → Gemini SSE → ``GeminiCodec`` stream decoder → OpenAI chunks
    (validated strictly) → what the client accumulates. Compared: ``openai_client_expected``."""
    decoder = GeminiCodec().stream_decoder(UPSTREAM_REQUEST)
    events = decoder.feed(gemini_wire.stream_sse(response, fragment=fragment)) + decoder.finish()
    assert _openai_client_sees(events, include_usage) == openai_client_expected(response, include_usage)


def test_tool_choice_survives_openai_in_every_kind() -> None:
    """A spot check of what the property draws rarely: each tool choice, forced or not, with and
    without parallel calls."""
    tools = (Tool("Read", "reads", {"type": "object", "properties": {"p": {"type": "string"}}}),)
    for kind in ToolChoiceKind:
        for parallel in (False, True):
            choice = ToolChoice(kind, "Read" if kind is ToolChoiceKind.TOOL else "", parallel)
            request = Request("claude-x", (Message("user", (Text("hi"),)),), tools=tools, tool_choice=choice)
            via_openai = openai_dialect.parse_request(OpenAICodec().encode(request, OPENAI_MODEL).body)
            assert via_openai.tool_choice == choice
