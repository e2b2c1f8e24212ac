"""Retries, timeouts, broken streams and event loops, over real HTTP with injected faults."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from email.utils import formatdate

import ai21.errors
import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage

from ai21_emulator import Emulator, Fault
from llama_index.llms.ai21 import AI21, MalformedResponseError, StreamInterruptedError
from tests.calls import arg_for, assert_notes, call
from tests.statuses import BY_CODE, NOT_RETRIED, RETRIED

CHAT_METHODS = ["chat", "stream_chat", "achat", "astream_chat"]
JAMBA2 = "ai21labs/AI21-Jamba2-3B"
HI = [ChatMessage(role="user", content="hi")]


# ----------------------------------------------------------------------------- retries


@pytest.mark.parametrize("method", CHAT_METHODS)
@pytest.mark.parametrize("status", RETRIED)
def test_transient_statuses_are_retried(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str, status: int
) -> None:
    emulator.inject(Fault(status=status, count=2, retry_after="0"))
    outcome = call(make_llm(max_retries=2), method, arg_for(method))
    assert outcome.text
    assert len(emulator.requests) == 3


@pytest.mark.parametrize("method", CHAT_METHODS)
@pytest.mark.parametrize("status", NOT_RETRIED)
def test_client_errors_are_never_retried(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str, status: int
) -> None:
    emulator.inject(Fault(status=status, count=5, retry_after="0"))
    with pytest.raises(BY_CODE[status].error) as caught:
        call(make_llm(max_retries=3), method, arg_for(method))
    assert type(caught.value) is BY_CODE[status].error
    assert len(emulator.requests) == 1


@pytest.mark.parametrize("method", CHAT_METHODS)
def test_exhausted_retries_raise_the_sdk_exception_of_the_last_attempt(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str
) -> None:
    emulator.inject(Fault(status=429, count=10, retry_after="0"))
    with pytest.raises(ai21.errors.TooManyRequestsError) as caught:
        call(make_llm(max_retries=2), method, arg_for(method))
    assert str(caught.value).startswith(
        "Failed with http status code: 429 (TooManyRequestsError). Details: {"
    )
    assert len(emulator.requests) == 3, "max_retries counts retries after the first attempt"


@pytest.mark.parametrize("method", ["complete", "acomplete", "stream_chat", "astream_chat"])
def test_each_retry_is_logged_once_at_info_and_nothing_at_error(
    make_llm: Callable[..., AI21],
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
    method: str,
) -> None:
    caplog.set_level(logging.INFO)
    emulator.inject(Fault(status=503, count=2, retry_after="0"))
    call(make_llm(max_retries=3), method, arg_for(method))
    retries = [r for r in caplog.records if r.name == "llama_index.llms.ai21"]
    assert [r.getMessage() for r in retries] == [
        "AI21 request failed (HTTP 503); retry 1 of 3 in 0.00 s",
        "AI21 request failed (HTTP 503); retry 2 of 3 in 0.00 s",
    ]
    assert all(r.levelno == logging.INFO for r in retries)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "a success is no error"


def test_max_retries_zero_is_one_attempt(llm: AI21, emulator: Emulator) -> None:
    emulator.inject(Fault(status=503, count=3, retry_after="0"))
    with pytest.raises(ai21.errors.ServiceUnavailable):
        llm.complete("hi")
    assert len(emulator.requests) == 1


def test_sdk_retries_stay_off_even_when_the_environment_asks(
    make_llm: Callable[..., AI21], emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AI21_NUM_RETRIES", "5")
    emulator.inject(Fault(status=503, count=10, retry_after="0"))
    with pytest.raises(ai21.errors.ServiceUnavailable):
        make_llm(max_retries=1).complete("hi")
    assert len(emulator.requests) == 2, "attempts never multiply"


def test_default_max_retries_is_three(make_llm: Callable[..., AI21], emulator: Emulator) -> None:
    llm = make_llm()
    assert llm.max_retries == 3
    emulator.inject(Fault(status=500, count=3, retry_after="0"))
    assert llm.complete("hi").text
    assert len(emulator.requests) == 4


# ------------------------------------------------------------------------- Retry-After


def _retry_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "llama_index.llms.ai21"]


@pytest.mark.parametrize("method", ["chat", "achat", "stream_chat", "astream_chat"])
@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        ("1", 1.0),  # honoured exactly
        ("0", 0.0),
        ("119", 119.0),
        ("500", 120.0),  # capped at two minutes
        ("inf", None),  # ignored: back-off (0.25 to 0.5 s for the first retry)
        ("nan", None),
        ("-1", None),
        ("1e12", None),
        ("soon", None),
    ],
)
def test_retry_after_is_honoured_up_to_two_minutes(
    make_llm: Callable[..., AI21],
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
    waits: list[float],
    method: str,
    retry_after: str,
    wait: float | None,
) -> None:
    caplog.set_level(logging.INFO)
    emulator.inject(Fault(status=429, retry_after=retry_after))
    assert call(make_llm(max_retries=1), method, arg_for(method)).text
    assert len(emulator.requests) == 2
    assert len(waits) == 1
    if wait is None:
        assert 0.25 <= waits[0] <= 0.5
    else:
        assert waits == [wait]
    assert _retry_lines(caplog) == [
        f"AI21 request failed (HTTP 429); retry 1 of 1 in {waits[0]:.2f} s"
    ]


def test_retry_after_zero_retries_at_once(
    make_llm: Callable[..., AI21], emulator: Emulator, waits: list[float]
) -> None:
    emulator.inject(Fault(status=503, count=3, retry_after="0"))
    make_llm(max_retries=3).complete("hi")
    assert waits == [0.0, 0.0, 0.0], "back-off alone would wait 0.25 + 0.5 + 1 s at least"


def test_retry_after_http_date(
    make_llm: Callable[..., AI21], emulator: Emulator, waits: list[float]
) -> None:
    target = time.time() + 30
    emulator.inject(Fault(status=429, retry_after=formatdate(target, usegmt=True)))
    make_llm(max_retries=1).complete("hi")
    # HTTP dates have whole seconds: the wait ends at the named second.
    assert waits == [pytest.approx(int(target) - time.time(), abs=1.5)]


def test_without_retry_after_backoff_is_short_and_jittered(
    make_llm: Callable[..., AI21], emulator: Emulator, waits: list[float]
) -> None:
    emulator.inject(Fault(status=500, count=3))
    make_llm(max_retries=3).complete("hi")
    assert len(waits) == 3
    assert 0.25 <= waits[0] <= 0.5
    assert 0.5 <= waits[1] <= 1.0
    assert 1.0 <= waits[2] <= 2.0


def test_a_real_wait_is_slept(make_llm: Callable[..., AI21], emulator: Emulator) -> None:
    """The one test that sleeps for real: the default wait is time.sleep."""
    emulator.inject(Fault(status=429, retry_after="1"))
    started = time.monotonic()
    make_llm(max_retries=1).complete("hi")
    assert time.monotonic() - started >= 1.0


# ---------------------------------------------------------------- connections, timeouts


def test_connection_refused_is_retried_then_raised(
    waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with Emulator() as gone:
        base_url, key = gone.base_url, gone.api_key
    llm = AI21(api_key=key, base_url=base_url, max_retries=2)
    with pytest.raises(httpx.ConnectError):
        llm.complete("hi")
    assert len(waits) == 2, "two retries, then the third failure is raised"
    assert [line.split(";")[0] for line in _retry_lines(caplog)] == [
        "AI21 request failed (ConnectError)"
    ] * 2


@pytest.mark.parametrize("method", CHAT_METHODS)
def test_a_refused_connection_says_which_request_and_what_to_check(
    waits: list[float], method: str
) -> None:
    """httpx's own message is the socket's ("[Errno 111] Connection refused"): a note names
    the request and what to check; the class and the message stay httpx's."""
    with socket.socket() as sock:  # a port that was free a moment ago, now closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = AI21(model="ai21labs/AI21-Jamba2-3B", base_url=f"http://u:pw@127.0.0.1:{port}/v1")
    with pytest.raises(httpx.ConnectError) as caught:
        call(llm, method, arg_for(method))
    # The socket's words on every path (async: not aiohttp's "Cannot connect to host ...
    # ssl:default [Connect call failed ...]").
    assert str(caught.value) == f"[Errno {errno.ECONNREFUSED}] {os.strerror(errno.ECONNREFUSED)}"
    assert_notes(
        caught.value,
        [
            f"AI21: POST http://127.0.0.1:{port}/v1/chat/completions was refused (4 attempts): is "
            "the server running (and done loading its model), at that host and port? A "
            "self-hosted base_url is the server's /v1 URL."
        ],
    )
    assert len(waits) == 3


@pytest.mark.parametrize("method", CHAT_METHODS)
def test_https_to_a_plain_http_server_says_so_and_is_not_retried(
    waits: list[float], method: str
) -> None:
    """vLLM, llama-server, LM Studio and Ollama speak plain HTTP: an https:// base_url meets a
    handshake answered in plain HTTP. The note said "was refused (4 attempts): is the server
    running?" of a server that was running, after retrying what fails the same every time."""
    with Emulator(flavour="vllm", models=[JAMBA2]) as server:
        url = server.base_url.replace("http://", "https://")
        with pytest.raises(httpx.ConnectError) as caught:
            call(AI21(model=JAMBA2, base_url=url), method, arg_for(method))
        with pytest.raises(ValueError, match="model= was not given") as no_model:
            AI21(base_url=url).chat(HI)  # the server could not be asked what it serves
    assert str(caught.value).startswith("[SSL: ")  # the ssl module's words, sync and async
    advice = (
        "the server answered the TLS handshake with something that is not TLS: a server of your "
        "own (vLLM, llama-server, LM Studio, Ollama) speaks plain HTTP unless started with a "
        "certificate, so give its URL as http://..."
    )
    assert_notes(caught.value, [f"AI21: POST {url}/chat/completions failed: {advice}"])
    assert str(no_model.value).endswith(f"(an answer that is not TLS: plain HTTP?)): {advice}")
    assert waits == []
    assert server.requests == []


@pytest.mark.parametrize("method", CHAT_METHODS)
def test_dropped_connection_before_any_chunk_is_retried(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str, waits: list[float]
) -> None:
    expected = call(make_llm(), method, arg_for(method)).text
    emulator.reset()
    emulator.inject(Fault(drop_after=1))  # only the role-only event, then the socket closes
    outcome = call(make_llm(max_retries=1), method, arg_for(method))
    assert outcome.text == expected, "no lost and no repeated tokens"
    assert len(emulator.requests) == 2
    assert len(waits) == 1  # one backoff between the two attempts (recorded, not slept)


@pytest.mark.parametrize("method", ["chat", "stream_chat", "achat", "astream_chat"])
def test_timeout_bounds_each_attempt(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str
) -> None:
    emulator.inject(Fault(delay=3))
    started = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        call(make_llm(timeout=0.4, max_retries=0), method, arg_for(method))
    assert time.monotonic() - started < 2.5, "the attempt ends at the timeout, not the 3 s delay"


def test_a_timed_out_attempt_is_retried(
    make_llm: Callable[..., AI21], emulator: Emulator, waits: list[float]
) -> None:
    emulator.inject(Fault(delay=3))
    assert make_llm(timeout=0.4, max_retries=1).complete("hi").text
    assert len(emulator.requests) == 2
    assert len(waits) == 1


# ------------------------------------------------------------------------ broken streams


def _drain_into(seen: list[str], llm: AI21, method: str, prompt: str) -> None:
    """Consume a stream, recording each delta as it reaches the caller."""
    messages = arg_for("chat", prompt)
    if method == "stream_chat":
        seen.extend(chunk.delta or "" for chunk in llm.stream_chat(messages))
        return

    async def consume() -> None:
        async for chunk in await llm.astream_chat(messages):
            seen.append(chunk.delta or "")

    asyncio.run(consume())


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
def test_stream_dropped_after_first_chunk_raises_not_truncates(
    llm: AI21, emulator: Emulator, method: str
) -> None:
    emulator.inject(Fault(drop_after=4))
    seen: list[str] = []
    with pytest.raises(StreamInterruptedError) as caught:
        _drain_into(seen, llm, method, "Tell me a long story")
    assert seen, "some chunks reached the caller before the drop"
    assert caught.value.partial_text == "".join(seen)
    assert "not retried" in str(caught.value)
    assert len(emulator.requests) == 1, "never retried once the caller has tokens"


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
@pytest.mark.parametrize(
    ("keep_alive", "cause"),
    [
        (None, "ReadTimeout: timed out"),  # silence: a read times out
        # A proxy in front of a stalled model: a keep-alive comment every 50 ms, so no read
        # times out; the answer stands still (tests/transport/test_answer_deadlines.py).
        (0.05, "ReadTimeout: no part of the answer arrived for 0.5 s"),
    ],
    ids=["silent", "kept alive"],
)
def test_stream_stalled_mid_answer_raises_within_the_timeout(
    make_llm: Callable[..., AI21],
    emulator: Emulator,
    method: str,
    keep_alive: float | None,
    cause: str,
) -> None:
    emulator.inject(Fault(stall_after=4, stall_seconds=5, stall_keep_alive=keep_alive))
    seen: list[str] = []
    started = time.monotonic()
    with pytest.raises(StreamInterruptedError) as caught:
        _drain_into(seen, make_llm(timeout=0.5, max_retries=2), method, "Tell me a long story")
    assert time.monotonic() - started < 3.0, "about one timeout, not the whole 5 s stall"
    assert f"({cause}" in str(caught.value)
    assert seen
    assert caught.value.partial_text == "".join(seen)
    assert len(emulator.requests) == 1


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
@pytest.mark.parametrize("after", [1, 4])
def test_malformed_stream_event_is_a_clear_error(
    llm: AI21, emulator: Emulator, method: str, after: int
) -> None:
    emulator.inject(Fault(malformed_after=after))
    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        call(llm, method, arg_for(method, "Tell me a long story"))


@pytest.mark.parametrize("method", ["chat", "achat"])
def test_truncated_json_body_is_a_clear_error(llm: AI21, emulator: Emulator, method: str) -> None:
    emulator.inject(Fault(malformed_after=0))
    # Where it broke, as a stream's broken event says it, and the body's start, quoted.
    with pytest.raises(
        MalformedResponseError,
        match=r"^malformed AI21 response: body is not valid JSON \(unexpected end of data: "
        r"line 1 column \d+ \(char \d+\)\): '\{\"id\":",
    ):
        call(llm, method, arg_for(method))


# ----------------------------------------------------------------- event loops, threads


def test_one_instance_across_repeated_asyncio_run(llm: AI21) -> None:
    async def once() -> str:
        response = await llm.achat(arg_for("chat", "hi"))
        chunks = [c async for c in await llm.astream_chat(arg_for("chat", "hi"))]
        assert chunks[-1].message.content == response.message.content
        return response.message.content or ""

    answers = [asyncio.run(once()) for _ in range(3)]
    assert len(set(answers)) == 1
    assert answers[0]


def test_threads_each_with_their_own_loop(llm: AI21, emulator: Emulator) -> None:
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        async def run() -> None:
            await asyncio.gather(*(llm.acomplete(f"thread {i} task {t}") for t in range(10)))

        try:
            asyncio.run(run())
            llm.complete(f"thread {i} sync")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(emulator.requests) == 44


def test_hundreds_of_concurrent_tasks_with_injected_faults(
    make_llm: Callable[..., AI21], emulator: Emulator
) -> None:
    """About 5% of the requests get a 429 or 503; every call still completes, right."""
    total = 300
    emulator.inject(  # spread over the run: one request in 20 fails
        Fault(status=429, count=8, every=20, retry_after="0"),
        Fault(status=503, count=7, every=20, retry_after="0"),
    )
    llm = make_llm(max_retries=3)

    async def main() -> list[str]:
        async def one(i: int) -> str:
            response = await llm.achat([ChatMessage(role="user", content=f"question {i}")])
            return response.message.content or ""

        return await asyncio.gather(*(one(i) for i in range(total)))

    answers = asyncio.run(main())
    assert all(f"question {i}" in answer for i, answer in enumerate(answers))
    assert len(emulator.requests) == total + 15, "one retry per injected fault, no more"
