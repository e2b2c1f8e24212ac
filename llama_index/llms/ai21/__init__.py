"""AI21 Labs models (Jamba, legacy Jurassic-2) for LlamaIndex.

Names are imported lazily: the package's pytest plugin (the emulator fixtures) is loaded in
every pytest run of every project that installs this package, and should not pull in
llama-index-core for that.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llama_index.llms.ai21.base import AI21
    from llama_index.llms.ai21.errors import (
        AI21ResponseError,
        MalformedResponseError,
        StreamInterruptedError,
    )

__all__ = ["AI21", "AI21ResponseError", "MalformedResponseError", "StreamInterruptedError"]

_HOMES = {
    "AI21": "llama_index.llms.ai21.base",
    "AI21ResponseError": "llama_index.llms.ai21.errors",
    "MalformedResponseError": "llama_index.llms.ai21.errors",
    "StreamInterruptedError": "llama_index.llms.ai21.errors",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
