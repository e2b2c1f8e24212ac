"""AI21 Labs models (Jamba, legacy Jurassic-2) for LlamaIndex."""

from __future__ import annotations

import importlib
import logging
import sys


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

# After the SDK's first import is tidied up (above): base.py imports the SDK.
from llama_index.llms.ai21.base import AI21  # noqa: E402
from llama_index.llms.ai21.errors import (  # noqa: E402
    AI21ResponseError,
    HostedAPIRetiredError,
    MalformedResponseError,
    StreamInterruptedError,
)

__all__ = [
    "AI21",
    "AI21ResponseError",
    "HostedAPIRetiredError",
    "MalformedResponseError",
    "StreamInterruptedError",
]
