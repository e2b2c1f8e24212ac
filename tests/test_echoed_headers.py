"""A credential the user put in a header, quoted back by a server that echoes the request (many
proxies do), is masked in the exception the caller gets, wherever the header came from: the
user's own client (its headers, its ``auth=``), ``default_headers``, a call's ``extra_headers``;
sync and async, streamed or not (an error status, an error event before or after the first
piece, a broken answer), and in what discovery says (log records and its ``ValueError``).

(``test_echoed_secrets.py`` covers the instance's own key and URL password.)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from llama_index.llms.ai21 import AI21
from tests.calls import arg_for, call
from tests.transport.servers import ECHO_KINDS, Peer, Server, echoing, exception_texts, response

MODEL = "ai21labs/AI21-Jamba2-3B"
GATEWAY = "gw-key-5e1d9c7a31"  # the user's client's X-Gateway-Key
SESSION = "sess-4b8f0e2d66"  # a cookie of the user's client
TEAM_TOKEN = "team-tok-9a3c71be"  # default_headers' X-Team-Token
PROXY = "proxy-pw-2f6e8d41"  # a call's Proxy-Authorization: Basic, its password
PROXY_BASIC = base64.b64encode(f"me:{PROXY}".encode()).decode()
BEARER = "bearer-7d2a4c9e0f"  # a call's Authorization: Bearer (over the key)
CLIENT_PASSWORD = "client-pw-8c4e2a6b"  # the user's client's auth=("me", ...)
CLIENT_BASIC = base64.b64encode(f"me:{CLIENT_PASSWORD}".encode()).decode()


ROUTINE = ("host:", "accept", "connection:", "user-agent:", "content-")


def _headers(head: bytes) -> str:
    """Every header of the request but the HTTP layer's own, on one line (a broken answer's
    error quotes the first 200 characters: the cut falls inside the last credential; a broken
    stream's error quotes its first line only)."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    return " | ".join(line for line in lines if not line.lower().startswith(ROUTINE))


@contextlib.contextmanager
def _async_client(**settings: Any) -> Iterator[httpx.AsyncClient]:
    """The user's own async client, closed at the end (each call runs its own event loop)."""
    client = httpx.AsyncClient(**settings)
    try:
        yield client
    finally:
        asyncio.run(client.aclose())


@pytest.fixture(params=ECHO_KINDS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with Server(echoing(request.param, _headers)) as running:
        yield running


def _quoted_whole(caught: BaseException) -> bool:
    """Whether the error quotes the server's answer whole (a broken answer's is cut)."""
    return "malformed" not in str(caught)


@pytest.mark.parametrize("method", ["chat", "achat", "stream_chat", "astream_chat"])
def test_a_credential_header_the_server_quotes_back_is_masked(server: Server, method: str) -> None:
    mine = {"X-Gateway-Key": GATEWAY, "Cookie": f"theme=dark; session={SESSION}"}
    extra = {"Proxy-Authorization": f"Basic {PROXY_BASIC}", "Authorization": f"Bearer {BEARER}"}
    with httpx.Client(headers=mine) as sync, _async_client(headers=mine) as not_sync:
        llm = AI21(
            base_url=server.url() + "/v1",
            model=MODEL,
            max_retries=0,
            default_headers={"X-Team-Token": TEAM_TOKEN, "X-Team": "search"},
            http_client=sync,
            async_http_client=not_sync,
        )
        with pytest.raises(Exception) as caught:  # noqa: PT011 - each case raises its own class
            call(llm, method, arg_for(method), extra_headers=extra)
    sent = server.heads[-1].decode()
    shown = exception_texts(caught.value)
    for secret in (GATEWAY, SESSION, TEAM_TOKEN, PROXY_BASIC, BEARER):
        assert secret in sent  # went over the wire
        assert secret not in shown
    # The server's quote reaches the caller, with what is not secret still readable.
    # (A value under 8 characters, "dark", is not taken for a credential.)
    assert "X-Gateway-Key: [secure] | Cookie: theme=dark; session=[secure]" in shown
    if _quoted_whole(caught.value):
        assert (
            "X-Team-Token: [secure] | X-Team: search | Proxy-Authorization: Basic [secure]" in shown
        )
        assert "Authorization: Bearer [secure]" in shown


@pytest.mark.parametrize("method", ["chat", "achat", "stream_chat", "astream_chat"])
def test_the_basic_auth_of_the_users_own_client_is_masked(server: Server, method: str) -> None:
    """httpx writes a client's ``auth=`` header as it sends the request: it is masked as sent."""
    auth = ("me", CLIENT_PASSWORD)
    with httpx.Client(auth=auth) as sync, _async_client(auth=auth) as not_sync:
        llm = AI21(
            base_url=server.url() + "/v1",
            model=MODEL,
            max_retries=0,
            http_client=sync,
            async_http_client=not_sync,
        )
        with pytest.raises(Exception) as caught:  # noqa: PT011
            call(llm, method, arg_for(method))
    assert f"Authorization: Basic {CLIENT_BASIC}" in server.heads[-1].decode()
    shown = exception_texts(caught.value)
    assert CLIENT_BASIC not in shown
    assert CLIENT_BASIC[:4] not in shown  # not even the piece before a cut
    assert "Authorization: Basic [secure]" in shown


def _answers_models_with_an_error(padding: int) -> Callable[[Peer], None]:
    """LM Studio's way (HTTP 200 with {"error": ...}), quoting the request's X-Gateway-Key
    after ``padding`` characters."""

    def serve(peer: Peer) -> None:
        while (head := peer.read_request()) is not None:
            sent = dict(
                line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line
            )
            said = "x" * padding + f" {sent.get('X-Gateway-Key')} was refused"
            peer.send(response(body=json.dumps({"error": said}).encode()))

    return serve


# The discovery failure quotes the first 200 characters of what the server said: the cut
# falls after the key (whole), or inside it.
@pytest.mark.parametrize("padding", [10, 190])
def test_what_discovery_says_masks_a_credential_header_the_server_quoted(
    padding: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with (
        Server(_answers_models_with_an_error(padding)) as server,
        httpx.Client(headers={"X-Gateway-Key": GATEWAY}) as mine,
    ):
        llm = AI21(base_url=server.url() + "/v1", max_retries=0, http_client=mine)
        with pytest.raises(ValueError, match="could not be asked which model") as caught:
            llm.complete("hi")  # no model given: the server is asked which it serves
        assert any(GATEWAY.encode() in head for head in server.heads)
    texts = [str(caught.value), caplog.text]
    assert "error body" in caplog.text  # the server's words are shown
    for text in texts:
        assert "[secure]" in text
        assert GATEWAY[:4] not in text  # not even the piece before a cut


def _echoing_as_php(peer: Peer) -> None:
    """A 401 whose JSON body quotes the request's headers as PHP's ``json_encode`` writes a
    string by default: each ``/`` as ``\\/``."""
    while (head := peer.read_request()) is not None:
        said = json.dumps({"detail": head.decode("latin-1")}).replace("/", "\\/")
        peer.send(response(401, body=said.encode(), headers=[("Connection", "close")]))
        return


def test_a_credential_quoted_in_json_with_escaped_slashes_is_masked() -> None:
    slashed = "gw/key/5e1d+9c7a31=="  # as a base64 token may be
    with Server(_echoing_as_php) as server, httpx.Client(headers={"X-Api-Key": slashed}) as mine:
        llm = AI21(base_url=server.url() + "/v1", model=MODEL, max_retries=0, http_client=mine)
        with pytest.raises(Exception) as caught:  # noqa: PT011 (the SDK's 401)
            llm.chat(arg_for("chat"))
    assert f"X-Api-Key: {slashed}" in server.heads[-1].decode()
    shown = exception_texts(caught.value)
    assert "X-Api-Key: [secure]" in shown
    assert "5e1d" not in shown


def test_a_credential_cut_by_the_error_body_limit_shows_no_piece() -> None:
    """An error body is kept to its first 64 KiB: a credential the cut falls inside is masked
    from its start (its first 8 characters would be shown)."""

    def echo_past_the_limit(peer: Peer) -> None:
        while (head := peer.read_request()) is not None:
            said = next(line for line in head.split(b"\r\n") if line.startswith(b"X-Gateway"))
            body = b"x" * (64 * 1024 - 23) + b" " + said + b" was refused"
            peer.send(response(401, body=body, headers=[("Connection", "close")]))
            return

    with (
        Server(echo_past_the_limit) as server,
        httpx.Client(headers={"X-Gateway-Key": GATEWAY}) as mine,
    ):
        llm = AI21(base_url=server.url() + "/v1", model=MODEL, max_retries=0, http_client=mine)
        with pytest.raises(Exception) as caught:  # noqa: PT011 (the SDK's 401)
            llm.chat(arg_for("chat"))
    shown = exception_texts(caught.value)
    assert shown.count("x" * 1000) >= 1  # the body is quoted, up to the limit
    assert GATEWAY[:7] not in shown
    assert "x X-Gateway-Key: [secure]" in shown  # the first 7 characters, masked


ENV_PROXY_PASSWORD = "env-proxy-pw-3b7f19c2"
ENV_PROXY_BASIC = base64.b64encode(f"me:{ENV_PROXY_PASSWORD}".encode()).decode()


def _headers_and_password(head: bytes) -> str:
    """The request's headers, and the password of its ``Proxy-Authorization``, decoded (as a
    proxy that checked it could say it)."""
    said = _headers(head)
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(": ")
        if name.lower() == "proxy-authorization":
            said = base64.b64decode(value.split()[1]).decode().partition(":")[2] + " " + said
    return said


@pytest.mark.parametrize("kind", ECHO_KINDS)
@pytest.mark.parametrize("method", ["chat", "achat", "stream_chat", "astream_chat"])
def test_the_credentials_of_a_proxy_from_the_environment_are_masked_when_it_quotes_them(
    kind: str, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HTTP_PROXY``'s credentials are sent as ``Proxy-Authorization`` by httpx (on the sync
    path, below the request the package sees); a forward proxy that quotes them back, as the
    header or the password it decoded, gets them masked, on the package's clients and on a
    user's own (which read the environment too)."""
    with Server(echoing(kind, _headers_and_password)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://me:{ENV_PROXY_PASSWORD}@127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        for own_client in (False, True):
            with httpx.Client() as sync, _async_client() as not_sync:
                clients = {"http_client": sync, "async_http_client": not_sync} if own_client else {}
                # A name only the proxy would resolve: nothing leaves this machine.
                llm = AI21(
                    base_url="http://jamba.example/v1", model=MODEL, max_retries=0, **clients
                )
                with pytest.raises(Exception) as caught:  # noqa: PT011 - each kind its class
                    call(llm, method, arg_for(method))
                llm.close()
            sent = proxy.heads[-1].decode().lower()
            assert f"proxy-authorization: basic {ENV_PROXY_BASIC}".lower() in sent
            shown = exception_texts(caught.value)
            assert ENV_PROXY_PASSWORD not in shown, (own_client, shown)
            assert ENV_PROXY_BASIC not in shown, (own_client, shown)
            assert "[secure]" in shown
