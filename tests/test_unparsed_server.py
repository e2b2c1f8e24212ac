"""Servers started without AI21's parser flags. vLLM (the emulator's ``parsers=False``): the
model's reasoning arrives as text in ``content`` and the package still hands back a clean
answer and its reasoning; tools get the server's 400 naming the flags (``"auto"``) or the
parser (``"required"`` and a named tool). A server that takes
tools without a parser (``unparsed_tool_calls=True``, as SGLang does): Hermes tool calls arrive
as text in ``content``, and the package reads them into tool calls, streamed or not."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import ai21.errors
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


@pytest.fixture(scope="module")
def unparsed_server() -> Iterator[Emulator]:
    with Emulator(flavour="vllm", parsers=False, unparsed_tool_calls=True) as emulator:
        yield emulator


@pytest.fixture
def unparsed(unparsed_server: Emulator) -> Emulator:
    unparsed_server.reset()
    return unparsed_server


def chat_with_tools(llm: AI21, method: str, **kwargs: Any) -> Any:
    """The final response of ``method`` (``chat_with_tools`` or a stream/async variant)."""

    async def run_async() -> Any:
        result = await getattr(llm, method)(TOOLS, "What is 3 times 4?", **kwargs)
        return [r async for r in result][-1] if "stream" in method else result

    if method.startswith("a"):
        return asyncio.run(run_async())
    result = getattr(llm, method)(TOOLS, "What is 3 times 4?", **kwargs)
    return list(result)[-1] if "stream" in method else result


TOOL_METHODS = [
    "chat_with_tools",
    "stream_chat_with_tools",
    "achat_with_tools",
    "astream_chat_with_tools",
]


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
    assert "tool_calls" not in answer["message"]  # vLLM leaves an empty list out
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


@pytest.mark.parametrize("method", TOOL_METHODS)
def test_tools_on_vllm_without_a_tool_parser_get_the_servers_error_naming_the_flags(
    bare: Emulator, method: str
) -> None:
    # As real vLLM answers (tests/vllm/test_reasoning_3b_tools.py checks the real server):
    # tool_choice defaults to "auto" when tools are given, and "auto" needs the parser flags.
    llm = AI21(model=REASONING_3B, base_url=bare.base_url, max_retries=0)
    with pytest.raises(ai21.errors.BadRequest) as raised:
        chat_with_tools(llm, method)
    assert "--enable-auto-tool-choice and --tool-call-parser" in str(raised.value)
    assert [r.path for r in bare.requests if r.method == "POST"] == ["/v1/chat/completions"]
    assert "tool_choice" not in bare.last_request.json  # the server's default, "auto"


@pytest.mark.parametrize("method", TOOL_METHODS)
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tool_required": True}, 'tool_choice="required" requires'),
        ({"tool_choice": "multiply"}, 'tool_choice=function "multiply" requires'),
    ],
)
def test_required_and_named_tools_get_the_servers_error_naming_the_parser(
    bare: Emulator, method: str, kwargs: dict[str, Any], message: str
) -> None:
    # vLLM since pull request 30613 (tests/vllm/test_reasoning_3b_tools.py checks the real one):
    # "required" and a named function need the tool parser too.
    llm = AI21(model=REASONING_3B, base_url=bare.base_url, max_retries=0)
    with pytest.raises(ai21.errors.BadRequest) as raised:
        chat_with_tools(llm, method, **kwargs)
    # the SDK's message quotes the server's JSON body
    assert f"{message} --tool-call-parser to be set" in str(raised.value).replace('\\"', '"')
    assert [r.path for r in bare.requests if r.method == "POST"] == ["/v1/chat/completions"]


@pytest.mark.parametrize("stream", [False, True])
def test_hermes_calls_from_a_server_that_takes_tools_without_a_parser(
    unparsed: Emulator, stream: bool
) -> None:
    unparsed.reply_next(tool_calls=[ToolCall("multiply", {"a": 3, "b": 4})])
    llm = AI21(model=REASONING_3B, base_url=unparsed.base_url, max_retries=0)
    if stream:
        response = list(llm.stream_chat_with_tools(TOOLS, "What is 3 times 4?"))[-1]
    else:
        response = llm.chat_with_tools(TOOLS, "What is 3 times 4?")
    (selection,) = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("multiply", {"a": 3, "b": 4})
    assert response.message.content == ""
    assert [m["role"] for m in unparsed.last_request.json["messages"]] == ["user"]
    follow_up = [ChatMessage(role="user", content="What is 3 times 4?"), response.message]
    assert follow_up[1].additional_kwargs["tool_calls"][0]["function"]["name"] == "multiply"


def test_generated_calls_from_a_server_that_takes_tools_without_a_parser(
    unparsed: Emulator,
) -> None:
    # The emulator's own answer, not a scripted one: the call reaches the client as markup.
    llm = AI21(model=JAMBA2, base_url=unparsed.base_url, max_retries=0)
    response = llm.chat_with_tools(TOOLS, "What is 3 times 4?")
    (selection,) = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("multiply", {"a": 3, "b": 4})
    assert response.additional_kwargs["finish_reason"] == "stop"


def test_the_command_line_starts_a_server_without_parsers() -> None:
    from ai21_emulator.__main__ import _parser, main

    assert _parser().parse_args(["--flavour", "vllm", "--no-parsers"]).parsers is False
    assert _parser().parse_args(["--flavour", "vllm"]).parsers is True
    unparsed = _parser().parse_args(["--flavour", "vllm", "--no-parsers", "--unparsed-tool-calls"])
    assert unparsed.unparsed_tool_calls is True
    with pytest.raises(SystemExit):
        main(["--no-parsers"])  # the ai21 flavour has no parsers to leave out
    with pytest.raises(SystemExit):
        main(["--flavour", "vllm", "--unparsed-tool-calls"])  # a server with parsers parses
