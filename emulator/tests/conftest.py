"""Fixtures for the emulator's own tests.

They build their own :class:`Emulator` (one per module) instead of using the pytest plugin's
fixtures; ``test_emulator_frontdoors.py`` checks the plugin itself, in a pytest run of its own.
As in the repository's other tests, no test may reach a host other than loopback.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from ai21 import AI21Client, AsyncAI21Client

from ai21_emulator import Emulator

_real_getaddrinfo = socket.getaddrinfo


def _is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode()
    if host in (None, "localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_loopback(host):
        raise RuntimeError(f"test tried to reach {host!r}: the emulator's tests stay on loopback")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> Iterator[None]:
    """Every name lookup for a non-loopback host (api.ai21.com included) fails at once."""
    socket.getaddrinfo = _guarded_getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = _real_getaddrinfo


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AI21_API_KEY", "AI21_API_HOST", "AI21_NUM_RETRIES", "AI21_TIMEOUT_SEC"):
        monkeypatch.delenv(name, raising=False)


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
