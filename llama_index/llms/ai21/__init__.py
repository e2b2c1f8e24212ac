"""AI21 Labs models (Jamba, legacy Jurassic-2) for LlamaIndex.

Names are imported lazily: the package's pytest plugin (the emulator fixtures) is loaded in
every pytest run of every project that installs this package, and should not pull in
llama-index-core for that.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import TYPE_CHECKING, Any


def _import_sdk_without_its_httpx_handler() -> None:
    """Import the ``ai21`` SDK, undoing what its import does to httpx's logger.

    On first import the SDK (4.x, ``ai21/logger.py`` ``setup_logger``) adds a stderr handler
    to the ``httpx`` logger, and with ``AI21_LOG_LEVEL`` set also changes that logger's level:
    every httpx request line would then print (twice, with the application's own handler) in
    any program that imports this package. When this package is what first imports the SDK,
    httpx's logger is put back as it was; the SDK's own ``ai21`` logger is left alone, and so
    is an SDK imported before this package (docs/errors-and-retries.md, "Logging").
    """
    if "ai21" in sys.modules:
        return
    httpx_logger = logging.getLogger("httpx")
    handlers, level = list(httpx_logger.handlers), httpx_logger.level
    importlib.import_module("ai21")
    for handler in httpx_logger.handlers:
        if handler not in handlers:
            httpx_logger.removeHandler(handler)
    httpx_logger.setLevel(level)


_import_sdk_without_its_httpx_handler()

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
