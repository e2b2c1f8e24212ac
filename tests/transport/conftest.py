"""Fixtures for the transport tests: certificates, and a name that does not resolve."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

UNKNOWN_HOST = "nonexistent.invalid"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority; only clients told about it trust it."""
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def unknown_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Looking up ``nonexistent.invalid`` fails as DNS would (``socket.gaierror``), on this
    machine: no lookup leaves it. Other names still meet the suite-wide guard. Yields the
    names looked up."""
    guarded = socket.getaddrinfo
    looked_up: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name == UNKNOWN_HOST:
            looked_up.append(name)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return guarded(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up
