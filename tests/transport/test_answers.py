"""What the transports hand the adapter, on scripted servers: stream pieces as they come
whatever the body's framing, a broken answer quoted but cut, and no socket left behind by
a stream the caller abandons."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
import zlib
from collections.abc import Iterator

import httpx
import psutil
import pytest

from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21.errors import MalformedResponseError, StreamInterruptedError
from tests.transport.servers import Peer, Server, chat_answer, response


@pytest.fixture
def echo() -> Iterator[Server]:
    def answer(peer: Peer) -> None:
        while peer.read_request() is not None:
            peer.send(response())

    with Server(answer) as server:
        yield server


def _event(content: str, finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }
    if finish is not None:
        chunk["usage"] = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    return b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n"


class _Pausing:
    """Sends the first event, then waits for the caller to have it before the rest."""

    def __init__(self, framing: str) -> None:
        self.framing = framing
        self.first_seen = threading.Event()
        self.waited_for_nothing = False

    def __call__(self, peer: Peer) -> None:
        peer.read_request()
        first, rest = _event("Hello"), _event(" there", "stop") + b"data: [DONE]\r\n\r\n"
        if self.framing == "chunked":
            head = response(length=False, headers=[("Transfer-Encoding", "chunked")], body=b"")
            peer.send(head + b"%x\r\n%s\r\n" % (len(first), first))
            self.waited_for_nothing = not self.first_seen.wait(5)
            peer.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest))
        else:  # the body ends when the server closes the connection
            head = response(length=False, headers=[("Connection", "close")], body=b"")
            peer.send(head + first)
            self.waited_for_nothing = not self.first_seen.wait(5)
            peer.send(rest)


@pytest.mark.parametrize("framing", ["chunked", "until close"])
@pytest.mark.parametrize("method", ["stream_complete", "astream_complete"])
def test_stream_pieces_reach_the_caller_as_they_arrive(framing: str, method: str) -> None:
    server_side = _Pausing(framing)
    with Server(server_side) as server:
        llm = AI21(api_key="k", base_url=server.url() + "/studio/v1", max_retries=0)
        deltas: list[str] = []

        def seen(delta: str) -> None:
            deltas.append(delta)
            server_side.first_seen.set()

        if method == "stream_complete":
            for chunk in llm.stream_complete("hi"):
                seen(chunk.delta)
        else:

            async def run() -> None:
                async for chunk in await llm.astream_complete("hi"):
                    seen(chunk.delta)

            asyncio.run(run())
    assert "".join(deltas) == "Hello there"
    assert not server_side.waited_for_nothing, "the first piece was held back until the rest"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("method", ["stream_complete", "astream_complete"])
def test_a_compressed_stream_is_inflated(encoding: str, method: str) -> None:
    """A server may compress an event stream (``Content-Encoding``); its events are read
    inflated, sync and async."""
    events = _event("Hello") + _event(" there", "stop") + b"data: [DONE]\r\n\r\n"
    packed = gzip.compress(events) if encoding == "gzip" else zlib.compress(events)

    def compressed(peer: Peer) -> None:
        peer.read_request()
        headers = [("Content-Type", "text/event-stream"), ("Content-Encoding", encoding)]
        peer.send(response(body=packed, headers=headers))

    with Server(compressed) as server:
        llm = AI21(api_key="k", base_url=server.url() + "/studio/v1", max_retries=0)
        if method == "stream_complete":
            deltas = [chunk.delta for chunk in llm.stream_complete("hi")]
        else:

            async def run() -> list[str | None]:
                return [chunk.delta async for chunk in await llm.astream_complete("hi")]

            deltas = asyncio.run(run())
    assert "".join(d or "" for d in deltas) == "Hello there"


def _read_stream(llm: AI21, method: str) -> None:
    """Read ``llm``'s stream to its end (``method``: "stream_complete" or "astream_complete")."""

    async def astream() -> None:
        async for _ in await llm.astream_complete("hi"):
            pass

    if method == "stream_complete":
        list(llm.stream_complete("hi"))
    else:
        asyncio.run(astream())


def _turns_corrupt(peer: Peer) -> None:
    """A gzip event stream whose compressed bytes turn to garbage after two events; a whole
    deflate body that does not inflate."""
    peer.read_request()
    if b'"stream":true' not in peer.last_body:
        body = zlib.compress(chat_answer("answered"))[:20] + b"\xff" * 50
        peer.send(response(body=body, headers=[("Content-Encoding", "deflate")]))
        return
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    first = packer.compress(_event("Hello") + _event(" there")) + packer.flush(zlib.Z_SYNC_FLUSH)
    headers = [("Content-Type", "text/event-stream"), ("Content-Encoding", "gzip")]
    peer.send(response(body=b"", length=False, headers=[*headers, ("Connection", "close")]))
    peer.send(first)
    time.sleep(0.1)  # the events arrive, and reach the caller, before the garbage
    peer.send(b"\xff" * 64)


@pytest.mark.parametrize("method", ["stream_complete", "astream_complete"])
def test_a_compressed_stream_that_turns_corrupt_is_interrupted_with_its_text(method: str) -> None:
    """Bytes that stop inflating mid-stream break the stream as a lost connection does:
    ``StreamInterruptedError`` with the text that arrived (httpx raises ``DecodingError``,
    which is no transport error; the HTTP layer raises ``RemoteProtocolError``)."""
    with Server(_turns_corrupt) as server:
        llm = AI21(api_key="k", base_url=server.url() + "/studio/v1", max_retries=1)
        with pytest.raises(StreamInterruptedError) as caught:
            _read_stream(llm, method)
    assert caught.value.partial_text == "Hello there"
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    assert "gzip stream does not inflate" in str(caught.value)
    assert server.requests == 1


@pytest.mark.parametrize("method", ["complete", "acomplete"])
def test_a_whole_body_that_does_not_inflate_is_httpx_decoding_error(method: str) -> None:
    """As ``response.read()`` raises it; not retried (the server would send the same)."""
    with Server(_turns_corrupt) as server:
        llm = AI21(api_key="k", base_url=server.url() + "/studio/v1", max_retries=1)
        call = llm.complete if method == "complete" else lambda p: asyncio.run(llm.acomplete(p))
        with pytest.raises(httpx.DecodingError, match="deflate body does not inflate"):
            call("hi")
    assert server.requests == 1


@pytest.mark.parametrize("method", ["complete", "acomplete"])
def test_a_body_that_is_not_json_is_quoted_cut_to_200_characters(method: str) -> None:
    page = "<html>" + "x" * 1000 + "</html>"

    def html_page(peer: Peer) -> None:
        peer.read_request()
        peer.send(response(body=page.encode(), headers=[("Connection", "close")]))

    with Server(html_page) as server:
        llm = AI21(api_key="k", base_url=server.url() + "/studio/v1", max_retries=0)
        call = llm.complete if method == "complete" else lambda p: asyncio.run(llm.acomplete(p))
        with pytest.raises(MalformedResponseError) as caught:
            call("hi")
    assert str(caught.value).endswith(f": {page[:200]!r}")


def _connections_to(port: int) -> int:
    return sum(
        1
        for conn in psutil.Process().net_connections("tcp")
        if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED
    )


@pytest.mark.parametrize("framing", ["chunked", "until close"])
def test_streams_left_mid_answer_leave_no_connection_open(framing: str) -> None:
    def endless(peer: Peer) -> None:
        peer.read_request()
        event = _event("more ")
        if framing == "chunked":
            head = response(length=False, headers=[("Transfer-Encoding", "chunked")], body=b"")
            peer.send(head + b"%x\r\n%s\r\n" % (len(event), event) * 50)
        else:
            peer.send(response(length=False, headers=[("Connection", "close")], body=b""))
            peer.send(event * 50)
        peer.hold(5)

    with Server(endless) as server:
        llm = AI21(api_key="k", base_url=server.url() + "/studio/v1", max_retries=0)
        streams = []
        for _ in range(3):
            stream = llm.stream_complete("hi")
            assert next(stream).delta == "more "
            stream.close()
            streams.append(stream)  # still referenced: closing must not wait for the GC
        assert server.connections == 3
        assert _connections_to(server.port) == 0
        assert isinstance(llm._http.sync_client(), httpx.Client)


@pytest.mark.parametrize("method", ["complete", "acomplete"])
def test_cookies_the_server_sets_are_not_sent_back(method: str) -> None:
    """The API authenticates by key: a cookie (a load balancer's, say) is not kept."""

    def sets_a_cookie(peer: Peer) -> None:
        while peer.read_request() is not None:
            body = chat_answer("ok")
            peer.send(response(body=body, headers=[("Set-Cookie", "lb=node-7; Path=/")]))

    with Server(sets_a_cookie) as server:
        # A name, not an address: aiohttp's own jar would keep no cookie of an IP address.
        llm = AI21(api_key="k", base_url=server.url("localhost") + "/studio/v1", max_retries=0)
        if method == "complete":
            for _ in range(2):
                llm.complete("hi")
        else:

            async def twice() -> None:
                for _ in range(2):
                    await llm.acomplete("hi")

            asyncio.run(twice())
        llm.close()
    assert len(server.heads) == 2
    assert all(b"\r\ncookie:" not in head.lower() for head in server.heads)


@pytest.mark.parametrize("method", ["complete", "acomplete"])
def test_an_answers_cookies_are_not_even_read(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx hands every answer to its cookie jar through a ``urllib.request.Request`` twin of
    the request, built even when the jar keeps nothing (45 µs a request): not here."""
    import urllib.request

    built: list[str] = []
    original = urllib.request.Request.__init__

    def counted(self: urllib.request.Request, url: str, *args: object, **kwargs: object) -> None:
        built.append(url)
        original(self, url, *args, **kwargs)  # type: ignore[arg-type]

    def answers(peer: Peer) -> None:
        while peer.read_request() is not None:
            peer.send(response(body=chat_answer("ok")))

    with Server(answers) as server:
        llm = AI21(api_key="k", base_url=server.url() + "/studio/v1", max_retries=0)
        monkeypatch.setattr(urllib.request.Request, "__init__", counted)
        if method == "complete":
            llm.complete("hi")
        else:
            asyncio.run(llm.acomplete("hi"))
        llm.close()
    assert built == []


def _story(peer: Peer) -> None:
    """Answers every request on the connection: a streamed story (chunked, ended) for a
    stream, a one-line chat answer otherwise."""
    while peer.read_request() is not None:
        if b'"stream":true' in peer.last_body:
            head = response(length=False, headers=[("Transfer-Encoding", "chunked")], body=b"")
            events = [_event(f"word{i} ") for i in range(20)]
            events += [_event("end", "stop"), b"data: [DONE]\r\n\r\n"]
            peer.send(head + b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events))
            peer.send(b"0\r\n\r\n")
        else:
            peer.send(response(body=chat_answer("short answer")))


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_calls_and_finished_streams_reuse_one_connection(kind: str) -> None:
    with Server(_story) as server:
        llm = AI21(api_key="k", base_url=server.url() + "/studio/v1", max_retries=0)

        async def run() -> list[str]:
            texts = [(await llm.acomplete("hi")).text for _ in range(3)]
            for _ in range(2):
                texts.append("".join([c.delta async for c in await llm.astream_complete("hi")]))
            return texts

        if kind == "sync":
            texts = [llm.complete("hi").text for _ in range(3)]
            texts += ["".join(c.delta for c in llm.stream_complete("hi")) for _ in range(2)]
        else:
            texts = asyncio.run(run())
        llm.close()
    assert texts[:3] == ["short answer"] * 3
    assert texts[3] == texts[4] != ""
    assert server.requests == 5
    assert server.connections == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_abandoned_stream_does_not_poison_the_next_call(kind: str) -> None:
    """The rest of an abandoned stream is never read as the next call's answer: its
    connection is dropped, or kept only once the body has ended."""
    with Server(_story) as server:
        llm = AI21(api_key="k", base_url=server.url() + "/studio/v1", max_retries=0)

        async def run() -> list[str]:
            answers = []
            for _ in range(3):
                stream = await llm.astream_complete("hi")
                assert (await anext(stream)).delta == "word0 "
                await stream.aclose()
                answers.append((await llm.acomplete("hi")).text)
            return answers

        if kind == "sync":
            answers = []
            for _ in range(3):
                stream = llm.stream_complete("hi")
                assert next(stream).delta == "word0 "
                stream.close()
                answers.append(llm.complete("hi").text)
        else:
            answers = asyncio.run(run())
        llm.close()
    assert answers == ["short answer"] * 3
    # At most one new connection per abandoned stream (on the async path aiohttp keeps the
    # connection when the rest, the body's end included, had arrived and been parsed already).
    assert server.connections <= 1 + 3
