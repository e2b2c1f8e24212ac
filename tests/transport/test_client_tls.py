"""Our two httpx clients, made as httpx clients are (``verify=``, or nothing), verify
certificates as httpx does: the package builds them with an ``SSLContext``, but they are httpx
clients and must not turn verification off for anyone who builds one without it."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import urllib3

from llama_index.llms.ai21._aiohttp import AiohttpClient
from llama_index.llms.ai21._transport import ClientConfig, Transport, ssl_context
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


# ----------------------------------------------------- the package's own TLS settings


def _status_through_transport(url: str, verify: Any = True) -> int | type[BaseException]:
    """What ``AI21(verify=...)`` builds: a Transport whose clients share one SSL context."""
    transport = Transport(ClientConfig(base_url=url, timeout=5, headers={}, verify=verify))
    try:
        client = transport.sync_client()
        return client.send(transport._request(client, "/x", {})).status_code
    except httpx.TransportError as exc:
        return type(exc)
    finally:
        transport.close()


def _hashed_ca_dir(ca: trustme.CA, tmp_path: Path) -> Path:
    """A CA directory as OpenSSL looks it up (``<subject hash>.0``), for ``SSL_CERT_DIR``."""
    directory = tmp_path / "cas"
    directory.mkdir()
    pem = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(pem)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (directory / f"{subject_hash}.0").symlink_to(pem)
    return directory


def test_the_default_trusts_the_public_authorities_only() -> None:
    with _tls_server(trustme.CA()) as server:
        assert _status_through_transport(server.url()) is httpx.ConnectError


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_the_default_reads_the_ca_from_the_environment_as_httpx_does(
    variable: str,
    ca: trustme.CA,
    ca_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if shutil.which("openssl") is None and variable == "SSL_CERT_DIR":
        pytest.skip("needs the openssl command to hash the CA directory")
    where = ca_file if variable == "SSL_CERT_FILE" else _hashed_ca_dir(ca, tmp_path)
    monkeypatch.setenv(variable, str(where))
    with _tls_server(ca) as server:
        assert _status_through_transport(server.url()) == 200


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_verify_takes_a_ca_file_or_directory(
    kind: str, ca: trustme.CA, ca_file: Path, tmp_path: Path
) -> None:
    if shutil.which("openssl") is None and kind == "directory":
        pytest.skip("needs the openssl command to hash the CA directory")
    where = ca_file if kind == "file" else _hashed_ca_dir(ca, tmp_path)
    with _tls_server(ca) as server:
        assert _status_through_transport(server.url(), verify=str(where)) == 200


def test_verify_false_accepts_any_certificate_with_urllib3s_warning() -> None:
    with (
        _tls_server(trustme.CA()) as server,  # an authority nobody trusts
        pytest.warns(urllib3.exceptions.InsecureRequestWarning),
    ):
        assert _status_through_transport(server.url(), verify=False) == 200


def test_verify_of_another_type_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"verify must be .*: 1$"):
        ssl_context(verify=1)
