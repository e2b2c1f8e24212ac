"""Fixtures for the emulator's own tests.

They build their own :class:`Emulator` (one per module) instead of relying on the pytest11 entry
point, which is only active once the package is pip-installed; ``test_frontdoors.py`` checks the
plugin fixtures themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from ai21 import AI21Client, AsyncAI21Client

from llama_index.llms.ai21.emulator import Emulator


@pytest.fixture(scope="module")
def emu_server() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def emu(emu_server: Emulator) -> Emulator:
    emu_server.reset()
    return emu_server


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, timeout=10) as client:
        yield client


@pytest.fixture
def client(emu: Emulator) -> Iterator[AI21Client]:
    with httpx.Client(timeout=10) as transport:
        yield AI21Client(api_key=emu.api_key, api_host=emu.base_url, http_client=transport)


@pytest.fixture
async def aclient(emu: Emulator) -> AsyncIterator[AsyncAI21Client]:
    async with httpx.AsyncClient(timeout=10) as transport:
        yield AsyncAI21Client(api_key=emu.api_key, api_host=emu.base_url, http_client=transport)
