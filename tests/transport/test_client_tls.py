"""The package's own TLS settings (``verify=``, ``cert=``, ``SSL_CERT_FILE``/``SSL_CERT_DIR``)
on a real TLS server, through both of the clients the package builds (httpx's own transport
for sync calls, httpx-aiohttp for async ones): one ``ssl_context()`` for both."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from llama_index.llms.ai21._http import HTTPClients, HTTPConfig, ssl_context
from tests.transport.servers import Peer, Server, response


def answer(peer: Peer) -> None:
    while peer.read_request() is not None:
        peer.send(response())


def _tls_server(ca: trustme.CA) -> Server:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return Server(answer, tls=context)


# ----------------------------------------------------- the package's own TLS settings


def _status_through_transport(url: str, verify: Any = True) -> int | type[BaseException]:
    """What ``AI21(verify=...)`` builds: clients that share one SSL context. Both paths must
    agree; the status (or the class of what was raised)."""
    clients = HTTPClients(HTTPConfig(base_url=url, timeout=5, headers={}, verify=verify))

    def sync() -> int | type[BaseException]:
        try:
            response = clients.send(clients.request(clients.sync_client(), "/x", {}))
            response.close()
            return response.status_code
        except httpx.TransportError as exc:
            return type(exc)
        finally:
            clients.close()

    async def run() -> int | type[BaseException]:
        try:
            request = clients.request(await clients.async_client(), "/x", {})
            response = await clients.asend(request)
            await response.aclose()
            return response.status_code
        except httpx.TransportError as exc:
            return type(exc)
        finally:
            await clients.aclose()

    outcome = sync()
    assert asyncio.run(run()) == outcome, "the async path agrees with the sync one"
    return outcome


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
    # SSL_CERT_FILE wins when both are set (httpx's order): only the one under test is set.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
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


def test_verify_false_accepts_any_certificate() -> None:
    with _tls_server(trustme.CA()) as server:  # an authority nobody trusts
        assert _status_through_transport(server.url(), verify=False) == 200


def test_verify_of_another_type_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"verify must be .*: 1$"):
        ssl_context(verify=1)
