"""Importing the package changes no process-wide setting: in particular the ai21 SDK's
stderr handler on httpx's logger is undone when this package is what imports the SDK."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import logging, os
httpx_logger = logging.getLogger("httpx")
{before}
from llama_index.llms.ai21 import AI21
AI21(api_key="k")
print(len(httpx_logger.handlers), httpx_logger.level)
"""


def _probe(before: str = "", **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(before=before)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "", **env},
        timeout=120,
    )
    return result.stdout.strip()


@pytest.mark.slow  # fresh interpreters
def test_importing_the_package_leaves_httpx_logging_alone() -> None:
    assert _probe() == "0 0"
    assert _probe(AI21_LOG_LEVEL="debug") == "0 0", "nor its level"


@pytest.mark.slow
def test_an_sdk_imported_first_keeps_what_it_did() -> None:
    assert _probe("import ai21") == "1 0"  # not this package's to undo
