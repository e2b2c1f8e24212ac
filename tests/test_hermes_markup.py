"""Raw markup never becomes the answer: a Hermes-format model's ``<tool_call>`` text in
``content`` (a server started without ``--tool-call-parser hermes``) is read as tool calls, or
refused with the server flags to add. Over real HTTP against the emulator's vLLM flavour."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, ThinkingBlock

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21, MalformedResponseError
from tests.calculator import TOOLS

REASONING_3B = "ai21labs/AI21-Jamba-Reasoning-3B"
JAMBA2 = "ai21labs/AI21-Jamba2-3B"
JAMBA_1 = "ai21labs/AI21-Jamba-Mini-1.7"
QUESTION = "What is 3 times 4?"
DEEP = "[" * 100_000 + "]" * 100_000  # JSON nested far past Python's recursion limit
ONE_CALL = '<tool_call>\n{"name": "multiply", "arguments": {"a": 3, "b": 4}}\n</tool_call>'
TWO_CALLS = (
    "Let me compute.\n"
    '<tool_call>\n{"name": "multiply", "arguments": {"a": 3, "b": 4}}\n</tool_call>\n'
    '<tool_call>\n{"name": "add", "arguments": "{\\"a\\": 2, \\"b\\": 5}"}\n</tool_call>'
)
METHODS = [
    "chat_with_tools",
    "stream_chat_with_tools",
    "achat_with_tools",
    "astream_chat_with_tools",
]


@pytest.fixture
def vllm(ai21_emulator_vllm: Emulator) -> Emulator:
    return ai21_emulator_vllm


@pytest.fixture
def make(vllm: Emulator) -> Callable[..., AI21]:
    def build(model: str = JAMBA2) -> AI21:
        return AI21(model=model, base_url=vllm.base_url, max_retries=0)

    return build


def final(llm: AI21, method: str, **kwargs: Any) -> Any:
    import asyncio

    async def run_async() -> Any:
        result = await getattr(llm, method)(TOOLS, QUESTION, **kwargs)
        if "stream" in method:
            return [chunk async for chunk in result]
        return [result]

    if method.startswith("a"):
        responses = asyncio.run(run_async())
    else:
        result = getattr(llm, method)(TOOLS, QUESTION, **kwargs)
        responses = list(result) if "stream" in method else [result]
    return responses


def calls(llm: AI21, response: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(s.tool_name, s.tool_kwargs) for s in llm.get_tool_calls_from_response(response)]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("model", [JAMBA2, REASONING_3B])
def test_hermes_tool_call_text_becomes_tool_calls(
    make: Callable[..., AI21], vllm: Emulator, method: str, model: str
) -> None:
    content = TWO_CALLS if model == JAMBA2 else f"I should multiply.\n</think>\n\n{ONE_CALL}"
    vllm.reply_next(content)
    llm = make(model)
    responses = final(llm, method, allow_parallel_tool_calls=True)
    last = responses[-1]
    if model == JAMBA2:
        assert calls(llm, last) == [("multiply", {"a": 3, "b": 4}), ("add", {"a": 2, "b": 5})]
        assert last.message.content == "Let me compute."
    else:
        assert calls(llm, last) == [("multiply", {"a": 3, "b": 4})]
        assert last.message.content == ""
        thinking = [b for b in last.message.blocks if isinstance(b, ThinkingBlock)]
        assert thinking[0].content == "I should multiply."
    assert all("<tool_call>" not in r.delta for r in responses if r.delta)
    assert "<tool_call>" not in "".join(r.delta or "" for r in responses)
    ids = [c["id"] for c in last.message.additional_kwargs["tool_calls"]]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("call_") for i in ids)


def test_the_parsed_calls_round_trip_in_the_next_request(
    make: Callable[..., AI21], vllm: Emulator
) -> None:
    vllm.reply_next(ONE_CALL)
    llm = make()
    response = llm.chat_with_tools(TOOLS, QUESTION)
    (selection,) = llm.get_tool_calls_from_response(response)
    result = ChatMessage(
        role="tool", content="12", additional_kwargs={"tool_call_id": selection.tool_id}
    )
    llm.chat([ChatMessage(role="user", content=QUESTION), response.message, result])
    sent = vllm.last_request.json["messages"]
    assert sent[1]["tool_calls"] == [
        {
            "id": selection.tool_id,
            "type": "function",
            "function": {"name": "multiply", "arguments": json.dumps({"a": 3, "b": 4})},
        }
    ]
    assert sent[1]["content"] is None


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "content",
    [
        "<tool_call>\nnot json\n</tool_call>",
        '<tool_call>\n{"arguments": {}}\n</tool_call>',  # no name
        '<tool_call>\n{"name": "multiply", "arguments": {"a": 3',  # never closed
        f'<tool_call>\n{{"name": "multiply", "arguments": {{"a": {DEEP}}}}}\n</tool_call>',
        f'<tool_call>\n{{"name": "multiply", "arguments": "{DEEP}"}}\n</tool_call>',
    ],
    ids=["not-json", "no-name", "unclosed", "deep", "deep-arguments"],
)
def test_unreadable_tool_call_text_names_the_server_flags(
    make: Callable[..., AI21], vllm: Emulator, method: str, content: str
) -> None:
    vllm.reply_next(content)
    with pytest.raises(
        MalformedResponseError,
        match="start the server with --enable-auto-tool-choice --tool-call-parser hermes",
    ):
        final(make(), method)


@pytest.mark.parametrize(
    ("deployment", "advice"),
    [
        (
            "vllm",
            "start the server with --enable-auto-tool-choice --tool-call-parser hermes (AI21's "
            "recipe for Jamba2 and Jamba Reasoning 3B) so that it returns tool calls itself",
        ),
        (
            "llamacpp",
            "start llama-server with --jinja (the model's own chat template) so that it "
            "returns tool calls itself",
        ),
        (
            "sglang",
            "start SGLang with a --tool-call-parser that reads this format, or serve the model "
            "with vLLM and --enable-auto-tool-choice --tool-call-parser hermes (AI21's recipe "
            "for Jamba2 and Jamba Reasoning 3B), so that the server returns tool calls itself",
        ),
        (
            "lmstudio",
            "this server returns such calls as text; vLLM started with --enable-auto-tool-choice "
            "--tool-call-parser hermes (AI21's recipe for Jamba2 and Jamba Reasoning 3B) "
            "returns them as tool calls",
        ),
    ],
)
def test_unreadable_tool_call_text_gives_advice_for_the_server_kind(
    vllm: Emulator, deployment: str, advice: str
) -> None:
    """vLLM's flags are no flags of llama-server's, SGLang's or LM Studio's: each kind is told
    what fits it (the message named vLLM's flags whatever the server)."""
    llm = AI21(model=JAMBA2, base_url=vllm.base_url, max_retries=0, deployment=deployment)
    vllm.reply_next("<tool_call>\nnot json\n</tool_call>")
    with pytest.raises(MalformedResponseError) as caught:
        llm.chat_with_tools(TOOLS, QUESTION)
    assert str(caught.value) == (
        "the model wrote a tool call as text the package cannot read "
        f"('<tool_call>\\nnot json\\n</tool_call>'): {advice}"
    )


def test_without_tools_offered_the_text_is_left_alone(
    make: Callable[..., AI21], vllm: Emulator
) -> None:
    vllm.reply_next(ONE_CALL)
    response = make().chat([ChatMessage(role="user", content="Show me Hermes' format.")])
    assert response.message.content == ONE_CALL


def test_a_jamba_1_model_is_not_read_as_hermes(make: Callable[..., AI21], vllm: Emulator) -> None:
    vllm.reply_next(ONE_CALL)
    response = make(JAMBA_1).chat_with_tools(TOOLS, QUESTION)
    assert response.message.content == ONE_CALL
    assert make(JAMBA_1).get_tool_calls_from_response(response, error_on_no_tool_call=False) == []


def test_calls_the_server_parsed_are_used_as_they_are(
    make: Callable[..., AI21], vllm: Emulator
) -> None:
    vllm.reply_next(tool_calls=[{"name": "add", "arguments": {"a": 1, "b": 2}, "id": "srv-1"}])
    llm = make()
    response = llm.chat_with_tools(TOOLS, QUESTION)
    assert [(s.tool_id, s.tool_name) for s in llm.get_tool_calls_from_response(response)] == [
        ("srv-1", "add")
    ]
