"""What happens around requests: a stream's end, event loops coming and going, forked workers."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import multiprocessing
import subprocess
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage

from ai21_emulator import Emulator, Fault
from llama_index.llms.ai21 import AI21, StreamInterruptedError
from llama_index.llms.ai21._http import Deadline
from tests.transport.servers import Handler, Peer, Server, response

KEY = "sk-SECRET-KEY"


# ------------------------------------------------------------- a stream's last event


def _event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    data = json.dumps({"id": "chat-1", "choices": [choice], **extra}).encode()
    return b"data: " + data + b"\n\n"


EVENTS = [
    _event({"role": "assistant", "content": ""}),
    _event({"content": "Hello"}),
    _event(
        {"content": " world"},
        "stop",
        usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    ),
    b"data: [DONE]\n\n",
]


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _stream_then(after_done: str) -> Callable[[Peer], None]:
    """An AI21 stream whose connection, after ``[DONE]``, is reset, held open or ended."""

    def handler(peer: Peer) -> None:
        while peer.read_request() is not None:
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            )
            events = b"".join(_chunk(event) for event in EVENTS)
            if after_done == "end":  # in one piece: reuse must not depend on timing
                peer.send(head.encode() + events + b"0\r\n\r\n")
                continue
            if after_done == "no [DONE]":  # the body ends after the last event instead
                events = b"".join(_chunk(event) for event in EVENTS[:-1])
                peer.send(head.encode() + events + b"0\r\n\r\n")
                continue
            peer.send(head.encode() + events)
            if after_done == "reset":
                time.sleep(0.05)  # the events first, then the reset
                peer.reset()
                return
            if after_done == "hold":
                peer.hold()
                return

    return handler


def _stream(llm: AI21, method: str) -> list[str]:
    messages = [ChatMessage(role="user", content="hi")]
    if method == "stream_chat":
        return [chunk.delta or "" for chunk in llm.stream_chat(messages)]

    async def run() -> list[str]:
        return [chunk.delta or "" async for chunk in await llm.astream_chat(messages)]

    return asyncio.run(run())


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
@pytest.mark.parametrize("after_done", ["reset", "hold"])
def test_a_stream_that_has_its_final_event_returns_at_once(method: str, after_done: str) -> None:
    with Server(_stream_then(after_done)) as server:
        llm = AI21(api_key=KEY, base_url=server.url() + "/studio/v1", timeout=30, max_retries=0)
        started = time.monotonic()
        assert _stream(llm, method) == ["Hello", " world"]
        # Not the 30 s timeout: at most a bounded look for the body's end.
        assert time.monotonic() - started < 5
        llm.close()


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
def test_finished_streams_reuse_their_connection(method: str) -> None:
    with Server(_stream_then("end")) as server:
        llm = AI21(api_key=KEY, base_url=server.url() + "/studio/v1", max_retries=0)

        async def several() -> None:
            messages = [ChatMessage(role="user", content="hi")]
            for _ in range(3):
                assert [c.delta async for c in await llm.astream_chat(messages)][-1] == " world"

        if method == "stream_chat":
            for _ in range(3):
                assert _stream(llm, method)[-1] == " world"
        else:
            asyncio.run(several())
        llm.close()
        assert server.requests == 3
        assert server.connections == 1


class _LateTimer:
    """A ``threading.Timer`` that fires at the latest moment a real one can: when it is
    cancelled, after the read it guards has returned (its thread lost the race to it)."""

    def __init__(self, interval: float, function: Callable[..., None], args: Any = ()) -> None:
        self._fire = lambda: function(*args)

    def start(self) -> None:
        pass

    def cancel(self) -> None:
        self._fire()


@pytest.mark.parametrize("ending", ["end", "no [DONE]"])
def test_a_stream_end_watchdog_never_shuts_a_connection_back_in_the_pool(
    ending: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog on a finished stream's last read can fire after that read handed the
    connection back to the pool, where another thread may be sending on it: it must leave
    the socket alone then (else that request fails: "Server disconnected without sending a
    response"). Here every watchdog fires that late, and the connection is still reused;
    also for a body that ends without ``[DONE]``, whose end is read before the close."""
    monkeypatch.setattr(threading, "Timer", _LateTimer)
    with Server(_stream_then(ending)) as server:
        llm = AI21(api_key=KEY, base_url=server.url() + "/studio/v1", max_retries=0)
        for _ in range(3):
            assert _stream(llm, "stream_chat")[-1] == " world"
        llm.close()
        assert server.requests == 3
        assert server.connections == 1


@pytest.mark.parametrize("after_done", ["reset", "end"])
def test_a_connection_lost_after_its_answers_logs_nothing(
    after_done: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The layer asks aiohttp for each connection's ``closed`` future; a connection reset after
    its answers sets an error on it, which must be read, or asyncio logs "Future exception was
    never retrieved" when the future is collected."""
    caplog.set_level(logging.ERROR, logger="asyncio")
    with Server(_stream_then(after_done)) as server:
        llm = AI21(api_key=KEY, base_url=server.url() + "/studio/v1", max_retries=0)
        assert _stream(llm, "astream_chat")[-1] == " world"
        time.sleep(0.1)  # the reset arrives
        assert _stream(llm, "astream_chat")[-1] == " world"  # on a new connection
        llm.close()
    gc.collect()
    assert "never retrieved" not in caplog.text


def _head_then_events(peer: Peer) -> None:
    """The stream's head, then its events a moment later: the body is still to come when
    the answer starts."""
    while peer.read_request() is not None:
        peer.send(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        time.sleep(0.002)
        peer.send(b"".join(_chunk(event) for event in EVENTS) + b"0\r\n\r\n")


def test_answers_on_one_kept_alive_connection_leave_nothing_behind() -> None:
    """Each answer whose body is still to come watches its connection for a loss the body
    would not hear of (_http.py, ``_Response``), and stops watching when done: a connection
    that outlives many answers holds none of their bodies."""
    with Server(_head_then_events) as server:
        llm = AI21(api_key=KEY, base_url=server.url() + "/studio/v1", max_retries=0)
        messages = [ChatMessage(role="user", content="hi")]

        async def bodies_alive_after(answers: int) -> int:
            for _ in range(answers):
                assert [c.delta async for c in await llm.astream_chat(messages)][-1] == " world"
            gc.collect()
            return sum(isinstance(o, aiohttp.StreamReader) for o in gc.get_objects())

        async def run() -> tuple[int, int]:
            return await bodies_alive_after(3), await bodies_alive_after(20)

        after_3, after_23 = asyncio.run(run())
        llm.close()
    assert server.connections == 1
    assert after_23 <= after_3


# ------------------------------------------------------------------ event loops


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")  # pragma: no cover


def _runs_on_one_instance(llm: AI21, runs: int) -> tuple[float, list[weakref.ref[Any]]]:
    """``runs`` times ``asyncio.run`` of one call; the RSS growth (MiB) and the loops."""
    loops: list[weakref.ref[Any]] = []

    async def once() -> str:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        return (await llm.acomplete("hi")).text

    for _ in range(10):  # warm-up: pools, imports, caches
        asyncio.run(once())
    gc.collect()
    before = _rss_mib()
    for _ in range(runs):
        assert asyncio.run(once())
    gc.collect()
    return _rss_mib() - before, loops


def test_two_thousand_asyncio_runs_keep_no_loop_and_stay_within_40_mib(
    make_llm: Callable[..., AI21],
) -> None:
    growth, loops = _runs_on_one_instance(make_llm(max_retries=0), 2000)
    assert [ref for ref in loops if ref() is not None] == [], "every finished loop is collectable"
    assert growth < 40.0, f"RSS grew {growth:.1f} MiB over 2,000 runs"


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_loops_closed_without_shutting_down_generators_are_not_kept(
    make_llm: Callable[..., AI21],
) -> None:
    """A loop closed without ``shutdown_asyncgens`` never resumes our closer; the next new
    loop's first call forgets it. (Its sockets then close when the loop is collected, with
    asyncio's own ResourceWarning: that loop was not shut down.)"""
    llm = make_llm(max_retries=0)
    loops = []
    for _ in range(5):
        loop = asyncio.new_event_loop()
        assert loop.run_until_complete(llm.acomplete("hi")).text
        loops.append(weakref.ref(loop))
        loop.close()
        del loop
    assert asyncio.run(llm.acomplete("hi")).text
    gc.collect()
    assert [ref for ref in loops if ref() is not None] == []


# ----------------------------------------------------------------------- forking


def _echo_port(peer: Peer) -> None:
    """A chat completion whose answer names the question and the client's port."""
    port = peer.sock.getpeername()[1]
    while (head := peer.read_request()) is not None:
        del head
        body = json.loads(peer.last_body)
        question = body["messages"][-1]["content"]
        answer = {
            "id": "chat-1",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"{question} @ {port}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(answer).encode()
        peer.send(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )


_forked_llm: AI21 | None = None


def _ask_in_child(questions: range, answers: Any) -> None:
    assert _forked_llm is not None
    answers.send([_forked_llm.complete(f"question {i}").text for i in questions])


@pytest.fixture
def echo_server() -> Iterator[Server]:
    with Server(_echo_port) as server:
        yield server


def test_forked_workers_never_use_the_parents_connections(echo_server: Server) -> None:
    global _forked_llm
    llm = AI21(api_key=KEY, base_url=echo_server.url() + "/studio/v1", max_retries=0, timeout=5)
    parent_answer = llm.complete("parent").text  # leaves a pooled connection behind
    parent_port = parent_answer.rsplit("@ ", 1)[1]
    _forked_llm = llm
    context = multiprocessing.get_context("fork")
    answers: list[str] = []
    try:
        for questions in (range(0, 3), range(3, 6)):  # two children, one after the other
            receive, send = context.Pipe(duplex=False)
            child = context.Process(target=_ask_in_child, args=(questions, send))
            child.start()
            try:
                assert receive.poll(60), "the child answered within a minute"
                answers += receive.recv()
            finally:
                child.join(timeout=10)
                if child.is_alive():  # never let a stuck child hang the test run
                    child.kill()
                    child.join()
    finally:
        _forked_llm = None
    for i, answer in enumerate(answers):
        question, port = answer.rsplit(" @ ", 1)
        assert question == f"question {i}", "each child gets its own answer"
        assert port != parent_port, "a child never writes to its parent's socket"
    assert llm.complete("parent again").text.endswith(f"@ {parent_port}"), "parent keeps its own"
    llm.close()


@pytest.fixture
def loop_in_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own, as a server's or a notebook's does."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def _port(answer: str) -> str:
    return answer.rsplit(" @ ", 1)[1]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _fork(target: Callable[[Any], None]) -> tuple[Any, Any]:
    """A forked child running ``target(its end of a duplex pipe)``; (the child, our end)."""
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    child = context.Process(target=target, args=(theirs,))
    child.start()
    return child, ours


def _end(child: Any) -> None:
    child.join(timeout=10)
    if child.is_alive():  # never let a stuck child hang the test run
        child.kill()
        child.join()


def test_a_forked_child_leaves_the_parents_connections_alone(
    echo_server: Server, loop_in_thread: asyncio.AbstractEventLoop
) -> None:
    """A child that drops what it inherited and collects its garbage must not close the
    parent's pooled connections. Collected unclosed, aiohttp's connector closes its
    connections on the loop it holds, the parent's, whose epoll instance parent and child
    share: the socket left it for the parent too, whose next call waited out its read timeout
    (here 3 s: ReadTimeout), and the child printed "Unclosed connector"."""
    llm = AI21(api_key=KEY, base_url=echo_server.url() + "/studio/v1", max_retries=0, timeout=3)

    def achat(question: str) -> str:
        call = asyncio.run_coroutine_threadsafe(llm.acomplete(question), loop_in_thread)
        return call.result(10).text

    async_port, sync_port = _port(achat("parent")), _port(llm.complete("parent").text)

    def child(pipe: Any) -> None:
        records = _Records()
        logging.getLogger("asyncio").addHandler(records)  # aiohttp reports through the loop's
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            answers = [llm.complete(f"child {i}").text for i in range(3)]
            gc.collect()
        pipe.send((answers, [str(w.message) for w in caught] + records.messages))

    forked, pipe = _fork(child)
    try:
        assert pipe.poll(30), "the child answered"
        answers, noise = pipe.recv()
    finally:
        _end(forked)
    assert {_port(answer) for answer in answers}.isdisjoint({async_port, sync_port})
    # On the connections they had before, now as then.
    assert _port(achat("parent again")) == async_port
    assert _port(llm.complete("parent again").text) == sync_port
    llm.close()
    assert noise == []


def _echo_noting_ends(ended: dict[str, threading.Event]) -> Handler:
    """:func:`_echo_port`, noting when each connection (by the client's port) ends."""

    def handler(peer: Peer) -> None:
        end = ended.setdefault(str(peer.sock.getpeername()[1]), threading.Event())
        try:
            _echo_port(peer)
        finally:
            end.set()

    return handler


def test_a_forked_child_holds_none_of_the_parents_connections(
    loop_in_thread: asyncio.AbstractEventLoop,
) -> None:
    """The child lets go of its copies of the parent's sockets at once: while it lives, the
    parent's close still ends each connection (a socket ends when its last descriptor
    closes; one kept in the child would hold the connection open for the child's life)."""
    ended: dict[str, threading.Event] = {}
    with Server(_echo_noting_ends(ended)) as server:
        llm = AI21(api_key=KEY, base_url=server.url() + "/studio/v1", max_retries=0)
        call = asyncio.run_coroutine_threadsafe(llm.acomplete("parent"), loop_in_thread)
        async_port, sync_port = _port(call.result(10).text), _port(llm.complete("hi").text)

        def child(pipe: Any) -> None:
            pipe.send("started")
            pipe.recv()  # until the parent has seen what it waits for

        forked, pipe = _fork(child)
        try:
            assert pipe.poll(30), "the child started"
            assert pipe.recv() == "started"
            llm.close()
            asyncio.run_coroutine_threadsafe(llm.aclose(), loop_in_thread).result(10)
            assert ended[sync_port].wait(5), "the sync connection ended"
            assert ended[async_port].wait(5), "the async connection ended"
            assert forked.is_alive()
        finally:
            pipe.send("done")
            _end(forked)


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_next_loop_closes_the_client_of_a_loop_closed_without_shutdown(
    make_llm: Callable[..., AI21],
) -> None:
    llm = make_llm(max_retries=0)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(llm.acomplete("hi"))
    entry = llm._http._async[loop]
    loop.close()
    asyncio.run(llm.acomplete("hi"))
    assert loop not in llm._http._async
    assert entry.client.is_closed
    assert entry.closer.ag_frame is None, "the closer ran to its end"
    del entry, loop
    gc.collect()  # the dead loop's sockets warn now (see above), not in a later test


def test_a_shut_down_loop_takes_its_client_only(make_llm: Callable[..., AI21]) -> None:
    """``asyncio.run`` closes its loop's client and drops it from the map at once; a loop
    still running elsewhere keeps its own."""
    llm = make_llm(max_retries=0)
    alive = asyncio.new_event_loop()
    try:
        alive.run_until_complete(llm.acomplete("hi"))
        kept = llm._http._async[alive]
        asyncio.run(llm.acomplete("hi"))
        assert llm._http._async == {alive: kept}
        assert not kept.client.is_closed
    finally:
        alive.run_until_complete(alive.shutdown_asyncgens())
        alive.close()
    assert llm._http._async == {}
    assert kept.client.is_closed


def test_an_instance_dropped_on_a_running_loop_closes_its_session_quietly(
    echo_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """No "Unclosed client session"/"Unclosed connector" from aiohttp (asyncio's logger, at
    ERROR) and no ResourceWarning: the collected closer closes the session on its loop."""
    caplog.set_level(logging.DEBUG, logger="asyncio")

    async def run() -> None:
        llm = AI21(api_key=KEY, base_url=echo_server.url() + "/studio/v1", max_retries=0)
        assert (await llm.acomplete("hi")).text.startswith("hi @ ")
        del llm
        gc.collect()
        for _ in range(5):
            await asyncio.sleep(0.02)  # the closer runs on this loop

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(run())
        gc.collect()
    assert [r.getMessage() for r in caplog.records if "nclosed" in r.getMessage()] == []
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


# A loop left behind: how scripts and threads often use one. Each runs in a Python of its own,
# so that what it prints at exit is seen.
LEFT_BEHIND = {
    "run_until_complete, never closed": """
loop = asyncio.new_event_loop()
print(loop.run_until_complete(llm.acomplete("hi")).text)
""",
    "dropped while its loop is stopped": """
loop = asyncio.new_event_loop()
print(loop.run_until_complete(llm.acomplete("hi")).text)
del llm
gc.collect()
""",
    "dropped, then the loop runs again": """
loop = asyncio.new_event_loop()
print(loop.run_until_complete(llm.acomplete("hi")).text)
del llm
gc.collect()
loop.run_until_complete(asyncio.sleep(0.05))
loop.close()
""",
    "a finished thread's loop": """
def work():
    loop = asyncio.new_event_loop()
    print(loop.run_until_complete(llm.acomplete("hi")).text)
thread = threading.Thread(target=work)
thread.start()
thread.join()
""",
}


@pytest.mark.slow  # a Python of its own per script
@pytest.mark.parametrize("script", LEFT_BEHIND.values(), ids=LEFT_BEHIND.keys())
def test_a_loop_left_behind_closes_its_session_quietly(echo_server: Server, script: str) -> None:
    """No "Unclosed client session", "Unclosed connector", pending closing task or
    ResourceWarning at exit (``-X dev`` shows them all): the session is closed on its loop
    before the interpreter collects it (the first exit hook, so the last to run, checks)."""
    preamble = (
        "import asyncio, atexit, gc, sys, threading\n"
        "import aiohttp\n"
        "from llama_index.llms.ai21 import AI21\n"
        "def still_open():\n"
        "    sessions = [o for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession)]\n"
        "    if any(not session.closed for session in sessions):\n"
        "        print('a session is still open', file=sys.stderr)\n"
        "atexit.register(still_open)\n"
        f"llm = AI21(api_key='k', base_url='{echo_server.url()}/studio/v1', max_retries=0)\n"
    )
    done = subprocess.run(
        # The loop left open is the script's own doing, not this package's: not counted.
        [sys.executable, "-X", "dev", "-W", "ignore:unclosed event loop", "-c", preamble + script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("hi @ ")
    noise = ("nclosed", "still open", "Task was destroyed", "never awaited", "ResourceWarning")
    assert [line for line in done.stderr.splitlines() if any(n in line for n in noise)] == []


def _json_answers(peer: Peer) -> None:
    while peer.read_request() is not None:
        peer.send(response())


def test_a_discovery_deadline_never_shuts_a_connection_back_in_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Discovery's deadline (:class:`Deadline`) is cancelled after its answer is read and the
    connection is back in the pool, where another thread's request may already be using it:
    a deadline that runs out then must leave the socket alone. Here every deadline runs out
    that late, and the next request still reuses the connection."""
    monkeypatch.setattr(threading, "Timer", _LateTimer)
    with Server(_json_answers) as server, httpx.Client() as client:
        url = server.url() + "/v1/models"
        with Deadline(10) as deadline:
            answer = deadline.send(client, client.build_request("GET", url))
            try:
                answer.read()
            finally:
                answer.close()
        assert client.get(url).status_code == 200  # on the connection the deadline released
        assert server.requests == 2
        assert server.connections == 1


# ------------------------------------------------------------- closing an instance mid-stream


def test_a_sync_stream_broken_by_its_instances_close_says_so(
    make_local: Callable[..., AI21], vllm: Emulator
) -> None:
    """close() from another thread closes the pool under a stream being read: its error says
    so, not only the socket's "Bad file descriptor"."""
    llm = make_local()
    vllm.inject(Fault(stream_delay=0.02, path_contains="chat"))
    chunks = llm.stream_chat([ChatMessage(role="user", content="hi")])
    next(chunks)
    closer = threading.Timer(0.05, llm.close)
    closer.start()
    with pytest.raises(
        StreamInterruptedError, match=r"the instance's close\(\) closed its connection pool"
    ):
        for _ in chunks:
            pass
    closer.join()
    vllm.inject(Fault(stream_delay=0.02, drop_after=3, path_contains="chat"))
    with pytest.raises(StreamInterruptedError) as dropped:  # by the server: no close() named
        for _ in llm.stream_chat([ChatMessage(role="user", content="hi")]):
            pass
    assert "close()" not in str(dropped.value)


def test_an_async_stream_broken_by_its_instances_aclose_says_so(
    make_local: Callable[..., AI21], vllm: Emulator
) -> None:
    """Not "Server disconnected" alone, which blames the server for a local close."""
    llm = make_local()

    async def run(fault: Fault, close: bool) -> str:
        vllm.inject(fault)
        chunks = await llm.astream_chat([ChatMessage(role="user", content="hi")])
        await anext(chunks)
        if close:  # while the stream is being read
            asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(llm.aclose()))
        with pytest.raises(StreamInterruptedError) as caught:
            async for _ in chunks:
                pass
        return str(caught.value)

    closed = asyncio.run(run(Fault(stream_delay=0.02, path_contains="chat"), close=True))
    assert "the instance's aclose() closed its connection pool while it was read" in closed
    dropped = asyncio.run(
        run(Fault(stream_delay=0.02, drop_after=3, path_contains="chat"), close=False)
    )
    assert "aclose" not in dropped
