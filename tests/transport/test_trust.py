"""Issue "Trust no server", the HTTP layer's part, on scripted loopback servers: the
credentials of a ``base_url`` sent as httpx sends them and shown nowhere, pool exhaustion
reported as httpx reports it, bodies (error bodies, answers, streams, discovery's answers) that
cost bounded memory however large they inflate, whatever their coding, and discovery requests
that end at their deadline however slowly the server sends."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import gzip
import json
import logging
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import brotli
import httpx
import pytest
from ai21.errors import AI21ServerError

from llama_index.llms.ai21 import AI21, _discovery, _http
from llama_index.llms.ai21._discovery import MAX_ANSWER_BYTES, Ask
from llama_index.llms.ai21._http import (
    ANSWER_LIMIT,
    ERROR_BODY_LIMIT,
    INFLATED_PIECE,
    HTTPClients,
    HTTPConfig,
)
from llama_index.llms.ai21.errors import MalformedResponseError
from tests.transport.servers import Peer, Server, chat_answer, response

PATH = "/v1/chat/completions"
USER, PASSWORD = "proxy-user", "pa:ss@w0rd-SECRET"
ENCODED = PASSWORD.replace(":", "%3A").replace("@", "%40")  # as it is written in a URL
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def _event(content: str, finish: str | None = None) -> bytes:
    chunk: dict[str, Any] = {
        "id": "chatcmpl-1",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }
    if finish is not None:
        chunk["usage"] = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _answers(peer: Peer) -> None:
    """A chat answer, or a stream of one, as the request asks."""
    while peer.read_request() is not None:
        if b'"stream":true' in peer.last_body:
            body = _event("streamed") + _event("", "stop") + b"data: [DONE]\n\n"
            peer.send(response(body=body, headers=[("Content-Type", "text/event-stream")]))
        else:
            peer.send(response(body=chat_answer("answered")))


def _authorization(head: bytes) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"authorization":
            return value.strip().decode()
    return None


def _text(llm: AI21, kind: str) -> str:
    if kind == "chat":
        return llm.complete("hi").text
    if kind == "stream":
        return "".join(chunk.delta for chunk in llm.stream_complete("hi"))

    async def run() -> str:
        if kind == "achat":
            return (await llm.acomplete("hi")).text
        return "".join([chunk.delta async for chunk in await llm.astream_complete("hi")])

    return asyncio.run(run())


KINDS = ["chat", "stream", "achat", "astream"]


@pytest.fixture
def server() -> Iterator[Server]:
    with Server(_answers) as running:
        yield running


@pytest.mark.parametrize("kind", KINDS)
def test_credentials_in_the_url_go_as_basic_auth_on_every_call(kind: str, server: Server) -> None:
    base_url = f"http://{USER}:{ENCODED}@127.0.0.1:{server.port}/v1"
    llm = AI21(model="jamba-mini", base_url=base_url, max_retries=0)
    assert _text(llm, kind) in {"answered", "streamed"}
    llm.close()
    # Every request, the server discovery's included (a generic /v1 URL asks the server what
    # it is on first need), carries them.
    assert {_authorization(head) for head in server.heads} == {BASIC}
    assert any(b"/chat/completions" in head.split(b"\r\n")[0] for head in server.heads)
    # The URL on the wire has no credentials.
    assert all(PASSWORD.encode() not in head for head in server.heads)


@pytest.mark.parametrize("kind", KINDS)
def test_credentials_go_through_the_users_own_clients_too(kind: str, server: Server) -> None:
    base_url = f"http://{USER}:{ENCODED}@127.0.0.1:{server.port}/v1"

    async def run() -> None:
        async with httpx.AsyncClient() as theirs:
            llm = AI21(
                model="jamba-mini", base_url=base_url, max_retries=0, async_http_client=theirs
            )
            if kind == "achat":
                await llm.acomplete("hi")
            else:
                [chunk async for chunk in await llm.astream_complete("hi")]

    if kind in {"chat", "stream"}:
        with httpx.Client() as mine:
            llm = AI21(model="jamba-mini", base_url=base_url, max_retries=0, http_client=mine)
            _text(llm, kind)
    else:
        asyncio.run(run())
    # Every request, the server discovery's included (a generic /v1 URL asks the server what
    # it is on first need), carries them.
    assert {_authorization(head) for head in server.heads} == {BASIC}
    assert any(b"/chat/completions" in head.split(b"\r\n")[0] for head in server.heads)


def _refuses(peer: Peer) -> None:
    """401 for every request, quoting nothing of it."""
    while peer.read_request() is not None:
        peer.send(response(401, body=b'{"detail":"no"}', headers=[("Connection", "close")]))
        return


@pytest.mark.parametrize("kind", KINDS)
def test_the_password_is_in_no_error_repr_or_log_record_of_the_http_layer(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    encoded = ENCODED
    with Server(_refuses) as server:
        llm = AI21(
            model="jamba-mini",
            base_url=f"http://{USER}:{encoded}@127.0.0.1:{server.port}/v1",
            max_retries=0,
        )
        with pytest.raises(Exception) as caught:  # noqa: PT011 - any error: its text is checked
            _text(llm, kind)
        clients = llm._http
        shown = [repr(clients.config), str(clients.config), repr(caught.value), str(caught.value)]
        shown += [caplog.text]
        chained: BaseException | None = caught.value
        while chained is not None:
            shown += [repr(chained), str(chained)]
            chained = chained.__cause__ or chained.__context__
    for text in shown:
        assert PASSWORD not in text
        assert encoded not in text
    assert "@" not in clients.config.base_url


# --------------------------------------------------------------------- pool exhaustion


def _holds(peer: Peer) -> None:
    if peer.read_request() is not None:
        peer.hold(60)  # until the server stops: a slow machine must not free a connection


@pytest.mark.slow  # a hundred connections, on both paths and httpx's
def test_pool_exhaustion_is_a_pool_timeout_on_both_paths_as_with_httpx() -> None:
    """httpx's pool holds 100 connections; the 101st request waits for one, up to the pool
    timeout. aiohttp reports that wait's end as it reports a connect timeout. (Under
    httpx-aiohttp the pool timeout also bounds connecting, as aiohttp's ``connect`` timeout
    does: the listener's backlog is large enough here that no connect waits on a SYN retry.)"""
    timeout = httpx.Timeout(10.0, pool=0.3)

    async def all_held(server: Server) -> None:
        """Until the server holds all 100 requests (a loaded machine takes its time)."""
        deadline = time.monotonic() + 30
        while server.requests < 100 and time.monotonic() < deadline:  # noqa: ASYNC110 - a thread's count
            await asyncio.sleep(0.05)

    def oracle(server: Server) -> type[BaseException]:
        url = server.url() + PATH

        async def run() -> type[BaseException]:
            async with httpx.AsyncClient(timeout=timeout) as client:
                holders = [asyncio.create_task(client.post(url, content=b"{}")) for _ in range(100)]
                await all_held(server)
                try:
                    await client.post(url, content=b"{}")
                except httpx.TransportError as exc:
                    return type(exc)
                finally:
                    for holder in holders:
                        holder.cancel()
                    await asyncio.gather(*holders, return_exceptions=True)
            raise AssertionError("answered")  # pragma: no cover

        return asyncio.run(run())

    def ours_async(server: Server) -> type[BaseException]:
        url = server.url() + PATH

        async def run() -> type[BaseException]:
            clients = HTTPClients(HTTPConfig(base_url=url, timeout=timeout, headers={}))
            client = await clients.async_client()
            holders = [
                asyncio.create_task(clients.asend(clients.request(client, "", {})))
                for _ in range(100)
            ]
            await all_held(server)
            try:
                await clients.asend(clients.request(client, "", {}))
            except httpx.TransportError as exc:
                return type(exc)
            finally:
                for holder in holders:
                    holder.cancel()
                await asyncio.gather(*holders, return_exceptions=True)
                await clients.aclose()
            raise AssertionError("answered")  # pragma: no cover

        return asyncio.run(run())

    def ours_sync(server: Server) -> type[BaseException]:
        url = server.url() + PATH
        clients = HTTPClients(HTTPConfig(base_url=url, timeout=timeout, headers={}))

        def hold() -> None:
            with contextlib.suppress(httpx.TransportError):
                clients.send(clients.request(clients.sync_client(), "", {})).read()

        holders = [threading.Thread(target=hold, daemon=True) for _ in range(100)]
        for holder in holders:
            holder.start()
        asyncio.run(all_held(server))
        try:
            clients.send(clients.request(clients.sync_client(), "", {}))
        except httpx.TransportError as exc:
            return type(exc)
        finally:
            clients.close()
        raise AssertionError("answered")  # pragma: no cover

    outcomes: list[Callable[[Server], type[BaseException]]] = [oracle, ours_async, ours_sync]
    seen = []
    for outcome in outcomes:
        with Server(_holds) as server:
            seen.append(outcome(server))
    assert seen == [httpx.PoolTimeout] * 3


# ------------------------------------------------------------------ bounded bodies

KIND_OF = {
    "complete": "chat",
    "stream_complete": "stream",
    "acomplete": "achat",
    "astream_complete": "astream",
}
INFLATED = 64 * 1024 * 1024  # what the small compressed bodies below inflate to


@functools.cache
def _packed(encoding: str, plain: bytes, size: int) -> bytes:
    """``plain`` followed by ``x`` up to ``size`` bytes, compressed as ``encoding`` says
    (64 MiB: about 64 KiB of gzip, 100 bytes of brotli); made once a session."""
    body = plain + b"x" * (size - len(plain))
    if encoding == "br":
        return bytes(brotli.compress(body, quality=5))
    for coding in reversed(encoding.split(", ")):  # "gzip, gzip": gzip applied twice
        body = gzip.compress(body, compresslevel=9) if coding == "gzip" else zlib.compress(body)
    return body


def _encoded(status: int, body: bytes, encoding: str) -> Callable[[Peer], None]:
    def handler(peer: Peer) -> None:
        while peer.read_request() is not None:
            peer.send(response(status, body=body, headers=[("Content-Encoding", encoding)]))

    return handler


def _inflating(
    status: int, start: bytes = b"<html>", encoding: str = "gzip", size: int = INFLATED
) -> Callable[[Peer], None]:
    return _encoded(status, _packed(encoding, start, size), encoding)


def _peak(call: Callable[[], Any]) -> tuple[int, BaseException]:
    tracemalloc.start()
    try:
        try:
            call()
        except Exception as exc:
            error = exc
        else:  # pragma: no cover
            raise AssertionError("no error")
        return tracemalloc.get_traced_memory()[1], error
    finally:
        tracemalloc.stop()


def test_every_request_accepts_gzip_and_deflate_only() -> None:
    """httpx would ask for br (and zstd) too when brotli (zstandard) is installed, and decode
    them without bound; the HTTP layer decodes gzip and deflate only, a bounded step at a
    time. Every request says so, discovery's and those on a user's own client included."""
    with Server(_answers) as server:
        url = server.url() + "/v1"  # a generic server: asked what it is first
        for kind in KINDS:
            _text(AI21(model="jamba-mini", base_url=url, max_retries=0), kind)
        with httpx.Client() as theirs:
            _text(AI21(model="jamba-mini", base_url=url, http_client=theirs), "chat")
    heads = [head.lower() for head in server.heads]
    assert any(b"get /v1/models" in head for head in heads)
    assert all(b"\r\naccept-encoding: gzip, deflate\r\n" in head + b"\r\n" for head in heads)


@pytest.mark.slow  # 64 MiB of inflation each (a third of a second): out of the inner loop
@pytest.mark.parametrize("encoding", ["gzip", "br"])
@pytest.mark.parametrize("method", ["complete", "acomplete", "stream_complete", "astream_complete"])
def test_an_error_body_that_inflates_to_64_mib_costs_a_bounded_prefix(
    method: str, encoding: str
) -> None:
    """The SDK's exception quotes a bounded prefix of the body: the rest is never inflated.
    A coding the request did not accept (br) is not decoded at all: the exception says so."""
    with Server(_inflating(500, encoding=encoding)) as server:
        llm = AI21(api_key="k", base_url=server.url() + "/studio/v1", max_retries=0)

        def call() -> None:
            _text(llm, KIND_OF[method])

        peak, error = _peak(call)
        llm.close()
    assert isinstance(error, AI21ServerError)
    if encoding == "br":
        assert "encoded as 'br', which the request did not accept" in str(error)
        assert "x" not in str(error.details)
    assert str(error).count("x") <= ERROR_BODY_LIMIT
    assert peak < INFLATED / 16, f"peak {peak / 2**20:.1f} MiB for a 64 MiB body"


@pytest.mark.slow  # 16 MiB sent and read each (a third of a second): out of the inner loop
@pytest.mark.parametrize("start", [b"<html>", b'{"answer": '])
@pytest.mark.parametrize("method", ["complete", "acomplete"])
def test_a_200_body_of_16_mib_that_is_not_json_costs_no_more_than_httpx_reading_it(
    method: str, start: bytes
) -> None:
    """The body must be read whole to parse it (httpx's own ``read()`` costs about twice its
    size), but saying it is not JSON costs no more than that: the error quotes the first 200
    characters, and no parser keeps (or makes) a text copy of the whole body. (16 MiB: half
    of ``ANSWER_LIMIT``, past which a body is not read whole; see below.)"""
    size = ANSWER_LIMIT // 2
    with Server(_inflating(200, start, size=size)) as server:
        url = server.url() + "/studio/v1"
        oracle, _ = _peak(lambda: httpx.post(url + "/chat/completions", content=b"{}").json())
        llm = AI21(api_key="k", base_url=url, max_retries=0)
        peak, error = _peak(lambda: _text(llm, "chat" if method == "complete" else "achat"))
        llm.close()
    assert "not valid JSON" in str(error)
    assert str(error).endswith("x" * 180 + "'")  # 200 characters quoted
    assert peak < 1.5 * oracle, f"{peak / 2**20:.0f} MiB; httpx: {oracle / 2**20:.0f} MiB"


LIMIT = 1024 * 1024  # ANSWER_LIMIT in the tests below: the bound shows against 8 MiB bodies


@pytest.fixture
def one_mib_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_http, "ANSWER_LIMIT", LIMIT)


def _endless(peer: Peer) -> None:
    """A 200 answer whose chunked body goes on (8 MiB, then a close without its end)."""
    peer.read_request()
    head = response(length=False, headers=[("Transfer-Encoding", "chunked")], body=b"")
    peer.send(head + b'7\r\n{"a":"x\r\n')
    block = b"%x\r\n%s\r\n" % (INFLATED_PIECE, b"x" * INFLATED_PIECE)
    for _ in range(128):
        try:
            peer.sock.sendall(block)
        except OSError:
            return


@pytest.mark.usefixtures("one_mib_answers")
@pytest.mark.parametrize("encoding", ["identity", "gzip", "deflate"])
@pytest.mark.parametrize("method", ["complete", "acomplete"])
def test_a_200_answer_larger_than_the_limit_is_not_read_further(method: str, encoding: str) -> None:
    """An answer that goes on (uncompressed), or inflates, past ``ANSWER_LIMIT`` fails naming
    the limit, having read and inflated no more than that."""
    if encoding == "identity":
        handler = _endless
    else:
        handler = _inflating(200, b'{"a":"', encoding, 8 * LIMIT)
    with Server(handler) as server:
        llm = AI21(api_key="k", base_url=server.url() + "/studio/v1", max_retries=0)
        peak, error = _peak(lambda: _text(llm, KIND_OF[method]))
        llm.close()
    assert isinstance(error, MalformedResponseError)
    assert str(error) == (
        "malformed AI21 response: the body is larger than 1 MiB; the rest was not read"
    )
    assert peak < 3 * LIMIT, f"peak {peak / 2**20:.1f} MiB; limit 1 MiB"


@pytest.mark.usefixtures("one_mib_answers")
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
@pytest.mark.parametrize("method", ["complete", "acomplete"])
def test_an_answer_of_exactly_the_limit_is_read(method: str, encoding: str) -> None:
    answer = chat_answer("answered")
    body = answer + b" " * (LIMIT - len(answer))  # JSON may end in spaces
    headers = [] if encoding == "identity" else [("Content-Encoding", encoding)]
    packed = body if encoding == "identity" else gzip.compress(body)

    def handler(peer: Peer) -> None:
        while peer.read_request() is not None:
            peer.send(response(body=packed, headers=headers))

    with Server(handler) as server:
        llm = AI21(api_key="k", base_url=server.url() + "/studio/v1", max_retries=0)
        assert _text(llm, KIND_OF[method]) == "answered"
        llm.close()


@pytest.mark.parametrize("encoding", ["br", "gzip, gzip", "compress"])
@pytest.mark.parametrize("method", ["complete", "acomplete", "stream_complete", "astream_complete"])
def test_an_answer_in_a_coding_the_request_did_not_accept_is_not_read(
    method: str, encoding: str
) -> None:
    """A brotli bomb (8 MiB in 30 bytes), gzip applied twice (8 MiB in 8 KiB), an unknown
    coding: never decoded, and not retried (the server would answer the same)."""
    body = b'{"a":"' if encoding == "compress" else _packed(encoding, b'{"a":"', 8 * LIMIT)
    with Server(_encoded(200, body, encoding)) as server:
        llm = AI21(api_key="k", base_url=server.url() + "/studio/v1", max_retries=2)
        peak, error = _peak(lambda: _text(llm, KIND_OF[method]))
        llm.close()
    assert isinstance(error, MalformedResponseError)
    stream = "stream" if "stream" in method else "response"
    assert str(error) == (
        f"malformed AI21 {stream}: the body is encoded as {encoding!r}, which the request did "
        "not accept (Accept-Encoding: gzip, deflate); it was not read"
    )
    assert server.requests == 1
    assert peak < LIMIT, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("method", ["stream_complete", "astream_complete"])
def test_a_compressed_stream_is_inflated_a_bounded_step_at_a_time(method: str) -> None:
    """8 MiB of keep-alive comments in 8 KiB of gzip, in one piece: inflated a piece at a
    time as the stream is read (httpx inflates each piece it reads whole)."""
    comments = (b": " + b"k" * 1021 + b"\n") * (8 * 1024)
    events = _event("Hello") + comments + _event(" there", "stop") + b"data: [DONE]\n\n"
    packed = gzip.compress(events)

    def handler(peer: Peer) -> None:
        peer.read_request()
        headers = [("Content-Type", "text/event-stream"), ("Content-Encoding", "gzip")]
        peer.send(response(body=packed, headers=headers))

    with Server(handler) as server:
        llm = AI21(api_key="k", base_url=server.url() + "/studio/v1", max_retries=0)
        tracemalloc.start()
        try:
            text = _text(llm, KIND_OF[method])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        llm.close()
    assert text == "Hello there"
    assert peak < 2 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB for 8 MiB in one piece"


# ------------------------------------------------------------------ bounded discovery


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    return caplog


def _listing(encoding: str) -> Callable[[Peer], None]:
    """``GET /v1/models`` answers a body that inflates to 16 MiB; the chat is answered."""
    packed = _packed(encoding, b'{"data":[{"id":"', 4 * MAX_ANSWER_BYTES)

    def handler(peer: Peer) -> None:
        while (head := peer.read_request()) is not None:
            if b" /v1/models " in head:
                peer.send(response(body=packed, headers=[("Content-Encoding", encoding)]))
            else:
                peer.send(response(body=chat_answer("answered")))

    return handler


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_a_discovery_answer_that_inflates_to_16_mib_costs_no_more_than_its_limit(
    encoding: str, warnings: pytest.LogCaptureFixture
) -> None:
    """Discovery reads at most ``MAX_ANSWER_BYTES`` (4 MiB) of an answer, inflated no further
    (httpx inflates each piece it reads whole), and no br at all; then falls back, warning
    once."""
    with Server(_listing(encoding)) as server:
        llm = AI21(base_url=server.url() + "/v1", model="ai21labs/AI21-Jamba2-3B")
        tracemalloc.start()
        try:
            window = llm.metadata.context_window
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        llm.close()
    assert window == 256_000  # the model table's
    assert peak < 2 * MAX_ANSWER_BYTES, f"peak {peak / 2**20:.1f} MiB for a 16 MiB answer"
    [record] = warnings.records
    reason = "larger than 4 MiB" if encoding == "gzip" else "encoded as 'br'"
    assert reason in record.getMessage()


DEADLINE = 0.25  # PROBE_TIMEOUT in the tests below (the read timeout too: 5 drips)


class _Dripping:
    """``GET /v1/models`` answered a byte every 50 ms (each read well within the read timeout)
    for ``seconds``, in its headers or its body; anything else answered."""

    def __init__(self, phase: str, seconds: float = 10.0) -> None:
        self.phase = phase
        self.seconds = seconds

    def __call__(self, peer: Peer) -> None:
        while (head := peer.read_request()) is not None:
            if b" /v1/models " not in head:
                peer.send(response(body=chat_answer("answered")))
                continue
            if self.phase == "body":
                peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            deadline = time.monotonic() + self.seconds
            while time.monotonic() < deadline and not peer.server.stopped.is_set():
                peer.send(b"H" if self.phase == "headers" else b" ")
                time.sleep(0.05)
            return


@pytest.fixture
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_discovery, "PROBE_TIMEOUT", DEADLINE)


@pytest.mark.usefixtures("short_deadline")
@pytest.mark.parametrize("phase", ["headers", "body"])
@pytest.mark.parametrize("method", ["complete", "acomplete"])
def test_a_discovery_answer_sent_a_byte_at_a_time_ends_at_its_deadline(
    method: str, phase: str, warnings: pytest.LogCaptureFixture
) -> None:
    """The first call waits for discovery, which gets ``PROBE_TIMEOUT`` for each request as a
    whole (docs/laptop.md: "Each answer is read with at most 10 seconds"), not per read: a
    server that sends a byte now and then is no answer once that is up."""
    with Server(_Dripping(phase)) as server:
        llm = AI21(
            base_url=server.url() + "/v1", model="ai21labs/AI21-Jamba2-3B", deployment="vllm"
        )
        started = time.monotonic()
        assert _text(llm, KIND_OF[method]) == "answered"
        took = time.monotonic() - started
        llm.close()
    assert took < DEADLINE + 4, f"{took:.1f} s; the server drips for 10 s"
    [record] = warnings.records
    assert f"no complete answer within {DEADLINE:g} s" in record.getMessage()


@pytest.mark.usefixtures("short_deadline")
def test_a_discovery_request_on_a_pooled_connection_ends_at_its_deadline_too() -> None:
    """A connection from the pool has no connect event to learn its socket from: the request
    goes on a new connection instead, whose socket the deadline can shut."""
    with Server(_Dripping("headers")) as server, httpx.Client() as client:
        base_url = server.url() + "/v1"
        assert client.get(base_url + "/chat/completions").status_code == 200  # now pooled
        ask = Ask(client, base_url, {}, timeout=120)
        started = time.monotonic()
        assert ask.get("/models") is None
        took = time.monotonic() - started
        assert server.connections == 2
    assert took < DEADLINE + 4, f"{took:.1f} s; the server drips for 10 s"
    assert ask.failures == [f"GET {base_url}/models: no complete answer within {DEADLINE:g} s"]
