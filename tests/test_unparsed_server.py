"""A vLLM server started without AI21's parser flags (the emulator's ``parsers=False``): the
model's reasoning and Hermes tool calls arrive as text in ``content``, and the package still
hands back a clean answer, its reasoning, and tool calls, streamed or not."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage, ThinkingBlock

from ai21_emulator import Emulator, Reply, ToolCall
from llama_index.llms.ai21 import AI21
from tests.calculator import TOOLS
from tests.calls import METHOD_IDS, arg_for, call

REASONING_3B = "ai21labs/AI21-Jamba-Reasoning-3B"
JAMBA2 = "ai21labs/AI21-Jamba2-3B"


@pytest.fixture(scope="module")
def bare_server() -> Iterator[Emulator]:
    with Emulator(flavour="vllm", parsers=False) as emulator:
        yield emulator


@pytest.fixture
def bare(bare_server: Emulator) -> Emulator:
    bare_server.reset()
    return bare_server


def test_the_emulator_leaves_reasoning_and_calls_in_content(bare: Emulator) -> None:
    bare.script(
        Reply("Paris.", reasoning="Thinking."),
        Reply(tool_calls=[ToolCall("add", {"a": 1, "b": 2})]),
    )
    url = f"{bare.base_url}/chat/completions"
    body = {"model": REASONING_3B, "messages": [{"role": "user", "content": "Hi"}]}
    message = httpx.post(url, json=body).json()["choices"][0]
    assert message["message"]["content"] == "Thinking.\n</think>\n\nParis."
    assert message["message"]["reasoning"] is None
    answer = httpx.post(url, json={**body, "model": JAMBA2}).json()["choices"][0]
    assert answer["message"]["content"] == (
        '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>'
    )
    assert answer["message"]["tool_calls"] == []
    assert answer["finish_reason"] == "stop"


@pytest.mark.parametrize("method", METHOD_IDS)
def test_reasoning_3b_answers_cleanly_without_a_reasoning_parser(
    bare: Emulator, method: str
) -> None:
    llm = AI21(model=REASONING_3B, base_url=bare.base_url, max_retries=0)
    outcome = call(llm, method, arg_for(method, "What is Jamba?"))
    sent_back = bare.last_request
    assert sent_back.json["model"] == REASONING_3B
    assert "</think>" not in outcome.text
    assert outcome.text.startswith("This is the AI21 emulator")
    if method in ("chat", "achat", "stream_chat", "astream_chat"):
        blocks = outcome.responses[-1].message.blocks
        assert next(b for b in blocks if isinstance(b, ThinkingBlock)).content


@pytest.mark.parametrize("stream", [False, True])
def test_hermes_calls_without_a_tool_parser(bare: Emulator, stream: bool) -> None:
    bare.reply_next(tool_calls=[ToolCall("multiply", {"a": 3, "b": 4})])
    llm = AI21(model=REASONING_3B, base_url=bare.base_url, max_retries=0)
    if stream:
        response = list(llm.stream_chat_with_tools(TOOLS, "What is 3 times 4?"))[-1]
    else:
        response = llm.chat_with_tools(TOOLS, "What is 3 times 4?")
    (selection,) = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("multiply", {"a": 3, "b": 4})
    assert response.message.content == ""
    assert [m["role"] for m in bare.last_request.json["messages"]] == ["user"]
    follow_up = [ChatMessage(role="user", content="What is 3 times 4?"), response.message]
    assert follow_up[1].additional_kwargs["tool_calls"][0]["function"]["name"] == "multiply"


def test_the_command_line_starts_a_server_without_parsers() -> None:
    from ai21_emulator.__main__ import _parser, main

    assert _parser().parse_args(["--flavour", "vllm", "--no-parsers"]).parsers is False
    assert _parser().parse_args(["--flavour", "vllm"]).parsers is True
    with pytest.raises(SystemExit):
        main(["--no-parsers"])  # the ai21 flavour has no parsers to leave out
