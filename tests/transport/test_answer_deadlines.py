"""An answer that stands still ends, though bytes keep coming. httpx's read timeout bounds each
read, so a server (or a proxy in front of a stalled model) that sends only keep-alive comments,
empty events, a line a byte at a time, or a whole answer a few bytes at a time, held a call for
as long as it liked. ``timeout`` now bounds the wait for a stream's answer
(``_stream.IdleWatch``) and for a whole body after its headers (``_http._BodyDeadline``) too; a
slow stream, and the caller's own time between chunks, are never cut. Scripted servers, sync
and async."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage

from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21.errors import StreamInterruptedError
from tests.transport.servers import Peer, Server, response

SSE_HEAD = response(
    body=b"", length=False, headers=[("Content-Type", "text/event-stream"), ("Connection", "close")]
)
TIMEOUT = 0.2
SERVER_GIVES_UP = 8.0  # seconds: the handlers stop sending then (the test has failed by then)


def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    return b"data: " + json.dumps({"id": "c", "choices": [choice]}).encode() + b"\n\n"


ROLE = event({"role": "assistant", "content": ""})
KEEP_ALIVE = b": keep-alive\n\n"
EMPTY_EVENT = event({})
END = event({}, "stop") + b"data: [DONE]\n\n"
FILLERS = {
    "keep-alive comments": (KEEP_ALIVE, 0.02),
    "empty events, as fast as they go": (EMPTY_EVENT * 50, 0.0),
    "a line a byte at a time": (b"x", 0.02),
}


def chat_request(peer: Peer) -> bool:
    """Read requests until the chat request (True), answering others (the package asking for
    the server's models) 404; False if the client went away."""
    while (head := peer.read_request()) is not None:
        if head.startswith(b"POST /v1/chat/completions "):
            return True
        peer.send(response(404, b'{"detail":"Not Found"}'))
    return False


def stalling(first: bytes, filler: bytes, every: float) -> Callable[[Peer], None]:
    """Sends ``first`` (a line drip starts its line), then ``filler`` every ``every`` seconds
    until the client leaves."""

    def handler(peer: Peer) -> None:
        if not chat_request(peer):
            return
        head = first + (b'data: {"choices' if filler == b"x" else b"")
        peer.sock.sendall(SSE_HEAD + head)
        started = time.monotonic()
        try:
            while time.monotonic() - started < SERVER_GIVES_UP and not peer.server.stopped.is_set():
                peer.sock.sendall(filler)
                time.sleep(every)
        except OSError:
            pass  # the client left: what the test expects

    return handler


def scripted(*steps: bytes | float) -> Callable[[Peer], None]:
    """Sends each bytes step, sleeps each float step, for every request."""

    def handler(peer: Peer) -> None:
        if not chat_request(peer):
            return
        peer.send(SSE_HEAD)
        for step in steps:
            if isinstance(step, float):
                time.sleep(step)
            else:
                peer.send(step)

    return handler


def llm_for(server: Server, **kwargs: Any) -> AI21:
    settings: dict[str, Any] = {"timeout": TIMEOUT, "max_retries": 0, **kwargs}
    return AI21(base_url=server.url() + "/v1", model="m", deployment="vllm", **settings)


def deltas(llm: AI21, method: str, pause: float = 0.0) -> list[str]:
    """The stream's deltas; ``pause``: the caller's own time after each chunk."""
    messages = [ChatMessage(role="user", content="hi")]
    if method == "stream_chat":
        seen = []
        for chunk in llm.stream_chat(messages):
            seen.append(chunk.delta or "")
            time.sleep(pause)
        return seen

    async def run() -> list[str]:
        seen = []
        async for chunk in await llm.astream_chat(messages):
            seen.append(chunk.delta or "")
            await asyncio.sleep(pause)
        return seen

    return asyncio.run(run())


def read_timeout_of(handler: Callable[[Peer], None], call: Callable[[AI21], object]) -> str:
    """The message of the ``httpx.ReadTimeout`` that ``call`` raises on ``handler``'s server,
    checked to name the request and to come within a few timeouts (the servers go on 8 s)."""
    with Server(handler) as server:
        llm = llm_for(server)
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout) as caught:
            call(llm)
        took = time.monotonic() - started
        llm.close()
    assert caught.value.request.url == server.url() + "/v1/chat/completions"
    assert took < 4 * TIMEOUT + 1.0, f"held {took:.1f} s"
    return str(caught.value)


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
@pytest.mark.parametrize("filler", FILLERS)
def test_a_stream_with_no_answer_ends_with_a_read_timeout(method: str, filler: str) -> None:
    message = read_timeout_of(stalling(ROLE, *FILLERS[filler]), lambda llm: deltas(llm, method))
    assert message == (
        f"no part of the answer arrived for {TIMEOUT:g} s: the server sent only keep-alives, "
        "empty events or part of a line (timeout= bounds this wait as well as each read)"
    )


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
def test_an_answer_that_stops_mid_way_is_an_interrupted_stream(method: str) -> None:
    with Server(stalling(ROLE + event({"content": "Hi"}), KEEP_ALIVE, 0.02)) as server:
        llm = llm_for(server)
        with pytest.raises(StreamInterruptedError) as caught:
            deltas(llm, method)
        llm.close()
    assert caught.value.partial_text == "Hi"
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert "2 characters of the answer had arrived" in str(caught.value)
    assert f"no part of the answer arrived for {TIMEOUT:g} s" in str(caught.value)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
def test_a_slow_answer_between_keep_alives_is_never_cut(method: str) -> None:
    # Eight tokens 0.15 s apart (1.2 s in all, six times the timeout), keep-alives between.
    steps: list[bytes | float] = [ROLE]
    for n in range(8):
        steps += [event({"content": f"t{n} "}), *[KEEP_ALIVE, 0.05] * 3]
    with Server(scripted(*steps, END)) as server:
        llm = llm_for(server)
        seen = deltas(llm, method)
        llm.close()
    assert "".join(seen) == "".join(f"t{n} " for n in range(8))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
def test_the_callers_own_time_between_chunks_does_not_count(method: str) -> None:
    # The caller spends three timeouts on each chunk while keep-alives wait for it.
    steps = (ROLE, event({"content": "Hi"}), KEEP_ALIVE, 0.05, KEEP_ALIVE, event({"content": "!"}))
    with Server(scripted(*steps, END)) as server:
        llm = llm_for(server)
        seen = deltas(llm, method, pause=3 * TIMEOUT)
        llm.close()
    assert "".join(seen) == "Hi!"


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
def test_before_the_first_chunk_it_is_retried_as_a_silent_read_is(method: str) -> None:
    chats: list[int] = []

    def handler(peer: Peer) -> None:  # the first chat request stalls, the next is answered
        if not chat_request(peer):
            return
        chats.append(1)
        if len(chats) == 1:
            peer.sock.sendall(SSE_HEAD + ROLE)
            started = time.monotonic()
            with contextlib.suppress(OSError):  # until the client leaves
                while time.monotonic() - started < SERVER_GIVES_UP:
                    peer.sock.sendall(KEEP_ALIVE)
                    if peer.server.stopped.wait(0.02):
                        break
        else:
            peer.send(SSE_HEAD + ROLE + event({"content": "Hi"}) + END)

    with Server(handler) as server:
        llm = llm_for(server, max_retries=1)
        started = time.monotonic()
        seen = deltas(llm, method)
        took = time.monotonic() - started
        llm.close()
    assert "".join(seen) == "Hi"
    assert len(chats) == 2
    assert took < 3.0, f"retried after {took:.1f} s, not after about the timeout"


def trickling(status: int, body: bytes, every: float = 0.02) -> Callable[[Peer], None]:
    """Answers the chat request with its headers at once, then ``body`` a byte at a time."""

    def handler(peer: Peer) -> None:
        if not chat_request(peer):
            return
        head = response(status, body)[: -len(body)]
        started = time.monotonic()
        with contextlib.suppress(OSError):  # until the client leaves
            peer.sock.sendall(head)
            for byte in body:
                if time.monotonic() - started > SERVER_GIVES_UP or peer.server.stopped.wait(every):
                    return
                peer.sock.sendall(bytes([byte]))

    return handler


ANSWER = json.dumps(
    {
        "id": "c",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
        ],
    }
).encode()
ERROR = json.dumps({"object": "error", "message": "x" * 200, "code": 400}).encode()


def answer(llm: AI21, method: str) -> str | None:
    messages = [ChatMessage(role="user", content="hi")]
    if method == "chat":
        return llm.chat(messages).message.content
    return asyncio.run(llm.achat(messages)).message.content


@pytest.mark.parametrize("method", ["chat", "achat"])
@pytest.mark.parametrize(("status", "body"), [(200, ANSWER), (400, ERROR)], ids=["200", "400"])
def test_a_whole_answer_sent_a_byte_at_a_time_ends_with_a_read_timeout(
    method: str, status: int, body: bytes
) -> None:
    message = read_timeout_of(trickling(status, body), lambda llm: answer(llm, method))
    assert message == (
        f"the answer's body did not arrive within {TIMEOUT:g} s of its headers: the server "
        "sent it a piece at a time (timeout= bounds this as well as each read)"
    )


@pytest.mark.parametrize("method", ["chat", "achat"])
def test_a_whole_answer_that_comes_in_time_is_read(method: str) -> None:
    # The body in four pieces over half the timeout.
    pieces = [
        ANSWER[i : i + len(ANSWER) // 4 + 1] for i in range(0, len(ANSWER), len(ANSWER) // 4 + 1)
    ]

    def handler(peer: Peer) -> None:
        if not chat_request(peer):
            return
        peer.send(response(200, ANSWER)[: -len(ANSWER)])
        for piece in pieces:
            time.sleep(TIMEOUT / 8)
            peer.send(piece)

    with Server(handler) as server:
        llm = llm_for(server)
        assert answer(llm, method) == "Hi"
        llm.close()
