"""Jamba Reasoning 3B's reasoning on vLLM: split by the server (``--reasoning-parser
deepseek_r1``, AI21's card) or by the client (a server with neither parser returns the reasoning
in ``content``, ending in ``</think>``: the template opened ``<think>`` in the prompt).

Also what reaches the prompt: earlier reasoning inside a tool loop only, ``chat_template_kwargs``
(the template's ``thinking_prefix``), and documents (the template has no ``documents``
variable). vLLM's ``POST /tokenize`` renders the template, so a response's ``prompt_tokens`` says
exactly what the model saw.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    CitableBlock,
    DocumentBlock,
    TextBlock,
    ThinkingBlock,
)
from pydantic import BaseModel

from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21.errors import StreamInterruptedError
from tests.calculator import TOOLS
from tests.calls import METHOD_IDS, arg_for, call
from tests.tool_calls import raw_calls
from tests.vllm.conftest import (
    REASONING_MODEL,
    Reasoning3B,
    Recorder,
    require_reasoning_servers,
)

require_reasoning_servers()

CHAT_METHODS = ["chat", "stream_chat", "achat", "astream_chat"]
QUESTION = "What is 3 times 4? Use multiply."
PREFIX = "Think in one line.\n"


def thinking(response: Any) -> list[str | None]:
    message = getattr(response, "message", None)
    if message is None:  # a CompletionResponse
        return []
    return [b.content for b in message.blocks if isinstance(b, ThinkingBlock)]


def server_url(r3b: Reasoning3B, server: str) -> str:
    return r3b.url if server == "parser" else r3b.plain_url


SERVERS = pytest.mark.parametrize("server", ["parser", "plain"])


# --------------------------------------------------------------------------- the split


@SERVERS
@pytest.mark.parametrize("method", METHOD_IDS)
def test_the_answer_never_holds_the_reasoning(
    make_r3b: Callable[..., AI21], r3b: Reasoning3B, server: str, method: str
) -> None:
    outcome = call(make_r3b(base_url=server_url(r3b, server)), method, arg_for(method, "Hi"))
    assert outcome.text == r3b.answer()
    if len(outcome.responses) > 1:  # streamed: no delta carries reasoning or </think>
        assert "".join(r.delta or "" for r in outcome.responses) == r3b.answer()
    if method.endswith("chat"):
        assert thinking(outcome.responses[-1]) == [r3b.reasoning()]
    else:
        assert outcome.responses[-1].additional_kwargs["reasoning"] == r3b.reasoning()


@SERVERS
def test_json_answers_after_the_reasoning(
    make_r3b: Callable[..., AI21], r3b: Reasoning3B, server: str
) -> None:
    response = make_r3b(base_url=server_url(r3b, server)).chat(
        [ChatMessage(role="user", content="A pen, #json")]
    )
    assert response.message.content == r3b.answer("json")
    assert thinking(response) == [r3b.reasoning("json")]


# --------------------------------------------------------------------------- reasoning sent back


def tool_result(response: Any) -> ChatMessage:
    [tool_call] = raw_calls(response)
    return ChatMessage(
        role="tool", content="12", additional_kwargs={"tool_call_id": tool_call["id"]}
    )


@pytest.mark.parametrize("stream", [False, True], ids=["non-streaming", "streaming"])
def test_only_the_current_tool_loops_reasoning_goes_back_and_the_model_sees_it(
    r3b: Reasoning3B, recorder: Recorder, stream: bool
) -> None:
    llm = AI21(model=REASONING_MODEL, base_url=recorder.url, max_tokens=32)
    # A first tool loop: the call, its result, the answer.
    history = [ChatMessage(role="user", content=QUESTION)]
    first_call = llm.chat_with_tools(TOOLS, chat_history=history)
    history += [first_call.message, tool_result(first_call)]
    answer = llm.chat_with_tools(TOOLS, chat_history=history)
    assert answer.message.content == r3b.answer("tool_result")
    # A second question and tool loop (the call forced: after a tool result the model answers).
    history += [answer.message, ChatMessage(role="user", content="And again?")]
    if stream:
        chunks = llm.stream_chat_with_tools(TOOLS, chat_history=history, tool_required=True)
        second_call = list(chunks)[-1]
    else:
        second_call = llm.chat_with_tools(TOOLS, chat_history=history, tool_required=True)
    assert thinking(second_call) == [r3b.reasoning("tool_result")]
    history += [second_call.message, tool_result(second_call)]
    final = llm.chat_with_tools(TOOLS, chat_history=history)

    sent = recorder.chats[-1]["messages"]
    roles = ["user", "assistant", "tool", "assistant", "user", "assistant", "tool"]
    assert [m["role"] for m in sent] == roles
    # Turns before the last user message keep their reasoning to themselves.
    for earlier in sent[1], sent[3]:
        assert "reasoning" not in earlier
        assert "reasoning_content" not in earlier
    # The tool call after it sends its reasoning back in the field vLLM reads (and, to a server
    # the client does not know to be vLLM, in reasoning_content as well).
    assert sent[5]["reasoning"] == r3b.reasoning("tool_result")
    assert sent[5].get("reasoning_content", sent[5]["reasoning"]) == sent[5]["reasoning"]
    # What the model saw: the request exactly as rendered by Reasoning 3B's template ...
    tools = recorder.chats[-1]["tools"]
    seen = final.additional_kwargs["prompt_tokens"]
    assert seen == r3b.prompt_tokens(sent, tools=tools)
    # ... which sending the first call's reasoning too would change (the template puts its
    # thinking prefix on a user turn whose next assistant turn carries reasoning).
    with_all = [*sent[:1], dict(sent[1], reasoning=r3b.reasoning("tool")), *sent[2:]]
    assert r3b.prompt_tokens(with_all, tools=tools) != seen


# --------------------------------------------------------------------------- cut streams


@pytest.mark.parametrize("method", ["stream_chat", "astream_chat"])
def test_a_stream_cut_after_the_reasoning_reports_the_reasoning(
    r3b: Reasoning3B, recorder: Recorder, method: str
) -> None:
    answer_started = False

    def cut(line: str) -> bool:  # drop the connection at the first piece of the answer
        nonlocal answer_started
        answer_started = answer_started or '"content":"Hello' in line
        return answer_started

    recorder.cut_when = cut
    llm = AI21(model=REASONING_MODEL, base_url=recorder.url, max_tokens=32, max_retries=0)
    with pytest.raises(StreamInterruptedError) as raised:
        call(llm, method, arg_for(method, "Hi"))
    assert raised.value.partial_text == ""
    assert raised.value.partial_reasoning == r3b.reasoning()  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- max_tokens


@SERVERS
@pytest.mark.parametrize("method", CHAT_METHODS)
def test_reasoning_that_used_every_token_says_so_naming_max_tokens(
    make_r3b: Callable[..., AI21],
    r3b: Reasoning3B,
    server: str,
    method: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    all_reasoning = len(r3b.chains["default"]["reasoning"])  # tokens: one per piece
    llm = make_r3b(base_url=server_url(r3b, server), max_tokens=all_reasoning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = call(llm, method, arg_for(method, "Hi"))
    final = outcome.responses[-1]
    assert outcome.text == ""
    assert final.additional_kwargs["finish_reason"] == "length"
    assert thinking(final) == [r3b.reasoning()]
    said = [r.getMessage() for r in caplog.records] + [str(w.message) for w in caught]
    assert [s for s in said if "max_tokens" in s], said


class Pen(BaseModel):
    name: str
    count: int


@SERVERS
def test_structured_predict_names_max_tokens_when_reasoning_used_them_all(
    make_r3b: Callable[..., AI21], r3b: Reasoning3B, server: str
) -> None:
    from llama_index.core.prompts import PromptTemplate

    llm = make_r3b(base_url=server_url(r3b, server), max_tokens=2)
    with pytest.raises(ValueError, match="max_tokens"):
        llm.structured_predict(Pen, PromptTemplate("A pen, #json"))
    assert llm.model_copy(update={"max_tokens": 32}).structured_predict(
        Pen, PromptTemplate("A pen, #json")
    ) == Pen(name="pen", count=3)


# --------------------------------------------------------------------------- usage


@SERVERS
@pytest.mark.parametrize("method", ["chat", "stream_chat", "astream_complete"])
def test_logprobs_cover_the_reasoning_the_think_tag_and_the_answer(
    make_r3b: Callable[..., AI21], r3b: Reasoning3B, server: str, method: str
) -> None:
    """vLLM reports every generated token's logprob, the reasoning's and ``</think>`` too, with
    its reasoning parser (which sends ``</think>``'s in a chunk with an empty delta: it comes
    with the next chunk the caller gets) or without (the client splits the text)."""
    llm = make_r3b(base_url=server_url(r3b, server))
    outcome = call(llm, method, arg_for(method, "Hi"), logprobs=True)
    tokens = [p[0].token for r in outcome.responses for p in (r.logprobs or [])]
    chain = r3b.chains["default"]
    assert tokens == [*chain["reasoning"], "</think>", *chain["answer"], "<|im_end|>"]
    assert outcome.text == r3b.answer()


@pytest.mark.parametrize("method", CHAT_METHODS)
def test_reasoning_tokens_are_reported_as_the_server_counts_them(
    make_r3b: Callable[..., AI21], method: str
) -> None:
    final = call(make_r3b(), method, arg_for(method, "Hi")).responses[-1]
    # vLLM counts the tokens between a generated <think> and </think>; Reasoning 3B's
    # template opens <think> in the prompt, so vLLM 0.32 reports 0 for it.
    assert final.additional_kwargs["reasoning_tokens"] == 0


# --------------------------------------------------------------------------- template variables


@pytest.mark.parametrize("where", ["call", "instance"])
@pytest.mark.parametrize("method", CHAT_METHODS)
def test_chat_template_kwargs_reach_the_template(
    r3b: Reasoning3B, recorder: Recorder, where: str, method: str
) -> None:
    kwargs: dict[str, Any] = {"chat_template_kwargs": {"thinking_prefix": PREFIX}}
    llm = AI21(
        model=REASONING_MODEL,
        base_url=recorder.url,
        max_tokens=32,
        **(kwargs if where == "instance" else {}),
    )
    outcome = call(llm, method, arg_for(method, "Hi"), **(kwargs if where == "call" else {}))
    assert outcome.text == r3b.answer()
    [body] = recorder.chats
    assert body["chat_template_kwargs"] == {"thinking_prefix": PREFIX}
    user = [{"role": "user", "content": "Hi"}]
    seen = outcome.responses[-1].additional_kwargs["prompt_tokens"]
    assert seen == r3b.prompt_tokens(user, chat_template_kwargs={"thinking_prefix": PREFIX})
    assert seen != r3b.prompt_tokens(user)


@pytest.mark.parametrize("value", ["thinking_prefix=x", ["thinking_prefix"], {"p": object()}])
def test_chat_template_kwargs_that_are_not_a_json_object_are_refused_before_any_request(
    recorder: Recorder, value: Any
) -> None:
    llm = AI21(model=REASONING_MODEL, base_url=recorder.url, max_tokens=32)
    with pytest.raises(ValueError, match="chat_template_kwargs"):
        llm.chat([ChatMessage(role="user", content="Hi")], chat_template_kwargs=value)
    assert recorder.chats == []


# --------------------------------------------------------------------------- documents


@pytest.mark.parametrize("method", ["chat", "astream_chat", "complete"])
def test_documents_reach_a_template_without_a_documents_variable(
    r3b: Reasoning3B, recorder: Recorder, method: str
) -> None:
    llm = AI21(model=REASONING_MODEL, base_url=recorder.url, max_tokens=32)
    bare = call(llm, method, arg_for(method, "Hi")).responses[-1].additional_kwargs
    documents = [{"text": "alpha beta gamma", "title": "Greek"}]
    grounded = call(llm, method, arg_for(method, "Hi"), documents=documents)
    seen = grounded.responses[-1].additional_kwargs["prompt_tokens"]
    body = recorder.chats[-1]
    assert seen > bare["prompt_tokens"]  # the documents reached the prompt
    assert "documents" not in body  # not as a field the template would drop
    assert "alpha beta gamma" in str(body["messages"])
    assert seen == r3b.prompt_tokens(body["messages"])  # the model saw what was sent
    assert grounded.text == r3b.answer()


def test_document_blocks_in_a_message_reach_the_prompt(
    r3b: Reasoning3B, recorder: Recorder
) -> None:
    llm = AI21(model=REASONING_MODEL, base_url=recorder.url, max_tokens=32)
    bare = llm.chat([ChatMessage(role="user", content="Hi")]).additional_kwargs["prompt_tokens"]
    card = CitableBlock(content=[TextBlock(text="alpha beta gamma")], title="Greek", source="x")
    note = DocumentBlock(data=b"delta epsilon", document_mimetype="text/plain")
    message = ChatMessage(role="user", blocks=[card, note, TextBlock(text="Hi")])
    response = llm.chat([message])
    seen = response.additional_kwargs["prompt_tokens"]
    [sent] = recorder.chats[-1]["messages"]
    assert seen > bare
    assert "alpha beta gamma" in sent["content"]
    assert "delta epsilon" in sent["content"]
    assert seen == r3b.prompt_tokens([sent])
    assert response.message.content == r3b.answer()
