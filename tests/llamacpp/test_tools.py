"""Hermes tool calls through llama-server (found from Jamba Reasoning 3B's template alone), a
FunctionAgent run to its final answer, the reasoning sent back inside the tool loop, and
``tool_choice`` / ``tool_required`` as llama-server can honour them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentStream, FunctionAgent, ToolCall, ToolCallResult
from llama_index.core.base.llms.types import ChatMessage, MessageRole

from llama_index.llms.ai21 import AI21
from tests.calculator import TOOLS
from tests.llamacpp.conftest import Recorder, Servers, require_servers
from tests.tool_calls import METHODS, agent_warnings, raw_calls, responses

require_servers()

QUESTION = "What is 3 times 4? Use multiply."  # " multiply" makes the model call the tool


@pytest.mark.parametrize("method", METHODS)
def test_the_parsed_tool_call_is_exact(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    llm = make_llm()
    response = responses(llm, method, TOOLS, QUESTION)[-1]
    [selection] = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("multiply", {"a": 3, "b": 4})
    [call] = raw_calls(response)
    assert call["id"] == selection.tool_id
    assert json.loads(call["function"]["arguments"]) == {"a": 3, "b": 4}
    assert not response.message.content
    assert response.additional_kwargs["finish_reason"] == "tool_calls"
    assert response.additional_kwargs["completion_tokens"] == servers.completion_tokens("tool")


@pytest.mark.parametrize("method", ["stream_chat_with_tools", "astream_chat_with_tools"])
def test_a_streamed_call_keeps_its_reasoning_and_ends_whole(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    chunks = responses(make_llm(), method, TOOLS, QUESTION)
    seen = [raw_calls(c) for c in chunks if raw_calls(c)]
    assert [len(calls) for calls in seen] == [1] * len(seen)
    assert seen[-1][0]["function"]["name"] == "multiply"
    assert json.loads(seen[-1][0]["function"]["arguments"]) == {"a": 3, "b": 4}
    assert all(c.delta == "" for c in chunks)
    thought = "".join(c.additional_kwargs.get("thinking_delta", "") for c in chunks)
    assert thought == servers.reasoning("tool")
    final = chunks[-1]
    assert final.additional_kwargs["finish_reason"] == "tool_calls"
    blocks = [b for b in final.message.blocks if type(b).__name__ == "ThinkingBlock"]
    assert [b.content for b in blocks] == [servers.reasoning("tool")]


@pytest.mark.parametrize("method", ["chat_with_tools", "astream_chat_with_tools"])
def test_without_the_marker_the_model_answers_in_text(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    response = responses(make_llm(), method, TOOLS, "Hi")[-1]
    assert raw_calls(response) == []
    assert response.message.content == servers.answer()


def test_tools_reach_the_prompt_in_the_templates_tools_block(
    make_llm: Callable[..., AI21], servers: Servers, record: Callable[..., Recorder]
) -> None:
    recorder = record()
    llm = make_llm(base_url=recorder.url)
    bare = llm.chat_with_tools([], "Hi").additional_kwargs["prompt_tokens"]
    two = llm.chat_with_tools(TOOLS, "Hi").additional_kwargs["prompt_tokens"]
    assert bare < two
    prompt = servers.apply_template(recorder.bodies()[-1])
    assert "<tools>\n" in prompt
    assert '"name": "multiply"' in prompt
    assert '"name": "add"' in prompt


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "non-streaming"])
@agent_warnings
async def test_function_agent_calls_the_tool_once_then_answers(
    make_llm: Callable[..., AI21],
    servers: Servers,
    record: Callable[..., Recorder],
    streaming: bool,
) -> None:
    recorder = record()
    agent = FunctionAgent(tools=TOOLS, llm=make_llm(base_url=recorder.url), streaming=streaming)
    handler = agent.run(QUESTION)
    calls, results, thoughts = [], [], []
    async for event in handler.stream_events():
        if isinstance(event, ToolCallResult):
            results.append((event.tool_name, event.tool_kwargs, event.tool_output.raw_output))
        elif isinstance(event, ToolCall):
            calls.append(event.tool_name)
        elif isinstance(event, AgentStream) and event.thinking_delta:
            thoughts.append(event.thinking_delta)
    output = await handler
    assert results == [("multiply", {"a": 3, "b": 4}, 12)]
    assert calls == ["multiply"]
    assert str(output.response.content) == servers.answer("answer")
    assert [c.tool_name for c in output.tool_calls] == ["multiply"]
    if streaming:
        assert "".join(thoughts).startswith(servers.reasoning("tool"))
    bodies = recorder.bodies()
    assert [b.get("stream", False) for b in bodies] == [streaming, streaming]
    assert_reasoning_sent_back(servers, bodies[-1])


def assert_reasoning_sent_back(servers: Servers, body: dict[str, Any]) -> None:
    """The tool-calling turn goes back with its reasoning in ``reasoning_content`` (the field
    llama-server reads), and the template puts it back into the prompt."""
    assistant = [m for m in body["messages"] if m["role"] == "assistant"]
    assert len(assistant) == 1
    assert assistant[0]["reasoning_content"] == servers.reasoning("tool")
    assert "reasoning" not in assistant[0]
    prompt = servers.apply_template(body)
    reasoning = servers.reasoning("tool").strip("\n")
    assert f"<|im_start|>assistant\n<think>\n{reasoning}\n</think>\n\n<tool_call>" in prompt


@pytest.mark.parametrize("method", ["chat_with_tools", "astream_chat_with_tools"])
def test_reasoning_goes_back_in_the_tool_loop_but_not_for_earlier_turns(
    make_llm: Callable[..., AI21],
    servers: Servers,
    record: Callable[..., Recorder],
    method: str,
) -> None:
    recorder = record()
    llm = make_llm(base_url=recorder.url)
    earlier = llm.chat([ChatMessage(role="user", content="Hi")])  # a finished turn
    history = [ChatMessage(role="user", content="Hi"), earlier.message]
    first = responses(llm, method, TOOLS, QUESTION, chat_history=history)[-1]
    [selection] = llm.get_tool_calls_from_response(first)
    tool_result = ChatMessage(
        role=MessageRole.TOOL,
        content="12",
        additional_kwargs={"tool_call_id": selection.tool_id, "name": "multiply"},
    )
    loop = [*history, ChatMessage(role="user", content=QUESTION), first.message, tool_result]
    final = responses(llm, method.replace("_with_tools", ""), loop)[-1]
    assert final.message.content == servers.answer("answer")
    body = recorder.bodies()[-1]
    # The earlier turn (before the last user message) goes back without its reasoning.
    earlier_turn = body["messages"][1]
    assert earlier_turn["role"] == "assistant"
    assert "reasoning_content" not in earlier_turn
    assert body["messages"][3]["reasoning_content"] == servers.reasoning("tool")
    prompt = servers.apply_template(body)
    assert prompt.count("<think>\n") == 2  # the tool-calling turn's, and the generation prompt's


def test_a_named_tool_choice_offers_only_that_tool_and_requires_a_call(
    make_llm: Callable[..., AI21], record: Callable[..., Recorder]
) -> None:
    # llama-server turns a named tool_choice into "auto" (llama.cpp issue 26535): the package
    # offers only the named tool and sends "required".
    recorder = record()
    llm = make_llm(base_url=recorder.url)
    response = llm.chat_with_tools(TOOLS, QUESTION, tool_choice="multiply")
    [selection] = llm.get_tool_calls_from_response(response)
    assert selection.tool_name == "multiply"
    (body,) = recorder.bodies()
    assert [t["function"]["name"] for t in body["tools"]] == ["multiply"]
    assert body["tool_choice"] == "required"


def test_tool_required_sends_required(
    make_llm: Callable[..., AI21], record: Callable[..., Recorder]
) -> None:
    recorder = record()
    llm = make_llm(base_url=recorder.url)
    response = llm.chat_with_tools(TOOLS, QUESTION, tool_required=True)
    assert llm.get_tool_calls_from_response(response)[0].tool_name == "multiply"
    (body,) = recorder.bodies()
    assert [t["function"]["name"] for t in body["tools"]] == ["multiply", "add"]
    assert body["tool_choice"] == "required"
