"""Jamba Reasoning 3B's tool calling on vLLM, started the way AI21's model card says
(``--enable-auto-tool-choice --tool-call-parser hermes --reasoning-parser deepseek_r1``), and on
a server with neither parser.

The stand-in model calls ``multiply`` Hermes-style when the prompt has ``Use multiply``, answers
with the product after a tool result, and otherwise answers in text; forced by ``tool_choice``
it calls the chosen tool with ``{"a": 3, "b": 4}`` (see scripts/vllm/build_reasoning_model.py).
A :class:`Recorder` in front of the server shows what the client sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import ai21.errors
import pytest
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.base.llms.types import ChatMessage, ThinkingBlock

from llama_index.llms.ai21 import AI21
from tests.calculator import TOOLS
from tests.tool_calls import METHODS, agent_warnings, raw_calls, responses
from tests.vllm.conftest import (
    LOCAL_NAME,
    REASONING_MODEL,
    Reasoning3B,
    Recorder,
    require_reasoning_servers,
)

require_reasoning_servers()

QUESTION = "What is 3 times 4? Use multiply."  # "Use multiply" makes the model call the tool
CALL = ("multiply", {"a": 3, "b": 4})


def thinking(response: Any) -> list[str | None]:
    return [b.content for b in response.message.blocks if isinstance(b, ThinkingBlock)]


def offered(body: dict[str, Any]) -> list[str]:
    return [tool["function"]["name"] for tool in body.get("tools", [])]


# --------------------------------------------------------------------------- any served name


@pytest.mark.parametrize("method", METHODS)
def test_a_served_name_outside_the_model_table_calls_tools(
    make_r3b: Callable[..., AI21], r3b: Reasoning3B, method: str
) -> None:
    llm = make_r3b(model=LOCAL_NAME)
    assert llm.metadata.is_function_calling_model
    response = responses(llm, method, TOOLS, QUESTION)[-1]
    [selection] = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == CALL
    [call] = raw_calls(response)
    assert call["id"] == selection.tool_id
    assert call["id"].startswith("chatcmpl-tool-")  # the hermes parser's id, as the server gave it
    assert not response.message.content
    assert thinking(response) == [r3b.reasoning("tool")]
    assert response.additional_kwargs["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "non-streaming"])
@agent_warnings
async def test_function_agent_runs_the_tool_loop_on_any_served_name(
    r3b: Reasoning3B, recorder: Recorder, streaming: bool
) -> None:
    llm = AI21(model=LOCAL_NAME, base_url=recorder.url, max_tokens=32)
    agent = FunctionAgent(tools=TOOLS, llm=llm, streaming=streaming)
    handler = agent.run(QUESTION)
    results = [
        (e.tool_name, e.tool_kwargs, e.tool_output.raw_output)
        async for e in handler.stream_events()
        if isinstance(e, ToolCallResult)
    ]
    output = await handler
    assert results == [(*CALL, 12)]
    assert str(output.response.content) == r3b.answer("tool_result")
    # The second request carries the tool call's reasoning back (the model's own thinking
    # inside its tool loop), in the field vLLM reads.
    first, second = recorder.chats
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool"]
    assert second["messages"][1]["reasoning"] == r3b.reasoning("tool")
    assert "reasoning" not in first["messages"][0]


# --------------------------------------------------------------------------- tool_choice


@pytest.mark.parametrize("method", ["chat_with_tools", "astream_chat_with_tools"])
def test_tool_required_is_sent_as_required_and_the_server_forces_a_call(
    r3b: Reasoning3B, recorder: Recorder, method: str
) -> None:
    llm = AI21(model=REASONING_MODEL, base_url=recorder.url, max_tokens=32)
    free = responses(llm, method, TOOLS, "Hi")[-1]
    assert raw_calls(free) == []  # left to itself, the model answers "Hi" in text
    assert free.message.content == r3b.answer()
    response = responses(llm, method, TOOLS, "Hi", tool_required=True)[-1]
    [selection] = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == CALL
    assert thinking(response) == [r3b.reasoning()]
    assert "tool_choice" not in recorder.chats[0]
    assert recorder.chats[1]["tool_choice"] == "required"
    assert offered(recorder.chats[1]) == ["multiply", "add"]


@pytest.mark.parametrize("method", ["chat_with_tools", "stream_chat_with_tools"])
@pytest.mark.parametrize(
    "choice", ["add", {"type": "function", "function": {"name": "add"}}], ids=["name", "dict"]
)
def test_a_named_tool_choice_is_sent_as_the_function_with_every_tool_offered(
    r3b: Reasoning3B, recorder: Recorder, method: str, choice: str | dict[str, Any]
) -> None:
    llm = AI21(model=REASONING_MODEL, base_url=recorder.url, max_tokens=32)
    # The question asks for multiply; the named choice makes the server call add instead.
    response = responses(llm, method, TOOLS, QUESTION, tool_choice=choice)[-1]
    [selection] = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("add", {"a": 3, "b": 4})
    [body] = recorder.chats
    assert body["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert offered(body) == ["multiply", "add"]


def test_a_named_tool_choice_outside_the_tools_is_refused_before_any_request(
    recorder: Recorder,
) -> None:
    llm = AI21(model=REASONING_MODEL, base_url=recorder.url, max_tokens=32)
    with pytest.raises(ValueError, match="divide"):
        llm.chat_with_tools(TOOLS, QUESTION, tool_choice="divide")
    assert recorder.chats == []


# --------------------------------------------------------------------------- hermes markup


def test_tools_on_a_server_without_a_tool_parser_get_the_servers_error_naming_the_flags(
    r3b: Reasoning3B,
) -> None:
    # vLLM refuses tools without --enable-auto-tool-choice --tool-call-parser (tool_choice
    # defaults to "auto" when tools are given), so Hermes <tool_call> text never reaches a
    # client that offered tools: the server's own error says which flags are missing.
    llm = AI21(model=REASONING_MODEL, base_url=r3b.plain_url, max_tokens=32)
    with pytest.raises(ai21.errors.BadRequest) as raised:
        llm.chat_with_tools(TOOLS, QUESTION)
    assert "--enable-auto-tool-choice and --tool-call-parser" in str(raised.value)


@pytest.mark.parametrize(
    ("kwargs", "choice"),
    [({"tool_required": True}, '"required"'), ({"tool_choice": "multiply"}, 'function "multiply"')],
)
def test_required_and_named_tools_on_a_server_without_a_tool_parser_get_its_error(
    r3b: Reasoning3B, kwargs: dict[str, Any], choice: str
) -> None:
    # Since vLLM pull request 30613 "required" and a named function need the parser as well
    # (docs/self-hosted.md; the emulator's parsers=False answers the same).
    llm = AI21(model=REASONING_MODEL, base_url=r3b.plain_url, max_tokens=32)
    with pytest.raises(ai21.errors.BadRequest) as raised:
        llm.chat_with_tools(TOOLS, QUESTION, **kwargs)
    message = str(raised.value).replace('\\"', '"')
    assert f"tool_choice={choice} requires --tool-call-parser to be set" in message


def test_the_tool_result_turn_is_what_the_model_saw(
    make_r3b: Callable[..., AI21], r3b: Reasoning3B
) -> None:
    llm = make_r3b()
    first = llm.chat_with_tools(TOOLS, QUESTION)
    [call] = raw_calls(first)
    history = [
        ChatMessage(role="user", content=QUESTION),
        first.message,
        ChatMessage(role="tool", content="12", additional_kwargs={"tool_call_id": call["id"]}),
    ]
    second = llm.chat_with_tools(TOOLS, chat_history=history)
    assert second.message.content == r3b.answer("tool_result")
    assert thinking(second) == [r3b.reasoning("tool_result")]
    seen: list[dict[str, Any]] = [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": None,
            "reasoning": r3b.reasoning("tool"),
            "tool_calls": [{"id": call["id"], "type": "function", "function": call["function"]}],
        },
        {"role": "tool", "content": "12", "tool_call_id": call["id"]},
    ]
    tools = [t.metadata.to_openai_tool(skip_length_check=True) for t in TOOLS]
    assert second.additional_kwargs["prompt_tokens"] == r3b.prompt_tokens(seen, tools=tools)
    assert json.loads(call["function"]["arguments"]) == CALL[1]
