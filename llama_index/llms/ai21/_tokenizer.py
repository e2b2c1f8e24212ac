"""Lazy access to AI21's tokenizers (the optional ``tokenizer`` extra)."""

from __future__ import annotations

from typing import Any


def load_tokenizer(model: str) -> Any:
    """Return the tokenizer for ``model``."""
    raise NotImplementedError("the tokenizer is not wired up yet")
