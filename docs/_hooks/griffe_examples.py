"""Griffe extension for the API reference: ``Example:`` sections are example sections.

Google-style docstrings write both ``Example:`` and ``Examples:`` (Napoleon reads them alike), but
griffe knows only the plural: under ``Example:`` a doctest is Markdown text, and its ``>>>``
lines render as nested blockquotes. This extension renames the singular section heading, so
the doctests render as Python code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


def plural_examples(text: str) -> str:
    return _SINGULAR.sub(r"\1Examples:", text)


class ExampleSections(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plural_examples(obj.docstring.value)
