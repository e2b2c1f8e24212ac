"""httpx's proxy settings (``HTTP_PROXY``, ``NO_PROXY``, ...) hold for both of our clients:
httpx mounts its own proxy transports in front of ours."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import httpx
import pytest

from llama_index.llms.ai21 import AI21
from tests.transport.servers import Peer, Server, chat_answer, response
from tests.transport.test_differential import _chain


def proxy(peer: Peer) -> None:
    """A forward proxy that answers for the origin itself."""
    while peer.read_request() is not None:
        peer.send(response(body=chat_answer("via the proxy")))


@pytest.mark.parametrize("method", ["complete", "acomplete"])
def test_requests_go_through_the_proxy_from_the_environment(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Server(proxy) as server:
        monkeypatch.setenv("HTTP_PROXY", server.url())
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # A name only the proxy would resolve: the client must not look it up itself.
        llm = AI21(api_key="k", base_url="http://ai21.example/studio/v1", max_retries=0)
        if method == "complete":
            text = llm.complete("hi").text
        else:
            text = asyncio.run(llm.acomplete("hi")).text
        llm.close()  # its kept-alive connection would hold the proxy's thread
        assert text == "via the proxy"
        # The absolute form of the request line is what a client sends to a proxy.
        request_lines = [head.split(b"\r\n", 1)[0] for head in server.heads]
        assert request_lines == [b"POST http://ai21.example/studio/v1/chat/completions HTTP/1.1"]


def _proxy_authorization(head: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"proxy-authorization":
            return value.strip()
    return None


def _call(llm: AI21, method: str) -> str:
    if method == "complete":
        return llm.complete("hi").text
    return asyncio.run(llm.acomplete("hi")).text


@pytest.mark.parametrize("method", ["complete", "acomplete"])
def test_the_proxys_credentials_reach_it_on_every_request_as_httpx_sends_them(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Basic, UTF-8, on each forwarded request, and no warning. aiohttp alone encodes them as
    Latin-1, sends them on a forwarded request's new connection only (3.12), and warns that
    it takes them as a ``BasicAuth`` (3.14)."""
    with Server(proxy) as server:
        monkeypatch.setenv("HTTP_PROXY", f"http://usér:pässword@127.0.0.1:{server.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        llm = AI21(api_key="k", base_url="http://ai21.example/studio/v1", max_retries=0)
        assert [_call(llm, method) for _ in range(2)] == ["via the proxy"] * 2
        llm.close()
    expected = b"Basic " + base64.b64encode("usér:pässword".encode())
    assert [_proxy_authorization(head) for head in server.heads] == [expected] * 2


PASSWORD = "proxy-PASSWORD-123"


def refuses_the_tunnel(peer: Peer) -> None:
    """A proxy that wants other credentials: every CONNECT is answered 407."""
    if peer.read_request() is not None:
        peer.send(
            b"HTTP/1.1 407 Proxy Authentication Required\r\n"
            b'Proxy-Authenticate: Basic realm="proxy"\r\nContent-Length: 0\r\n\r\n'
        )


def _raised(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("no exception")  # pragma: no cover


@pytest.mark.parametrize("method", ["complete", "acomplete"])
def test_a_proxy_refusing_the_tunnel_fails_the_call_as_httpx_does_and_once(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain httpx raises ``ProxyError`` (not retried); aiohttp's own error used to come out
    as ``RemoteProtocolError``, retried. The proxy's password (in the URL, sent as
    ``Proxy-Authorization``) is in no exception of the chain."""
    url = "https://ai21.example/studio/v1"
    with Server(refuses_the_tunnel) as server:
        monkeypatch.setenv("HTTPS_PROXY", f"http://user:{PASSWORD}@127.0.0.1:{server.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        if method == "complete":
            with httpx.Client() as plain:
                expected = _raised(lambda: plain.post(url + "/chat/completions", json={}))
        else:

            async def plain_async() -> None:
                async with httpx.AsyncClient() as plain:
                    await plain.post(url + "/chat/completions", json={})

            expected = _raised(lambda: asyncio.run(plain_async()))
        llm = AI21(api_key="k", base_url=url, max_retries=2)
        raised = _raised(lambda: _call(llm, method))
        llm.close()
    assert type(expected) is httpx.ProxyError
    assert type(raised) is httpx.ProxyError
    assert str(raised) == str(expected) == "407 Proxy Authentication Required"
    request_lines = [head.split(b"\r\n", 1)[0] for head in server.heads]
    assert request_lines == [b"CONNECT ai21.example:443 HTTP/1.1"] * 2, "one each: no retry"
    token = base64.b64encode(f"user:{PASSWORD}".encode())
    assert [_proxy_authorization(head) for head in server.heads] == [b"Basic " + token] * 2
    for linked in _chain(raised):
        for text in (str(linked), repr(linked)):
            assert PASSWORD not in text, type(linked)
            assert token.decode() not in text, type(linked)
