"""MkDocs hook: the API reference's table of ``AI21``'s constructor arguments, made from the code.

``docs/reference.md`` holds a marker that becomes one row per constructor argument: the
arguments ``AI21.__init__`` names itself (``api_key``), then every pydantic field, AI21's own
first and LlamaIndex's ``LLM`` fields after them, each with its type, its default and its
description. Generated, so a new field shows up without anyone editing the page.
"""

from __future__ import annotations

import enum
import html
import inspect
import re
from typing import Any

MARKER = "<!-- ai21-constructor-arguments -->"
PAGE = "reference.md"

_QUALIFIED = re.compile(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)")


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    text = str(annotation).replace("NoneType", "None")
    text = _QUALIFIED.sub(r"\1", text)  # typing.Optional[x.y.Z] -> Optional[Z]
    optional = re.fullmatch(r"Optional\[(.*)\]", text)
    return f"{optional[1]} | None" if optional else text


def _shown(value: Any) -> str:
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, (str, int, float, bool, dict, list, tuple)) or value is None:
        return repr(value)
    return f"{type(value).__name__}()"


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return _shown(field.default_factory())
    return _shown(field.default)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    # HTML, not backticks: a `|` inside a code span would end the table cell, and the escape
    # `\|` would show as such.
    return f"<code>{html.escape(' '.join(text.split())).replace('|', '&#124;')}</code>"


def _init_arguments(cls: type) -> list[tuple[str, str, str, str]]:
    """The arguments ``__init__`` declares itself, described by its docstring's ``Args:``
    entry or, failing that, its summary line."""
    doc = inspect.getdoc(cls.__init__) or ""  # type: ignore[misc]
    summary = doc.split("\n\n", 1)[0]
    rows = []
    for name, parameter in inspect.signature(cls).parameters.items():
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        if name in cls.model_fields:  # type: ignore[attr-defined]
            continue
        described = re.search(rf"^\s*{name}(?: \(.*?\))?: (.+(?:\n\s{{8,}}.+)*)", doc, re.M)
        annotation = parameter.annotation
        shown_type = annotation if isinstance(annotation, str) else _type_name(annotation)
        rows.append(
            (name, shown_type, _shown(parameter.default), described[1] if described else summary)
        )
    return rows


def table(cls: type) -> str:
    """The Markdown table of ``cls``'s constructor arguments."""
    fields = cls.model_fields  # type: ignore[attr-defined]
    framework = {
        name
        for base in cls.__mro__
        if base.__module__.startswith("llama_index.core.")
        for name in vars(base).get("__annotations__", {})
    }
    rows = _init_arguments(cls)
    for inherited in (False, True):
        for name, field in fields.items():
            if (name in framework) != inherited:
                continue
            description = field.description or ""
            if inherited:
                description = f"From LlamaIndex's `LLM`. {description}".strip()
            rows.append((name, _type_name(field.annotation), _default(field), description))
    lines = ["| argument | type | default | description |", "| --- | --- | --- | --- |"]
    for name, type_name, default, description in rows:
        lines.append(f"| `{name}` | {_code(type_name)} | {_code(default)} | {_cell(description)} |")
    return "\n".join(lines) + "\n"


def render(page_markdown: str) -> str:
    from llama_index.llms.ai21 import AI21

    return page_markdown.replace(MARKER, table(AI21))


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    return render(markdown)
