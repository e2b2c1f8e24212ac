"""Tool calls through vLLM's jamba tool parser, and a FunctionAgent run to its final answer."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ToolCall, ToolCallResult

from llama_index.llms.ai21 import AI21
from tests.calculator import TOOLS
from tests.tool_calls import METHODS, agent_warnings, raw_calls, responses
from tests.vllm.conftest import (
    Servers,
    require_servers,
)

require_servers()

QUESTION = "What is 3 times 4? Use multiply."  # "multiply" makes the model call the tool


@pytest.mark.parametrize("method", METHODS)
def test_the_parsed_tool_call_is_exact(make_llm: Callable[..., AI21], method: str) -> None:
    llm = make_llm()
    response = responses(llm, method, TOOLS, QUESTION)[-1]
    [selection] = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("multiply", {"a": 3, "b": 4})
    [call] = raw_calls(response)
    assert call["id"] == selection.tool_id
    assert call["id"].startswith("chatcmpl-tool-")  # vLLM's id, kept as the server gave it
    assert json.loads(call["function"]["arguments"]) == {"a": 3, "b": 4}
    assert not response.message.content
    assert response.additional_kwargs["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("method", ["stream_chat_with_tools", "astream_chat_with_tools"])
def test_a_streamed_call_names_the_tool_first_and_ends_whole(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    chunks = responses(make_llm(), method, TOOLS, QUESTION)
    seen = [raw_calls(c) for c in chunks if raw_calls(c)]
    assert [len(calls) for calls in seen] == [1] * len(seen)
    # The name comes first. vLLM sends the arguments in a later delta, unless the client lags
    # and the server merges the tokens of several steps into one delta: then they come with it.
    assert seen[0][0]["function"]["name"] == "multiply"
    assert seen[0][0]["function"]["arguments"] in ("", seen[-1][0]["function"]["arguments"])
    assert json.loads(seen[-1][0]["function"]["arguments"]) == {"a": 3, "b": 4}
    assert all(c.delta == "" for c in chunks)
    final = chunks[-1].additional_kwargs
    assert final["finish_reason"] == "tool_calls"
    assert final["completion_tokens"] == len(servers.chains["<|tool_mode|>"]) + 1  # + EOS


@pytest.mark.parametrize("method", ["chat_with_tools", "astream_chat_with_tools"])
def test_without_the_marker_the_model_answers_in_text(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    response = responses(make_llm(), method, TOOLS, "Hi")[-1]
    assert raw_calls(response) == []
    assert response.message.content == servers.answer


def test_tools_reach_the_prompt(make_llm: Callable[..., AI21]) -> None:
    llm = make_llm()
    bare = llm.chat_with_tools([], "Hi").additional_kwargs["prompt_tokens"]
    one = llm.chat_with_tools(TOOLS[:1], "Hi").additional_kwargs["prompt_tokens"]
    two = llm.chat_with_tools(TOOLS, "Hi").additional_kwargs["prompt_tokens"]
    assert bare < one < two


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "non-streaming"])
@agent_warnings
async def test_function_agent_calls_the_tool_once_then_answers(
    make_llm: Callable[..., AI21], servers: Servers, streaming: bool
) -> None:
    agent = FunctionAgent(tools=TOOLS, llm=make_llm(), streaming=streaming)
    handler = agent.run(QUESTION)
    calls, results = [], []
    async for event in handler.stream_events():
        if isinstance(event, ToolCallResult):
            results.append((event.tool_name, event.tool_kwargs, event.tool_output.raw_output))
        elif isinstance(event, ToolCall):
            calls.append(event.tool_name)
    output = await handler
    assert results == [("multiply", {"a": 3, "b": 4}, 12)]
    assert calls == ["multiply"]
    assert str(output.response.content) == servers.text("<|answer_mode|>")
    assert [c.tool_name for c in output.tool_calls] == ["multiply"]
