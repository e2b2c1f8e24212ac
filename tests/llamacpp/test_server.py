"""What the package learns from llama-server, its keys, and its failures: the context window
and ``num_output`` from ``/props``, the served model, ``--api-key`` right/wrong/missing, a
prompt over the context, the server killed in the middle of a stream."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import ai21.errors
import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage

from llama_index.llms.ai21 import AI21, StreamInterruptedError
from tests.llamacpp.conftest import MODEL, Recorder, Servers, require_servers

require_servers()

HI = [ChatMessage(role="user", content="Hi")]


def props(servers: Servers, url: str | None = None) -> dict[str, object]:
    response = httpx.get(f"{servers.root(url)}/props", headers=servers.auth())
    response.raise_for_status()
    return dict(response.json())


# ------------------------------------------------------------------ what the server reports


def test_context_window_is_what_the_server_runs_with(
    make_llm: Callable[..., AI21], servers: Servers
) -> None:
    reported = props(servers)["default_generation_settings"]
    assert isinstance(reported, dict)
    assert reported["n_ctx"] == servers.n_ctx  # -c, not the GGUF's trained 262,144
    assert make_llm().metadata.context_window == servers.n_ctx


def test_num_output_is_a_small_share_of_a_small_window(
    make_llm: Callable[..., AI21], servers: Servers
) -> None:
    metadata = make_llm(max_tokens=None).metadata
    assert 0 < metadata.num_output <= servers.n_ctx // 4


def test_the_server_is_asked_once_not_per_call(
    make_llm: Callable[..., AI21], record: Callable[..., Recorder]
) -> None:
    recorder = record()
    llm = make_llm(base_url=recorder.url)
    for _ in range(3):
        assert llm.metadata.context_window > 0
        llm.chat(HI)
    discovery = [p for p in recorder.paths if not p.endswith("/chat/completions")]
    assert len(discovery) == len(set(discovery)) >= 1
    assert recorder.paths.count("POST /v1/chat/completions") == 3


def test_model_is_optional_and_the_served_one_is_used(servers: Servers) -> None:
    llm = AI21(base_url=servers.url, api_key=servers.key, max_tokens=64)
    response = llm.chat(HI)
    assert response.message.content == servers.answer()
    assert llm.metadata.context_window == servers.n_ctx


def test_any_model_name_answers(make_llm: Callable[..., AI21], servers: Servers) -> None:
    # llama-server serves one model and ignores the request's name.
    assert make_llm(model="local-model").chat(HI).message.content == servers.answer()
    assert make_llm(model=MODEL).chat(HI).message.content == servers.answer()


# ------------------------------------------------------------------ keys


def test_the_right_key_is_sent_as_a_bearer_token(
    make_llm: Callable[..., AI21], servers: Servers, record: Callable[..., Recorder]
) -> None:
    recorder = record()
    make_llm(base_url=recorder.url).chat(HI)
    (exchange,) = [e for e in recorder.exchanges if e.path.endswith("/chat/completions")]
    assert exchange.headers["Authorization"] == f"Bearer {servers.key}"


@pytest.mark.parametrize("method", ["chat", "stream_chat", "achat", "astream_chat"])
def test_a_wrong_key_is_the_sdks_unauthorized(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    llm = make_llm(api_key="not-" + servers.key)
    with pytest.raises(ai21.errors.Unauthorized) as caught:
        _drain(llm, method)
    assert servers.key not in str(caught.value)


def test_a_missing_key_is_unauthorized_and_no_header_is_sent(
    servers: Servers, record: Callable[..., Recorder]
) -> None:
    recorder = record()
    llm = AI21(model=MODEL, base_url=recorder.url)
    with pytest.raises(ai21.errors.Unauthorized):
        llm.chat(HI)
    assert all("Authorization" not in e.headers for e in recorder.exchanges)


def test_a_server_without_a_key_needs_none(servers: Servers) -> None:
    llm = AI21(model=MODEL, base_url=servers.open_url, max_tokens=64)
    assert llm.chat(HI).message.content == servers.answer()


def _drain(
    llm: AI21,
    method: str,
    messages: list[ChatMessage] = HI,
    each: Callable[[str | None], object] = lambda _: None,
) -> None:
    """Call a chat method to its end, handing each delta of a stream to ``each``."""

    async def run_async() -> None:
        result = await getattr(llm, method)(messages)
        if method.startswith("astream"):
            async for chunk in result:
                each(chunk.delta)

    if method.startswith("a"):
        asyncio.run(run_async())
    elif method.startswith("stream"):
        for chunk in getattr(llm, method)(messages):
            each(chunk.delta)
    else:
        getattr(llm, method)(messages)


# ------------------------------------------------------------------ failures


@pytest.mark.parametrize("method", ["chat", "stream_chat", "achat", "astream_chat"])
def test_a_prompt_over_the_context_is_a_clear_error(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    llm = make_llm(context_window=1_000_000)  # the client does not trim: the server refuses
    long = [ChatMessage(role="user", content="word " * servers.n_ctx)]
    with pytest.raises(ai21.errors.AI21APIError) as caught:
        _drain(llm, method, long)
    assert caught.value.status_code == 400
    message = str(caught.value)
    assert "exceeds the available context size" in message
    assert f"{servers.n_ctx} tokens" in message


@pytest.fixture
def own_server(servers: Servers) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A llama-server of this test's own (it gets killed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            str(servers.server_bin),
            *("-m", str(servers.model_dir / "tiny-jamba.gguf")),
            *("--jinja", "-c", str(servers.n_ctx), "-np", "1", "-t", "1"),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the test's own llama-server did not start")
            time.sleep(0.1)
        yield process, f"http://127.0.0.1:{port}/v1"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
def test_a_server_killed_mid_stream_is_a_stream_interrupted_error(
    own_server: tuple[subprocess.Popen[bytes], str], servers: Servers, method: str
) -> None:
    process, url = own_server
    # "#loop": an answer that goes on until max_tokens (or the context) runs out.
    llm = AI21(model=MODEL, base_url=url, max_tokens=servers.n_ctx, max_retries=0)
    question = [ChatMessage(role="user", content="#loop")]
    received: list[str] = []

    def kill_after_first_answer_delta(delta: str | None) -> None:
        if delta and not received:
            os.killpg(process.pid, signal.SIGKILL)
        if delta:
            received.append(delta)

    with pytest.raises(StreamInterruptedError) as caught:
        _drain(llm, method, question, kill_after_first_answer_delta)
    assert caught.value.partial_text == "".join(received)
    assert caught.value.partial_text.startswith(servers.pieces("loop", "answer")[0].strip())
