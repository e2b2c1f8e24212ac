"""A stream is bounded: a line that never ends is refused at 16 MiB, an answer that never ends
at 64 Mi characters, log-probabilities with no text to go with them at 256 Ki, each read no
further, and a bad line's error does not keep the line alive, on scripted servers, sync and
async."""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21._stream import MAX_ANSWER_CHARS, MAX_HELD_LOGPROBS, MAX_LINE_BYTES
from llama_index.llms.ai21.errors import MalformedResponseError
from tests.transport.servers import Peer, Server, response

SSE_HEAD = response(
    body=b"", length=False, headers=[("Content-Type", "text/event-stream"), ("Connection", "close")]
)
START = b'data: {"choices":[{"index":0,"delta":{"content":"'
MIB = 1 << 20


class _EndlessLine:
    """Starts an event, then sends its content until the client stops reading (or 64 MiB)."""

    def __init__(self) -> None:
        self.sent = 0

    def __call__(self, peer: Peer) -> None:
        peer.read_request()
        peer.sock.sendall(SSE_HEAD + START)
        piece = b"x" * MIB
        try:
            while self.sent < 64 * MIB and not peer.server.stopped.is_set():
                peer.sock.sendall(piece)
                self.sent += len(piece)
        except OSError:
            pass  # the client closed the connection: what the test expects


class _EndlessAnswer:
    """Streams events of ``field`` (1 Mi characters each) until the client stops reading, or
    twice the answer limit."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.sent = 0

    def event(self) -> bytes:
        if self.field == "tool_calls":  # each event a new call: its id, name and arguments
            index = self.sent // MIB
            call = {"index": index, "id": f"call_{index}", "function": {"name": "f"}}
            call["function"]["arguments"] = "x" * (MIB - len(call["id"]) - 1)
            delta: dict[str, Any] = {"tool_calls": [call]}
        else:
            delta = {self.field: "x" * MIB}
        event = {"choices": [{"index": 0, "delta": delta}]}
        return b"data: " + json.dumps(event).encode() + b"\n\n"

    def __call__(self, peer: Peer) -> None:
        peer.read_request()
        peer.sock.sendall(SSE_HEAD)
        try:
            while self.sent < 2 * MAX_ANSWER_CHARS and not peer.server.stopped.is_set():
                peer.sock.sendall(self.event())
                self.sent += MIB
        except OSError:
            pass  # the client closed the connection: what the test expects


class _EndlessLogprobs:
    """Streams events of token log-probabilities and no text (4 Ki tokens each) until the
    client stops reading, or four times the limit."""

    TOKENS = 4096

    def __init__(self) -> None:
        self.sent = 0

    def __call__(self, peer: Peer) -> None:
        peer.read_request()
        position = {"token": "x", "logprob": -0.5, "bytes": [120], "top_logprobs": []}
        choice = {"index": 0, "delta": {}, "logprobs": {"content": [position] * self.TOKENS}}
        event = b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n"
        peer.sock.sendall(SSE_HEAD)
        try:
            while self.sent < 4 * MAX_HELD_LOGPROBS and not peer.server.stopped.is_set():
                peer.sock.sendall(event)
                self.sent += self.TOKENS
        except OSError:
            pass  # the client closed the connection: what the test expects


def _bad_line(size: int) -> Callable[[Peer], None]:
    """A line of ``size`` bytes that is not JSON (its string never closes), then ``[DONE]``."""

    def handler(peer: Peer) -> None:
        peer.read_request()
        peer.send(SSE_HEAD + START + b"x" * (size - len(START)) + b"\n\ndata: [DONE]\n\n")

    return handler


def _stream(llm: AI21, method: str, **kwargs: Any) -> None:
    if method == "stream_chat":
        for _ in llm.stream_complete("hi", **kwargs):
            pass
        return

    async def run() -> None:
        async for _ in await llm.astream_complete("hi", **kwargs):
            pass

    asyncio.run(run())


def _error_and_peak(llm: AI21, method: str) -> tuple[MalformedResponseError, int]:
    tracemalloc.start()
    try:
        with pytest.raises(MalformedResponseError) as caught:
            _stream(llm, method)
        return caught.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _largest_text(exc: BaseException) -> int:
    """The longest str or bytes an exception chain holds in its attributes and arguments."""
    sizes = [0]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        values: list[Any] = [*vars(current).values(), *current.args]
        sizes += [len(v) for v in values if isinstance(v, str | bytes)]
        current = current.__cause__ or current.__context__
    return max(sizes)


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
def test_a_line_that_never_ends_is_refused_at_the_limit(method: str) -> None:
    endless = _EndlessLine()
    with Server(endless) as server:
        llm = AI21(base_url=server.url() + "/v1", model="m", deployment="vllm", max_retries=0)
        error, peak = _error_and_peak(llm, method)
        llm.close()
    assert f"a line is longer than {MAX_LINE_BYTES} bytes (16 MiB)" in str(error)
    assert str(error).startswith("malformed AI21 stream")
    assert len(str(error)) < 400
    # The pending pieces, never joined, and what the transport buffers; without the limit the
    # 64 MiB line costs about 900 MiB.
    assert peak < MAX_LINE_BYTES + 8 * MIB, f"peak {peak / MIB:.1f} MiB"
    assert endless.sent < 48 * MIB, "the client stopped reading at the limit"


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
def test_a_bad_line_under_the_limit_costs_a_few_times_its_size_and_is_not_kept(
    method: str,
) -> None:
    size = 4 * MIB
    with Server(_bad_line(size)) as server:
        llm = AI21(base_url=server.url() + "/v1", model="m", deployment="vllm", max_retries=0)
        error, peak = _error_and_peak(llm, method)
        llm.close()
    assert "event is not valid JSON" in str(error)
    assert len(str(error)) < 400
    # orjson sets aside about twelve times a document to parse it (56 MiB here, with the line);
    # the stdlib, for a line this long, about twice.
    assert peak < 5 * size, f"peak {peak / MIB:.1f} MiB for a {size // MIB} MiB line"
    assert _largest_text(error) < 1000, "the error keeps (a copy of) the line"


@pytest.mark.slow
@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
@pytest.mark.parametrize("field", ["content", "reasoning", "tool_calls"])
def test_an_answer_that_never_ends_is_refused_at_the_limit(method: str, field: str) -> None:
    endless = _EndlessAnswer(field)
    with Server(endless) as server:
        llm = AI21(base_url=server.url() + "/v1", model="m", deployment="vllm", max_retries=0)
        with pytest.raises(MalformedResponseError) as caught:
            _stream(llm, method)
        llm.close()
    error = str(caught.value)
    assert error.startswith(
        f"malformed AI21 stream: the answer passed {MAX_ANSWER_CHARS:,} characters (64 Mi; "
        "text, reasoning and tool calls together), more than any answer holds; read no further"
    ), error
    assert len(error) < 400
    assert _largest_text(caught.value) < 1000, "the error keeps (a copy of) the answer"
    # Refused at the event that passes the limit, long before the server stops sending (at
    # twice the limit): what was sent beyond it sat in the sockets' buffers (up to 18 MiB
    # seen on loopback).
    assert MAX_ANSWER_CHARS < endless.sent < MAX_ANSWER_CHARS + 32 * MIB


@pytest.mark.slow
@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
def test_log_probabilities_with_no_text_are_refused_at_the_limit(method: str) -> None:
    endless = _EndlessLogprobs()
    with Server(endless) as server:
        llm = AI21(base_url=server.url() + "/v1", model="m", deployment="vllm", max_retries=0)
        with pytest.raises(MalformedResponseError) as caught:
            _stream(llm, method, logprobs=True)
        llm.close()
    error = str(caught.value)
    held = MAX_HELD_LOGPROBS + _EndlessLogprobs.TOKENS
    assert error == (
        f"malformed AI21 stream: log-probabilities of {held:,} tokens and candidates arrived "
        f"with no text to go with them (more than {MAX_HELD_LOGPROBS:,}); read no further "
        "(0 characters of the answer had arrived)"
    ), error
    assert _largest_text(caught.value) < 1000
    # The server stops at four times the limit; the sockets' buffers hold up to about as much
    # again as the limit (18 MiB seen on loopback, some 70 bytes a token here).
    assert endless.sent < 3 * MAX_HELD_LOGPROBS, "the client stopped reading at the limit"
