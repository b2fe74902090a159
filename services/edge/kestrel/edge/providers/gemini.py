"""Google Gemini (``generateContent`` / ``streamGenerateContent?alt=sse``) behind the ``Codec`` seam.

The pieces: this module writes requests; ``gemini_schema`` turns tool schemas into the OpenAPI
subset Gemini accepts; ``gemini_stream`` reads answers (stream and whole body, one state machine);
``gemini_errors`` reads error envelopes. Rules a reader needs to predict the wire:

* **System prompt** → ``systemInstruction``: the blocks' texts joined by a blank line, minus Claude
  Code's attribution block (``x-anthropic-billing-header: …``), which is metadata, not prompt.
* **System messages mid-conversation** stay where they are, as a user text part wrapped in
  ``<system>…</system>``. Folding them into ``systemInstruction`` would reorder the conversation and
  change the request prefix every time one appears, which defeats Gemini's implicit prefix cache.
* **Roles**: ``assistant`` → ``model``, everything else → ``user``; consecutive contents of one role
  are merged, and inside a user content the ``functionResponse`` parts come first (Gemini wants the
  responses right after the calls).
* **Thought signatures** (the way back of the rule in ``gemini_stream``): a ``ToolUse.signature`` goes
  on its ``functionCall`` part; a ``Thinking`` block's signature goes on the next part of the same
  message, unless that part is a call with its own signature (it is the same token), or on an empty
  text part when nothing (or another signed thinking block) follows. Only signatures tagged
  ``gemini:`` are sent: another provider's signature is a 400. The first call of a model turn that
  still has none gets Google's documented placeholder ``skip_thought_signature_validator`` (history
  from another model, a client that dropped it and the edge kept none: ``edge.signatures``), which
  Gemini 3 accepts where a missing one is a 400.
  Thinking text and redacted thinking are never sent: Gemini keeps its reasoning in the signature.
* **Tool results** → ``functionResponse{name, id, response}``: ``name`` is the call's (found by id in
  earlier turns), ``response`` is ``{"result": text}`` or ``{"error": text}``; images in a result
  follow as their own parts. A result whose call is not in the history becomes a text part, since
  Gemini rejects a response without its call.
* **Tool names** Gemini would reject (over 64 characters, or outside ``[A-Za-z0-9_.-]``) become
  ``prefix_<8 hex of sha256>`` and are restored when decoding.
* **Generation**: ``max_tokens`` → ``maxOutputTokens``; at most 5 ``stopSequences``; thinking →
  ``thinkingConfig{includeThoughts: true, thinkingBudget}`` with ``-1`` (dynamic) for an adaptive
  request. What the model takes comes first (``capabilities``, see ``_generation``): output cap,
  budget range, ``thinkingLevel`` for Gemini 3; a model it knows nothing about gets the budget
  capped at 24576, the largest every 2.5 model accepts.
* **Structured output** (``Request.response_format``): ``responseMimeType: "application/json"``;
  for a ``json_schema`` also ``responseSchema``, the schema sanitized as tool parameters are
  (``gemini_schema.function_parameters``: Gemini's OpenAPI subset, the long-standing field).
  A schema that is no object with properties (a bare ``{"type": "object"}``, an array root) goes
  as JSON mode alone. ``responseJsonSchema`` (full JSON Schema) is not used: its client docs list
  only part of JSON Schema as supported and do not say which models take it. Not sent at all while
  the model may call a declared function (tools, and a tool choice other than ``none``): Gemini 2.5
  answers ``Function calling with a response mime type: 'application/json' is unsupported`` (public
  issue reports; Gemini 3 reportedly allows the pair, unverified), so such a request loses its
  format, as it did before, rather than failing. ``name``, ``strict`` and ``description`` have no
  Gemini field.
* **Dropped** for want of a Gemini field: cache markers (Gemini caches prefixes implicitly),
  ``disable_parallel``, ``user``, ``include_usage`` (usage always comes), ``extra``.
"""

from __future__ import annotations

import hashlib
import math
import mimetypes
import re
from collections.abc import Iterable
from typing import Any

import orjson

from kestrel.edge.canonical import (
    Block,
    Document,
    Image,
    Message,
    RedactedThinking,
    Request,
    Response,
    Text,
    Thinking,
    ToolChoiceKind,
    ToolResult,
    ToolUse,
)
from kestrel.edge.providers.base import Encoded, UpstreamFailure
from kestrel.edge.providers.capabilities import (
    UNKNOWN,
    ModelCaps,
    ModelCatalog,
    effort_of,
    fit_to_model,
    nearest_effort,
)
from kestrel.edge.providers.gemini_errors import decode_error as _decode_error
from kestrel.edge.providers.gemini_schema import function_parameters
from kestrel.edge.providers.gemini_stream import SIGNATURE_TAG, GeminiStreamDecoder, decode_body

__all__ = ["BILLING_PREFIX", "DUMMY_SIGNATURE", "GeminiCodec", "estimate_tokens", "request_body", "upstream_name"]

BILLING_PREFIX = "x-anthropic-billing-header:"
DUMMY_SIGNATURE = "skip_thought_signature_validator"
"""Google's documented stand-in for a ``functionCall`` whose real signature is unknown."""
MAX_THINKING_BUDGET = 24576
"""The budget cap for a model ``capabilities`` knows nothing about: the largest every 2.5 model takes."""
THINKING_LEVELS = ("low", "high")
"""``thinkingLevel`` values when a level model's capabilities list none: what every Gemini 3 takes."""
MAX_STOP_SEQUENCES = 5
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_NAME_CHAR = re.compile(r"[^A-Za-z0-9_.\-]")
_MEDIA_TOKENS = 258
"""What Gemini bills for an image (and a PDF page); used only for the start-of-stream estimate."""
_LEARNED_NAMES = 4096
_JSON = ((b"content-type", b"application/json"),)
_CHOICE_MODE = {
    ToolChoiceKind.AUTO: "AUTO",
    ToolChoiceKind.ANY: "ANY",
    ToolChoiceKind.TOOL: "ANY",
    ToolChoiceKind.NONE: "NONE",
}


def upstream_name(name: str) -> str:
    """The function name Gemini gets: ``name`` itself when valid, else ``prefix_<8 hex>`` (64 max)."""
    if _NAME.fullmatch(name):
        return name
    cleaned = _NAME_CHAR.sub("_", name)
    if not cleaned[:1].isalpha() and not cleaned.startswith("_"):
        cleaned = "_" + cleaned
    return f"{cleaned[:55]}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"


class GeminiCodec:
    """``Codec`` for the Gemini Developer API (``x-goog-api-key`` is added by the caller)."""

    kind = "gemini"

    def __init__(self, catalog: ModelCatalog | None = None) -> None:
        self.catalog = catalog
        """What each model accepts (``capabilities``); None knows nothing (``codec_for`` gives one)."""
        self._names: dict[str, str] = {}
        """Shortened name → original, learned by ``encode`` for ``decode_response`` (which gets no
        request); the mapping is a pure function of the original, so sharing it is safe."""

    def encode(self, request: Request, model: str) -> Encoded:
        model = model.removeprefix("models/")
        method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        for tool in request.tools:
            self._learn(tool.name)
        caps = self.catalog.caps(model) if self.catalog is not None else UNKNOWN
        if caps == UNKNOWN:
            return Encoded(f"/v1beta/models/{model}:{method}", _JSON, orjson.dumps(request_body(request)))
        fitted = fit_to_model(request, caps)
        body = request_body(fitted)
        generation = _generation(fitted, caps)  # generationConfig is the body's last key either way
        body.pop("generationConfig", None)
        if generation:
            body["generationConfig"] = generation
        return Encoded(f"/v1beta/models/{model}:{method}", _JSON, orjson.dumps(body))

    def decode_response(self, body: bytes, request: Request | None = None) -> Response:
        """``request`` (when given) supplies tool names and the model; else what ``encode`` learnt."""
        if request is None:
            return decode_body(body, names=self._names)
        return decode_body(body, names=self._names_for(request), model=request.model)

    def stream_decoder(self, request: Request) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(
            model=request.model, names=self._names_for(request), estimate=estimate_tokens(request)
        )

    def decode_error(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> UpstreamFailure:
        return _decode_error(status, headers, body)

    @staticmethod
    def _names_for(request: Request) -> dict[str, str]:
        return {upstream_name(t.name): t.name for t in request.tools}

    def _learn(self, name: str) -> None:
        short = upstream_name(name)
        if short != name:
            if len(self._names) >= _LEARNED_NAMES:
                self._names.clear()
            self._names[short] = name


# -- request ----------------------------------------------------------------------------------


def request_body(request: Request) -> dict[str, Any]:
    """The ``GenerateContentRequest`` JSON object for ``request``."""
    body: dict[str, Any] = {}
    system = "\n\n".join(
        t.text for t in request.system if t.text.strip() and not t.text.lstrip().startswith(BILLING_PREFIX)
    )
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    body["contents"] = _contents(request.messages)
    if request.tools:
        declarations = []
        for tool in request.tools:
            declaration: dict[str, Any] = {"name": upstream_name(tool.name)}
            if tool.description:
                declaration["description"] = tool.description
            parameters = function_parameters(tool.input_schema)
            if parameters is not None:
                declaration["parameters"] = parameters
            declarations.append(declaration)
        body["tools"] = [{"functionDeclarations": declarations}]
        if request.tool_choice is not None:
            config: dict[str, Any] = {"mode": _CHOICE_MODE[request.tool_choice.kind]}
            if request.tool_choice.kind is ToolChoiceKind.TOOL and request.tool_choice.name:
                config["allowedFunctionNames"] = [upstream_name(request.tool_choice.name)]
            body["toolConfig"] = {"functionCallingConfig": config}
    generation = _generation(request)
    if generation:
        body["generationConfig"] = generation
    return body


def _generation(request: Request, caps: ModelCaps = UNKNOWN) -> dict[str, Any]:
    """``generationConfig`` for ``request`` (already fitted to ``caps``: cap, budget range, sampling).

    Thinking, by what the model takes:

    * ``level`` (Gemini 3): ``thinkingLevel``. The client's effort, else its budget bucketed as
      for OpenAI (up to 4096 → low, up to 16384 → medium, more → high), moved to the nearest level
      the model has, the higher on a tie: on a low/high model, ``minimal``/``low`` and budgets up
      to 4096 → ``low``, everything else → ``high``. Adaptive with no effort sends no level (the
      model decides; its default is high).
    * ``budget`` (2.5): ``thinkingBudget`` as fitted (already in the model's range), ``-1`` for
      adaptive. Thinking off sends ``thinkingBudget: 0`` where the model can stop thinking (2.5
      Flash thinks by default otherwise), and nothing where it cannot (2.5 Pro).
    * unknown: the budget capped at ``MAX_THINKING_BUDGET``, ``-1`` for adaptive; off sends nothing.

    Structured output: ``responseMimeType`` and ``responseSchema`` as the module docstring says.
    """
    out: dict[str, Any] = {}
    if request.max_tokens is not None:
        out["maxOutputTokens"] = request.max_tokens
    if request.temperature is not None:
        out["temperature"] = request.temperature
    if request.top_p is not None:
        out["topP"] = request.top_p
    if request.top_k is not None:
        out["topK"] = request.top_k
    if request.stop_sequences:
        out["stopSequences"] = list(request.stop_sequences[:MAX_STOP_SEQUENCES])
    thinking = request.thinking
    if caps.thinking == "level":
        if thinking.enabled:
            config: dict[str, Any] = {"includeThoughts": True}
            if thinking.effort or thinking.budget_tokens > 0:
                config["thinkingLevel"] = nearest_effort(effort_of(thinking), caps.efforts or THINKING_LEVELS)
            out["thinkingConfig"] = config
    elif thinking.enabled:
        budget = thinking.budget_tokens
        if budget > 0 and caps.thinking_budget is None:
            budget = min(budget, MAX_THINKING_BUDGET)
        out["thinkingConfig"] = {"includeThoughts": True, "thinkingBudget": budget if budget > 0 else -1}
    elif caps.thinking == "budget" and caps.can_disable_thinking:
        out["thinkingConfig"] = {"thinkingBudget": 0}
    structured = request.response_format
    choice = request.tool_choice
    if structured is not None and not (request.tools and (choice is None or choice.kind is not ToolChoiceKind.NONE)):
        out["responseMimeType"] = "application/json"
        schema = function_parameters(structured.schema) if structured.kind == "json_schema" else None
        if schema is not None:
            out["responseSchema"] = schema
    return out


def _contents(messages: Iterable[Message]) -> list[dict[str, Any]]:
    calls: dict[str, str] = {}
    """Tool-use id → the upstream function name, for the responses that follow."""
    turns: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]] = []
    for message in messages:
        responses: list[dict[str, Any]] = []
        if message.role == "assistant":
            role, parts = "model", _model_parts(message.content, calls)
        elif message.role == "system":
            role = "user"
            parts = [{"text": f"<system>\n{b.text}\n</system>"} for b in message.content if isinstance(b, Text)]
        else:
            role = "user"
            responses, parts = _user_parts(message.content, calls)
        if not responses and not parts:
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(responses)
            turns[-1][2].extend(parts)
        else:
            turns.append((role, responses, parts))
    return [{"role": role, "parts": responses + parts} for role, responses, parts in turns]


def _model_parts(blocks: Iterable[Block], calls: dict[str, str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    pending = ""
    first_call = True
    for block in blocks:
        if isinstance(block, Thinking):
            if block.signature.startswith(SIGNATURE_TAG):
                if pending:  # two signed blocks in a row: the earlier one gets a part of its own
                    parts.append({"text": "", "thoughtSignature": pending})
                pending = block.signature.removeprefix(SIGNATURE_TAG)
            continue
        if isinstance(block, ToolUse):
            name = upstream_name(block.name)
            calls[block.id] = name
            call: dict[str, Any] = {"name": name, "args": block.input}
            if block.id:
                call["id"] = block.id
            part: dict[str, Any] = {"functionCall": call}
            signature = block.signature.removeprefix(SIGNATURE_TAG) or pending
            if not signature and first_call:
                signature = DUMMY_SIGNATURE
            first_call = False
        elif isinstance(block, Text):
            if not block.text and not pending:
                continue
            part, signature = {"text": block.text}, pending
        elif isinstance(block, Image | Document):
            part, signature = _media(block), pending
        else:  # RedactedThinking, or a ToolResult misplaced in an assistant turn
            continue
        if signature:
            part["thoughtSignature"] = signature
        pending = ""
        parts.append(part)
    if pending:
        parts.append({"text": "", "thoughtSignature": pending})
    return parts


def _user_parts(blocks: Iterable[Block], calls: dict[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    responses: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, ToolResult):
            text = "\n".join(b.text for b in block.content if isinstance(b, Text))
            media = [_media(b) for b in block.content if isinstance(b, Image | Document)]
            name = calls.get(block.tool_use_id)
            if name is None:
                label = "error of" if block.is_error else "result of"
                parts.append({"text": f"[{label} tool call {block.tool_use_id}]\n{text}"})
            else:
                response = {"error": text} if block.is_error else {"result": text}
                responses.append({"functionResponse": {"name": name, "id": block.tool_use_id, "response": response}})
            parts.extend(media)
        elif isinstance(block, Text):
            if block.text:
                parts.append({"text": block.text})
        elif isinstance(block, Image | Document):
            parts.append(_media(block))
        # thinking and tool calls cannot come from the user side: dropped
    return responses, parts


def _media(block: Image | Document) -> dict[str, Any]:
    if isinstance(block, Document) and block.data and (block.media_type or "text/plain") == "text/plain":
        return {"text": f"{block.title}\n\n{block.data}" if block.title else block.data}
    fallback = "image/jpeg" if isinstance(block, Image) else "application/pdf"
    if block.data:
        return {"inlineData": {"mimeType": block.media_type or fallback, "data": block.data}}
    mime = block.media_type or mimetypes.guess_type(block.url)[0] or fallback
    return {"fileData": {"mimeType": mime, "fileUri": block.url}}


def estimate_tokens(request: Request) -> int:
    """A rough prompt size (4 characters a token) for ``MessageStart`` before Gemini reports usage.

    Clients draw context meters from the first event; a zero there reads as an empty context.
    """
    chars = sum(len(t.text) for t in request.system)
    media = 0
    for message in request.messages:
        for block in message.content:
            inner: tuple[Block, ...] = block.content if isinstance(block, ToolResult) else (block,)
            for item in inner:
                if isinstance(item, Text):
                    chars += len(item.text)
                elif isinstance(item, Thinking):
                    chars += len(item.thinking)
                elif isinstance(item, ToolUse):
                    chars += len(item.name) + len(orjson.dumps(item.input))
                elif isinstance(item, Image | Document):
                    media += 1
                elif isinstance(item, RedactedThinking):
                    chars += len(item.data) // 4
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description) + len(orjson.dumps(tool.input_schema))
    return math.ceil(chars / 4) + media * _MEDIA_TOKENS
