"""Reasoning done right (AI21's Jamba Reasoning 3B recipe): over real HTTP against the
emulator's vLLM flavour with scripted answers, and through the pure stream state where the
exact chunking matters (``</think>`` split across chunks)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.prompts import PromptTemplate
from llama_index.core.types import PydanticProgramMode
from pydantic import BaseModel

from ai21_emulator import Emulator, Fault
from llama_index.llms.ai21 import AI21, StreamInterruptedError
from llama_index.llms.ai21._convert import usage_kwargs
from llama_index.llms.ai21._markup import split_think
from llama_index.llms.ai21._stream import ChatStreamState, responses
from tests.calls import METHOD_IDS, arg_for, call
from tests.transport.servers import Peer, Server, response

REASONING_3B = "ai21labs/AI21-Jamba-Reasoning-3B"
JAMBA2 = "ai21labs/AI21-Jamba2-3B"
# What a server without --reasoning-parser returns for Reasoning 3B (the prompt opened <think>).
UNPARSED = "The capital of France.\nIt is Paris.\n</think>\n\nParis."


@pytest.fixture
def vllm(ai21_emulator_vllm: Emulator) -> Emulator:
    return ai21_emulator_vllm


@pytest.fixture
def make(vllm: Emulator) -> Callable[..., AI21]:
    def build(model: str = REASONING_3B, **kwargs: Any) -> AI21:
        return AI21(model=model, base_url=vllm.base_url, max_retries=0, **kwargs)

    return build


def reasoning_of(response: Any) -> str | None:
    if isinstance(response, ChatResponse):
        blocks = [b for b in response.message.blocks if isinstance(b, ThinkingBlock)]
        return blocks[0].content if blocks else None
    return response.additional_kwargs.get("reasoning")


# ------------------------------------------------------------------- (a) the </think> split


@pytest.mark.parametrize("method", METHOD_IDS)
def test_reasoning_left_in_content_is_split_off_for_an_always_reasoning_model(
    make: Callable[..., AI21], vllm: Emulator, method: str
) -> None:
    vllm.reply_next(UNPARSED)
    outcome = call(make(), method, arg_for(method))
    assert outcome.text == "Paris."
    final = outcome.responses[-1]
    assert reasoning_of(final) == "The capital of France.\nIt is Paris."
    if "stream" in method:
        assert "".join(r.delta for r in outcome.responses) == "Paris."
        assert all("</think>" not in r.delta for r in outcome.responses)
        if "chat" in method:
            thinking = "".join(
                r.additional_kwargs.get("thinking_delta", "") for r in outcome.responses
            )
            assert thinking.strip() == "The capital of France.\nIt is Paris."


@pytest.mark.parametrize("method", METHOD_IDS)
def test_the_servers_reasoning_reaches_every_method(
    make: Callable[..., AI21], vllm: Emulator, method: str
) -> None:
    vllm.reply_next("Paris.", reasoning="The capital of France.")
    final = call(make(), method, arg_for(method)).responses[-1]
    assert reasoning_of(final) == "The capital of France."  # stream_complete's last chunk too


def test_a_model_that_does_not_always_reason_keeps_its_content(
    make: Callable[..., AI21], vllm: Emulator
) -> None:
    vllm.reply_next("a </think> b")
    assert make(JAMBA2).complete("Hi").text == "a </think> b"


def test_reasoning_the_server_split_is_left_alone(
    make: Callable[..., AI21], vllm: Emulator
) -> None:
    vllm.reply_next("Paris, not </think> here.", reasoning="Thinking.")
    response = make().chat([ChatMessage(role="user", content="Capital?")])
    assert response.message.content == "Paris, not </think> here."
    assert reasoning_of(response) == "Thinking."


def _split_tag_server(pieces: list[str]) -> Callable[[Peer], None]:
    """A server without --reasoning-parser streaming ``pieces`` as the content, one HTTP chunk
    each (after answering discovery's GET /v1/models with 404: no answer)."""
    events = [
        b"data: " + json.dumps({"choices": [{"delta": {"content": p}}]}).encode() + b"\n\n"
        for p in pieces
    ]
    events.append(b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')

    def serve(peer: Peer) -> None:
        while (head := peer.read_request()) is not None:
            if head.startswith(b"GET"):
                peer.send(response(404, body=b"{}"))
                continue
            headers = [
                ("Content-Type", "text/event-stream"),
                ("Transfer-Encoding", "chunked"),
                ("Connection", "close"),  # the test ends with no connection left to wait on
            ]
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)
            peer.send(response(headers=headers, length=False, body=b"") + chunks + b"0\r\n\r\n")
            return

    return serve


@pytest.mark.parametrize("is_async", [False, True], ids=["stream_chat", "astream_chat"])
@pytest.mark.parametrize("pieces", [["Hmm.</th", "ink>Yes."], ["Hmm.<", "/think", ">", "Yes."]])
def test_a_think_tag_split_across_chunks_is_found(pieces: list[str], is_async: bool) -> None:
    with Server(_split_tag_server(pieces)) as server:
        llm = AI21(model=REASONING_3B, base_url=server.url() + "/v1", deployment="vllm")
        messages = [ChatMessage(role="user", content="Capital?")]
        if is_async:

            async def run() -> list[Any]:
                return [r async for r in await llm.astream_chat(messages)]

            out = asyncio.run(run())
        else:
            out = list(llm.stream_chat(messages))
    assert "".join(r.delta for r in out) == "Yes."
    assert all("think>" not in r.delta for r in out)
    assert reasoning_of(out[-1]) == "Hmm."
    assert out[-1].message.content == "Yes."


@pytest.mark.parametrize(
    ("content", "finish_reason", "reasoning", "answer"),
    [
        ("<think>\nA.\n</think>\n\nB.", "stop", "A.", "B."),  # the model opened the tag itself
        ("A.</think>", "stop", "A.", ""),
        ("Still thinking", "length", "Still thinking", ""),  # cut by max_tokens
        ("Plain answer.", "stop", None, "Plain answer."),  # never closed: it was the answer
        ("", "stop", None, ""),
    ],
)
def test_split_think_table(
    content: str, finish_reason: str, reasoning: str | None, answer: str
) -> None:
    assert split_think(content, finish_reason) == (reasoning, answer)


def test_a_stream_without_think_tag_ending_normally_is_the_answer(
    make: Callable[..., AI21], vllm: Emulator
) -> None:
    vllm.reply_next("Just the answer.")
    chunks = list(make().stream_chat([ChatMessage(role="user", content="Hi")]))
    assert "".join(c.delta for c in chunks) == "Just the answer."
    assert chunks[-1].message.content == "Just the answer."
    assert reasoning_of(chunks[-1]) is None


# ------------------------------------------------------- (d) reasoning used all of max_tokens


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("parsed", [False, True])
def test_reasoning_that_used_all_of_max_tokens_is_said(
    make: Callable[..., AI21],
    vllm: Emulator,
    caplog: pytest.LogCaptureFixture,
    stream: bool,
    parsed: bool,
) -> None:
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    if parsed:  # a server with --reasoning-parser
        vllm.reply_next("", reasoning="Long thought", finish_reason="length")
    else:
        vllm.reply_next("Long thought", finish_reason="length")
    llm = make(max_tokens=5)
    messages = [ChatMessage(role="user", content="Hi")]
    final = list(llm.stream_chat(messages))[-1] if stream else llm.chat(messages)
    assert final.message.content == ""
    assert reasoning_of(final) == "Long thought"
    said = [r.getMessage() for r in caplog.records if "max_tokens" in r.getMessage()]
    assert len(said) == 1
    assert "spent all of max_tokens on reasoning" in said[0]


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream_complete"])
def test_reasoning_cut_by_the_end_of_the_window_says_so_without_max_tokens(
    caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    # No max_tokens sent: vLLM's limit is what the window leaves after the prompt (the emulator
    # cuts the reasoning there, as vLLM does), so "raise max_tokens" alone would not help.
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    with Emulator(flavour="vllm", max_model_len=64) as small:
        llm = AI21(model=REASONING_3B, base_url=small.base_url, max_retries=0)
        prompt = "word " * 55 + "Hi?"
        if stream:
            text = "".join(chunk.delta for chunk in llm.stream_complete(prompt))
        else:
            text = llm.complete(prompt).text
        assert "max_tokens" not in small.requests[-1].json
    assert text == ""
    (said,) = [r.getMessage() for r in caplog.records if "reasoning" in r.getMessage()]
    assert "where none was set, leave the answer more of the context window" in said


def test_a_length_cut_answer_is_not_reported_as_reasoning(
    make: Callable[..., AI21], vllm: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    vllm.reply_next("Half an ans", reasoning="Thought.", finish_reason="length")
    make().chat([ChatMessage(role="user", content="Hi")])
    assert not [r for r in caplog.records if "max_tokens" in r.getMessage()]


class City(BaseModel):
    name: str


@pytest.mark.parametrize(
    "method",
    [
        "structured_predict",
        "astructured_predict",
        "stream_structured_predict",
        "astream_structured_predict",
    ],
)
@pytest.mark.parametrize(
    "mode",
    [PydanticProgramMode.DEFAULT, PydanticProgramMode.LLM, PydanticProgramMode.FUNCTION],
    ids=["json_schema", "llm", "function"],
)
def test_structured_predict_names_max_tokens(
    make: Callable[..., AI21], vllm: Emulator, mode: PydanticProgramMode, method: str
) -> None:
    """Guided decoding, LlamaIndex's text program and its function-calling program alike,
    streamed or not."""
    vllm.reply_next("", reasoning="Thinking about cities", finish_reason="length")
    llm = make(pydantic_program_mode=mode)
    prompt = PromptTemplate("Capital of {country}?")

    async def last_streamed() -> Any:
        stream = await llm.astream_structured_predict(City, prompt, country="France")
        return [city async for city in stream][-1]

    def predict() -> Any:
        if method == "astructured_predict":
            return asyncio.run(llm.astructured_predict(City, prompt, country="France"))
        if method == "stream_structured_predict":
            return list(llm.stream_structured_predict(City, prompt, country="France"))[-1]
        if method == "astream_structured_predict":
            return asyncio.run(last_streamed())
        return llm.structured_predict(City, prompt, country="France")

    with pytest.raises(ValueError, match="no City: the model spent all of max_tokens on reasoning"):
        predict()
    [body] = [r.json for r in vllm.requests if r.path.endswith("/chat/completions")]
    assert ("tools" in body) is (mode == PydanticProgramMode.FUNCTION)


# ------------------------------------------------------------ (b) reasoning sent back in a loop


def loop_history(reasoning_before: bool) -> list[ChatMessage]:
    call = ToolCallBlock(tool_call_id="c1", tool_name="multiply", tool_kwargs={"a": 3, "b": 4})
    earlier = ChatMessage(
        role="assistant",
        blocks=[ThinkingBlock(content="Old thought."), TextBlock(text="Hello.")],
    )
    turn = ChatMessage(
        role="assistant", blocks=[ThinkingBlock(content="I need to multiply."), call]
    )
    result = ChatMessage(role="tool", content="12", additional_kwargs={"tool_call_id": "c1"})
    history = [ChatMessage(role="user", content="Hi")]
    if reasoning_before:
        history.append(earlier)
    return [*history, ChatMessage(role="user", content="3 times 4?"), turn, result]


@pytest.mark.parametrize(
    ("deployment", "fields"),
    # The vLLM emulator is recognised as vLLM, which reads ``reasoning`` (an unrecognised
    # server gets both fields: tests/test_local_servers.py).
    [("openai-compatible", ("reasoning",)), ("ai21", ("reasoning_content",))],
)
def test_reasoning_of_tool_call_turns_after_the_last_user_message_is_sent_back(
    vllm: Emulator, emulator: Emulator, deployment: str, fields: tuple[str, ...]
) -> None:
    server = vllm if deployment == "openai-compatible" else emulator
    llm = AI21(
        model=REASONING_3B if deployment == "openai-compatible" else "jamba-mini",
        base_url=server.base_url,
        api_key=server.api_key,
        deployment=deployment,
        max_retries=0,
    )
    server.reply_next("It is 12.")
    llm.chat(loop_history(reasoning_before=True))
    sent = server.last_request.json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "tool"]
    assert {k: sent[3][k] for k in fields} == dict.fromkeys(fields, "I need to multiply.")
    assert set(sent[3]) == {"role", "content", "tool_calls", *fields}
    assert sent[1] == {"role": "assistant", "content": "Hello."}  # earlier turns: not sent


def test_the_deployments_reasoning_fields_decide_the_field() -> None:
    from llama_index.llms.ai21._deployments.openai_compatible import OpenAICompatible
    from llama_index.llms.ai21._dialect import JambaChat

    class LlamaServer(OpenAICompatible):
        kind = "test-llamacpp"
        reasoning_fields = ("reasoning_content",)

    body = (
        JambaChat(LlamaServer())
        .chat("m", loop_history(False), {}, system_prompt=None, stream=False)
        .body
    )
    assert body["messages"][2]["reasoning_content"] == "I need to multiply."
    assert "reasoning" not in body["messages"][2]


# ----------------------------------------------------------- (c) a stream cut after reasoning


@pytest.mark.parametrize("use_async", [False, True])
def test_a_stream_cut_during_reasoning_reports_the_reasoning(
    make: Callable[..., AI21], vllm: Emulator, use_async: bool
) -> None:
    vllm.reply_next("Paris.", reasoning="one two three four five six")
    # the role event and three reasoning pieces (of the chat: the server is asked first)
    vllm.inject(Fault(drop_after=4, path_contains="/chat/"))
    llm = make()
    messages = [ChatMessage(role="user", content="Hi")]

    async def drain() -> None:
        async for _ in await llm.astream_chat(messages):
            pass

    def run() -> None:
        if use_async:
            asyncio.run(drain())
        else:
            list(llm.stream_chat(messages))

    with pytest.raises(StreamInterruptedError) as caught:
        run()
    assert caught.value.partial_text == ""
    assert caught.value.partial_reasoning.startswith("one two")
    assert "characters of reasoning and 0 of the answer had arrived" in str(caught.value)


# -------------------------------------------------------------- (e) reasoning and cached tokens


def test_reasoning_and_cached_tokens_when_the_server_reports_them() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 7,
        "total_tokens": 17,
        "completion_tokens_details": {"reasoning_tokens": 5},
        "prompt_tokens_details": {"cached_tokens": 8},
    }
    assert usage_kwargs(usage) == {
        "prompt_tokens": 10,
        "completion_tokens": 7,
        "total_tokens": 17,
        "reasoning_tokens": 5,
        "cached_tokens": 8,
    }
    nulls = {**usage, "completion_tokens_details": None, "prompt_tokens_details": None}
    assert "reasoning_tokens" not in usage_kwargs(nulls)
    event = (
        b'data: {"choices":[{"delta":{"content":"x"},"finish_reason":"stop"}],"usage":'
        b'{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,'
        b'"completion_tokens_details":{"reasoning_tokens":1}}}\n\n'
    )
    final = list(responses([event], ChatStreamState()))[-1]
    assert final.additional_kwargs["reasoning_tokens"] == 1


@pytest.mark.parametrize("method", METHOD_IDS)
def test_reasoning_and_cached_tokens_arrive_over_http(
    make: Callable[..., AI21], vllm: Emulator, method: str
) -> None:
    # Scripted: the server's own counts (vLLM: completion_tokens_details.reasoning_tokens with
    # a reasoning parser, prompt_tokens_details.cached_tokens with --enable-prompt-tokens-details).
    vllm.reply_next(
        "Paris.", reasoning="The capital.", usage={"reasoning_tokens": 5, "cached_tokens": 8}
    )
    final = call(make(), method, arg_for(method)).responses[-1]
    assert final.additional_kwargs["reasoning_tokens"] == 5
    assert final.additional_kwargs["cached_tokens"] == 8


@pytest.mark.parametrize("method", METHOD_IDS)
def test_the_servers_token_details_of_a_generated_answer(
    make: Callable[..., AI21], vllm: Emulator, method: str
) -> None:
    llm = make(default_headers={"X-Emulator-Cached-Tokens": "4"})
    counts = call(llm, method, arg_for(method)).responses[-1].additional_kwargs
    assert counts["cached_tokens"] == 4
    assert 0 < counts["reasoning_tokens"] < counts["completion_tokens"]
    # Jamba2 has no reasoning parser behind it: the server reports no reasoning tokens.
    plain = call(make(JAMBA2), method, arg_for(method)).responses[-1].additional_kwargs
    assert "reasoning_tokens" not in plain
    assert "cached_tokens" not in plain
    assert plain["completion_tokens"] > 0


# --------------------------------------------------------------- (f) chat-template variables


def test_chat_template_kwargs_per_instance_and_per_call(
    make: Callable[..., AI21], vllm: Emulator
) -> None:
    llm = make(chat_template_kwargs={"thinking_prefix": "Think briefly.", "a": 1})
    llm.complete("Hi")
    assert vllm.last_request.json["chat_template_kwargs"] == {
        "thinking_prefix": "Think briefly.",
        "a": 1,
    }
    llm.chat([ChatMessage(role="user", content="Hi")], chat_template_kwargs={"a": 2, "b": True})
    assert vllm.last_request.json["chat_template_kwargs"] == {
        "thinking_prefix": "Think briefly.",
        "a": 2,
        "b": True,
    }
    make().complete("Hi", chat_template_kwargs={"thinking_prefix": ""})
    assert vllm.last_request.json["chat_template_kwargs"] == {"thinking_prefix": ""}
    make().complete("Hi")
    assert "chat_template_kwargs" not in vllm.last_request.json


@pytest.mark.parametrize("bad", [["thinking_prefix"], "x", {1: "a"}, 5])
def test_chat_template_kwargs_not_an_object_fails_before_any_request(
    make: Callable[..., AI21], vllm: Emulator, bad: Any
) -> None:
    with pytest.raises(ValueError, match="chat_template_kwargs must be a JSON object"):
        make().complete("Hi", chat_template_kwargs=bad)
    with pytest.raises(ValueError, match="chat_template_kwargs must be a JSON object"):
        make(chat_template_kwargs={"ok": 1}).complete("Hi", chat_template_kwargs=bad)
    with pytest.raises(ValueError, match="chat_template_kwargs"):
        make(chat_template_kwargs=bad)
    assert vllm.requests == []
