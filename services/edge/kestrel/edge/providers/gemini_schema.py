"""JSON Schema → the OpenAPI subset Gemini accepts in ``functionDeclarations[].parameters``.

Claude Code and MCP servers write tool schemas in full JSON Schema (draft 7 / 2020-12, often from
Zod): ``$schema``, ``additionalProperties``, ``exclusiveMinimum``, ``propertyNames``, ``const``,
``$ref`` … Gemini parses ``parameters`` as its own ``Schema`` message and answers 400 to any key it
does not know, to an ``ARRAY`` without ``items`` and to an ``OBJECT`` without properties. So the
sanitizer keeps an allow-list instead of a deny-list: a keyword nobody has listed yet is dropped,
never forwarded.

Rules, applied at every schema node (properties, items, anyOf branches) after ``$ref`` and
``allOf`` are expanded:

* ``$ref`` to ``#/...`` (``$defs`` / ``definitions``) is inlined, sibling keys win; a recursive or
  unresolvable ref becomes an untyped schema. ``allOf`` members are merged (properties and required
  unioned). ``oneOf`` is read as ``anyOf``.
* ``type`` is upper-cased (``STRING`` … ``OBJECT``); ``"null"`` (in a type list, an ``anyOf`` branch
  or an enum) becomes ``nullable: true``; several other types become an ``anyOf`` of one branch per
  type.
* ``const`` becomes ``enum: [value]``. Enums survive only as strings on a ``STRING`` schema (Gemini's
  enum is ``string[]``); non-string enums are dropped, their type kept or inferred. An ``anyOf`` of
  bare string enums (Zod's union of literals) becomes one enum.
* ``exclusiveMinimum`` / ``exclusiveMaximum`` (numbers) become ``minimum`` / ``maximum`` (+1 / -1 on
  an ``INTEGER``); the draft-4 boolean form is dropped.
* ``format`` survives only where Gemini defines it: ``enum`` / ``date-time`` on strings,
  ``int32`` / ``int64`` on integers, ``float`` / ``double`` on numbers.
* Type-specific keywords survive only on their type: ``properties``, ``required``,
  ``min/maxProperties`` on ``OBJECT``; ``items``, ``min/maxItems`` on ``ARRAY``;
  ``min/maxLength`` and ``enum`` on ``STRING``; ``minimum`` / ``maximum`` on numbers.
* An ``OBJECT`` whose properties end up empty (a free-form map: ``additionalProperties``,
  ``propertyNames``, ``patternProperties``) becomes an untyped schema, which accepts any value; an
  ``ARRAY`` without usable ``items`` gets ``items: {type: STRING}``.
* ``required`` keeps only names present in ``properties``, deduplicated.
* Everything else is dropped: ``$schema``, ``$id``, ``$defs``, ``additionalProperties``,
  ``propertyNames``, ``patternProperties``, ``title``, ``default``, ``examples``, ``pattern``
  (Gemini's regex dialect is not JSON Schema's), ``not``, ``if/then/else``, ``dependencies`` …

The result is a fixed point (sanitizing it again changes nothing), which the tests check on
generated schemas.
"""

from __future__ import annotations

from typing import Any

TYPES = ("STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT")

_COMMON = ("type", "format", "description", "nullable", "enum")
_BY_TYPE: dict[str, tuple[str, ...]] = {
    "STRING": ("minLength", "maxLength"),
    "NUMBER": ("minimum", "maximum"),
    "INTEGER": ("minimum", "maximum"),
    "BOOLEAN": (),
    "ARRAY": ("items", "minItems", "maxItems"),
    "OBJECT": ("properties", "required", "minProperties", "maxProperties"),
}
ALLOWED_KEYS = frozenset((*_COMMON, "anyOf", *(k for keys in _BY_TYPE.values() for k in keys)))
"""Every key a sanitized schema node may hold."""

_FORMATS = {"STRING": ("enum", "date-time"), "INTEGER": ("int32", "int64"), "NUMBER": ("float", "double")}
_MAX_DEPTH = 24
_MAX_NODES = 20_000
"""Schema nodes one call may visit: ``$ref`` inlining can grow a small schema exponentially (each
definition referring to the next twice), and this runs on the request path."""
_ANY: dict[str, Any] = {}


def sanitize_schema(schema: Any) -> dict[str, Any]:
    """The Gemini ``Schema`` for one JSON Schema; ``{}`` (any value) when nothing survives."""
    return _clean(schema, _Context(schema if isinstance(schema, dict) else {}), frozenset(), 0)


def function_parameters(schema: Any) -> dict[str, Any] | None:
    """``parameters`` for a declaration, or None to omit it.

    Gemini wants an ``OBJECT`` with at least one property here; a tool that takes no arguments (or
    only free-form ones) is declared without ``parameters``.
    """
    cleaned = sanitize_schema(schema)
    if cleaned.get("type") == "OBJECT" and cleaned.get("properties"):
        return cleaned
    return None


class _Context:
    """What every node of one sanitize call shares: the root (for ``$ref``) and the node budget."""

    __slots__ = ("left", "root")

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.left = _MAX_NODES


# -- expansion --------------------------------------------------------------------------------


def _pointer(root: dict[str, Any], ref: str) -> dict[str, Any] | None:
    if not ref.startswith("#"):
        return None
    node: Any = root
    for raw in ref[1:].split("/")[1:] if ref != "#" else []:
        key = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, dict) else None


def _expand(
    node: dict[str, Any], root: dict[str, Any], active: frozenset[str]
) -> tuple[dict[str, Any], frozenset[str]]:
    """Inline ``$ref`` and merge ``allOf``; returns the node and the refs now being expanded."""
    for _ in range(_MAX_DEPTH):
        ref = node.get("$ref")
        if not isinstance(ref, str):
            break
        target = _pointer(root, ref) if ref not in active else None
        rest = {k: v for k, v in node.items() if k != "$ref"}
        if target is None:
            node = rest
            break
        active = active | {ref}
        node = {**target, **rest}
    else:
        node = {k: v for k, v in node.items() if k != "$ref"}
    members = node.get("allOf")
    if isinstance(members, list):
        merged = {k: v for k, v in node.items() if k != "allOf"}
        for member in members:
            if not isinstance(member, dict):
                continue
            member, active = _expand(member, root, active)
            for key, value in member.items():
                mine = merged.get(key)
                if key == "properties" and isinstance(value, dict):
                    merged[key] = {**value, **(mine if isinstance(mine, dict) else {})}
                elif key == "required" and isinstance(value, list):
                    merged[key] = [*(mine if isinstance(mine, list) else []), *value]
                else:
                    merged.setdefault(key, value)
        node = merged
    return node, active


# -- cleaning ---------------------------------------------------------------------------------


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _types(node: dict[str, Any]) -> tuple[list[str], bool]:
    raw = node.get("type")
    names = [raw] if isinstance(raw, str) else [t for t in raw if isinstance(t, str)] if isinstance(raw, list) else []
    types: list[str] = []
    nullable = node.get("nullable") is True
    for name in names:
        upper = name.upper()
        if upper == "NULL":
            nullable = True
        elif upper in TYPES and upper not in types:
            types.append(upper)
    return types, nullable


def _infer(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOLEAN"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INTEGER"
    if all(_number(v) for v in values):
        return "NUMBER"
    if all(isinstance(v, dict) for v in values):
        return "OBJECT"
    return "ARRAY" if all(isinstance(v, list) for v in values) else ""


def _clean(schema: Any, ctx: _Context, active: frozenset[str], depth: int) -> dict[str, Any]:
    ctx.left -= 1
    if not isinstance(schema, dict) or depth > _MAX_DEPTH or ctx.left < 0:
        return {}
    node, active = _expand(schema, ctx.root, active)
    types, nullable = _types(node)
    description = node.get("description")
    head: dict[str, Any] = {}
    if isinstance(description, str) and description:
        head["description"] = description

    # enum / const: strings on a STRING schema, or a hint for the type
    enum: list[str] = []
    raw_enum = [node["const"]] if "const" in node else node.get("enum")
    if isinstance(raw_enum, list) and raw_enum:
        values = [v for v in raw_enum if v is not None]
        nullable = nullable or len(values) < len(raw_enum)
        if values and all(isinstance(v, str) for v in values) and types in ([], ["STRING"]):
            enum = list(dict.fromkeys(values))
            types = ["STRING"]
        elif values and not types and (inferred := _infer(values)):
            types = [inferred]

    alternatives, null = _branches(node, ctx, active, depth)
    nullable = nullable or null

    if len(alternatives) > 1 and types in ([], ["STRING"]) and not enum and all(_bare_enum(a) for a in alternatives):
        # ``anyOf: [{const: a}, {const: b}]`` (a Zod union of literals) is one string enum
        enum = list(dict.fromkeys(v for a in alternatives for v in a["enum"]))
        types, alternatives = ["STRING"], []
    several = len(types) > 1
    if several:
        if not alternatives:
            rest = {k: v for k, v in node.items() if k not in ("type", "description", "nullable", "anyOf", "oneOf")}
            alternatives, null = _union([_clean({**rest, "type": t}, ctx, active, depth + 1) for t in types])
            nullable = nullable or null
        types = []
    if not types and not alternatives and not several:
        if isinstance(node.get("properties"), dict):
            types = ["OBJECT"]
        elif "items" in node:
            types = ["ARRAY"]

    out = dict(head)
    if nullable:
        out["nullable"] = True
    if alternatives:
        out["anyOf"] = alternatives
    if types:
        _typed(out, types[0], node, enum, ctx, active, depth)
    if "type" not in out and len(alternatives) == 1:
        # a single alternative is the schema itself (the usual ``anyOf: [X, {type: null}]``)
        out = {**alternatives[0], **head}
        if nullable:
            out["nullable"] = True
    return _ordered(out)


def _bare_enum(node: dict[str, Any]) -> bool:
    return node.get("type") == "STRING" and "enum" in node and set(node) <= {"type", "enum"}


def _branches(
    node: dict[str, Any], ctx: _Context, active: frozenset[str], depth: int
) -> tuple[list[dict[str, Any]], bool]:
    """Cleaned ``anyOf`` (or ``oneOf``) alternatives and whether one of them was ``null``."""
    raw = node.get("anyOf") if isinstance(node.get("anyOf"), list) else node.get("oneOf")
    if not isinstance(raw, list):
        return [], False
    return _union([_clean(branch, ctx, active, depth + 1) for branch in raw])


def _union(cleaned: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """Alternatives without duplicates and ``null`` (reported apart); none at all if one is "any"."""
    out: list[dict[str, Any]] = []
    null = False
    for branch in cleaned:
        if branch == {"nullable": True}:
            null = True
        elif not branch:
            return [], null  # one alternative accepts anything, so the union does too
        elif branch not in out:
            out.append(branch)
    return out, null


def _typed(
    out: dict[str, Any],
    type_: str,
    node: dict[str, Any],
    enum: list[str],
    ctx: _Context,
    active: frozenset[str],
    depth: int,
) -> None:
    """Fill ``out`` with the keywords ``type_`` allows, each validated."""
    out["type"] = type_
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(type_, ()):
        out["format"] = fmt
    if enum and type_ == "STRING":
        out["enum"] = enum
    for key in ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"):
        if key in _BY_TYPE[type_] and _count(node.get(key)):
            out[key] = node[key]
    if type_ in ("NUMBER", "INTEGER"):
        _bounds(out, type_, node)
    elif type_ == "ARRAY":
        items = node.get("items")
        if isinstance(items, list):
            items = {"anyOf": items}
        cleaned = _clean(items, ctx, active, depth + 1)
        out["items"] = cleaned or {"type": "STRING"}
    elif type_ == "OBJECT":
        raw = node.get("properties")
        props = {str(k): _clean(v, ctx, active, depth + 1) for k, v in raw.items()} if isinstance(raw, dict) else {}
        if not props:
            # a free-form map: Gemini rejects an OBJECT without properties, an untyped schema is "any"
            for key in ("type", "minProperties", "maxProperties"):
                out.pop(key, None)
            return
        out["properties"] = props
        required = node.get("required")
        if isinstance(required, list):
            kept = list(dict.fromkeys(r for r in required if isinstance(r, str) and r in props))
            if kept:
                out["required"] = kept


def _bounds(out: dict[str, Any], type_: str, node: dict[str, Any]) -> None:
    step = 1 if type_ == "INTEGER" else 0
    low, high = _num(node.get("minimum")), _num(node.get("maximum"))
    exclusive_low, exclusive_high = _num(node.get("exclusiveMinimum")), _num(node.get("exclusiveMaximum"))
    if exclusive_low is not None:
        bound = int(exclusive_low) + step if step and float(exclusive_low).is_integer() else exclusive_low
        low = bound if low is None else max(low, bound)
    if exclusive_high is not None:
        bound = int(exclusive_high) - step if step and float(exclusive_high).is_integer() else exclusive_high
        high = bound if high is None else min(high, bound)
    if low is not None:
        out["minimum"] = low
    if high is not None:
        out["maximum"] = high


def _num(value: Any) -> int | float | None:
    return value if _number(value) else None


_ORDER = (
    "type",
    "format",
    "description",
    "nullable",
    "enum",
    "properties",
    "required",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minProperties",
    "maxProperties",
    "anyOf",
)


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """A stable key order, so encoded bodies (and upstream prompt caches) do not churn."""
    return {key: node[key] for key in _ORDER if key in node}
