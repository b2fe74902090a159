"""Parse and validate a generateContent body into the sim's neutral ``MessagesRequest``.

Like ``_request`` for Anthropic, one pass checks what Gemini would refuse, cuts the prompt into
cache segments (tools, system instruction, contents in order, each part one segment; token rule
in ``_tokens``) and keeps the last user text for markers and the default answer. Refusals are
``GeminiError``s: 400 ``INVALID_ARGUMENT`` with Google's wording (PROTOCOLS.md E2).

* Field names are accepted in lowerCamel or snake_case, as proto JSON is. Unknown fields (top
  level, ``generationConfig``, ``thinkingConfig``, ``toolConfig``, contents, parts,
  declarations) are refused with "Unknown name ...: Cannot find field".
* ``contents`` is non-empty; roles are ``user``/``model``; each part carries exactly one of
  text, inlineData, fileData, functionCall, functionResponse, executableCode,
  codeExecutionResult; ``args`` and ``response`` are objects (a proxy must wrap strings).
* A function-call turn follows a user or function-response turn, and the next content answers
  it with as many ``functionResponse`` parts; a function-response turn follows a call turn.
* ``functionDeclarations[].parameters`` is an OpenAPI-subset ``Schema``: every keyword outside it
  (``additionalProperties``, ``$schema``, ``exclusiveMinimum``, ``propertyNames``, ``const``,
  ``$ref``, ...) is refused at any depth, all in one answer with a ``BadRequest`` detail, and
  ``type`` must be one name, not a list. ``parametersJsonSchema`` takes any JSON Schema.
* Structured output: ``generationConfig.responseSchema`` is checked as ``parameters`` is;
  ``responseJsonSchema`` takes any JSON Schema. With ``responseMimeType: "application/json"`` the
  default answer is JSON matching the schema (``{}`` without one), unless functions are declared
  and the calling mode is not ``NONE``: then the request is refused as Gemini 2.5 refuses it
  ("Function calling with a response mime type: 'application/json' is unsupported").
* Thinking is on when ``generationConfig.thinkingConfig`` is present with a ``thinkingBudget``
  other than 0 (Gemini 2.5 also thinks without one; the sim keeps that explicit).
* For a model in ``SimConfig.models`` (``model_info``): ``maxOutputTokens`` at most its
  ``max_tokens`` (Vertex AI's wording: "… supported range is from 1 (inclusive) to N (exclusive)";
  the Developer API's may differ), and ``thinkingLevel`` only where ``thinking_levels`` is on
  ("Thinking level is not supported for this model.", as Gemini 2.5 answers).
* Thought signatures (``require_signatures``, from ``SimConfig.require_thought_signatures``):
  in the current turn (the contents after the last user content that is not only function
  responses), a model content whose first ``functionCall`` part has no ``thoughtSignature`` is
  refused when thinking is on, as Gemini 3 does; a signature the sim did not mint for that
  function is "Corrupted". Google's documented placeholders pass.
* ``toolConfig.functionCallingConfig`` mode ``ANY`` forces a call: the first allowed name, or
  the first declared function. Every segment boundary is a cache point (implicit caching).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from kestrel.sim import _ids
from kestrel.sim._request import MessagesRequest, Prompt, RequestError
from kestrel.sim._tokens import gemini_declaration_chars, gemini_part_chars
from kestrel.sim.config import ModelInfo

DEFAULT_MAX_TOKENS = 65_536
MAX_STOPS = 5
SIGNATURE_PLACEHOLDERS = frozenset({"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"})
SCHEMA_FIELDS = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
        "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
        "propertyOrdering", "default", "items", "minimum", "maximum",
    }
)  # fmt: skip
SCHEMA_TYPES = frozenset({"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
_TOP = frozenset(
    {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings", "cachedContent",
     "labels", "model", "serviceTier", "store"}
)  # fmt: skip
_GENERATION = frozenset(
    {
        "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
        "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty",
        "frequencyPenalty", "responseLogprobs", "logprobs", "enableEnhancedCivicAnswers", "speechConfig",
        "thinkingConfig", "imageConfig", "mediaResolution",
    }
)  # fmt: skip
_THINKING = frozenset({"includeThoughts", "thinkingBudget", "thinkingLevel"})
_TOOL = frozenset(
    {"functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext",
     "computerUse", "fileSearch", "googleMaps"}
)  # fmt: skip
_DECLARATION = frozenset({"name", "description", "parameters", "parametersJsonSchema", "response",
                          "responseJsonSchema", "behavior"})  # fmt: skip
_CONTENT = frozenset({"role", "parts"})
_PART = frozenset(
    {"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult",
     "thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"}
)  # fmt: skip
_PART_DATA = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode",
              "codeExecutionResult")  # fmt: skip
_CALL = frozenset({"id", "name", "args"})
_RESPONSE = frozenset({"id", "name", "response", "willContinue", "scheduling", "parts"})
_BLOB = frozenset({"mimeType", "data", "displayName"})
_MODES = ("MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED")
_FUNCTION_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}")


class GeminiError(RequestError):
    """A refusal with Google's ``details`` (``BadRequest`` field violations and the like)."""

    def __init__(self, message: str, status: int = 400, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, status)
        self.details = details


@dataclass(frozen=True, slots=True)
class GeminiOptions:
    """What rendering needs beyond the neutral request."""

    sse: bool = False
    """``alt=sse``: SSE lines; otherwise a stream is a JSON array."""
    include_thoughts: bool = False
    thinking: bool = False
    """Thinking on: the first functionCall part carries a thoughtSignature."""


def mint_signature(function_name: str) -> str:
    """The ``thoughtSignature`` the sim puts on a call of ``function_name``."""
    return _ids.mint_signature("gemini-function-call:" + function_name)


def parse_generate(
    body: bytes,
    model: str,
    *,
    stream: bool = False,
    sse: bool = False,
    require_signatures: bool = True,
    model_info: ModelInfo | None = None,
) -> tuple[MessagesRequest, GeminiOptions]:
    """Validate a generateContent body and cut its prompt into cache segments.

    ``model_info`` (the model's entry in ``SimConfig.models``, if any) holds it to its limits.
    """
    return _parse(_load(body), model, stream, sse, require_signatures, model_info)


def parse_count(body: bytes, model: str) -> MessagesRequest:
    """A countTokens body: the request's fields, directly or inside ``generateContentRequest``."""
    data = _load(body)
    if isinstance(data, dict) and isinstance(data.get("generateContentRequest"), dict):
        data = {k: v for k, v in data["generateContentRequest"].items() if k != "model"}
    return _parse(data, model, False, False, False)[0]


def _parse(
    raw: Any, model: str, stream: bool, sse: bool, require_signatures: bool, model_info: ModelInfo | None = None
) -> tuple[MessagesRequest, GeminiOptions]:
    data = _fields(raw, _TOP, "")
    generation = _fields(data.get("generationConfig") or {}, _GENERATION, "generation_config")
    thinking_config = generation.get("thinkingConfig")
    if thinking_config is not None:
        thinking_config = _fields(thinking_config, _THINKING, "generation_config.thinking_config")
        budget = thinking_config.get("thinkingBudget")
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)):
            raise _bad_value("generation_config.thinking_config.thinking_budget", "TYPE_INT32", budget)
    thinking = thinking_config is not None and thinking_config.get("thinkingBudget") != 0
    include_thoughts = thinking and bool((thinking_config or {}).get("includeThoughts"))
    max_tokens = generation.get("maxOutputTokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)):
        raise _bad_value("generation_config.max_output_tokens", "TYPE_INT32", max_tokens)
    if model_info is not None:
        _check_model(model_info, max_tokens, thinking_config)
    stops = generation.get("stopSequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise _bad_value("generation_config.stop_sequences", "TYPE_STRING", stops)
    if len(stops) > MAX_STOPS:
        raise GeminiError(f"The stop_sequences field must have at most {MAX_STOPS} items.")

    json_schema = _response_schema(generation)

    prompt = Prompt(model)
    names = _add_tools(prompt, data.get("tools"))
    forced = _forced_tool(data.get("toolConfig"), names)
    if json_schema is not None and names and _calling_mode(data.get("toolConfig")) != "NONE":
        raise GeminiError("Function calling with a response mime type: 'application/json' is unsupported")
    _add_system(prompt, data.get("systemInstruction"))
    contents = data.get("contents")
    if not isinstance(contents, list) or not contents:
        raise GeminiError("* GenerateContentRequest.contents: contents is not specified\n")
    last_user_text = _add_contents(prompt, contents, thinking and require_signatures, require_signatures)
    prompt.cache_every_boundary()
    request = MessagesRequest(
        model=model,
        max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
        stream=stream,
        thinking="enabled" if thinking else None,
        thinking_display="summarized" if include_thoughts else "omitted",
        stop_sequences=tuple(s for s in stops if s),
        prompt=prompt,
        last_user_text=last_user_text,
        message_count=len(contents),
        forced_tool=forced,
        tool_id_prefix="fc_",
        json_schema=json_schema,
    )
    return request, GeminiOptions(sse=sse, include_thoughts=include_thoughts, thinking=thinking)


def _check_model(info: ModelInfo, max_tokens: int | None, thinking_config: dict[str, Any] | None) -> None:
    if max_tokens is not None and max_tokens > info.max_tokens:
        raise GeminiError(
            f"Unable to submit request because it has a maxOutputTokens value of {max_tokens} but the supported "
            f"range is from 1 (inclusive) to {info.max_tokens + 1} (exclusive). Update the value and try again."
        )
    if thinking_config is not None and thinking_config.get("thinkingLevel") is not None and not info.thinking_levels:
        raise GeminiError("Thinking level is not supported for this model.")


def _load(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GeminiError("Invalid JSON payload received. Unexpected token.") from exc


def _fields(obj: Any, known: frozenset[str], where: str) -> dict[str, Any]:
    """The object with lowerCamel keys; unknown keys are refused the way proto JSON parsing does."""
    if not isinstance(obj, dict):
        if not where:
            raise GeminiError('Invalid JSON payload received. Unknown name "": Root element must be a message.')
        raise _bad_value(where, "message", obj)
    out: dict[str, Any] = {}
    unknown = []
    for key, value in obj.items():
        name = _camel(key)
        if name not in known:
            unknown.append(key)
        out[name] = value
    if unknown:
        raise _unknown_names([(key, where) for key in unknown])
    return out


def _camel(name: str) -> str:
    if "_" not in name:
        return name
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _add_tools(prompt: Prompt, tools: Any) -> list[str]:
    """Add each declaration (and any other tool) as a segment; return the function names."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _bad_value("tools", "Tool", tools)
    names: list[str] = []
    violations: list[tuple[str, str]] = []  # (keyword, where) of schema keywords Gemini refuses
    for i, raw in enumerate(tools):
        tool = _fields(raw, _TOOL, f"tools[{i}]")
        declarations = tool.get("functionDeclarations")
        if declarations is None:
            prompt.add(b"T", tool, len(orjson.dumps(tool)))
            continue
        if not isinstance(declarations, list):
            raise _bad_value(f"tools[{i}].function_declarations", "FunctionDeclaration", declarations)
        for j, raw_declaration in enumerate(declarations):
            where = f"tools[{i}].function_declarations[{j}]"
            declaration = _fields(raw_declaration, _DECLARATION, where)
            name = declaration.get("name")
            if not isinstance(name, str) or not _FUNCTION_NAME.fullmatch(name):
                raise GeminiError(
                    f"* GenerateContentRequest.{where}.name: Invalid function name. Must start with a letter or an "
                    "underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:) or "
                    "dashes (-), with a maximum length of 64.\n"
                )
            if "parameters" in declaration:
                _check_schema(declaration["parameters"], f"{where}.parameters", violations)
            prompt.add(b"T", declaration, gemini_declaration_chars(declaration))
            names.append(name)
    if violations:
        raise _unknown_names(violations)
    return names


def _check_schema(schema: Any, where: str, violations: list[tuple[str, str]]) -> None:
    """Collect every keyword outside Gemini's ``Schema`` message, at any depth."""
    if not isinstance(schema, dict):
        raise _bad_value(where, "Schema", schema)
    for key in schema:
        if _camel(key) not in SCHEMA_FIELDS:
            violations.append((key, where))
    kind = schema.get("type")
    if isinstance(kind, list):
        raise GeminiError(
            f"Invalid JSON payload received. Unknown name \"type\" at '{where}': Proto field is not repeating, "
            "cannot start list."
        )
    if kind is not None and (not isinstance(kind, str) or kind.upper() not in SCHEMA_TYPES):
        raise _bad_value(f"{where}.type", "Type", kind)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for index, value in enumerate(properties.values()):
            _check_schema(value, f"{where}.properties[{index}].value", violations)
    if "items" in schema:
        _check_schema(schema["items"], f"{where}.items", violations)
    any_of = schema.get("anyOf", schema.get("any_of"))
    if isinstance(any_of, list):
        for index, value in enumerate(any_of):
            _check_schema(value, f"{where}.any_of[{index}]", violations)


def _response_schema(generation: dict[str, Any]) -> dict[str, Any] | None:
    """With ``responseMimeType: application/json``: the schema the answer must match (``{}`` for
    none); None for any other answer. A ``responseSchema`` must be Gemini's ``Schema`` subset."""
    schema = generation.get("responseSchema")
    if schema is not None:
        violations: list[tuple[str, str]] = []
        _check_schema(schema, "generation_config.response_schema", violations)
        if violations:
            raise _unknown_names(violations)
    if generation.get("responseMimeType") != "application/json":
        return None
    json_schema = generation.get("responseJsonSchema")
    return schema if schema is not None else json_schema if isinstance(json_schema, dict) else {}


def _calling_mode(tool_config: Any) -> str:
    """``functionCallingConfig.mode`` (already validated by ``_forced_tool``), ``AUTO`` when unset."""
    calling = _fields(tool_config or {}, frozenset({"functionCallingConfig", "retrievalConfig"}), "tool_config")
    config = calling.get("functionCallingConfig")
    mode = _fields(config, frozenset({"mode", "allowedFunctionNames"}), "").get("mode") if config else None
    return str(mode or "AUTO")


def _forced_tool(tool_config: Any, names: list[str]) -> str | None:
    if tool_config is None:
        return None
    config = _fields(tool_config, frozenset({"functionCallingConfig", "retrievalConfig"}), "tool_config")
    calling = config.get("functionCallingConfig")
    if calling is None:
        return None
    where = "tool_config.function_calling_config"
    calling = _fields(calling, frozenset({"mode", "allowedFunctionNames"}), where)
    mode = calling.get("mode", "AUTO")
    if mode not in _MODES:
        raise _bad_value(f"{where}.mode", "FunctionCallingConfig.Mode", mode)
    allowed = calling.get("allowedFunctionNames")
    if allowed is not None and mode not in ("ANY", "VALIDATED"):
        raise GeminiError(
            "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: "
            "allowed_function_names is only allowed when function calling mode is ANY or VALIDATED.\n"
        )
    if mode != "ANY" or not names:
        return None
    if isinstance(allowed, list) and allowed and isinstance(allowed[0], str):
        return str(allowed[0])
    return names[0]


def _add_system(prompt: Prompt, system: Any) -> None:
    if system is None:
        return
    if not isinstance(system, dict):  # a bare string is the classic mistake
        raise _bad_value("system_instruction", "Content", system)
    content = _fields(system, _CONTENT, "system_instruction")
    for part in _parts(content.get("parts"), "system_instruction", allow_empty=True):
        prompt.add(b"S", _segment(part), gemini_part_chars(part))


def _add_contents(prompt: Prompt, contents: list[Any], need_signatures: bool, check_signatures: bool) -> str:
    """Add every content's parts; check function-call turns and signatures; return the last user text."""
    checked = [_fields(c, _CONTENT, f"contents[{i}]") for i, c in enumerate(contents)]
    all_parts = [_parts(c.get("parts"), f"contents[{i}]") for i, c in enumerate(checked)]
    turn_start = -1  # the current turn begins after the last user content that is not only responses
    for i, (content, parts) in enumerate(zip(checked, all_parts, strict=True)):
        if (content.get("role") or "user") == "user" and any("functionResponse" not in p for p in parts):
            turn_start = i

    last_user_text = ""
    previous_role, previous_calls = "", 0
    for i, (content, parts) in enumerate(zip(checked, all_parts, strict=True)):
        role = content.get("role") or "user"
        if role not in ("user", "model"):
            raise GeminiError("Please use a valid role: user, model.")
        calls = [p for p in parts if "functionCall" in p]
        responses = sum(1 for p in parts if "functionResponse" in p)
        if responses and not previous_calls:
            raise GeminiError("Please ensure that function response turn comes immediately after a function call turn.")
        if previous_calls and responses != previous_calls:
            raise GeminiError(
                "Please ensure that the number of function response parts is equal to the number of function call "
                "parts of the function call turn."
            )
        if calls and previous_role == "model":
            raise GeminiError(
                "Please ensure that function call turn comes immediately after a user turn or after a function "
                "response turn."
            )
        if calls and check_signatures:
            _check_signature(calls[0], i, need_signatures and i > turn_start)
        tag = b"U" if role == "user" else b"A"
        for j, part in enumerate(parts):
            prompt.add(tag if j == 0 else b"+", _segment(part), gemini_part_chars(part))
        if role == "user":
            texts = [p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")]
            last_user_text = "\n".join(texts)
        previous_role, previous_calls = role, len(calls) if role == "model" else 0
    return last_user_text


def _check_signature(part: dict[str, Any], index: int, required: bool) -> None:
    name = str(part["functionCall"].get("name"))
    signature = part.get("thoughtSignature")
    if signature is None:
        if required:
            raise GeminiError(
                "Function call is missing a thought_signature in functionCall parts. This is required for tools "
                "to work correctly, and missing thought_signature may lead to degraded model performance. "
                f"Additional data, function call `default_api:{name}` , position {index + 1}. Please refer to "
                "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
            )
        return
    if signature not in SIGNATURE_PLACEHOLDERS and signature != mint_signature(name):
        raise GeminiError("Corrupted thought signature.")


def _parts(raw: Any, where: str, allow_empty: bool = False) -> list[dict[str, Any]]:
    if raw is None and allow_empty:
        return []
    if not isinstance(raw, list) or (not raw and not allow_empty):
        raise GeminiError(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.\n")
    parts = []
    for j, raw_part in enumerate(raw):
        at = f"{where}.parts[{j}]"
        part = _fields(raw_part, _PART, at)
        present = [name for name in _PART_DATA if name in part]
        if len(present) != 1:
            raise GeminiError(
                f"* GenerateContentRequest.{at}.data: required oneof field 'data' must have one initialized field\n"
            )
        kind = present[0]
        if kind == "functionCall":
            call = part["functionCall"] = _fields(part["functionCall"], _CALL, f"{at}.function_call")
            if not isinstance(call.get("name"), str) or not call["name"]:
                raise GeminiError(f"* GenerateContentRequest.{at}.function_call.name: Name cannot be empty.\n")
            if not isinstance(call.get("args", {}), dict):
                raise _bad_value(f"{at}.function_call.args", "google.protobuf.Struct", call["args"])
        elif kind == "functionResponse":
            answer = part["functionResponse"] = _fields(part["functionResponse"], _RESPONSE, f"{at}.function_response")
            if not isinstance(answer.get("name"), str) or not answer["name"]:
                raise GeminiError(f"* GenerateContentRequest.{at}.function_response.name: Name cannot be empty.\n")
            if not isinstance(answer.get("response", {}), dict):
                raise _bad_value(f"{at}.function_response.response", "google.protobuf.Struct", answer["response"])
        elif kind == "inlineData":
            part["inlineData"] = _fields(part["inlineData"], _BLOB, f"{at}.inline_data")
        elif kind == "text" and not isinstance(part["text"], str):
            raise _bad_value(f"{at}.text", "TYPE_STRING", part["text"])
        parts.append(part)
    return parts


def _segment(part: dict[str, Any]) -> Any:
    """A plain text part hashes (and caches) as its text."""
    return part["text"] if len(part) == 1 and "text" in part else part


def _unknown_names(names: list[tuple[str, str]]) -> GeminiError:
    lines = []
    violations = []
    for key, where in names:
        at = f" at '{where}'" if where else ""
        line = f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.'
        lines.append(line)
        violations.append({"field": f"{where}.{key}" if where else key, "description": line})
    details = [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}]
    return GeminiError("\n".join(lines), details=details)


def _bad_value(where: str, kind: str, value: Any) -> GeminiError:
    shown = orjson.dumps(value).decode()
    if len(shown) > 80:
        shown = shown[:77] + "..."
    prefix = "type.googleapis.com/google.ai.generativelanguage.v1beta." if kind[:1].isupper() else ""
    return GeminiError(f"Invalid value at '{_snake_path(where)}' ({prefix}{kind}), {shown}")


def _snake_path(where: str) -> str:
    return ".".join(_snake(piece) for piece in where.split("."))
