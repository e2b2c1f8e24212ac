"""A tiny JSON-schema checker for the emulator tests (jsonschema is not a dependency).

Supports what the emulator claims to honour: type, properties, required, items, enum, const,
anyOf/oneOf/allOf, $ref into #/$defs or #/definitions, minimum/maximum, min/maxLength,
min/maxItems.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def problems(
    value: Any, schema: Mapping[str, Any], root: Mapping[str, Any] | None = None
) -> list[str]:
    """Every way ``value`` fails ``schema`` (empty if it conforms)."""
    root = schema if root is None else root
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"][2:].split("/"):
            target = target[part]
        return problems(value, target, root)
    found: list[str] = []
    for sub in schema.get("allOf", []):
        found += problems(value, sub, root)
    for key in ("anyOf", "oneOf"):
        if key in schema and all(problems(value, sub, root) for sub in schema[key]):
            found.append(f"{value!r} matches no {key} branch")
    if "const" in schema and value != schema["const"]:
        found.append(f"{value!r} != const {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{value!r} not in {schema['enum']!r}")
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        ok = any(
            isinstance(value, _TYPES[k])
            and not (k in ("integer", "number") and isinstance(value, bool))
            for k in kinds
        )
        if not ok:
            return [*found, f"{value!r} is not {kinds}"]
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"missing required {name!r}")
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                found += problems(value[name], sub, root)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            found.append("too few items")
        if len(value) > schema.get("maxItems", 1 << 30):
            found.append("too many items")
        if isinstance(schema.get("items"), Mapping):
            for item in value:
                found += problems(item, schema["items"], root)
    if isinstance(value, str) and not (
        schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", 1 << 30)
    ):
        found.append(f"bad length for {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{value} < minimum")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{value} > maximum")
    return found
