"""Request dialects without a server: Jamba chat and legacy Jurassic-2 (pure, exact bodies)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ThinkingBlock

from llama_index.llms.ai21._deployments.ai21 import AI21Studio
from llama_index.llms.ai21._deployments.openai_compatible import OpenAICompatible
from llama_index.llms.ai21._deployments.vllm import VLLM
from llama_index.llms.ai21._dialect import Call, JambaChat, user_message
from llama_index.llms.ai21._j2 import (
    J2,
    chat_response_from_j2_chat,
    completion_from_j2,
    to_j2_chat,
)
from llama_index.llms.ai21._stream import ChatStreamState
from llama_index.llms.ai21.errors import MalformedResponseError

HI = [ChatMessage(role="user", content="hi")]


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


# ---------------------------------------------------------------------------- Jamba chat


def test_jamba_chat_body_in_order_with_control_keywords_taken_out() -> None:
    call = JambaChat(AI21Studio()).chat(
        "jamba-mini",
        HI,
        {
            "stream": True,  # the method decides, not a keyword (and not the key order)
            "temperature": 0.1,
            "preamble_override": "Be brief.",
            "documents": ["Jamba is fast."],
            "parallel_tool_calls": True,
        },
        system_prompt="ignored: the preamble wins",
        stream=False,
    )
    assert call == Call(
        "/chat/completions",
        {
            "model": "jamba-mini",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi"},
            ],
            "temperature": 0.1,
            "stream": False,
            "documents": [{"content": "Jamba is fast."}],
        },
        single_tool_call=False,
    )
    assert list(call.body) == ["model", "messages", "temperature", "stream", "documents"]


@pytest.mark.parametrize(("parallel", "single"), [(False, True), (True, False), (None, False)])
def test_parallel_tool_calls_false_keeps_one_call(parallel: bool | None, single: bool) -> None:
    params = {} if parallel is None else {"parallel_tool_calls": parallel}
    call = JambaChat(AI21Studio()).chat("m", HI, params, system_prompt=None, stream=False)
    assert call.single_tool_call is single
    assert "parallel_tool_calls" not in call.body


def test_streams_add_the_deployments_fields_and_the_callers_win() -> None:
    dialect = JambaChat(VLLM())  # a server that hands documents to the template
    streamed = dialect.chat("m", HI, {}, system_prompt=None, stream=True)
    assert streamed.body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream_options": {"include_usage": True},
        "stream": True,
    }
    own = {"stream_options": {"include_usage": False}}
    assert (
        dialect.chat("m", HI, own, system_prompt=None, stream=True).body["stream_options"]
        == (own["stream_options"])
    )
    plain = dialect.chat("m", HI, {}, system_prompt=None, stream=False)
    assert "stream_options" not in plain.body
    jamba_1 = "ai21labs/AI21-Jamba-Mini-1.7"  # a template that reads documents
    assert dialect.chat(
        jamba_1, HI, {"documents": [{"content": "x"}]}, system_prompt=None, stream=False
    ).body["documents"] == [{"text": "x"}]


def test_the_callers_params_are_not_mutated_and_are_checked_against_the_limits() -> None:
    params = {"preamble_override": "p", "documents": [], "n": 2}
    JambaChat(AI21Studio()).chat("m", HI, params, system_prompt=None, stream=False)
    assert params == {"preamble_override": "p", "documents": [], "n": 2}
    with pytest.raises(ValueError, match="n must be 1 when streaming"):
        JambaChat(AI21Studio()).chat("m", HI, {"n": 2}, system_prompt=None, stream=True)
    with pytest.raises(ValueError, match="n must be 1 when streaming"):
        JambaChat(OpenAICompatible()).chat("m", HI, {"n": 2}, system_prompt=None, stream=True)


def test_complete_is_one_user_message_never_streamed() -> None:
    call = JambaChat(AI21Studio()).complete("m", "Hello", {"top_p": 0.5}, system_prompt="S")
    assert call == Call(
        "/chat/completions",
        {
            "model": "m",
            "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hello"}],
            "top_p": 0.5,
            "stream": False,
        },
    )
    assert user_message("x") == [ChatMessage(role=MessageRole.USER, content="x")]
    with pytest.raises(ValueError, match=exact("prompt must be a string, got list")):
        user_message(["x"])  # type: ignore[arg-type]


def test_jamba_chat_reads_answers_and_streams() -> None:
    dialect = JambaChat(AI21Studio())
    assert dialect.streams is True
    raw = {
        "choices": [{"message": {"role": "assistant", "content": "A"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    assert dialect.chat_response(raw).message.content == "A"
    assert dialect.completion_response(raw).text == "A"
    assert isinstance(dialect.stream_state(), ChatStreamState)
    assert dialect.stream_state() is not dialect.stream_state()


# ------------------------------------------------------------------------------ Jurassic-2


def test_j2_complete_body_translates_names_and_defaults_max_tokens() -> None:
    call = J2().complete(
        "j2-mid",
        "Q",
        {
            "top_p": 0.5,
            "stop": "##",
            "n": 2,
            "min_tokens": 1,
            "top_k_return": 3,
            "frequency_penalty": {"scale": 1},
            "presence_penalty": {"scale": 2},
            "count_penalty": {"scale": 3},
            "temperature": 0.7,
            "preamble_override": "Be brief.",
            "parallel_tool_calls": False,
            "stream": True,
        },
        system_prompt="not used by /complete",
    )
    assert call == Call(
        "/j2-mid/complete",
        {
            "prompt": "Be brief.\n\nQ",
            "topP": 0.5,
            "stopSequences": ["##"],
            "numResults": 2,
            "minTokens": 1,
            "topKReturn": 3,
            "frequencyPenalty": {"scale": 1},
            "presencePenalty": {"scale": 2},
            "countPenalty": {"scale": 3},
            "temperature": 0.7,
            "maxTokens": 512,
        },
    )
    assert J2().complete("j2-mid", "Q", {"max_tokens": 9}, system_prompt=None).body == {
        "prompt": "Q",
        "maxTokens": 9,
    }


def test_j2_chat_body() -> None:
    messages = [
        ChatMessage(role="system", content="S1"),
        ChatMessage(role="user", content="U"),
        ChatMessage(role="assistant", content="A"),
    ]
    call = J2().chat("j2-ultra", messages, {"stop": ["x"]}, system_prompt="S0", stream=True)
    assert call == Call(
        "/j2-ultra/chat",
        {
            "system": "S1",  # the conversation's own system message wins over system_prompt
            "messages": [{"role": "user", "text": "U"}, {"role": "assistant", "text": "A"}],
            "stopSequences": ["x"],
            "maxTokens": 512,
        },
    )
    assert J2.streams is False
    without = J2().chat("j2-ultra", HI, {}, system_prompt="S0", stream=False).body
    assert (without["system"], without["messages"]) == ("S0", [{"role": "user", "text": "hi"}])
    preamble = (
        J2()
        .chat("j2-ultra", messages, {"preamble_override": "P"}, system_prompt="S0", stream=False)
        .body
    )
    assert preamble["system"] == "P"


@pytest.mark.parametrize(
    "params", [{"documents": ["d"]}, {"documents": []}, {"tools": [{"type": "function"}]}]
)
def test_j2_refuses_documents_and_tools(params: dict[str, Any]) -> None:
    message = exact("j2-mid (Jurassic-2) supports neither documents nor tools")
    with pytest.raises(ValueError, match=message):
        J2().complete("j2-mid", "Q", params, system_prompt=None)
    with pytest.raises(ValueError, match=message):
        J2().chat("j2-mid", HI, params, system_prompt=None, stream=False)


def test_j2_accepts_empty_tools_and_no_documents() -> None:
    body = J2().complete("j2-mid", "Q", {"tools": [], "documents": None}, system_prompt=None).body
    assert body == {"prompt": "Q", "maxTokens": 512}


def test_j2_checks_fields_and_prompt() -> None:
    with pytest.raises(ValueError, match=r"^temperature must be in \[0.0, 2.0\], got 3$"):
        J2().complete("j2-mid", "Q", {"temperature": 3}, system_prompt=None)
    J2().complete("j2-mid", "Q", {"max_tokens": 8000}, system_prompt=None)  # no 4096 cap
    with pytest.raises(ValueError, match=exact("prompt must be a string, got int")):
        J2().complete("j2-mid", 3, {}, system_prompt=None)  # type: ignore[arg-type]


def test_j2_does_not_stream() -> None:
    with pytest.raises(NotImplementedError, match=exact("Jurassic-2 does not stream")):
        J2().stream_state()


def test_j2_chat_joins_system_messages_and_refuses_other_blocks() -> None:
    system, _ = to_j2_chat(
        [
            ChatMessage(role="system", content="S1"),
            ChatMessage(role="developer", content="S2"),
            ChatMessage(role="user", content="U"),
        ]
    )
    assert system == "S1\nS2"
    assistant = ChatMessage(role="assistant", blocks=[ThinkingBlock(content="t")])
    with pytest.raises(
        ValueError,
        match=exact(
            "messages[1] (assistant) contains a 'thinking' content block, which the AI21 API "
            "cannot represent; only text is supported"
        ),
    ):
        to_j2_chat([ChatMessage(role="user", content="U"), assistant])


def test_j2_chat_conversions_refuse_what_j2_cannot_say() -> None:
    with pytest.raises(
        ValueError,
        match=exact(
            "messages[1] has role 'tool'; Jurassic-2 chat supports only system, user and "
            "assistant messages (no tools)"
        ),
    ):
        to_j2_chat(
            [
                ChatMessage(role="user", content="U"),
                ChatMessage(role="tool", content="x", additional_kwargs={"tool_call_id": "1"}),
            ]
        )
    with pytest.raises(
        ValueError, match=exact("Jurassic-2 chat needs at least one user or assistant message")
    ):
        to_j2_chat([ChatMessage(role="system", content="S")])


def j2_chat_raw(output: Any) -> dict[str, Any]:
    return {"id": "x", "outputs": [output]}


def test_j2_chat_answers() -> None:
    raw = j2_chat_raw({"text": "Hi!", "role": "assistant", "finishReason": {"reason": "endoftext"}})
    response = J2().chat_response(raw)
    assert response.message == ChatMessage(role=MessageRole.ASSISTANT, content="Hi!")
    assert response.raw is raw
    assert response.additional_kwargs == {"finish_reason": "endoftext"}
    for reason in (None, "length", {"reason": 3}, {}):
        raw = j2_chat_raw({"text": "x", "finishReason": reason})
        assert chat_response_from_j2_chat(raw).additional_kwargs == {"finish_reason": None}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "the response body should be dict, got list"),
        ({}, "'outputs' should be list, got NoneType"),
        ({"outputs": []}, "'outputs' is empty"),
        ({"outputs": ["x"]}, "outputs[0] should be dict, got str"),
        ({"outputs": [{"text": 1}]}, "outputs[0].text should be str, got int"),
    ],
)
def test_malformed_j2_chat_answers(raw: Any, message: str) -> None:
    with pytest.raises(MalformedResponseError, match=exact(f"malformed AI21 response: {message}")):
        chat_response_from_j2_chat(raw)


def j2_complete_raw(**data: Any) -> dict[str, Any]:
    return {
        "prompt": {"text": "Q", "tokens": [{}, {}, {}]},
        "completions": [{"data": {"text": "A", **data}, "finishReason": {"reason": "length"}}],
    }


def test_j2_completions_count_tokens_by_their_lists() -> None:
    raw = j2_complete_raw(tokens=[{}, {}])
    response = J2().completion_response(raw)
    assert response.text == "A"
    counts = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert response.additional_kwargs == {**counts, "finish_reason": "length"}
    # raw: the answer, with the counts where LlamaIndex's TokenCountingHandler reads them
    assert response.raw == {**raw, "usage": counts}
    assert "usage" not in raw  # (the answer itself is left as it came)
    assert J2().completion_response(j2_complete_raw()).raw == j2_complete_raw()  # no counts
    assert completion_from_j2(j2_complete_raw()) == ("A", {"finish_reason": "length"})
    no_prompt = {**j2_complete_raw(tokens=[{}]), "prompt": "Q"}
    assert completion_from_j2(no_prompt) == ("A", {"finish_reason": "length"})
    no_prompt_tokens = {**j2_complete_raw(tokens=[{}]), "prompt": {"tokens": None}}
    assert completion_from_j2(no_prompt_tokens) == ("A", {"finish_reason": "length"})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("x", "the response body should be dict, got str"),
        ({}, "'completions' should be list, got NoneType"),
        ({"completions": []}, "'completions' is empty"),
        ({"completions": [1]}, "completions[0] should be dict, got int"),
        ({"completions": [{}]}, "completions[0].data should be dict, got NoneType"),
        ({"completions": [{"data": {}}]}, "completions[0].data.text should be str, got NoneType"),
    ],
)
def test_malformed_j2_completions(raw: Any, message: str) -> None:
    with pytest.raises(MalformedResponseError, match=exact(f"malformed AI21 response: {message}")):
        completion_from_j2(raw)
