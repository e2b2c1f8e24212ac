"""Code written for the published llama-index-llms-ai21 0.8.0, run against this version.

0.8.0's own tests (llama_index's ``llama-index-llms-ai21/tests/test_llms_ai21.py``) patched the
``ai21`` SDK's clients (``llama_index.llms.ai21.base.AI21Client``) and compared what was passed
to them; this version sends its requests itself, so the same calls are made here over HTTP to
the emulator and what went over the wire is asserted. What behaves differently on purpose is
named in docs/migration.md ("From llama-index-llms-ai21 0.8"), and asserted here as it is now.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import pickle
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from ai21.models.chat import ToolCall, ToolFunction
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool

from ai21_emulator import Emulator, Fault
from llama_index.llms.ai21 import AI21, HostedAPIRetiredError
from tests.calls import METHOD_IDS, arg_for, call

_PROMPT = "What is the meaning of life?"
USER = [{"role": "user", "content": _PROMPT}]

# What 0.8.0's ``llm.to_dict()`` held (its defaults, with a model of the time), as a user may
# have saved it; ``base_url`` and ``timeout`` were ``None`` in every 0.8 dump.
DUMP_0_8 = {
    "system_prompt": None,
    "pydantic_program_mode": "default",
    "model": "jamba-1.5-mini",
    "max_tokens": 512,
    "temperature": 0.4,
    "base_url": None,
    "timeout": None,
    "max_retries": 10,
    "additional_kwargs": {},
    "class_name": "AI21_LLM",
}

# pickle.dumps(AI21(model="jamba-1.5-mini", api_key=..., base_url=..., system_prompt="Be brief"))
# made by llama-index-llms-ai21 0.8.0 (llama-index-core 0.14.25): no key and no base_url in it.
PICKLE_0_8 = base64.b64decode(
    "gASVAAMAAAAAAACMGmxsYW1hX2luZGV4LmxsbXMuYWkyMS5iYXNllIwEQUkyMZSTlCmBlH2UKIwIX19kaWN0X1+U"
    "fZQojBBjYWxsYmFja19tYW5hZ2VylIwfbGxhbWFfaW5kZXguY29yZS5jYWxsYmFja3MuYmFzZZSMD0NhbGxiYWNr"
    "TWFuYWdlcpSTlCmBlH2UKIwIaGFuZGxlcnOUXZSMCl90cmFjZV9tYXCUjAtjb2xsZWN0aW9uc5SMC2RlZmF1bHRk"
    "aWN0lJOUjAhidWlsdGluc5SMBGxpc3SUk5SFlFKUdWKMDHJhdGVfbGltaXRlcpROjA1zeXN0ZW1fcHJvbXB0lIwI"
    "QmUgYnJpZWaUjBJtZXNzYWdlc190b19wcm9tcHSUjChsbGFtYV9pbmRleC5jb3JlLmJhc2UubGxtcy5nZW5lcmlj"
    "X3V0aWxzlGgbk5SMFGNvbXBsZXRpb25fdG9fcHJvbXB0lIwZbGxhbWFfaW5kZXguY29yZS5sbG1zLmxsbZSMHGRl"
    "ZmF1bHRfY29tcGxldGlvbl90b19wcm9tcHSUk5SMDW91dHB1dF9wYXJzZXKUTowVcHlkYW50aWNfcHJvZ3JhbV9t"
    "b2RllIwWbGxhbWFfaW5kZXguY29yZS50eXBlc5SME1B5ZGFudGljUHJvZ3JhbU1vZGWUk5SMB2RlZmF1bHSUhZRS"
    "lIwUcXVlcnlfd3JhcHBlcl9wcm9tcHSUTowFbW9kZWyUjA5qYW1iYS0xLjUtbWluaZSMCm1heF90b2tlbnOUTQAC"
    "jAt0ZW1wZXJhdHVyZZRHP9mZmZmZmZqMCGJhc2VfdXJslE6MB3RpbWVvdXSUTowLbWF4X3JldHJpZXOUSwqMEWFk"
    "ZGl0aW9uYWxfa3dhcmdzlH2UdYwSX19weWRhbnRpY19leHRyYV9flE6MF19fcHlkYW50aWNfZmllbGRzX3NldF9f"
    "lI+UKGgeaCNoLmgiaDJoG2gHaBloLWgrkIwUX19weWRhbnRpY19wcml2YXRlX1+UfZR1Yi4="
)


@pytest.mark.parametrize("method", METHOD_IDS)
def test_each_method_sends_what_0_8_sent_without_its_old_sampling_defaults(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str
) -> None:
    # 0.8's test_chat, test_complete, test_stream_chat, ...: one request to chat/completions
    # with the user's message (complete() too); 0.8 also sent temperature 0.4 and max_tokens
    # 512, its defaults, which are now left to the server (docs/migration.md).
    emulator.reply_next("42")
    outcome = call(make_llm(model="jamba-1.5-mini"), method, arg_for(method, _PROMPT))
    assert outcome.text == "42"
    assert [r.path for r in emulator.requests] == ["/studio/v1/chat/completions"]
    body = emulator.last_request.json
    stream = "stream" in method
    assert {k: v for k, v in body.items() if k != "stream_options"} == {
        "model": "jamba-1.5-mini",
        "messages": USER,
        "stream": stream,
    }
    final = outcome.responses[-1]
    if not stream:  # raw is the answer's JSON, as 0.8's response.to_dict() was
        assert final.raw["choices"][0]["message"]["content"] == "42"
    message = final.message if isinstance(final, ChatResponse) else None
    assert message is None or (message.role == "assistant" and message.content == "42")


def test_the_old_defaults_are_sent_when_passed(
    make_llm: Callable[..., AI21], emulator: Emulator
) -> None:
    make_llm(model="jamba-1.5-mini", max_tokens=512, temperature=0.4).complete(_PROMPT)
    body = emulator.last_request.json
    assert (body["max_tokens"], body["temperature"]) == (512, 0.4)


@pytest.mark.parametrize("route", ["chat", "complete"])
def test_jurassic_2_goes_to_its_own_routes(
    make_llm: Callable[..., AI21], emulator: Emulator, route: str
) -> None:
    # 0.8's test_chat__when_j2 and test_complete__when_j2.
    llm = make_llm(model="j2-ultra")
    if route == "chat":
        text = llm.chat([ChatMessage(role="user", content=_PROMPT)]).message.content
        expected = {"system": "", "messages": [{"role": "user", "text": _PROMPT}]}
    else:
        text = llm.complete(_PROMPT).text
        expected = {"prompt": _PROMPT}
    assert "j2-ultra" in (text or "")
    assert emulator.last_request.path == f"/studio/v1/j2-ultra/{route}"
    assert emulator.last_request.json == {**expected, "maxTokens": 512}


def test_a_jurassic_2_system_message_after_the_first_goes_into_the_system_field(
    make_llm: Callable[..., AI21], emulator: Emulator
) -> None:
    # 0.8 raised "System message must be at beginning of message list."; every system
    # message is now J2's system text (docs/migration.md).
    make_llm(model="j2-ultra").chat(
        [ChatMessage(role="user", content=_PROMPT), ChatMessage(role="system", content="Be brief")]
    )
    assert emulator.last_request.json["system"] == "Be brief"


@pytest.mark.parametrize(
    "method", ["stream_complete", "stream_chat", "astream_chat", "astream_complete"]
)
def test_jurassic_2_streams_the_whole_answer_as_one_chunk(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str
) -> None:
    # 0.8's test_*_when_j2__should_raise_error: streaming with J2 was a ValueError.
    outcome = call(make_llm(model="j2-ultra"), method, arg_for(method, _PROMPT))
    assert len(outcome.responses) == 1
    assert "j2-ultra" in outcome.text
    assert emulator.last_request.json.get("stream") is None  # J2 never streamed


def test_tool_calls_arrive_as_dicts_and_sdk_objects_are_still_sent_back(
    make_llm: Callable[..., AI21], emulator: Emulator
) -> None:
    # 0.8's from_ai21_message_to_chat_message put the SDK's ToolCall objects in
    # additional_kwargs["tool_calls"]; they are dicts now, and a history holding SDK objects
    # (built as 0.8 returned them) is still sent as AI21's tool calls.
    llm = make_llm(model="jamba-1.5-mini")
    emulator.reply_next(tool_calls=[{"name": "some_function", "arguments": {"x": 42}, "id": "c1"}])
    response = llm.chat([ChatMessage(role="user", content=_PROMPT)])
    (received,) = response.message.additional_kwargs["tool_calls"]
    assert received["function"]["name"] == "some_function"
    assert json.loads(received["function"]["arguments"]) == {"x": 42}
    [selection] = llm.get_tool_calls_from_response(response)
    assert (selection.tool_id, selection.tool_name, selection.tool_kwargs) == (
        "c1",
        "some_function",
        {"x": 42},
    )
    sdk_call = ToolCall(
        id="c1", function=ToolFunction(name="some_function", arguments=json.dumps({"x": 42}))
    )
    history = [
        ChatMessage(role="user", content=_PROMPT),
        ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [sdk_call]}),
        ChatMessage(role="tool", content="84", additional_kwargs={"tool_call_id": "c1"}),
    ]
    llm.chat(history)
    sent = emulator.last_request.json["messages"]
    assert sent[1]["tool_calls"] == [
        {
            "id": "c1",
            "type": "function",
            "function": {"name": "some_function", "arguments": '{"x": 42}'},
        }
    ]
    assert sent[2] == {"role": "tool", "content": "84", "tool_call_id": "c1"}


# ------------------------------------------------------------------ the constructor


def test_arguments_by_position_mean_what_they_meant_in_0_8(emulator: Emulator) -> None:
    # 0.8's __init__(self, model, api_key, base_url, max_tokens, max_retries, default_headers,
    # timeout, temperature, ...): a model name first, never taken for a key.
    llm = AI21("jamba-1.5-mini", emulator.api_key, emulator.base_url, 64, 2, {"X-Team": "a"}, 30)
    assert (llm.model, llm.max_tokens, llm.max_retries, llm.timeout) == (
        "jamba-1.5-mini",
        64,
        2,
        30,
    )
    llm.complete(_PROMPT)
    request = emulator.last_request
    assert request.api_key == emulator.api_key
    assert {k.lower(): v for k, v in request.headers.items()}["x-team"] == "a"
    assert (request.json["model"], request.json["max_tokens"]) == ("jamba-1.5-mini", 64)


def test_a_model_name_alone_by_position_is_the_model(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AI21_API_KEY", emulator.api_key or "")
    monkeypatch.setenv("AI21_API_HOST", emulator.base_url)
    AI21("jamba-large").complete(_PROMPT)
    assert emulator.last_request.json["model"] == "jamba-large"
    assert emulator.last_request.api_key == emulator.api_key


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("jamba-mini",), {"model": "jamba-large"}, "multiple values for argument 'model'"),
        (("jamba-mini", "k"), {"api_key": "k"}, "multiple values for argument 'api_key'"),
        (tuple(range(16)), {}, "at most 15 arguments by position"),
    ],
)
def test_an_argument_given_twice_is_a_type_error(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        AI21(*args, **kwargs)


def test_timeout_none_is_the_default(make_llm: Callable[..., AI21]) -> None:
    # 0.8's default (the SDK's timeout), so in every 0.8 dump and in code passing it on.
    assert make_llm(timeout=None).timeout == 120.0


@pytest.mark.parametrize("zero", [0, 0.0])
def test_timeout_zero_is_refused_naming_0_8s_reading_of_it(
    make_llm: Callable[..., AI21], zero: float
) -> None:
    """0.8's SDK read 0 as its default; here it would end every attempt at once."""
    message = "timeout must be greater than 0 (the seconds each attempt's connect, read and "
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        make_llm(timeout=zero)
    assert "0.8 read 0 as its default: leave timeout out, or pass None" in str(caught.value)
    llm = make_llm()
    with pytest.raises(ValueError, match=re.escape(message)):
        llm.timeout = zero
    assert llm.timeout == 120


def test_ai21_timeout_sec_bounds_each_attempt_as_in_0_8(
    make_llm: Callable[..., AI21], emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 0.8 left timeout to the SDK, which read AI21_TIMEOUT_SEC (as ai21 4.x still does).
    monkeypatch.setenv("AI21_TIMEOUT_SEC", "0.05")
    llm = make_llm(max_retries=0)
    assert llm.timeout == 0.05
    emulator.inject(Fault(delay=0.5))
    with pytest.raises(httpx.TimeoutException):
        llm.complete(_PROMPT)
    assert make_llm(timeout=7).timeout == 7, "an argument wins"
    assert make_llm(timeout=None).timeout == 0.05


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf"])
def test_an_ai21_timeout_sec_that_is_no_timeout_is_named(
    make_llm: Callable[..., AI21], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AI21_TIMEOUT_SEC", value)
    with pytest.raises(ValueError, match=f"AI21_TIMEOUT_SEC must be a number .* got '{value}'"):
        make_llm()


def test_a_dump_saved_by_0_8_loads_and_its_settings_are_sent(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AI21_API_KEY", emulator.api_key or "")
    monkeypatch.setenv("AI21_API_HOST", emulator.base_url)
    for loaded in (AI21.from_dict(dict(DUMP_0_8)), AI21.from_json(json.dumps(DUMP_0_8))):
        assert (loaded.timeout, loaded.max_retries) == (120.0, 10)
        loaded.complete(_PROMPT)
        body = emulator.last_request.json
        assert (body["model"], body["max_tokens"], body["temperature"]) == (
            "jamba-1.5-mini",
            512,
            0.4,
        )


def test_completion_response_of_0_8s_shape_still_compares_by_text(
    make_llm: Callable[..., AI21], emulator: Emulator
) -> None:
    # 0.8's tests compared whole responses; the text and raw answer are as they were, and
    # additional_kwargs now carries the token counts and finish_reason (docs/migration.md).
    emulator.reply_next(
        "42", usage={"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}
    )
    response = make_llm(model="jamba-1.5-mini").complete(_PROMPT)
    assert isinstance(response, CompletionResponse)
    assert response.text == "42"
    assert response.additional_kwargs == {
        "prompt_tokens": 10,
        "completion_tokens": 1,
        "total_tokens": 11,
        "finish_reason": "stop",
    }


# llama-index-workflows finds an agent's steps with inspect.getmembers, which touches every
# deprecated pydantic attribute of the agent (warnings from their code, not ours).
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211")
def test_the_0_8_readmes_examples_run(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # 0.8.0's README, as written (its key and model), with AI21_API_HOST at the emulator; its
    # stream_complete example printed ``response.text`` of the generator, a slip: chunk.text.
    monkeypatch.setenv("AI21_API_HOST", emulator.base_url)
    api_key = emulator.api_key
    llm = AI21(model="jamba-1.5-mini", api_key=api_key)
    messages = [ChatMessage(role="user", content=_PROMPT)]
    assert llm.chat(messages).message.content
    assert [chunk.message.content for chunk in llm.stream_chat(messages)][-1]
    assert llm.complete(prompt=_PROMPT).text
    assert [chunk.text for chunk in llm.stream_complete(prompt=_PROMPT)][-1]
    j2 = AI21(model="j2-ultra", api_key=api_key)
    assert j2.chat(messages).message.content
    assert j2.complete(prompt=_PROMPT).text

    async def main() -> list[str | None]:
        response = await llm.achat(messages)
        chunks = [chunk.message.content async for chunk in await llm.astream_chat(messages)]
        return [response.message.content, chunks[-1]]

    assert all(asyncio.run(main()))

    def multiply(a: int, b: int) -> int:
        """Multiply two integers and returns the result integer"""
        return a * b

    def add(a: int, b: int) -> int:
        """Add two integers and returns the result integer"""
        return a + b

    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(fn=multiply), FunctionTool.from_defaults(fn=add)],
        llm=llm,
    )
    emulator.reply_next(tool_calls=[{"name": "multiply", "arguments": {"a": 6, "b": 7}}])
    emulator.reply_next("42")

    async def run() -> Any:  # as 0.8's README: ``await agent.run(...)``
        return await agent.run("What is 6 times 7?")

    result = asyncio.run(run())
    assert str(result) == "42"
    assert [(c.tool_name, c.tool_output.raw_output) for c in result.tool_calls] == [
        ("multiply", 42)
    ]
    assert all(r.path == "/studio/v1/chat/completions" for r in emulator.requests[-2:])


@pytest.mark.parametrize("source", ["base_url", "AI21_API_HOST"])
def test_an_ai21_host_alone_is_ai21s_api_root_as_in_0_8(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    # 0.8 handed base_url to the ai21 SDK 2.x as a host, which added /studio/v1 to an ai21.com
    # host (AI21_API_HOST too). Sent here through an HTTP proxy, the emulator: it sees the path
    # the request asked AI21's host for, and answers as the retired API does.
    host = "http://api.ai21.com"
    if source == "AI21_API_HOST":
        monkeypatch.setenv("AI21_API_HOST", host)
    with httpx.Client(proxy=emulator.url) as through_proxy:
        llm = AI21(
            api_key=emulator.api_key,
            http_client=through_proxy,
            max_retries=0,
            **({"base_url": host} if source == "base_url" else {}),
        )
        assert llm.base_url == "http://api.ai21.com/studio/v1"
        emulator.inject(Fault(status=410))
        with pytest.raises(HostedAPIRetiredError):
            llm.complete(_PROMPT)
    assert emulator.last_request.path == "/studio/v1/chat/completions"


def test_a_pickle_made_by_0_8_loads_with_the_key_from_the_environment(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="AI21_API_KEY"):  # 0.8 pickles never held the key
        pickle.loads(PICKLE_0_8)
    monkeypatch.setenv("AI21_API_KEY", emulator.api_key or "")
    monkeypatch.setenv("AI21_API_HOST", emulator.base_url)
    pickle.loads(PICKLE_0_8).complete(_PROMPT)
    body = emulator.last_request.json
    assert body["messages"] == [{"role": "system", "content": "Be brief"}, *USER]
    assert (body["model"], body["max_tokens"], body["temperature"]) == ("jamba-1.5-mini", 512, 0.4)


@pytest.mark.parametrize("api_key", [None, ""])
def test_an_empty_api_key_falls_back_to_ai21_api_key_as_in_0_8(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, api_key: str | None
) -> None:
    # 0.8 gave the SDK api_key or AI21_API_KEY: AI21(api_key=os.getenv("MY_KEY", "")) worked.
    monkeypatch.setenv("AI21_API_KEY", emulator.api_key or "")
    AI21(api_key=api_key, base_url=emulator.base_url).complete(_PROMPT)
    assert emulator.last_request.api_key == emulator.api_key


def test_jurassic_2_takes_llamaindexs_prompts_at_complete(
    make_llm: Callable[..., AI21], emulator: Emulator
) -> None:
    # 0.8 called J2 a chat model, so predict() went to /chat; J2 is a completion model.
    llm = make_llm(model="j2-ultra")
    assert llm.metadata.is_chat_model is False
    llm.predict(PromptTemplate("Say {x}"), x="hi")
    assert emulator.last_request.path == "/studio/v1/j2-ultra/complete"
    assert emulator.last_request.json["prompt"] == "Say hi"


@pytest.mark.parametrize(("parallel", "kept"), [(False, ["add"]), (True, ["add", "multiply"])])
def test_chat_with_tools_keeps_the_first_call_unless_parallel_calls_are_allowed(
    make_llm: Callable[..., AI21], emulator: Emulator, parallel: bool, kept: list[str]
) -> None:
    # 0.8 returned every call whatever allow_parallel_tool_calls said (False by default).
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    llm = make_llm(model="jamba-1.5-mini")
    emulator.reply_next(
        tool_calls=[
            {"name": "add", "arguments": {"a": 1, "b": 2}},
            {"name": "multiply", "arguments": {"a": 3, "b": 4}},
        ]
    )
    tools = [FunctionTool.from_defaults(fn=add), FunctionTool.from_defaults(fn=multiply)]
    response = llm.chat_with_tools(tools, "add and multiply", allow_parallel_tool_calls=parallel)
    assert [c.tool_name for c in llm.get_tool_calls_from_response(response)] == kept


def test_system_prompt_and_completion_to_prompt_now_shape_complete(
    make_llm: Callable[..., AI21], emulator: Emulator
) -> None:
    # 0.8's complete() went through chat() with neither (docs/migration.md says both).
    llm = make_llm(system_prompt="Be brief", completion_to_prompt=lambda prompt: f"Q: {prompt}")
    llm.complete(_PROMPT)
    assert emulator.last_request.json["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": f"Q: {_PROMPT}"},
    ]


def test_a_jurassic_2_tokenizer_is_a_value_error_that_says_why(
    make_llm: Callable[..., AI21],
) -> None:
    # 0.8's test_tokenizer got ai21-tokenizer 0.x's JurassicTokenizer for j2-mid and j2-ultra.
    with pytest.raises(ValueError, match="Jurassic-2 models were retired"):
        make_llm(model="j2-mid").tokenizer  # noqa: B018


def test_the_per_call_fields_0_8_passed_to_the_sdk_are_sent_as_they_were(
    make_llm: Callable[..., AI21], emulator: Emulator
) -> None:
    # 0.8 handed a call's keywords to the SDK 2.x's create(), which sent these as given.
    fields = {
        "documents": [{"content": "Jamba is hybrid."}],
        "top_p": 0.5,
        "stop": ["##"],
        "response_format": {"type": "text"},
        "n": 2,
    }
    make_llm(model="jamba-1.5-mini").chat([ChatMessage(role="user", content=_PROMPT)], **fields)
    assert emulator.last_request.json == {
        "model": "jamba-1.5-mini",
        "messages": USER,
        "stream": False,
        **fields,
    }


@pytest.mark.parametrize(
    "model", ["jamba-instruct", "jamba-1.5-mini", "jamba-1.5-large", "jamba-1.5", "j2-mid"]
)
def test_every_name_in_0_8s_table_is_known(
    make_llm: Callable[..., AI21], caplog: pytest.LogCaptureFixture, model: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="llama_index.llms.ai21"):
        llm = make_llm(model=model)
    assert not caplog.records, "no 'not in the model table' warning for a name 0.8 knew"
    assert llm.metadata.context_window == (8192 if model.startswith("j2") else 256_000)
