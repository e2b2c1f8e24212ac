"""Reasoning from llama-server: apart from the answer with its default ``--reasoning-format``,
split by the client when the server runs with ``--reasoning-format none`` (the reasoning then
arrives in ``content``, ending ``</think>``), and said plainly when it used all of
``max_tokens``."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage, ThinkingBlock

from llama_index.llms.ai21 import AI21
from tests.calls import METHOD_IDS, arg_for, call
from tests.llamacpp.conftest import MODEL, Servers, require_servers

require_servers()


def thinking(response: object) -> str | None:
    message = getattr(response, "message", None)
    if message is None:  # a CompletionResponse
        return getattr(response, "additional_kwargs", {}).get("reasoning")
    blocks = [b for b in message.blocks if isinstance(b, ThinkingBlock)]
    return "".join(b.content or "" for b in blocks) if blocks else None


def test_the_raw_server_leaves_the_reasoning_in_content(servers: Servers) -> None:
    # What the client has to split: the server's own answer, fetched directly.
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 64}
    answer = httpx.post(f"{servers.raw_url}/chat/completions", json=body).json()
    content = answer["choices"][0]["message"]["content"]
    assert "reasoning_content" not in answer["choices"][0]["message"]
    reasoning, answer = servers.pieces("default", "reasoning"), servers.pieces("default", "answer")
    assert content == "".join(["<think>\n", *reasoning, "</think>", *answer])


@pytest.mark.parametrize("method", METHOD_IDS)
def test_reasoning_in_content_is_split_off_the_answer(servers: Servers, method: str) -> None:
    llm = AI21(model=MODEL, base_url=servers.raw_url, max_tokens=64)
    outcome = call(llm, method, arg_for(method, "Hi"))
    assert outcome.text == servers.answer()
    assert "</think>" not in "".join(getattr(r, "delta", "") or "" for r in outcome.responses)
    if not method.startswith(("stream", "astream")):
        assert (thinking(outcome.responses[-1]) or "").strip() == servers.reasoning().strip()


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
def test_streamed_reasoning_in_content_becomes_thinking(servers: Servers, method: str) -> None:
    llm = AI21(model=MODEL, base_url=servers.raw_url, max_tokens=64)
    outcome = call(llm, method, arg_for(method, "Hi"))
    assert (thinking(outcome.responses[-1]) or "").strip() == servers.reasoning().strip()
    assert outcome.text == servers.answer()


@pytest.mark.parametrize("url", ["url", "raw_url"])
def test_reasoning_that_used_all_of_max_tokens_is_said(
    make_llm: Callable[..., AI21],
    servers: Servers,
    url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    llm = make_llm(base_url=getattr(servers, url), max_tokens=10)
    with caplog.at_level(logging.WARNING):
        response = llm.chat([ChatMessage(role="user", content="#long")])
    assert response.additional_kwargs["finish_reason"] == "length"
    assert response.message.content == ""
    assert (thinking(response) or "").strip() == "".join(
        servers.pieces("long", "reasoning")[:10]
    ).strip()
    assert any("max_tokens" in r.getMessage() for r in caplog.records)


def test_thinking_prefix_is_a_chat_template_variable(
    make_llm: Callable[..., AI21], servers: Servers
) -> None:
    # The template adds its thinking_prefix to the last user turn; a per-call value replaces it.
    body = {"messages": [{"role": "user", "content": "Hi"}]}
    default = servers.apply_template(body)
    assert "Begin by thinking about the reasoning process" in default
    custom = servers.apply_template({**body, "chat_template_kwargs": {"thinking_prefix": "Go. "}})
    assert "<|im_start|>user\nGo. Hi<|im_end|>" in custom
    llm = make_llm()
    plain = llm.chat([ChatMessage(role="user", content="Hi")])
    shorter = llm.chat(
        [ChatMessage(role="user", content="Hi")],
        chat_template_kwargs={"thinking_prefix": "Go. "},
    )
    assert plain.additional_kwargs["prompt_tokens"] - shorter.additional_kwargs[
        "prompt_tokens"
    ] == servers.count_tokens(default) - servers.count_tokens(custom)
