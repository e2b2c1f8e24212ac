"""Our two httpx clients, made as httpx clients are (``verify=``, or nothing), verify
certificates as httpx does: the package builds them with an ``SSLContext``, but they are httpx
clients and must not turn verification off for anyone who builds one without it."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from llama_index.llms.ai21._aiohttp import AiohttpClient
from llama_index.llms.ai21._urllib3 import Urllib3Client
from tests.transport.servers import Peer, Server, response


def answer(peer: Peer) -> None:
    while peer.read_request() is not None:
        peer.send(response())


def _post(kind: str, url: str, **kwargs: Any) -> int | type[BaseException]:
    """The status, or the class of what was raised."""
    try:
        if kind == "sync":
            with Urllib3Client(**kwargs) as client:
                return client.post(url, content=b"{}").status_code

        async def run() -> int:
            async with AiohttpClient(**kwargs) as client:
                return (await client.post(url, content=b"{}")).status_code

        return asyncio.run(run())
    except httpx.TransportError as exc:
        return type(exc)


def _tls_server(ca: trustme.CA) -> Server:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return Server(answer, tls=context)


KINDS = ["sync", "async"]
# httpx deprecates a path in verify= (an SSLContext is the new way) but still honours it.
honours_deprecated_paths = pytest.mark.filterwarnings(
    "ignore:`verify=<str>` is deprecated:DeprecationWarning",
)


@pytest.mark.parametrize("kind", KINDS)
def test_made_without_settings_they_refuse_an_unknown_authority(kind: str) -> None:
    with _tls_server(trustme.CA()) as server:
        assert _post(kind, server.url()) is httpx.ConnectError


@honours_deprecated_paths
@pytest.mark.parametrize("kind", KINDS)
def test_a_ca_bundle_path_is_trusted(kind: str, ca: trustme.CA, ca_file: Path) -> None:
    with _tls_server(ca) as server:
        assert _post(kind, server.url(), verify=str(ca_file)) == 200


@pytest.mark.parametrize(
    ("kind", "make"), [("sync", Urllib3Client), ("async", AiohttpClient)], ids=KINDS
)
def test_a_transport_given_is_used_as_is(kind: str, make: Callable[..., Any]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(299)

    if kind == "sync":
        with make(transport=httpx.MockTransport(handler)) as client:
            assert client.get("https://ai21.example/").status_code == 299
    else:

        async def run() -> int:
            async with make(transport=httpx.MockTransport(handler)) as client:
                return (await client.get("https://ai21.example/")).status_code

        assert asyncio.run(run()) == 299


@pytest.fixture(autouse=True)
def _no_ssl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("kind", KINDS)
def test_ssl_cert_file_is_honoured_as_by_httpx(
    kind: str, ca: trustme.CA, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A company CA given the usual way, in the environment, with no ``verify=``."""
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    with _tls_server(ca) as server:
        assert _post(kind, server.url()) == 200
