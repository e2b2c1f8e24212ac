"""Tool calling over the emulator: definitions sent, calls parsed (streamed or not), resent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.llms.llm import ToolSelection

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21
from tests.calculator import TOOLS

MULTIPLY_SPEC = {
    "type": "function",
    "function": {
        "name": "multiply",
        "description": "Multiply two integers.",
        "parameters": {
            "type": "object",
            "properties": {
                "a": {"title": "A", "type": "integer"},
                "b": {"title": "B", "type": "integer"},
            },
            "required": ["a", "b"],
        },
    },
}
TWO_CALLS = "What is 3 times 4 and then add 2 plus 5?"
# Scripted answers (the emulator's own tool-call guessing has its tests in emulator/tests).
MULTIPLY_3_4 = {"name": "multiply", "arguments": {"a": 3, "b": 4}}
ADD_2_5 = {"name": "add", "arguments": {"a": 2, "b": 5}}
METHODS = [
    "chat_with_tools",
    "stream_chat_with_tools",
    "achat_with_tools",
    "astream_chat_with_tools",
]


def responses(llm: AI21, method: str, *args: Any, **kwargs: Any) -> list[ChatResponse]:
    """Call one of the four ``*chat_with_tools`` methods; every response (one unless streamed)."""

    async def run_async() -> list[ChatResponse]:
        result = await getattr(llm, method)(*args, **kwargs)
        if "stream" in method:
            return [chunk async for chunk in result]
        return [result]

    if method.startswith("a"):
        return asyncio.run(run_async())
    result = getattr(llm, method)(*args, **kwargs)
    return list(result) if "stream" in method else [result]


def chat_with_tools(llm: AI21, method: str, *args: Any, **kwargs: Any) -> ChatResponse:
    """The final response of :func:`responses` (a stream's last chunk)."""
    return responses(llm, method, *args, **kwargs)[-1]


def calls_of(response: ChatResponse) -> list[tuple[str, str]]:
    """(name, arguments) of each tool call, checking kwargs and blocks agree."""
    calls = response.message.additional_kwargs["tool_calls"]
    blocks = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
    assert [(b.tool_call_id, b.tool_name, b.tool_kwargs) for b in blocks] == [
        (c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls
    ]
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in calls)
    return [(c["function"]["name"], c["function"]["arguments"]) for c in calls]


@pytest.mark.parametrize("method", METHODS)
def test_tools_go_out_as_ai21_function_definitions(
    llm: AI21, emulator: Emulator, method: str
) -> None:
    chat_with_tools(llm, method, TOOLS[:1], "What is 3 times 4?")
    assert emulator.last_request.json == {
        "model": "jamba-mini",
        "messages": [{"role": "user", "content": "What is 3 times 4?"}],
        "stream": "stream" in method,
        "tools": [MULTIPLY_SPEC],
    }


@pytest.mark.parametrize("method", METHODS)
def test_tool_calls_arrive_whole_with_parsed_arguments(
    llm: AI21, emulator: Emulator, method: str
) -> None:
    emulator.reply_next(tool_calls=[MULTIPLY_3_4])
    response = chat_with_tools(llm, method, TOOLS, "What is 3 times 4?")
    assert calls_of(response) == [("multiply", '{"a":3,"b":4}')]
    call_id = response.message.additional_kwargs["tool_calls"][0]["id"]
    assert llm.get_tool_calls_from_response(response) == [
        ToolSelection(tool_id=call_id, tool_name="multiply", tool_kwargs={"a": 3, "b": 4})
    ]
    assert response.additional_kwargs["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("method", ["stream_chat_with_tools", "astream_chat_with_tools"])
def test_streamed_fragments_merge_into_growing_tool_calls(
    llm: AI21, emulator: Emulator, method: str
) -> None:
    emulator.reply_next(tool_calls=[MULTIPLY_3_4, ADD_2_5])
    chunks = responses(llm, method, TOOLS, TWO_CALLS, allow_parallel_tool_calls=True)
    final = calls_of(chunks[-1])
    assert final == [("multiply", '{"a":3,"b":4}'), ("add", '{"a":2,"b":5}')]
    seen = [calls_of(c) for c in chunks if c.message.additional_kwargs.get("tool_calls")]
    assert seen[0] == [("multiply", "")]  # the name arrives first, the arguments in pieces
    assert len(seen) > len('{"a":3,"b":4}{"a":2,"b":5}') / 2, "fragments, not whole calls"
    for calls in seen:
        assert [name for name, _ in calls] == [name for name, _ in final][: len(calls)]
        assert all(final[i][1].startswith(arguments) for i, (_, arguments) in enumerate(calls))
    assert all(c.delta == "" for c in chunks)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    ("parallel", "expected"),
    [
        (True, [("multiply", '{"a":3,"b":4}'), ("add", '{"a":2,"b":5}')]),
        (False, [("multiply", '{"a":3,"b":4}')]),
    ],
)
def test_allow_parallel_tool_calls_false_keeps_the_first_call(
    llm: AI21, emulator: Emulator, method: str, parallel: bool, expected: list[tuple[str, str]]
) -> None:
    emulator.reply_next(tool_calls=[MULTIPLY_3_4, ADD_2_5])
    response = chat_with_tools(llm, method, TOOLS, TWO_CALLS, allow_parallel_tool_calls=parallel)
    assert calls_of(response) == expected
    assert [s.tool_name for s in llm.get_tool_calls_from_response(response)] == [
        name for name, _ in expected
    ]


@pytest.mark.parametrize(
    ("tool_choice", "offered"),
    [
        ("add", ["add"]),
        ({"type": "function", "function": {"name": "add"}}, ["add"]),
        ("auto", ["multiply", "add"]),
        ("required", ["multiply", "add"]),
        ("none", None),
    ],
)
def test_tool_choice_narrows_the_tools_offered(
    llm: AI21, emulator: Emulator, tool_choice: Any, offered: list[str] | None
) -> None:
    if offered is None:
        emulator.reply_next("Twelve.")
    else:
        emulator.reply_next(tool_calls=[{"name": offered[0], "arguments": {"a": 3, "b": 4}}])
    response = llm.chat_with_tools(TOOLS, "What is 3 times 4?", tool_choice=tool_choice)
    sent = emulator.last_request.json
    assert "tool_choice" not in sent  # AI21 has no such field (AI21's Jamba API reference)
    if offered is None:
        assert "tools" not in sent
        assert response.message.content == "Twelve."
        assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []
    else:
        assert [t["function"]["name"] for t in sent["tools"]] == offered
        assert [name for name, _ in calls_of(response)] == offered[:1]


def test_tool_choice_naming_an_unknown_tool_fails_before_any_request(
    llm: AI21, emulator: Emulator
) -> None:
    with pytest.raises(ValueError, match="'divide', which is not among the tools"):
        llm.chat_with_tools(TOOLS, "What is 3 times 4?", tool_choice="divide")
    assert emulator.requests == []


def test_tool_required_sends_the_same_request(llm: AI21, emulator: Emulator) -> None:
    llm.chat_with_tools(TOOLS, "What is 3 times 4?")
    plain = emulator.last_request.json
    llm.chat_with_tools(TOOLS, "What is 3 times 4?", tool_required=True)
    assert emulator.last_request.json == plain


def test_chat_history_is_not_mutated(llm: AI21, emulator: Emulator) -> None:
    history = [
        ChatMessage(role="system", content="You are a calculator."),
        ChatMessage(role="user", content="hi"),
        ChatMessage(role="assistant", content="Hello! Ask me to compute something."),
    ]
    before = [m.model_copy(deep=True) for m in history]
    llm.chat_with_tools(TOOLS, "What is 3 times 4?", chat_history=history)
    assert history == before
    assert [m["role"] for m in emulator.last_request.json["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
    ]


@pytest.mark.parametrize("method", METHODS)
def test_tool_calls_and_results_are_resent(llm: AI21, emulator: Emulator, method: str) -> None:
    emulator.reply_next(tool_calls=[MULTIPLY_3_4])
    emulator.reply_next("3 times 4 is 12.")
    first = chat_with_tools(llm, method, TOOLS, "What is 3 times 4?")
    call_id = first.message.additional_kwargs["tool_calls"][0]["id"]
    history = [
        ChatMessage(role="user", content="What is 3 times 4?"),
        first.message,
        ChatMessage(role="tool", content="12", additional_kwargs={"tool_call_id": call_id}),
    ]
    final = chat_with_tools(llm, method, TOOLS, chat_history=history)
    assert emulator.last_request.json["messages"] == [
        {"role": "user", "content": "What is 3 times 4?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "multiply", "arguments": '{"a":3,"b":4}'},
                }
            ],
        },
        {"role": "tool", "content": "12", "tool_call_id": call_id},
    ]
    assert final.message.content == "3 times 4 is 12."
    assert llm.get_tool_calls_from_response(final, error_on_no_tool_call=False) == []


def test_a_text_answer_has_no_tool_calls(llm: AI21, emulator: Emulator) -> None:
    emulator.reply_next("Once upon a time, a lighthouse keeper...")
    response = llm.chat_with_tools(TOOLS, "Tell me a story about a lighthouse.")
    assert response.message.content == "Once upon a time, a lighthouse keeper..."
    assert response.message.additional_kwargs == {}
    assert [type(b) for b in response.message.blocks] == [TextBlock]
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []
    # What the model said instead is in the error (a structured_predict in function mode, or
    # predict_and_call, fails with it).
    quoted = "the model answered: 'Once upon a time, a lighthouse keeper...'"
    with pytest.raises(ValueError, match=f"Expected at least one tool call.*{quoted}"):
        llm.get_tool_calls_from_response(response)


def _response(arguments: str, *, as_blocks: bool) -> ChatResponse:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "multiply", "arguments": arguments},
    }
    if as_blocks:
        blocks: list[Any] = [
            TextBlock(text=""),
            ToolCallBlock(tool_call_id="call_1", tool_name="multiply", tool_kwargs=arguments),
        ]
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks))
    message = ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [call]})
    return ChatResponse(message=message)


@pytest.mark.parametrize("as_blocks", [True, False], ids=["blocks", "additional_kwargs"])
@pytest.mark.parametrize("arguments", ['{"a": 3, "b":', "[3, 4]", "not json"])
def test_arguments_that_are_not_a_json_object_give_a_clear_error(
    llm: AI21, arguments: str, as_blocks: bool
) -> None:
    response = _response(arguments, as_blocks=as_blocks)
    with pytest.raises(ValueError, match="'multiply' has arguments that are not a JSON object"):
        llm.get_tool_calls_from_response(response)
    assert llm.get_tool_calls_from_response(response, error_on_no_tool_call=False) == []


def test_long_arguments_that_are_not_json_are_quoted_cut_and_marked_cut(llm: AI21) -> None:
    response = _response("x" * 5000, as_blocks=False)
    with pytest.raises(ValueError, match="not a JSON object") as caught:
        llm.get_tool_calls_from_response(response)
    assert str(caught.value) == (
        f"Tool call 'call_1' to 'multiply' has arguments that are not a JSON object: "
        f"{'x' * 200!r}..."
    )


@pytest.mark.parametrize("as_blocks", [True, False], ids=["blocks", "additional_kwargs"])
@pytest.mark.parametrize(
    ("arguments", "parsed"), [('{"a": 3, "b": 4}', {"a": 3, "b": 4}), ("", {})]
)
def test_valid_arguments_parse(
    llm: AI21, arguments: str, parsed: dict[str, Any], as_blocks: bool
) -> None:
    response = _response(arguments, as_blocks=as_blocks)
    assert llm.get_tool_calls_from_response(response) == [
        ToolSelection(tool_id="call_1", tool_name="multiply", tool_kwargs=parsed)
    ]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("message", "parallel", "answer"),
    [("What is 3 times 4?", False, "12"), (TWO_CALLS, True, "12\n\n7")],
)
def test_predict_and_call_runs_the_tools(
    llm: AI21, emulator: Emulator, is_async: bool, message: str, parallel: bool, answer: str
) -> None:
    emulator.reply_next(tool_calls=[MULTIPLY_3_4, ADD_2_5][: 2 if parallel else 1])
    kwargs = {"user_msg": message, "allow_parallel_tool_calls": parallel}
    if is_async:
        result = asyncio.run(llm.apredict_and_call(TOOLS, **kwargs))
    else:
        result = llm.predict_and_call(TOOLS, **kwargs)
    assert result.response == answer
    assert [s.tool_name for s in result.sources] == ["multiply", "add"][: len(result.sources)]
    assert result.sources[0].raw_input == {"args": (), "kwargs": {"a": 3, "b": 4}}
