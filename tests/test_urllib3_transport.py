"""The synchronous transport (httpx on urllib3's pools): httpx's errors, pooling, decoding."""

from __future__ import annotations

import gzip
import http.server
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import urllib3.util.connection
from urllib3 import exceptions as u3

from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21._urllib3 import Urllib3Client, Urllib3Transport, _as_httpx_errors

REQUEST = httpx.Request("POST", "http://127.0.0.1:9/studio/v1/chat/completions")


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (u3.NewConnectionError(None, "Connection refused"), httpx.ConnectError),
        (u3.NameResolutionError("ai21.invalid", None, OSError("no such host")), httpx.ConnectError),
        (u3.ConnectTimeoutError("connect timed out"), httpx.ConnectTimeout),
        (u3.ReadTimeoutError(None, "/x", "Read timed out."), httpx.ReadTimeout),
        (u3.SSLError("certificate verify failed"), httpx.ConnectError),
        (
            u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
            httpx.ReadError,
        ),
        (u3.ProtocolError("Response ended prematurely"), httpx.RemoteProtocolError),
        (u3.DecodeError("bad gzip"), httpx.TransportError),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "",
)
def test_urllib3_errors_become_the_httpx_errors_httpcore_raises(
    raised: Exception, expected: type[httpx.TransportError]
) -> None:
    with pytest.raises(expected) as caught, _as_httpx_errors(REQUEST):
        raise raised
    assert type(caught.value) is expected
    assert caught.value.request is REQUEST
    assert caught.value.__cause__ is raised


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(KeyError), _as_httpx_errors(REQUEST):
        raise KeyError("not a transport problem")


@pytest.fixture
def sockets_opened(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every TCP connection urllib3 opens from now on."""
    opened: list[object] = []
    real = urllib3.util.connection.create_connection

    def counting(*args: Any, **kwargs: Any) -> Any:
        sock = real(*args, **kwargs)
        opened.append(sock)
        return sock

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counting)
    return opened


def test_calls_reuse_one_connection(
    make_llm: Callable[..., AI21], sockets_opened: list[object]
) -> None:
    llm = make_llm()
    for _ in range(5):
        assert llm.complete("hi").text
    assert "".join(chunk.delta for chunk in llm.stream_complete("hi"))
    assert len(sockets_opened) == 1


def test_an_abandoned_stream_does_not_poison_the_next_call(
    make_llm: Callable[..., AI21], sockets_opened: list[object]
) -> None:
    llm = make_llm()
    prompt = "Tell me a story about a lighthouse keeper."
    full = "".join(chunk.delta for chunk in llm.stream_complete(prompt))
    for _ in range(3):
        stream = llm.stream_complete(prompt)
        assert next(stream).delta
        stream.close()  # the rest of the body is still on that connection
        # The next call must not read the old stream's leftovers as its answer.
        assert llm.complete("hi").text == make_llm().complete("hi").text
    assert "".join(chunk.delta for chunk in llm.stream_complete(prompt)) == full
    # The comparison instances open one connection each (3); this one opens its first,
    # then one more after each abandoned stream (its rest is unread), and no more.
    assert len(sockets_opened) == 3 + 4


class _GzipHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = gzip.compress(b'{"ok": true}')
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gzip_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GzipHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_content_encoding_is_decoded_once_by_httpx(gzip_server: str) -> None:
    with httpx.Client(transport=Urllib3Transport()) as client:
        response = client.get(gzip_server)
    assert response.json() == {"ok": True}
    assert response.headers["content-encoding"] == "gzip"


def test_proxies_from_the_environment_still_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    with Urllib3Client() as client:
        proxied = client._transport_for_url(httpx.URL("https://api.ai21.com/studio/v1"))
        direct = client._transport_for_url(httpx.URL("http://127.0.0.1:8000/studio/v1"))
    assert isinstance(proxied, httpx.HTTPTransport), "httpx's proxy transport, as without us"
    assert isinstance(direct, Urllib3Transport)
