"""A caller who stops early: leaves a stream, cancels a task, times out, presses Ctrl-C.

Whatever the way out, the caller gets their own exception back unchanged (nothing retried), the
half-read connection is closed (never handed to another request), nothing is logged or warned
about, and the next call on the same instance works.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentStream, FunctionAgent
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel
from workflows.errors import WorkflowCancelledByUser

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21, _retry
from tests.transport.servers import Peer, Server, chat_answer, response
from tests.transport.test_lifecycle import _chunk, _event

KEY = "sk-SECRET-KEY"
MESSAGES = [ChatMessage(role="user", content="Tell me a long story.")]
HOLD = b"Hold on"  # a prompt the server never answers
BUSY = b"Busy"  # a prompt the server answers 503
HEAD_ONLY = b"Head only"  # a prompt whose streamed answer stops after its head
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


class Weather(BaseModel):
    city: str


def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


TOOL = FunctionTool.from_defaults(get_weather)


class _StillWriting:
    """A server whose streamed answers are still being written: each sends its head and first
    events (only its head if it says ``HEAD_ONLY``), then waits for the client; a request that
    says ``HOLD`` gets no answer at all. It
    records what the client then does with that connection: closes it (``left``), or sends
    another request on it (``reused``: the next request would read the rest of the first
    answer as its own). Other requests get a short answer, or a 503 if they say ``BUSY``."""

    def __init__(self) -> None:
        self.left = 0
        self.reused = 0
        self.server: Server | None = None
        self.changed = threading.Condition()
        self.waiting = threading.Event()  # set when a request is held (no answer yet, or half)
        self.on_wait: Callable[[], None] | None = None  # then called, from the server's thread

    def __call__(self, peer: Peer) -> None:
        while peer.read_request() is not None:
            if BUSY in peer.last_body:
                peer.send(response(503, b'{"detail":"busy"}'))
                continue
            if HOLD not in peer.last_body and b'"stream":true' not in peer.last_body:
                peer.send(response(body=chat_answer("short answer")))
                continue
            if HEAD_ONLY in peer.last_body:
                peer.send(STREAM_HEAD)
            elif HOLD not in peer.last_body:  # the stream's head and first events
                first = _event({"role": "assistant", "content": '{"city": "Par'})
                peer.send(STREAM_HEAD + _chunk(first) + _chunk(_event({"content": "is"})))
            self.waiting.set()
            if self.on_wait is not None:
                self.on_wait()
            reused = peer.read_request() is not None  # blocks until the client does something
            with self.changed:
                if reused:
                    self.reused += 1
                else:
                    self.left += 1
                self.changed.notify_all()
            return

    @property
    def requests(self) -> int:
        """Requests read, on every connection."""
        assert self.server is not None
        return self.server.requests

    def wait_left(self, count: int) -> int:
        """The number of half-read connections the client closed, once it is ``count`` (or
        after a bound: a connection the client keeps open would never count)."""
        with self.changed:
            self.changed.wait_for(lambda: self.left + self.reused >= count, timeout=10)
            return self.left


@pytest.fixture
def still_writing() -> Iterator[tuple[_StillWriting, AI21]]:
    handler = _StillWriting()
    with Server(handler) as server:
        handler.server = server
        llm = AI21(api_key=KEY, base_url=server.url() + "/studio/v1", max_retries=3)
        yield handler, llm
        llm.close()


def _sync_stream(llm: AI21, method: str) -> Iterator[Any]:
    if method == "stream_chat":
        return llm.stream_chat(MESSAGES)
    if method == "stream_complete":
        return llm.stream_complete("Tell me a long story.")
    if method == "stream_chat_with_tools":
        return llm.stream_chat_with_tools([TOOL], chat_history=MESSAGES)
    prompt = PromptTemplate("Weather in {city}?")
    return llm.stream_structured_predict(Weather, prompt, city="Paris")


async def _async_stream(llm: AI21, method: str) -> AsyncIterator[Any]:
    if method == "astream_chat":
        return await llm.astream_chat(MESSAGES)
    if method == "astream_complete":
        return await llm.astream_complete("Tell me a long story.")
    if method == "astream_chat_with_tools":
        return await llm.astream_chat_with_tools([TOOL], chat_history=MESSAGES)
    prompt = PromptTemplate("Weather in {city}?")
    return await llm.astream_structured_predict(Weather, prompt, city="Paris")


@pytest.mark.parametrize("how", ["break", "close", "drop"])
@pytest.mark.parametrize(
    "method",
    ["stream_chat", "stream_complete", "stream_chat_with_tools", "stream_structured_predict"],
)
def test_a_sync_stream_left_mid_answer_closes_its_connection(
    still_writing: tuple[_StillWriting, AI21], method: str, how: str
) -> None:
    """``break``, ``close()`` or dropping the stream: its connection is closed (the rest of the
    answer is never read as the next call's), and the next call works."""
    server, llm = still_writing

    def leave() -> None:
        if how == "break":
            for _ in _sync_stream(llm, method):
                break
            return
        stream = _sync_stream(llm, method)
        next(stream)
        if how == "close":
            stream.close()  # type: ignore[attr-defined]
        else:
            del stream  # dropped without closing
            gc.collect()

    leave()
    assert llm.complete("hi").text == "short answer"
    leave()
    assert server.wait_left(2) == 2
    assert server.reused == 0


@pytest.mark.parametrize("how", ["break", "aclose", "drop"])
@pytest.mark.parametrize(
    "method",
    [
        "astream_chat",
        "astream_complete",
        "astream_chat_with_tools",
        "astream_structured_predict",
    ],
)
def test_an_async_stream_left_mid_answer_closes_its_connection_quietly(
    still_writing: tuple[_StillWriting, AI21],
    method: str,
    how: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``break``, ``aclose()`` or dropping the stream: its connection is closed, never reused,
    and nothing is logged, also when the loop ends at once. LlamaIndex's stream wrapper does
    not close the package's generator, which asyncio then closes in a task of its own, while
    ``asyncio.run`` shuts the loop down: a close that read on for the body's end raced
    ``shutdown_asyncgens``, which closes the body's generators that read was running ("aclose():
    asynchronous generator is already running"), and left ``wait_for``'s task with an
    exception nobody retrieved ("Task exception was never retrieved")."""
    caplog.set_level(logging.WARNING)
    server, llm = still_writing

    async def leave() -> None:
        if how == "break":
            async for _ in await _async_stream(llm, method):
                break
            return
        stream = await _async_stream(llm, method)
        await anext(stream)
        if how == "aclose":
            await stream.aclose()  # type: ignore[attr-defined]
        else:
            del stream
            gc.collect()

    async def leave_then_call() -> str:
        await leave()
        return (await llm.acomplete("hi")).text

    asyncio.run(leave())  # the loop ends at once
    assert asyncio.run(leave_then_call()) == "short answer"
    assert server.wait_left(2) == 2
    assert server.reused == 0
    gc.collect()
    assert _noise(caplog) == []


def _noise(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What asyncio logged, and any error."""
    return [
        r.getMessage() for r in caplog.records if r.name == "asyncio" or r.levelno >= logging.ERROR
    ]


# ------------------------------------------------------------------ cancelled tasks

ASYNC_CALLS = [
    "achat",
    "acomplete",
    "achat_with_tools",
    "astructured_predict",
    "astream_chat",
    "astream_complete",
    "astream_chat_with_tools",
    "astream_structured_predict",
]


async def _call(llm: AI21, method: str, prompt: str, started: asyncio.Event) -> None:
    """``method`` asked ``prompt``, its stream (if any) read to its end; ``started`` is set
    when the first piece of the answer arrives."""
    if not method.startswith("astream"):
        if method == "achat":
            await llm.achat([ChatMessage(role="user", content=prompt)])
        elif method == "acomplete":
            await llm.acomplete(prompt)
        elif method == "achat_with_tools":
            await llm.achat_with_tools(
                [TOOL], chat_history=[ChatMessage(role="user", content=prompt)]
            )
        else:
            await llm.astructured_predict(Weather, PromptTemplate(prompt))
        return
    if method == "astream_chat":
        stream: AsyncIterator[Any] = await llm.astream_chat(
            [ChatMessage(role="user", content=prompt)]
        )
    elif method == "astream_complete":
        stream = await llm.astream_complete(prompt)
    elif method == "astream_chat_with_tools":
        stream = await llm.astream_chat_with_tools(
            [TOOL], chat_history=[ChatMessage(role="user", content=prompt)]
        )
    else:
        stream = await llm.astream_structured_predict(Weather, PromptTemplate(prompt))
    async for _ in stream:
        started.set()


async def _cancelled(how: str, call: Awaitable[None], ready: Callable[[], Awaitable[Any]]) -> type:
    """Run ``call``, stop it ``how`` once ``ready()`` is done; the class of what it raised."""
    task = asyncio.ensure_future(call)
    try:
        if how == "cancel":
            await ready()
            task.cancel()
            await task
        elif how == "timeout":  # asyncio.timeout around the call, made to expire now
            async with asyncio.timeout(None) as deadline:
                waiting = asyncio.ensure_future(ready())
                waiting.add_done_callback(lambda _: deadline.reschedule(-1))
                await task
        else:  # asyncio.wait_for: the server never finishes, so this always times out
            await asyncio.wait_for(task, 0.2)
    except BaseException as exc:
        return type(exc)
    raise AssertionError("not stopped")


HOWS = [
    "cancel",
    "wait_for",
    pytest.param(
        "timeout",
        marks=pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout: 3.11+"),
    ),
]
# asyncio.TimeoutError: the builtin TimeoutError on 3.11+, its own class on 3.10.
PROMPTS = {
    "before the answer": "Hold on",
    "before the first event": "Head only",
    "mid-stream": "Weather in Paris?",
}
RAISED = {
    "cancel": asyncio.CancelledError,
    "timeout": TimeoutError,
    "wait_for": asyncio.TimeoutError,
}


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize(
    ("method", "where"),
    [(m, "before the answer") for m in ASYNC_CALLS]
    + [
        (m, where)
        for m in ASYNC_CALLS
        if m.startswith("astream")
        for where in ("before the first event", "mid-stream")
    ],
)
def test_a_cancelled_call_raises_the_callers_exception_and_nothing_is_retried(
    still_writing: tuple[_StillWriting, AI21],
    method: str,
    where: str,
    how: str,
    waits: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``task.cancel()``, ``asyncio.timeout`` or ``asyncio.wait_for`` while the server has not
    answered, or mid-stream: the caller gets ``CancelledError`` or ``TimeoutError`` itself (not
    wrapped, not retried: one request, no wait), the connection is closed, never reused, and the
    next call on the loop works."""
    caplog.set_level(logging.INFO)
    server, llm = still_writing
    prompt = PROMPTS[where]

    async def run() -> tuple[type, str]:
        started = asyncio.Event()

        async def ready() -> None:
            if where == "mid-stream":
                await started.wait()
            else:
                await asyncio.to_thread(server.waiting.wait, 10)

        raised = await _cancelled(how, _call(llm, method, prompt, started), ready)
        return raised, (await llm.acomplete("hi")).text

    raised, after = asyncio.run(run())
    assert raised is RAISED[how]
    assert after == "short answer"
    # The cancelled request (wait_for's 0.2 s may end before it is sent), then the next call's.
    held = server.requests - 1
    assert held == 1 if how != "wait_for" else held in (0, 1)
    assert server.wait_left(held) == held
    assert server.reused == 0
    assert waits == []
    assert "retry" not in caplog.text
    assert _noise(caplog) == []


def test_a_cancel_during_the_back_off_sends_nothing_more(
    still_writing: tuple[_StillWriting, AI21], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, llm = still_writing
    sleeping = asyncio.Event()

    async def wait_long(seconds: float) -> None:
        sleeping.set()
        await asyncio.sleep(3600)

    monkeypatch.setattr(_retry, "async_sleep", wait_long)

    async def run() -> tuple[type, str]:
        raised = await _cancelled(
            "cancel", _call(llm, "achat", "Busy", asyncio.Event()), sleeping.wait
        )
        return raised, (await llm.acomplete("hi")).text

    assert asyncio.run(run()) == (asyncio.CancelledError, "short answer")
    assert server.requests == 2  # the 503, then the next call: no retry


def test_other_event_loops_of_the_instance_are_unaffected(
    still_writing: tuple[_StillWriting, AI21],
) -> None:
    """A call cancelled on one loop leaves the instance's client on another loop (another
    thread's) open and working."""
    _server, llm = still_writing
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()
    try:

        def on_other_loop() -> str:
            call = llm.acomplete("hi")
            return asyncio.run_coroutine_threadsafe(call, other).result(10).text

        assert on_other_loop() == "short answer"
        client = llm._http._async[other].client

        async def cancel_one() -> type:
            started = asyncio.Event()
            call = _call(llm, "astream_chat", "Weather?", started)
            return await _cancelled("cancel", call, started.wait)

        assert asyncio.run(cancel_one()) is asyncio.CancelledError
        assert on_other_loop() == "short answer"
        assert llm._http._async[other].client is client
        assert not client.is_closed
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(5)
        other.run_until_complete(other.shutdown_asyncgens())
        other.close()


# ------------------------------------------------------------------ Ctrl-C in a sync call

SYNC_CALLS = ["chat", "complete", "stream_chat", "stream_complete"]


def _sync_call(llm: AI21, method: str, prompt: str) -> None:
    if method == "chat":
        llm.chat([ChatMessage(role="user", content=prompt)])
    elif method == "complete":
        llm.complete(prompt)
    elif method == "stream_chat":
        for _ in llm.stream_chat([ChatMessage(role="user", content=prompt)]):
            pass
    else:
        for _ in llm.stream_complete(prompt):
            pass


@pytest.fixture
def ctrl_c(still_writing: tuple[_StillWriting, AI21]) -> Iterator[Callable[[], None]]:
    """A Ctrl-C for the test's (main) thread, as a signal handler raises it."""
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        pytest.skip("signals reach the main thread only")

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def press() -> None:
        # A moment after the server has sent what it sends, so that the client has read it
        # (should it not have, the call is interrupted earlier, and must behave the same).
        time.sleep(0.05)
        signal.pthread_kill(main, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, interrupt)
    main = threading.get_ident()
    yield press
    signal.signal(signal.SIGUSR1, previous)


@pytest.mark.parametrize(
    ("method", "where"),
    [(m, "before the answer") for m in SYNC_CALLS]
    + [
        (m, where)
        for m in SYNC_CALLS
        if m.startswith("stream")
        for where in ("before the first event", "mid-stream", "consumer")
    ],
)
def test_ctrl_c_in_a_sync_call_propagates_and_nothing_is_retried(
    still_writing: tuple[_StillWriting, AI21],
    ctrl_c: Callable[[], None],
    method: str,
    where: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``KeyboardInterrupt`` while the call waits for the server (a signal handler's, sent
    once the server holds the request), or raised by the code reading the stream: it reaches
    the caller as it is, nothing is retried, the connection is closed (no wait for the rest of
    the answer: no watchdog is started for it) and the next call works."""
    server, llm = still_writing
    watchdogs: list[threading.Timer] = []
    real_timer = threading.Timer

    def timer(*args: Any) -> threading.Timer:
        watchdogs.append(real_timer(*args))
        return watchdogs[-1]

    monkeypatch.setattr(threading, "Timer", timer)
    if where == "consumer":

        def read_then_interrupt() -> None:
            stream = _sync_stream(llm, method)
            for _ in stream:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            read_then_interrupt()
    else:
        server.on_wait = ctrl_c
        with pytest.raises(KeyboardInterrupt):
            _sync_call(llm, method, PROMPTS[where])
        server.on_wait = None
    assert server.wait_left(1) == 1
    assert server.reused == 0
    assert server.requests == 1
    assert watchdogs == []
    assert llm.complete("hi").text == "short answer"


def test_ctrl_c_during_the_back_off_sends_nothing_more(
    still_writing: tuple[_StillWriting, AI21], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, llm = still_writing

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_retry, "sleep", interrupted)
    with pytest.raises(KeyboardInterrupt):
        llm.complete("Busy")
    assert server.requests == 1
    assert llm.complete("hi").text == "short answer"


# ------------------------------------------------------------------ many callers, one instance


def test_threads_sharing_one_instance_while_some_leave_their_streams(
    make_llm: Callable[..., AI21], emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Eight threads stream through one instance; every third stream is left after its second
    chunk. Every other stream is whole and its own (no answer read on another's connection),
    and nothing is logged."""
    caplog.set_level(logging.WARNING)
    llm = make_llm(max_retries=0)

    def ask(i: int) -> str | None:
        stream = llm.stream_complete(f"question {i}")
        if i % 3 == 0:
            for n, _ in enumerate(stream):
                if n == 1:
                    break
            return None
        return "".join(chunk.delta or "" for chunk in stream)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(96)))
    for i, answer in enumerate(answers):
        if i % 3:
            assert answer is not None
            assert answer.endswith(f"You said: question {i}")
    assert len(emulator.requests) == 96
    llm.close()
    assert _noise(caplog) == []


def test_tasks_sharing_one_loop_while_some_are_cancelled(
    make_llm: Callable[..., AI21], emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    llm = make_llm(max_retries=3)

    async def ask(i: int, started: asyncio.Event) -> str:
        text = ""
        async for chunk in await llm.astream_complete(f"question {i}"):
            started.set()
            text += chunk.delta or ""
            await asyncio.sleep(0)  # let the others in
        return text

    async def run() -> list[Any]:
        events = [asyncio.Event() for _ in range(30)]
        tasks = [asyncio.ensure_future(ask(i, events[i])) for i in range(30)]
        for i in range(0, 30, 3):
            await events[i].wait()
            tasks[i].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    answers = asyncio.run(run())
    for i, answer in enumerate(answers):
        if i % 3:
            assert isinstance(answer, str)
            assert answer.endswith(f"You said: question {i}")
        else:
            assert isinstance(answer, asyncio.CancelledError)
    assert len(emulator.requests) == 30
    assert _noise(caplog) == []


# ------------------------------------------------------------------ an agent's run


@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211")
def test_an_agent_run_cancelled_mid_stream_closes_the_stream(
    still_writing: tuple[_StillWriting, AI21], caplog: pytest.LogCaptureFixture
) -> None:
    """``handler.cancel_run()`` while the agent's model call streams: the run ends in
    LlamaIndex's ``WorkflowCancelledByUser``, the stream's connection is closed, nothing is
    retried or logged, and the instance serves the next call."""
    caplog.set_level(logging.WARNING)
    server, llm = still_writing
    agent = FunctionAgent(tools=[TOOL], llm=llm, streaming=True)

    async def run() -> tuple[type, str]:
        handler = agent.run("Weather in Paris?")
        async for event in handler.stream_events():
            if isinstance(event, AgentStream):
                await handler.cancel_run()
        try:
            await handler
        except Exception as exc:
            return type(exc), (await llm.acomplete("hi")).text
        raise AssertionError("not cancelled")

    assert asyncio.run(run()) == (WorkflowCancelledByUser, "short answer")
    assert server.wait_left(1) == 1
    assert server.requests == 2
    assert _noise(caplog) == []
