"""JSON-schema helpers: find a schema embedded in a prompt, and fill a schema from the user's words.

Used for tool-call arguments (the tool's ``parameters`` schema) and for JSON mode
(``response_format={"type": "json_object"}``) when the prompt embeds a schema, as LlamaIndex's
structured-output prompts do ("Here's a JSON schema to follow: {...}").

Filling is deterministic: values are taken from the text in order (numbers for numeric fields,
quoted phrases / capitalised names / "<field> is <value>" for strings, mentioned enum members ...);
anything not found gets a type-correct default, so the result always validates against the
supported keywords (type, properties, required, items, enum, const, anyOf/oneOf/allOf, $ref to
``#/$defs``/``#/definitions``, minimum/maximum, minLength/maxLength, minItems/maxItems, format
date/date-time/email/uri). ``pattern`` is not honoured.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from . import _text

_MAX_DEPTH = 6

# Parameter names that want a place and are usually given as "in Paris" / "for New York".
_PLACE_WORDS = _text.word_set(
    "location city place country destination origin address region town where state area"
)
# Parameter names whose natural value is the user's whole request.
_FREE_TEXT_WORDS = _text.word_set(
    "query q question text input prompt message content search topic keyword keywords term "
    "terms request instruction instructions description summary answer body task"
)
_PREPOSITION_RE = re.compile(r"\b(?:in|at|for|to|from|near)\s+((?:[A-Z][\w'.-]*\s?)+)")
_TRUE_WORDS = _text.word_set("true yes on enable enabled")
_FALSE_WORDS = _text.word_set("false no off disable disabled")
# "<field> is X" / "<field>: X": a quoted phrase, a capitalised name, or one word.
_KEYED_VALUE = (
    r"\s*(?:is|=|:|called|named|of)\s+"
    r"(\"[^\"]+\"|'[^']+'|[A-Z][\w'.-]*(?:\s+[A-Z][\w'.-]*)*|[\w@.+-]+)"
)
_NEGATION_RE = re.compile(r"\b(?:not|no|don't|dont|without|never|disable)\b", re.IGNORECASE)


def find_schema(text: str) -> dict[str, Any] | None:
    """Return the first JSON object in ``text`` that looks like a JSON schema, else None.

    Accepts the brace-doubled form (``{{ ... }}``) that an unformatted LlamaIndex template leaves.
    """
    found = split_schema(text)
    return None if found is None else found[0]


def split_schema(text: str) -> tuple[dict[str, Any], str] | None:
    """Like :func:`find_schema`, also returning ``text`` without the schema and LlamaIndex's
    schema instructions ("Here's a JSON schema to follow:" ...)."""
    found = _scan_for_schema(text)
    if found is None and "{{" in text:
        text = text.replace("{{", "{").replace("}}", "}")
        found = _scan_for_schema(text)
    if found is None:
        return None
    schema, start, end = found
    rest = f"{text[:start]} {text[end:]}"
    for boilerplate in _SCHEMA_INSTRUCTIONS:
        rest = rest.replace(boilerplate, " ")
    return schema, rest


_SCHEMA_INSTRUCTIONS = (
    "Here's a JSON schema to follow:",
    "Output a valid JSON object but do not repeat the schema.",
)


def _scan_for_schema(text: str) -> tuple[dict[str, Any], int, int] | None:
    decoder = json.JSONDecoder()
    pos = text.find("{")
    while pos != -1:
        try:
            obj, end = decoder.raw_decode(text, pos)
        except ValueError:
            pos = text.find("{", pos + 1)
            continue
        if isinstance(obj, dict) and _looks_like_schema(obj):
            return obj, pos, end
        pos = text.find("{", end if end > pos else pos + 1)
    return None


def _looks_like_schema(obj: Mapping[str, Any]) -> bool:
    defs = "$defs" in obj or "definitions" in obj
    return (
        isinstance(obj.get("properties"), dict)
        or (obj.get("type") == "object" and defs)
        or (isinstance(obj.get("$ref"), str) and defs)  # a recursive class's: its root a $ref
    )


class Filler:
    """Fills JSON schemas from one piece of text, consuming mentioned values in order.

    Args:
        text: The user's words to take values from.
        fallback: The string used for free-text fields when nothing specific is found.
    """

    def __init__(self, text: str, fallback: str) -> None:
        self._text = text
        self._fallback = fallback
        self._numbers = _text.numbers(text)
        self._quoted = _text.quoted(text)
        self._names = _text.names(text)
        self._used: set[tuple[int, int]] = set()
        self._root: Mapping[str, Any] = {}

    def fill(self, schema: Mapping[str, Any]) -> Any:
        """Return a value for ``schema`` (the root; ``$ref``s resolve against it)."""
        self._root = schema
        return self._value(schema, "", 0)

    # -- dispatch ------------------------------------------------------------------------------

    def _resolve(self, schema: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in schema and seen < _MAX_DEPTH:
            seen += 1
            ref = schema["$ref"]
            target: Any = None
            if isinstance(ref, str) and ref.startswith("#/"):
                target = self._root
                for part in ref[2:].split("/"):
                    target = target.get(part) if isinstance(target, Mapping) else None
            if not isinstance(target, Mapping):
                return {}
            extra = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **extra}
        if isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for sub in schema["allOf"]:
                if isinstance(sub, Mapping):
                    for key, value in self._resolve(sub, depth).items():
                        if key == "properties" and isinstance(value, Mapping):
                            merged["properties"] = {**merged.get("properties", {}), **value}
                        elif key == "required" and isinstance(value, list):
                            merged["required"] = [*merged.get("required", []), *value]
                        else:
                            merged.setdefault(key, value)
            schema = merged
        return schema

    def _value(self, schema: Any, name: str, depth: int) -> Any:
        if not isinstance(schema, Mapping):
            return self._string({}, name)
        schema = self._resolve(schema, depth)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self._enum(schema["enum"], schema.get("default"))
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                resolved = [self._resolve(b, depth) for b in branches if isinstance(b, Mapping)]
                non_null = [b for b in resolved if b.get("type") != "null"] or resolved
                if non_null:
                    return self._value(non_null[0], name, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else ""
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind == "integer":
            return self._number(schema, name, integer=True)
        if kind == "number":
            return self._number(schema, name, integer=False)
        if kind == "boolean":
            return self._boolean(schema, name)
        if kind == "null":
            return None
        return self._string(schema, name)

    # -- containers ----------------------------------------------------------------------------

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties")
        props = props if isinstance(props, Mapping) else {}
        required = [r for r in schema.get("required", []) if isinstance(r, str)]
        out: dict[str, Any] = {}
        if depth >= _MAX_DEPTH:
            # Deep (possibly recursive) schemas: required fields only, filled minimally.
            for key in required:
                out[key] = self._minimal(props.get(key, {}), depth)
            return out
        for key, sub in props.items():
            out[key] = self._value(sub, key, depth + 1)
        for key in required:
            if key not in out:
                out[key] = self._string({}, key)
        return out

    def _minimal(self, schema: Any, depth: int) -> Any:
        if not isinstance(schema, Mapping):
            return ""
        schema = self._resolve(schema, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        if kind == "array":
            return []
        if kind == "object" or "properties" in schema:
            return {}
        if kind in ("integer", "number"):
            return self._clamp(0, schema, integer=kind == "integer")
        if kind == "boolean":
            return False
        if kind == "null" or any(
            isinstance(b, Mapping) and b.get("type") == "null"
            for b in schema.get("anyOf", []) or []
        ):
            return None
        return ""

    def _array(self, schema: Mapping[str, Any], name: str, depth: int) -> list[Any]:
        items = schema.get("items", {})
        items = self._resolve(items, depth) if isinstance(items, Mapping) else {}
        min_items = _int(schema.get("minItems"), 0)
        max_items = _int(schema.get("maxItems"), 1 << 30)
        kind = items.get("type")
        out: list[Any] = []
        if kind in ("integer", "number"):
            while len(out) < max_items:
                mention = self._take(self._numbers)
                if mention is None:
                    break
                out.append(self._clamp(mention.value, items, integer=kind == "integer"))
        elif kind == "string" and "enum" not in items and "format" not in items:
            while len(out) < max_items:
                mention = self._take(self._quoted) or self._take(self._names)
                if mention is None:
                    break
                out.append(self._fit_string(str(mention.value), items))
        if not out and max_items > 0:
            out.append(self._value(items, _singular(name), depth + 1))
        while len(out) < min_items:
            out.append(self._value(items, _singular(name), depth + 1))
        return out[:max_items] if max_items >= min_items else out

    # -- scalars -------------------------------------------------------------------------------

    def _enum(self, options: list[Any], default: Any) -> Any:
        """The option whose words the text mentions first, not yet taken by another field.

        Mentions are consumed in the order they occur, so an object with two fields of the
        same enum (a triplet's subject and object types) takes the first and second types the
        text names; an option's words match in any case and with spaces, ``_`` or ``-``
        between them, and a plural ending (``WORKS_AT``: "works at"; ``PERSON``: "persons").
        With every mention taken, the first mentioned again; with none, the default, else the
        first option.
        """
        mentions: list[tuple[int, int, int]] = []
        for index, option in enumerate(options):
            if isinstance(option, str) and option.strip():
                pattern = _option_pattern(option)
                mentions += [
                    (m.start(), -m.end(), index)
                    for m in re.finditer(pattern, self._text, re.IGNORECASE)
                ]
        mentions.sort()
        for start, negated_end, index in mentions:
            span = (start, -negated_end)
            if span not in self._used:
                self._used.add(span)
                return options[index]
        if mentions:
            return options[mentions[0][2]]
        if default in options:
            return default
        return options[0]

    def _number(self, schema: Mapping[str, Any], name: str, *, integer: bool) -> int | float:
        mention = self._keyed_number(name) or self._take(self._numbers)
        if mention is not None:
            return self._clamp(mention.value, schema, integer=integer)
        default = schema.get("default")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            return self._clamp(default, schema, integer=integer)
        return self._clamp(0, schema, integer=integer)

    def _keyed_number(self, name: str) -> _text.Mention | None:
        if not name:
            return None
        pattern = _name_pattern(name)
        for mention in self._numbers:
            if (mention.start, mention.end) in self._used:
                continue
            before = self._text[max(0, mention.start - 40) : mention.start]
            if re.search(pattern + r"\W{0,3}(?:\w+\W+){0,2}$", before, re.IGNORECASE):
                self._used.add((mention.start, mention.end))
                return mention
        return None

    @staticmethod
    def _clamp(value: Any, schema: Mapping[str, Any], *, integer: bool) -> int | float:
        number = float(value) if not isinstance(value, (int, float)) else value
        low = schema.get("minimum")
        high = schema.get("maximum")
        xlow = schema.get("exclusiveMinimum")
        xhigh = schema.get("exclusiveMaximum")
        step = 1 if integer else 1e-6
        if isinstance(low, (int, float)) and number < low:
            number = low
        if isinstance(xlow, (int, float)) and not isinstance(xlow, bool) and number <= xlow:
            number = xlow + step
        if isinstance(high, (int, float)) and number > high:
            number = high
        if isinstance(xhigh, (int, float)) and not isinstance(xhigh, bool) and number >= xhigh:
            number = xhigh - step
        if integer:
            return round(number)
        if isinstance(number, float) and number.is_integer() and abs(number) < 1e15:
            return int(number)
        return number

    def _boolean(self, schema: Mapping[str, Any], name: str) -> bool:
        words = _text.split_identifier(name)
        if words:
            pattern = _name_pattern(name) + r"\s*(?:is|=|:|to)?\s*(\w+)"
            match = re.search(pattern, self._text, re.IGNORECASE)
            if match:
                word = match.group(1).lower()
                if word in _TRUE_WORDS:
                    return True
                if word in _FALSE_WORDS:
                    return False
            located = re.search(_name_pattern(name), self._text, re.IGNORECASE)
            if located:
                before = self._text[max(0, located.start() - 30) : located.start()]
                return not _NEGATION_RE.search(before)
        default = schema.get("default")
        return default if isinstance(default, bool) else False

    def _string(self, schema: Mapping[str, Any], name: str) -> str:
        fmt = schema.get("format")
        if fmt in ("date", "date-time"):
            found = _text.dates(self._text)
            day = found[0] if found else "2024-01-01"
            return day if fmt == "date" else f"{day}T00:00:00Z"
        if fmt == "email":
            found = _text.emails(self._text)
            return found[0] if found else "user@example.com"
        if fmt in ("uri", "url"):
            found = _text.urls(self._text)
            return found[0] if found else "https://example.com"
        return self._fit_string(self._string_value(name), schema)

    def _string_value(self, name: str) -> str:
        words = set(_text.split_identifier(name))
        if name:
            keyed = re.search(
                _name_pattern(name) + _KEYED_VALUE,
                self._text,
            )
            if keyed and keyed.group(1).strip("\"'").lower() not in _text.STOPWORDS:
                return self._claim(keyed.group(1).strip("\"'"))
            if "name" in words:
                named = re.search(
                    r"\b(?:named|called)\s+([A-Z][\w'.-]*(?:\s+[A-Z][\w'.-]*)*)", self._text
                )
                if named:
                    return self._claim(named.group(1))
        if words & _PLACE_WORDS:
            place = _PREPOSITION_RE.search(self._text)
            if place:
                return self._claim(place.group(1))
        if words & _FREE_TEXT_WORDS:
            return self._fallback
        mention = self._take(self._quoted) or self._take(self._names)
        if mention is not None:
            return str(mention.value)
        return self._fallback

    def _claim(self, value: str) -> str:
        """Tidy a value picked by pattern and mark matching mentions as used."""
        value = value.strip().rstrip(".,;:!?")
        for mention in (*self._names, *self._quoted):
            if mention.value == value:
                self._used.add((mention.start, mention.end))
        return value

    @staticmethod
    def _fit_string(value: str, schema: Mapping[str, Any]) -> str:
        max_len = _int(schema.get("maxLength"), -1)
        min_len = _int(schema.get("minLength"), 0)
        if max_len >= 0 and len(value) > max_len:
            value = value[:max_len]
        if len(value) < min_len:
            value = value + "x" * (min_len - len(value))
        return value

    def _take(self, mentions: list[_text.Mention]) -> _text.Mention | None:
        for mention in mentions:
            span = (mention.start, mention.end)
            if span not in self._used:
                self._used.add(span)
                return mention
        return None


def _name_pattern(name: str) -> str:
    words = _text.split_identifier(name)
    if not words:
        return r"(?!x)x"  # matches nothing
    return r"\b" + r"[\s_-]?".join(re.escape(w) for w in words) + r"\b"


def _option_pattern(option: str) -> str:
    words = _text.split_identifier(option)
    if not words:
        return r"(?<!\w)" + re.escape(option) + r"(?!\w)"
    *head, last = (re.escape(w) for w in words)
    # the last word singular or plural: "place(s)", "branch(es)", "compan(y|ies)"
    plural = last[:-1] + "(?:y|ies)" if last.endswith("y") else last + "(?:e?s)?"
    return r"(?<!\w)" + r"[\s_-]*".join([*head, plural]) + r"(?!\w)"


def _singular(name: str) -> str:
    return name[:-1] if name.endswith("s") and len(name) > 3 else name


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
