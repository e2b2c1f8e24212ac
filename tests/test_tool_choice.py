"""``tool_choice`` and ``tool_required`` reach the server as its deployment honours them
(``Deployment.tool_choice_support``), over real HTTP where a server exists here (vLLM flavour:
native; AI21's hosted API: emulated), and table-driven through the pure dialect for the kinds
the laptop servers use (``required_only``, ``ignored``); a served name outside the table is
function-calling on a server of your own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage

from ai21_emulator import Emulator, Reply, ToolCall
from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21._deployments.openai_compatible import OpenAICompatible
from llama_index.llms.ai21._dialect import JambaChat
from tests.calculator import TOOLS

QUESTION = "What is 3 times 4?"
ADD = {"type": "function", "function": {"name": "add"}}


def local(emulator: Emulator, model: str = "ai21labs/AI21-Jamba2-3B") -> AI21:
    return AI21(model=model, base_url=emulator.base_url, max_retries=0)


def offered(body: dict[str, Any]) -> list[str] | None:
    tools = body.get("tools")
    return None if tools is None else [t["function"]["name"] for t in tools]


@pytest.mark.parametrize(
    ("kwargs", "sent"),
    [
        ({"tool_required": True}, "required"),
        ({"tool_choice": "add"}, ADD),
        ({"tool_choice": {"type": "function", "function": {"name": "add"}}}, ADD),
        ({"tool_choice": {"name": "add"}}, ADD),
        ({"tool_choice": "add", "tool_required": True}, ADD),
        ({"tool_choice": "required"}, "required"),
        ({"tool_choice": "any"}, "required"),
        ({"tool_choice": "none"}, "none"),
        ({"tool_choice": "auto"}, "auto"),
        ({}, None),
    ],
)
def test_vllm_gets_tool_choice_natively_with_every_tool_offered(
    ai21_emulator_vllm: Emulator, kwargs: dict[str, Any], sent: Any
) -> None:
    ai21_emulator_vllm.reply_next(tool_calls=[ToolCall("add", {"a": 3, "b": 4})])
    local(ai21_emulator_vllm).chat_with_tools(TOOLS, QUESTION, **kwargs)
    body = ai21_emulator_vllm.last_request.json
    assert body.get("tool_choice") == sent
    assert offered(body) == ["multiply", "add"]


@pytest.mark.parametrize("method", ["stream_chat_with_tools", "achat_with_tools"])
def test_tool_required_is_sent_by_every_method(ai21_emulator_vllm: Emulator, method: str) -> None:
    ai21_emulator_vllm.reply_next(tool_calls=[ToolCall("add", {"a": 3, "b": 4})])
    result = getattr(local(ai21_emulator_vllm), method)(TOOLS, QUESTION, tool_required=True)
    if method.startswith("a"):

        async def drain() -> Any:
            return await result

        asyncio.run(drain())
    else:
        list(result)
    assert ai21_emulator_vllm.last_request.json["tool_choice"] == "required"


def test_the_hosted_api_filters_and_says_once_that_required_cannot_be_enforced(
    llm: AI21, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    for _ in range(2):
        llm.chat_with_tools(TOOLS, QUESTION, tool_required=True)
        assert "tool_choice" not in emulator.last_request.json
    warnings = [r for r in caplog.records if "cannot be enforced" in r.getMessage()]
    assert len(warnings) == 1
    assert "'required'" in warnings[0].getMessage()
    caplog.clear()
    llm.chat_with_tools(TOOLS, QUESTION)  # nothing asked, nothing said
    assert not [r for r in caplog.records if "cannot be enforced" in r.getMessage()]


@pytest.mark.parametrize(
    ("tool_choice", "match"),
    [
        ("divide", r"tool_choice names 'divide', which is not among the tools offered"),
        ({"type": "function", "function": {}}, "tool_choice must be"),
        (42, "tool_choice must be"),
        ("", "tool_choice must not be an empty string"),
    ],
)
def test_a_bad_tool_choice_fails_before_any_request(
    ai21_emulator_vllm: Emulator, tool_choice: Any, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        local(ai21_emulator_vllm).chat_with_tools(TOOLS, QUESTION, tool_choice=tool_choice)
    assert ai21_emulator_vllm.requests == []


def test_a_required_call_without_tools_fails_before_any_request(
    ai21_emulator_vllm: Emulator,
) -> None:
    with pytest.raises(
        ValueError, match=r"^tool_choice='required' asks for a tool call, but no tools are offered$"
    ):
        local(ai21_emulator_vllm).chat(
            [ChatMessage(role="user", content=QUESTION)], tool_choice="required"
        )
    assert ai21_emulator_vllm.requests == []


def test_a_model_per_call_does_not_repeat_that_required_cannot_be_enforced(
    llm: AI21, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Once per instance: a per-call model= gets a dialect of its own at each call, which
    warned again every time."""
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    for _ in range(3):
        llm.chat_with_tools(TOOLS, QUESTION, tool_required=True, model="jamba-large")
    assert emulator.last_request.json["model"] == "jamba-large"
    assert len([r for r in caplog.records if "cannot be enforced" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("tools", "kwargs", "match"),
    [
        ([], {}, r"tool_required=True, but no tools are offered"),
        (TOOLS, {"tool_choice": "auto"}, r"tool_required=True contradicts tool_choice='auto'"),
        (TOOLS, {"tool_choice": "none"}, r"tool_required=True contradicts tool_choice='none'"),
    ],
)
def test_tool_required_that_cannot_hold_fails_before_any_request(
    ai21_emulator_vllm: Emulator, tools: list[Any], kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        local(ai21_emulator_vllm).chat_with_tools(tools, QUESTION, tool_required=True, **kwargs)
    assert ai21_emulator_vllm.requests == []


def test_tool_required_with_a_named_tool_asks_for_that_tool(ai21_emulator_vllm: Emulator) -> None:
    ai21_emulator_vllm.reply_next(tool_calls=[{"name": "add", "arguments": '{"a":1,"b":2}'}])
    local(ai21_emulator_vllm).chat_with_tools(
        TOOLS, QUESTION, tool_required=True, tool_choice="add"
    )
    assert ai21_emulator_vllm.last_request.json["tool_choice"] == ADD


class _Server(OpenAICompatible):
    kind = "test-server"
    support: ClassVar[str]


@pytest.mark.parametrize(
    ("support", "kwargs", "sent", "tools", "warns"),
    [
        ("required_only", {"tool_choice": "add"}, "required", ["add"], False),
        ("required_only", {"tool_choice": "required"}, "required", ["multiply", "add"], False),
        ("required_only", {"tool_choice": "none"}, "none", ["multiply", "add"], False),
        ("ignored", {"tool_choice": "add"}, None, ["add"], True),
        ("ignored", {"tool_choice": "required"}, None, ["multiply", "add"], True),
        ("ignored", {"tool_choice": "none"}, None, None, False),
        ("ignored", {"tool_choice": "auto"}, None, ["multiply", "add"], False),
        ("emulated", {"tool_choice": "add"}, None, ["add"], True),
        ("native", {"tool_choice": "add"}, ADD, ["multiply", "add"], False),
    ],
)
def test_each_kind_of_tool_choice_support(
    support: Any,
    kwargs: dict[str, Any],
    sent: Any,
    tools: list[str] | None,
    warns: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deployment = type("Server", (_Server,), {"tool_choice_support": support})()
    specs = [tool.metadata.to_openai_tool(skip_length_check=True) for tool in TOOLS]
    caplog.set_level(logging.WARNING, logger="llama_index.llms.ai21")
    call = JambaChat(deployment).chat(
        "local-model",
        [ChatMessage(role="user", content=QUESTION)],
        {"tools": specs, **kwargs},
        system_prompt=None,
        stream=False,
    )
    assert call.body.get("tool_choice") == sent
    assert offered(call.body) == tools
    assert bool([r for r in caplog.records if "cannot be enforced" in r.getMessage()]) is warns


SERVED = ["local-model", "/models/AI21-Jamba-Reasoning-3B-F16.gguf"]


@pytest.fixture(scope="module")
def serving_any_name() -> Iterator[Emulator]:
    with Emulator(flavour="vllm", models=SERVED) as emulator:
        yield emulator


@pytest.mark.parametrize("model", SERVED)
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")  # workflows
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211")
async def test_a_function_agent_accepts_any_served_name(
    serving_any_name: Emulator, model: str
) -> None:
    serving_any_name.reset()
    llm = local(serving_any_name, model)
    assert llm.metadata.is_function_calling_model
    serving_any_name.script(
        Reply(tool_calls=[ToolCall("multiply", {"a": 3, "b": 4})]), Reply("It is 12.")
    )
    agent = FunctionAgent(tools=TOOLS, llm=llm)
    assert str(await agent.run(QUESTION)) == "It is 12."
    chats = [r for r in serving_any_name.requests if r.path.endswith("/chat/completions")]
    assert [r.json["model"] for r in chats] == [model, model]


def test_the_override_still_wins(ai21_emulator_vllm: Emulator) -> None:
    llm = AI21(
        model="local-model", base_url=ai21_emulator_vllm.base_url, is_function_calling_model=False
    )
    assert not llm.metadata.is_function_calling_model
