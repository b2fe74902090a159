"""A test-only reader of Gemini requests: a ``GenerateContentRequest`` body back into a canonical ``Request``.

The edge never receives Gemini requests (no client speaks Gemini to it), so production code has no
such parser; ``providers/gemini.py`` only writes them. The round-trip property needs the way back to
show that a conversation survives Anthropic → Gemini → Anthropic: encode it with ``GeminiCodec``,
read the body here, compare. ``kestrel.sim`` has its own Gemini parser, but into the simulator's
model, with Google's validation; this one is lenient and reads into the canonical model, mirroring
the encoder's rules (the docstring of ``providers/gemini.py``):

* ``systemInstruction`` parts → one system ``Text`` each (empty ones skipped).
* ``contents``: role ``model`` → an ``assistant`` message, anything else → ``user``; one message per
  content (the encoder already merged same-role turns, so nothing is split back).
* Parts: ``text`` → ``Text`` (``thought: true`` → ``Thinking``; empty text → nothing);
  ``inlineData`` / ``fileData`` → ``Image`` for an ``image/*`` type, else ``Document`` (base64 data or
  the file URI); ``functionCall{id, name, args}`` → ``ToolUse``; ``functionResponse{id, name,
  response}`` → ``ToolResult`` with the text of ``response.result`` (or ``response.error``, then
  ``is_error``), any other response as its JSON text.
* **Thought signatures** on a model part are read the way ``gemini_stream`` reads them in answers,
  so the blocks look like what the gateway itself hands a client: a ``Thinking("", "gemini:…")``
  block holding the signature goes right before the part's own block (an empty text part that
  only carries a signature gives just that block), and a ``functionCall``'s signature is also
  copied, raw, onto its ``ToolUse.signature``. Re-encoding these blocks puts every signature back
  on the part it came from.
* **Tool names**: ``names`` are the client's original tool names; a wire name that is the
  ``upstream_name`` of one of them (in declarations, calls and the tool choice) is read back as the
  original. Unknown names stay as they are on the wire.
* ``tools[].functionDeclarations`` → ``Tool`` (description; ``parameters`` as the schema, or
  ``{"type": "object"}`` when the declaration has none); ``toolConfig.functionCallingConfig`` →
  ``ToolChoice``: ``AUTO``, ``NONE``, ``ANY`` (``TOOL`` when ``allowedFunctionNames`` names one).
* ``generationConfig``: ``maxOutputTokens``, ``temperature``, ``topP``, ``topK``,
  ``stopSequences``; ``thinkingConfig`` turns thinking on unless its ``thinkingBudget`` is 0 (how
  Gemini 2.5 switches it off), a budget of ``-1`` (dynamic) or none reading as adaptive (0);
  ``responseMimeType: "application/json"`` → a ``json_schema`` response format with
  ``responseSchema`` as its schema, or ``json_object`` without one.

``model`` and ``stream`` are not in the body (Gemini puts them in the URL), so the caller gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from kestrel.edge.canonical import (
    Block,
    Document,
    Image,
    Message,
    Request,
    ResponseFormat,
    Text,
    Thinking,
    ThinkingConfig,
    Tool,
    ToolChoice,
    ToolChoiceKind,
    ToolResult,
    ToolUse,
)
from kestrel.edge.providers.gemini import upstream_name
from kestrel.edge.providers.gemini_stream import SIGNATURE_TAG

__all__ = ["parse_request"]

_Restore = Callable[[str], str]
"""A wire tool name → the client's original."""
_MODES = {"AUTO": ToolChoiceKind.AUTO, "ANY": ToolChoiceKind.ANY, "NONE": ToolChoiceKind.NONE}


def parse_request(body: bytes, *, model: str, stream: bool, names: Iterable[str] = ()) -> Request:
    """The canonical ``Request`` a ``GenerateContentRequest`` body (as ``GeminiCodec.encode`` writes it) says.

    ``names``: the original tool names, to restore the ones ``upstream_name`` shortened.
    """
    data = _object(orjson.loads(body))
    originals = {upstream_name(name): name for name in names}

    def restore(wire: str) -> str:
        return originals.get(wire, wire)

    system = tuple(Text(text) for text in _texts(_object(data.get("systemInstruction")).get("parts")) if text)
    messages = tuple(_message(_object(content), restore) for content in _list(data.get("contents")))
    tools = tuple(
        _tool(_object(declaration), restore)
        for tool in _list(data.get("tools"))
        for declaration in _list(_object(tool).get("functionDeclarations"))
    )
    generation = _object(data.get("generationConfig"))
    return Request(
        model=model,
        messages=messages,
        system=system,
        max_tokens=_int(generation.get("maxOutputTokens")),
        stream=stream,
        temperature=_float(generation.get("temperature")),
        top_p=_float(generation.get("topP")),
        top_k=_int(generation.get("topK")),
        stop_sequences=tuple(s for s in _list(generation.get("stopSequences")) if isinstance(s, str)),
        tools=tools,
        tool_choice=_tool_choice(data.get("toolConfig"), restore),
        thinking=_thinking(generation.get("thinkingConfig")),
        response_format=_response_format(generation),
    )


def _message(content: Mapping[str, Any], restore: _Restore) -> Message:
    model = content.get("role") == "model"
    blocks: list[Block] = []
    for raw in _list(content.get("parts")):
        part = _object(raw)
        block = _block(part, restore)
        signature = part.get("thoughtSignature")
        if model and isinstance(signature, str) and signature and not isinstance(block, Thinking):
            blocks.append(Thinking("", SIGNATURE_TAG + signature))
            if isinstance(block, ToolUse):
                block = ToolUse(block.id, block.name, block.input, signature)
        if block is not None:
            blocks.append(block)
    return Message("assistant" if model else "user", tuple(blocks))


def _block(part: Mapping[str, Any], restore: _Restore) -> Block | None:
    """The block one part holds, without its signature; None for an empty text part."""
    if isinstance(part.get("text"), str):
        text: str = part["text"]
        if part.get("thought") is True:
            signature = part.get("thoughtSignature")
            return Thinking(text, SIGNATURE_TAG + signature if isinstance(signature, str) and signature else "")
        return Text(text) if text else None
    if "inlineData" in part:
        blob = _object(part["inlineData"])
        return _media(_str(blob.get("mimeType")), data=_str(blob.get("data")))
    if "fileData" in part:
        file = _object(part["fileData"])
        return _media(_str(file.get("mimeType")), url=_str(file.get("fileUri")))
    if "functionCall" in part:
        call = _object(part["functionCall"])
        return ToolUse(_str(call.get("id")), restore(_str(call.get("name"))), _object(call.get("args")))
    if "functionResponse" in part:
        answer = _object(part["functionResponse"])
        response = _object(answer.get("response"))
        is_error = "error" in response
        value = response.get("error", response.get("result", response or ""))
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        return ToolResult(_str(answer.get("id")), (Text(text),) if text else (), is_error)
    return None  # executableCode and the like: nothing the encoder writes


def _media(mime: str, *, data: str = "", url: str = "") -> Image | Document:
    if mime.startswith("image/"):
        return Image(mime, data, url)
    return Document(mime, data, url)


def _tool(declaration: Mapping[str, Any], restore: _Restore) -> Tool:
    parameters = declaration.get("parameters")
    schema = dict(parameters) if isinstance(parameters, dict) else {"type": "object"}
    return Tool(restore(_str(declaration.get("name"))), _str(declaration.get("description")), schema)


def _tool_choice(raw: Any, restore: _Restore) -> ToolChoice | None:
    config = _object(_object(raw).get("functionCallingConfig"))
    if not config:
        return None
    kind = _MODES.get(_str(config.get("mode")) or "AUTO", ToolChoiceKind.AUTO)
    allowed = [name for name in _list(config.get("allowedFunctionNames")) if isinstance(name, str)]
    if kind is ToolChoiceKind.ANY and len(allowed) == 1:
        return ToolChoice(ToolChoiceKind.TOOL, restore(allowed[0]))
    return ToolChoice(kind)


def _thinking(raw: Any) -> ThinkingConfig:
    if not isinstance(raw, dict):
        return ThinkingConfig()
    budget = _int(raw.get("thinkingBudget"))
    if budget == 0:
        return ThinkingConfig()
    return ThinkingConfig(True, budget if budget is not None and budget > 0 else 0)


def _response_format(generation: Mapping[str, Any]) -> ResponseFormat | None:
    if generation.get("responseMimeType") != "application/json":
        return None
    schema = generation.get("responseSchema")
    return ResponseFormat("json_schema", schema) if isinstance(schema, dict) else ResponseFormat("json_object")


# -- lenient JSON access ------------------------------------------------------------------------


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _texts(parts: Any) -> list[str]:
    return [_str(_object(part).get("text")) for part in _list(parts)]
