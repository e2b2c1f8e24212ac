"""LlamaIndex agents over the emulator: tool call, tool result sent back, final answer."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.agent.workflow import (
    AgentOutput,
    AgentStream,
    AgentWorkflow,
    FunctionAgent,
    ToolCallResult,
)
from llama_index.core.base.llms.types import CitableBlock, TextBlock
from llama_index.core.tools import FunctionTool

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21
from tests.calculator import TOOLS

SYSTEM = "You are a careful calculator. Use the tools."

# llama-index-workflows finds an agent's steps with inspect.getmembers, which touches every
# deprecated pydantic attribute of the agent (warnings from their code, not ours).
pytestmark = [
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20"),
    pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211"),
]


def make_agent(kind: str, llm: AI21, streaming: bool) -> FunctionAgent | AgentWorkflow:
    agent = FunctionAgent(
        name="calculator",
        description="Does arithmetic with tools.",
        tools=TOOLS,
        llm=llm,
        system_prompt=SYSTEM,
        streaming=streaming,
    )
    return agent if kind == "function_agent" else AgentWorkflow(agents=[agent])


def script(emulator: Emulator, calls: list[tuple[str, str, str]], answer: str) -> None:
    """The model's two turns, scripted: the tool calls, then (after the results) the answer."""
    emulator.reply_next(tool_calls=[{"name": n, "arguments": a} for n, a, _ in calls])
    emulator.reply_next(answer)


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "non-streaming"])
@pytest.mark.parametrize("kind", ["function_agent", "agent_workflow"])
@pytest.mark.parametrize(
    ("question", "calls", "answer"),
    [
        (
            "What is 3 times 4?",
            [("multiply", '{"a":3,"b":4}', "12")],
            "3 times 4 is 12.",
        ),
        (
            "What is 3 times 4 and then add 2 plus 5?",
            [("multiply", '{"a":3,"b":4}', "12"), ("add", '{"a":2,"b":5}', "7")],
            "3 times 4 is 12, and 2 plus 5 is 7.",
        ),
    ],
    ids=["one-call", "parallel-calls"],
)
async def test_agent_loop_sends_tool_calls_and_results_back(
    llm: AI21,
    emulator: Emulator,
    kind: str,
    streaming: bool,
    question: str,
    calls: list[tuple[str, str, str]],
    answer: str,
) -> None:
    script(emulator, calls, answer)
    handler = make_agent(kind, llm, streaming).run(question)
    events = [event async for event in handler.stream_events()]
    result = await handler

    assert str(result) == answer
    # LlamaIndex's agents run a turn's calls at once: their results come as they finish.
    order = [name for name, _, _ in calls]
    results = sorted(
        (e for e in events if isinstance(e, ToolCallResult)),
        key=lambda r: order.index(r.tool_name),
    )
    assert [(r.tool_name, r.tool_output.content) for r in results] == [
        (name, output) for name, _, output in calls
    ]
    first, second = emulator.requests
    assert first.json["stream"] is second.json["stream"] is streaming
    assert [t["function"]["name"] for t in first.json["tools"]] == ["multiply", "add"]
    assert first.json["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question},
    ]
    ids = [r.tool_id for r in results]
    turn = len(first.json["messages"]) + 1  # the question, then the assistant's calls
    sent = second.json["messages"]
    tool_messages = sorted(sent[turn:], key=lambda m: ids.index(m.get("tool_call_id")))
    assert [*sent[:turn], *tool_messages] == [
        *first.json["messages"],
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                call(i, name, args) for i, (name, args, _) in zip(ids, calls, strict=True)
            ],
        },
        *(
            {"role": "tool", "content": output, "tool_call_id": i}
            for i, (_, _, output) in zip(ids, calls, strict=True)
        ),
    ]


@pytest.mark.parametrize("kind", ["function_agent", "agent_workflow"])
async def test_streamed_agent_events_carry_the_tool_call_and_the_answer(
    llm: AI21, emulator: Emulator, kind: str
) -> None:
    script(emulator, [("multiply", '{"a":3,"b":4}', "12")], "3 times 4 is 12.")
    handler = make_agent(kind, llm, streaming=True).run("What is 3 times 4?")
    events = [event async for event in handler.stream_events()]
    await handler
    first, last = (e for e in events if isinstance(e, AgentOutput))
    assert [(c.tool_name, c.tool_kwargs) for c in first.tool_calls] == [
        ("multiply", {"a": 3, "b": 4})
    ]
    assert last.response.content == "3 times 4 is 12."
    answer_stream = events[events.index(first) :]
    deltas = [e.delta for e in answer_stream if isinstance(e, AgentStream)]
    assert "".join(deltas) == "3 times 4 is 12."


async def test_initial_tool_choice_offers_only_that_tool(llm: AI21, emulator: Emulator) -> None:
    agent = FunctionAgent(tools=TOOLS, llm=llm, initial_tool_choice="add")
    script(emulator, [("add", '{"a":3,"b":4}', "7")], "It is 7.")
    assert str(await agent.run("What is 3 times 4?")) == "It is 7."
    first, second = emulator.requests
    assert [t["function"]["name"] for t in first.json["tools"]] == ["add"]
    assert [t["function"]["name"] for t in second.json["tools"]] == ["multiply", "add"]


@pytest.mark.parametrize("streaming", [True, False], ids=["streaming", "non-streaming"])
async def test_a_tool_that_returns_a_citable_block_gets_its_text_back_to_the_model(
    llm: AI21, emulator: Emulator, streaming: bool
) -> None:
    """LlamaIndex's agents put a tool's output blocks into the tool message: a CitableBlock
    (a retriever tool's usual answer) goes back as the tool's text, its title and source on a
    header line, instead of failing the agent's second turn."""

    def search(query: str) -> CitableBlock:
        """Search the wiki."""
        return CitableBlock(
            content=[TextBlock(text="Jamba is a hybrid SSM-Transformer model.")],
            title="Jamba",
            source="wiki",
        )

    emulator.reply_next(tool_calls=[{"name": "search", "arguments": '{"query":"jamba"}'}])
    emulator.reply_next("Jamba is a hybrid model.")
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(search)], llm=llm, streaming=streaming)
    assert str(await agent.run("What is Jamba?")) == "Jamba is a hybrid model."
    [result] = emulator.requests[1].json["messages"][-1:]
    assert result["role"] == "tool"
    assert result["content"] == (
        "Document (title: Jamba; source: wiki)\nJamba is a hybrid SSM-Transformer model."
    )
