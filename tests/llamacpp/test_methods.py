"""Every public text method against a real llama-server: the answer, its reasoning, stream
deltas, token counts in streams."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, ThinkingBlock

from llama_index.llms.ai21 import AI21
from tests.calls import METHOD_IDS, METHODS, arg_for, call
from tests.llamacpp.conftest import Recorder, Servers, require_servers

require_servers()

STREAMING = [m[0] for m in METHODS if m[2]]
CHAT_METHODS = [m[0] for m in METHODS if m[1]]
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def thinking(response: ChatResponse) -> str | None:
    blocks = [b for b in response.message.blocks if isinstance(b, ThinkingBlock)]
    return "".join(b.content or "" for b in blocks) if blocks else None


@pytest.mark.parametrize("method", METHOD_IDS)
def test_every_method_gets_the_answer_without_its_reasoning(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    outcome = call(make_llm(), method, arg_for(method, "Hi"))
    assert outcome.text == servers.answer()
    assert "</think>" not in outcome.text
    final = outcome.responses[-1]
    assert final.additional_kwargs["finish_reason"] == "stop"
    assert final.additional_kwargs["completion_tokens"] == servers.completion_tokens()


@pytest.mark.parametrize("method", CHAT_METHODS)
def test_chat_methods_give_the_reasoning_as_a_thinking_block(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    outcome = call(make_llm(), method, arg_for(method, "Hi"))
    assert thinking(outcome.responses[-1]) == servers.reasoning()


@pytest.mark.parametrize("method", STREAMING)
def test_stream_deltas_add_up_and_usage_matches_a_plain_call(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    llm = make_llm()
    plain = call(llm, method.replace("stream_", ""), arg_for(method, "Hi"))
    streamed = call(llm, method, arg_for(method, "Hi"))
    deltas = [chunk.delta or "" for chunk in streamed.responses]
    assert "".join(deltas) == streamed.text == servers.answer()
    # One chunk per answer token at least (the server may merge what a lagging reader
    # has not taken yet), never the whole answer in one.
    assert len([d for d in deltas if d]) > 1
    final = streamed.responses[-1].additional_kwargs
    expected = plain.responses[-1].additional_kwargs
    assert {k: final[k] for k in USAGE_KEYS} == {k: expected[k] for k in USAGE_KEYS}
    assert final["completion_tokens"] == servers.completion_tokens()
    assert final["total_tokens"] == final["prompt_tokens"] + final["completion_tokens"]


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
def test_streamed_reasoning_arrives_before_the_answer(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    streamed = call(make_llm(), method, arg_for(method, "Hi"))
    first_answer = next(i for i, r in enumerate(streamed.responses) if r.delta)
    thought = "".join(
        r.additional_kwargs.get("thinking_delta", "") for r in streamed.responses[:first_answer]
    )
    assert thought == servers.reasoning()
    assert thinking(streamed.responses[-1]) == servers.reasoning()


def test_streams_ask_for_usage_on_the_wire(
    make_llm: Callable[..., AI21], record: Callable[..., Recorder]
) -> None:
    recorder = record()
    list(make_llm(base_url=recorder.url).stream_chat([ChatMessage(role="user", content="Hi")]))
    (body,) = recorder.bodies()
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("method", ["chat", "astream_chat"])
def test_max_tokens_cuts_the_reasoning(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    outcome = call(make_llm(max_tokens=2), method, arg_for(method, "Hi"))
    final = outcome.responses[-1]
    assert final.additional_kwargs["finish_reason"] == "length"
    assert final.additional_kwargs["completion_tokens"] == 2
    assert outcome.text == ""
    assert thinking(final) == "".join(servers.pieces("default", "reasoning")[:2]).strip()


def test_conversation_history_reaches_the_prompt(
    make_llm: Callable[..., AI21], servers: Servers
) -> None:
    llm = make_llm()
    one = llm.chat([ChatMessage(role="user", content="Hi")])
    three = llm.chat(
        [
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="user", content="Hi"),
            ChatMessage(role="assistant", content="Hello."),
            ChatMessage(role="user", content="Hi"),
        ]
    )
    system_and_turns = servers.count_tokens(
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n"
    )
    grown = three.additional_kwargs["prompt_tokens"] - one.additional_kwargs["prompt_tokens"]
    assert grown == system_and_turns


@pytest.mark.parametrize("method", METHOD_IDS)
def test_logprobs_come_for_every_token_with_the_token_first(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    """llama-server's ``logprobs``/``top_logprobs`` (OpenAI's fields) in LlamaIndex's
    ``logprobs``: per generated token (the reasoning's too) the token itself, then the other
    candidates. A stream's come chunk by chunk, without two the server sends in no chunk (the
    ``</think>`` its reasoning parser takes, and the end-of-sequence token)."""
    llm = make_llm()
    whole = call(llm, method.replace("stream_", ""), arg_for(method, "Hi"), logprobs=True)
    tokens = [p[0].token for p in whole.responses[0].logprobs]
    assert len(tokens) == servers.completion_tokens()
    assert "".join(tokens).endswith(servers.answer())
    assert "</think>" in tokens
    outcome = call(llm, method, arg_for(method, "Hi"), logprobs=True, top_logprobs=2)
    positions = [p for r in outcome.responses for p in (r.logprobs or [])]
    if "stream" in method:
        tokens = [t for t in tokens if t not in ("</think>", "")]
    assert [p[0].token for p in positions] == tokens
    for position in positions:
        assert len(position) in (2, 3)  # the token, and the candidates that are not it
        assert position[0].logprob <= 0
        assert all(other.token != position[0].token for other in position[1:])
