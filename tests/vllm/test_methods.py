"""Every public text method against the real server: the answer, stream deltas, token counts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from llama_index.core.base.llms.types import ChatMessage

from llama_index.llms.ai21 import AI21
from tests.calls import METHOD_IDS, METHODS, arg_for, call
from tests.vllm.conftest import MODEL, Servers, require_servers

require_servers()

STREAMING = [m[0] for m in METHODS if m[2]]
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


@pytest.mark.parametrize("method", METHOD_IDS)
def test_every_method_gets_the_answer(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    outcome = call(make_llm(), method, arg_for(method, "Hi"))
    assert outcome.text == servers.answer
    assert outcome.responses[-1].additional_kwargs["finish_reason"] == "stop"


@pytest.mark.parametrize("method", STREAMING)
def test_stream_deltas_add_up_and_usage_matches_a_plain_call(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    llm = make_llm()
    plain = call(llm, method.replace("stream_", ""), arg_for(method, "Hi"))
    streamed = call(llm, method, arg_for(method, "Hi"))
    deltas = [chunk.delta for chunk in streamed.responses]
    # Chunks, not one answer (how many: the server merges tokens when the reader lags).
    assert {chunk.raw["object"] for chunk in streamed.responses} == {"chat.completion.chunk"}
    assert "".join(d or "" for d in deltas) == streamed.text == servers.answer
    final = streamed.responses[-1].additional_kwargs
    expected = plain.responses[-1].additional_kwargs
    # The answer's tokens plus the end-of-sequence token.
    assert expected["completion_tokens"] == len(servers.answer_pieces) + 1
    assert {k: final[k] for k in USAGE_KEYS} == {k: expected[k] for k in USAGE_KEYS}
    assert final["total_tokens"] == final["prompt_tokens"] + final["completion_tokens"]


@pytest.mark.parametrize("method", ["chat", "astream_chat"])
def test_max_tokens_cuts_the_answer(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    outcome = call(make_llm(max_tokens=2), method, arg_for(method, "Hi"))
    assert outcome.text == "".join(servers.answer_pieces[:2])
    assert outcome.responses[-1].additional_kwargs["finish_reason"] == "length"


def test_conversation_history_reaches_the_prompt(make_llm: Callable[..., AI21]) -> None:
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
    assert three.additional_kwargs["prompt_tokens"] > one.additional_kwargs["prompt_tokens"]
    assert three.raw["model"] == MODEL


@pytest.mark.parametrize("method", METHOD_IDS)
def test_logprobs_come_for_every_token_with_the_token_first(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    """vLLM's ``logprobs``/``top_logprobs`` (OpenAI's fields) in LlamaIndex's ``logprobs``: per
    generated token the token itself, then the other candidates; a stream's, chunk by chunk."""
    outcome = call(make_llm(), method, arg_for(method, "Hi"), logprobs=True, top_logprobs=2)
    positions = [p for r in outcome.responses for p in (r.logprobs or [])]
    pieces = servers.answer_pieces
    assert [p[0].token for p in positions[: len(pieces)]] == pieces
    assert len(positions) - len(pieces) in (0, 1)  # and the end-of-sequence token's, or not
    for position in positions:
        assert len(position) in (2, 3)  # the token, and the candidates that are not it
        token = position[0]
        assert token.logprob <= 0
        assert token.bytes == list(token.token.encode())
        assert all(other.token != token.token for other in position[1:])


@pytest.mark.parametrize("method", METHOD_IDS)
def test_what_code_written_for_openai_like_passes_is_taken(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    """additional_kwargs as OpenAILike users write them for vLLM: stream_options, which vLLM
    refuses on a request that does not stream, and extra_body, whose entries are vLLM's
    fields; and a call's extra_headers."""
    llm = make_llm(
        additional_kwargs={"stream_options": {"include_usage": True}, "extra_body": {"top_k": 1}}
    )
    outcome = call(llm, method, arg_for(method, "Hi"), extra_headers={"X-Parity": "1"})
    assert outcome.text == servers.answer
    final = outcome.responses[-1].additional_kwargs
    assert final["total_tokens"] == final["prompt_tokens"] + final["completion_tokens"] > 0
