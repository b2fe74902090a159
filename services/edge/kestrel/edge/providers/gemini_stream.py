"""Gemini answers → canonical events, without I/O.

``streamGenerateContent?alt=sse`` sends one ``data:`` line per ``GenerateContentResponse``, each
carrying only the parts that are new; there is no ``[DONE]``, the stream ends when the connection
closes, and ``finishReason`` plus the final ``usageMetadata`` ride on the last chunk. A non-streaming
``generateContent`` body is the same object once, so ``decode_body`` runs it through the same state
machine and folds the events into a ``Response``: both paths cannot drift apart.

States, by the open block: ``state_before_first_chunk`` (nothing sent), ``state_idle`` (no block
open), ``state_in_text``, ``state_in_thinking``; a function call arrives whole, so it opens and
closes its block in one go. ``finishReason`` closes the open block; ``finish()`` (connection closed)
sends ``MessageDelta`` + ``MessageStop``, or a ``StreamError`` when no ``finishReason`` ever came.

Signature rule (see ``gemini.py`` for the way back): a ``thoughtSignature`` always lands on a
``Thinking`` block, the open one (as its ``SignatureDelta``, which closes it) or, when none is open,
an empty one opened just before the part it rode on. A signature on a ``functionCall`` part is also
copied, raw, onto that ``ToolUse.signature``. Anthropic-dialect clients keep thinking blocks but have
nowhere to keep a signature on ``tool_use``, so the thinking block is what survives the client;
``ToolUse.signature`` serves clients that keep the canonical blocks. Thinking signatures are tagged
``gemini:`` so the encoder can tell Gemini's own from another provider's (sending Gemini an
Anthropic signature is a 400 "Corrupted thought signature").
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from kestrel.edge.assemble import StreamFailed, assemble
from kestrel.edge.canonical import (
    BlockStart,
    BlockStop,
    Event,
    MessageDelta,
    MessageStart,
    MessageStop,
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
from kestrel.edge.providers.gemini_errors import failure_from_error
from kestrel.edge.sse import FrameCutter, iter_events

SIGNATURE_TAG = "gemini:"
"""Prefix of a Gemini ``thoughtSignature`` carried in ``Thinking.signature``."""

_REFUSALS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "OTHER",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "IMAGE_OTHER",
    }
)
_PROMPT_BLOCKED = "PROMPT_BLOCKED"


def stop_reason(finish: str, called: bool) -> StopReason:
    """Gemini has no tool-call finish reason: a turn with function calls ends with ``STOP``.

    ``MALFORMED_FUNCTION_CALL``, ``UNEXPECTED_TOOL_CALL``, ``FINISH_REASON_UNSPECIFIED`` and unknown
    values end the turn, unless calls were already sent: the client must then answer them.
    """
    if finish == "MAX_TOKENS":
        return StopReason.MAX_TOKENS
    if finish in _REFUSALS or finish == _PROMPT_BLOCKED:
        return StopReason.REFUSAL
    return StopReason.TOOL_USE if called else StopReason.END_TURN


def _int(meta: Mapping[str, Any], key: str) -> int:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_from(meta: Mapping[str, Any]) -> Usage:
    """``usageMetadata`` in canonical terms.

    ``promptTokenCount`` includes ``cachedContentTokenCount``, so uncached input is the difference;
    ``toolUsePromptTokenCount`` (tool results Gemini fed itself) is input too. Output is
    ``candidatesTokenCount + thoughtsTokenCount``, as OpenAI counts reasoning inside completion tokens.
    Gemini documents ``totalTokenCount`` as the sum of all of these; when it is larger (a count left
    out of a chunk) the difference is taken as output, so the total always adds up.
    """
    prompt = _int(meta, "promptTokenCount")
    cached = min(_int(meta, "cachedContentTokenCount"), prompt)
    tool_prompt = _int(meta, "toolUsePromptTokenCount")
    thoughts = _int(meta, "thoughtsTokenCount")
    output = _int(meta, "candidatesTokenCount") + thoughts
    output = max(output, _int(meta, "totalTokenCount") - prompt - tool_prompt)
    return Usage(
        input_tokens=prompt - cached + tool_prompt,
        output_tokens=output,
        cache_read_input_tokens=cached,
        reasoning_tokens=thoughts,
    )


class GeminiStreamDecoder:
    """Feed SSE bytes from ``streamGenerateContent?alt=sse`` in any chunking; get canonical events."""

    def __init__(self, *, model: str, names: Mapping[str, str], estimate: int = 0) -> None:
        self._cutter = FrameCutter()
        self._model = model
        self._names = names
        """Upstream tool name → the client's (names shortened on the way out)."""
        self._estimate = estimate
        self._seed = uuid.uuid4().hex
        self._id = ""
        self._started = False
        self._open = ""
        """``""``, ``text`` or ``thinking``: the kind of the block at ``_index`` still open."""
        self._index = -1
        self._calls = 0
        self._finish = ""
        self._meta: Mapping[str, Any] = {}
        self._done = False

    # -- input -----------------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> list[Event]:
        out: list[Event] = []
        for _, data in iter_events(self._cutter.feed(chunk)):
            self._data(data, out)
        return out

    def finish(self) -> list[Event]:
        out: list[Event] = []
        for _, data in iter_events(self._cutter.pending):
            self._data(data, out, last=True)
        return self.end(out)

    def end(self, out: list[Event], *, default_finish: str = "") -> list[Event]:
        """Close the message; without a ``finishReason`` (and no default) the stream was cut."""
        if self._done:
            return out
        self._done = True
        finish = self._finish or default_finish
        if not finish:
            out.append(StreamError("api_error", "Gemini stream ended before a finishReason"))
            return out
        self._start(out)
        self._close(out)
        usage = usage_from(self._meta) if self._meta else Usage(input_tokens=self._estimate)
        out.append(MessageDelta(stop_reason(finish, self._calls > 0), None, usage))
        out.append(MessageStop())
        return out

    def _data(self, data: bytes, out: list[Event], *, last: bool = False) -> None:
        if self._done or not data.strip() or data.strip() == b"[DONE]":
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            if not last:  # a half line at the very end is a cut, which end() reports
                self._fail(out, "api_error", "Gemini sent a chunk that is not JSON")
            return
        for item in obj if isinstance(obj, list) else [obj]:
            if isinstance(item, dict):
                self.chunk(item, out)

    def _fail(self, out: list[Event], kind: str, message: str) -> None:
        self._done = True
        out.append(StreamError(kind, message))

    # -- one GenerateContentResponse -------------------------------------------------------------

    def chunk(self, obj: Mapping[str, Any], out: list[Event]) -> None:
        if self._done:
            return
        error = obj.get("error")
        if isinstance(error, dict):
            failure = failure_from_error(error, 0)
            self._fail(out, failure.kind, failure.message)
            return
        if not self._id:
            rid = obj.get("responseId")
            self._id = rid if isinstance(rid, str) and rid else self._seed
            version = obj.get("modelVersion")
            self._model = version if isinstance(version, str) and version else self._model
        meta = obj.get("usageMetadata")
        if isinstance(meta, dict):
            self._meta = meta
        self._start(out)
        candidates = obj.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            feedback = obj.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                self._finish = _PROMPT_BLOCKED
            return
        candidate = candidates[0] if isinstance(candidates[0], dict) else {}
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if isinstance(part, dict):
                self._part(part, out)
        finish = candidate.get("finishReason")
        if isinstance(finish, str) and finish:
            self._finish = finish
            self._close(out)

    def _start(self, out: list[Event]) -> None:
        if self._started:
            return
        self._started = True
        if self._meta.get("promptTokenCount"):
            first = usage_from(self._meta)
            usage = Usage(input_tokens=first.input_tokens, cache_read_input_tokens=first.cache_read_input_tokens)
        else:
            usage = Usage(input_tokens=self._estimate)
        out.append(MessageStart(f"msg_{self._id or self._seed}", self._model, usage))

    def _part(self, part: Mapping[str, Any], out: list[Event]) -> None:
        raw_signature, raw_text = part.get("thoughtSignature"), part.get("text")
        signature = raw_signature if isinstance(raw_signature, str) else ""
        text = raw_text if isinstance(raw_text, str) else ""
        if part.get("thought") is True:
            if text:
                self._open_block("thinking", out)
                out.append(ThinkingDelta(self._index, text))
            if signature:
                self._open_block("thinking", out)
                out.append(SignatureDelta(self._index, SIGNATURE_TAG + signature))
                self._close(out)
            return
        if signature:
            self._open_block("thinking", out)
            out.append(SignatureDelta(self._index, SIGNATURE_TAG + signature))
            self._close(out)
        call = part.get("functionCall")
        if isinstance(call, dict):
            self._call(call, signature, out)
        elif text:
            self._open_block("text", out)
            out.append(TextDelta(self._index, text))
        # inlineData, executableCode, codeExecutionResult …: nothing a coding client can show

    def _call(self, call: Mapping[str, Any], signature: str, out: list[Event]) -> None:
        self._close(out)
        raw_name, args, given = call.get("name"), call.get("args"), call.get("id")
        name = raw_name if isinstance(raw_name, str) else ""
        args = args if isinstance(args, dict) else {}
        call_id = given if isinstance(given, str) and given else self._tool_id()
        self._calls += 1
        self._index += 1
        out.append(BlockStart(self._index, ToolUse(call_id, self._names.get(name, name), {}, signature)))
        out.append(ToolInputDelta(self._index, orjson.dumps(args).decode()))
        out.append(BlockStop(self._index))

    def _tool_id(self) -> str:
        """Stable for a response (its id and the call's position), so re-decoding gives the same ids."""
        digest = hashlib.sha256(f"{self._id}:{self._calls}".encode()).hexdigest()
        return f"toolu_{digest[:24]}"

    def _open_block(self, kind: str, out: list[Event]) -> None:
        if self._open == kind:
            return
        self._close(out)
        self._index += 1
        self._open = kind
        out.append(BlockStart(self._index, Text("") if kind == "text" else Thinking("")))

    def _close(self, out: list[Event]) -> None:
        if self._open:
            out.append(BlockStop(self._index))
            self._open = ""


def decode_body(body: bytes, *, names: Mapping[str, str], model: str = "") -> Response:
    """A whole ``generateContent`` answer as a ``Response`` (same rules as the stream)."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"Gemini answer is not JSON: {exc}") from None
    decoder = GeminiStreamDecoder(model=model, names=names)
    out: list[Event] = []
    for item in obj if isinstance(obj, list) else [obj]:
        if isinstance(item, dict):
            decoder.chunk(item, out)
    try:
        return assemble(decoder.end(out, default_finish="STOP"))
    except StreamFailed as exc:
        raise ValueError(f"{exc.kind}: {exc.message}") from None

