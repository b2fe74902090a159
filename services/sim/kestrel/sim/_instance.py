"""A small JSON value that matches a schema: the sim's answer when structured output is asked for.

Not a generator of every valid instance, just enough for an SDK's ``.parse()`` (a Pydantic model,
a Zod schema) to accept simple schemas. Works on JSON Schema and on Gemini's ``Schema`` (upper-case
types) alike:

* ``const`` and ``enum`` give their (first) value; ``$ref`` to ``#/...`` is followed (a cycle gives
  ``null``); ``anyOf`` / ``oneOf`` take the first branch that is not ``null``; ``allOf`` merges.
* Objects fill every ``required`` property, and nothing else; arrays hold ``minItems`` items.
* Strings are ``"sim"`` (padded to ``minLength``, cut to ``maxLength``), or a fixed value of the
  ``format`` (``date-time``, ``date``, ``time``, ``email``, ``uri``, ``uuid``); numbers are
  ``minimum`` (or one past ``exclusiveMinimum``), else 0; booleans ``false``.
* A type list takes its first non-``null`` type; no type at all reads as an object when there are
  ``properties``, else ``null``. JSON mode (the empty schema ``{}``) is ``{}``.
"""

from __future__ import annotations

from typing import Any

_FORMATS = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00",
    "email": "sim@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_MAX_DEPTH = 32


def instance(schema: dict[str, Any]) -> Any:
    """A value matching ``schema``; ``{}`` for the empty schema (JSON mode: any object)."""
    if not schema:
        return {}
    return _value(schema, schema, frozenset(), 0)


def _value(node: Any, root: dict[str, Any], refs: frozenset[str], depth: int) -> Any:
    if not isinstance(node, dict) or depth > _MAX_DEPTH:
        return None
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in refs:
            return None
        return _value(_resolve(ref, root), root, refs | {ref}, depth + 1)
    if "const" in node:
        return node["const"]
    if isinstance(node.get("enum"), list) and node["enum"]:
        return node["enum"][0]
    for key in ("anyOf", "oneOf"):
        branches = [b for b in node.get(key) or [] if isinstance(b, dict) and _kind(b) != "null"]
        if branches:
            return _value(branches[0], root, refs, depth + 1)
    if isinstance(node.get("allOf"), list):
        return _value(_merge(node, root), root, refs, depth + 1)
    kind = _kind(node)
    if kind == "object":
        properties = node.get("properties") if isinstance(node.get("properties"), dict) else {}
        required = [name for name in node.get("required") or [] if isinstance(name, str)]
        return {name: _value(properties.get(name, {}), root, refs, depth + 1) for name in required}
    if kind == "array":
        count = node.get("minItems") if isinstance(node.get("minItems"), int) else 0
        return [_value(node.get("items", {}), root, refs, depth + 1) for _ in range(count)]
    if kind == "string":
        return _string(node)
    if kind in ("integer", "number"):
        return _number(node, kind)
    if kind == "boolean":
        return False
    return None


def _kind(node: dict[str, Any]) -> str:
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if isinstance(k, str) and k.lower() != "null"), "null")
    if isinstance(kind, str):
        return kind.lower()
    return "object" if isinstance(node.get("properties"), dict) else ""


def _resolve(ref: str, root: dict[str, Any]) -> Any:
    if not ref.startswith("#"):
        return None
    node: Any = root
    for piece in ref.lstrip("#").split("/"):
        if not piece:
            continue
        node = node.get(piece.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
    return node


def _merge(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """``allOf`` folded into one schema: properties and ``required`` unioned, other keys kept
    (a member that is a ``$ref`` is resolved, one level)."""
    merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
    for part in node["allOf"]:
        if isinstance(part, dict) and isinstance(part.get("$ref"), str):
            part = _resolve(part["$ref"], root)
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _string(node: dict[str, Any]) -> str:
    text = _FORMATS.get(str(node.get("format")), "sim")
    low = node.get("minLength")
    high = node.get("maxLength")
    if isinstance(low, int) and len(text) < low:
        text += "m" * (low - len(text))
    if isinstance(high, int) and len(text) > high:
        text = text[:high]
    return text


def _number(node: dict[str, Any], kind: str) -> int | float:
    low, exclusive, high = node.get("minimum"), node.get("exclusiveMinimum"), node.get("maximum")
    value: int | float = 0
    if _numeric(exclusive):
        value = exclusive + 1
    elif _numeric(low):
        value = low
    elif _numeric(high) and high < 0:
        value = high
    return int(value) if kind == "integer" and float(value).is_integer() else value


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
