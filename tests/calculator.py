"""The two tools the tool-calling and agent tests offer (the emulator picks them by name)."""

from __future__ import annotations

from llama_index.core.tools import FunctionTool


def multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    return a * b


def add(a: int, b: int) -> int:
    """Add two integers and return the sum."""
    return a + b


TOOLS = [
    FunctionTool.from_defaults(multiply, description="Multiply two integers."),
    FunctionTool.from_defaults(add, description="Add two integers."),
]
