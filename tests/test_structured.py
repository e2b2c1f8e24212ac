"""Structured output over the emulator: function calling by default, JSON mode as an option."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import enum
import json
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

import pytest
from llama_index.core.bridge.pydantic import BaseModel, ConfigDict, Field
from llama_index.core.llms import ChatMessage
from llama_index.core.program import utils as program_utils
from llama_index.core.prompts import PromptTemplate
from llama_index.core.types import PydanticProgramMode

from ai21_emulator import Emulator, Fault
from llama_index.llms.ai21 import AI21, StreamInterruptedError


class Album(BaseModel):
    """A music album."""

    title: str = Field(description="The album's title")
    artist: str = Field(description="Who recorded it")
    year: int = Field(description="Year of release")


TEMPLATE = "Extract the album from this text: {text}"
TEXT = 'The album is called "Abbey Road", the artist is The Beatles, and the year is 1969.'
QUESTION = TEMPLATE.format(text=TEXT)
ABBEY_ROAD = Album(title="Abbey Road", artist="The Beatles", year=1969)
ALBUM_TOOL = {
    "type": "function",
    "function": {
        "name": "Album",
        "description": "A music album.",
        "parameters": {
            "type": "object",
            "properties": {
                "title": {"description": "The album's title", "title": "Title", "type": "string"},
                "artist": {"description": "Who recorded it", "title": "Artist", "type": "string"},
                "year": {"description": "Year of release", "title": "Year", "type": "integer"},
            },
            "required": ["title", "artist", "year"],
        },
    },
}
MODES = {"function": PydanticProgramMode.DEFAULT, "json": PydanticProgramMode.LLM}
ABBEY_ROAD_ARGS = {"title": "Abbey Road", "artist": "The Beatles", "year": 1969}


def script(emulator: Emulator, mode: str) -> None:
    """The model's answer, scripted: a call of the Album tool, or a JSON object as text (the
    emulator's own schema filling has its tests in emulator/tests)."""
    if mode == "function":
        emulator.reply_next(tool_calls=[{"name": "Album", "arguments": ABBEY_ROAD_ARGS}])
    else:
        emulator.reply_next(json.dumps(ABBEY_ROAD_ARGS))


def predict(
    llm: AI21,
    method: str,
    llm_kwargs: dict[str, Any] | None = None,
    prompt: PromptTemplate | None = None,
    output_cls: Any = Album,
) -> Any:
    """Run one structured-output entry point and return its final object."""
    prompt = PromptTemplate(TEMPLATE) if prompt is None else prompt
    messages = [ChatMessage(role="user", content=QUESTION)]

    async def run_async() -> Any:
        if method == "astructured_predict":
            return await llm.astructured_predict(output_cls, prompt, llm_kwargs, text=TEXT)
        if method == "astream_structured_predict":
            stream = await llm.astream_structured_predict(output_cls, prompt, llm_kwargs, text=TEXT)
            return [item async for item in stream][-1]
        return (await llm.as_structured_llm(output_cls).achat(messages)).raw

    if method.startswith(("a", "structured_llm.a")):
        return asyncio.run(run_async())
    if method == "structured_predict":
        return llm.structured_predict(output_cls, prompt, llm_kwargs, text=TEXT)
    if method == "stream_structured_predict":
        stream = llm.stream_structured_predict(output_cls, prompt, llm_kwargs, text=TEXT)
        return list(stream)[-1]
    structured = llm.as_structured_llm(output_cls)
    if method == "structured_llm.chat":
        return structured.chat(messages).raw
    if method == "structured_llm.stream_chat":
        return list(structured.stream_chat(messages))[-1].raw
    return structured.complete(QUESTION).raw


METHODS = [
    "structured_predict",
    "astructured_predict",
    "stream_structured_predict",
    "astream_structured_predict",
    "structured_llm.chat",
    "structured_llm.achat",
    pytest.param(
        "structured_llm.stream_chat",
        # llama-index-core's StructuredLLM.stream_chat calls the deprecated BaseModel.json().
        marks=pytest.mark.filterwarnings("ignore:The `json` method is deprecated"),
    ),
    "structured_llm.complete",
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
def test_structured_output_returns_a_validated_object(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str, mode: str
) -> None:
    llm = make_llm(pydantic_program_mode=MODES[mode])
    script(emulator, mode)
    result = predict(llm, method)
    assert isinstance(result, Album)
    assert result == ABBEY_ROAD

    sent = emulator.last_request.json
    assert sent["stream"] is ("stream" in method)
    if mode == "function":
        assert sent["tools"] == [ALBUM_TOOL]
        assert "response_format" not in sent
        assert sent["messages"] == [{"role": "user", "content": QUESTION}]
    else:
        assert sent["response_format"] == {"type": "json_object"}
        assert "tools" not in sent
        (message,) = sent["messages"]
        assert message["content"].startswith(QUESTION)
        assert "Here's a JSON schema to follow" in message["content"]
        # the schema as JSON (LlamaIndex's own parser doubled its braces for a template)
        assert json.dumps(Album.model_json_schema()) in message["content"]


def test_function_calling_is_the_default(llm: AI21) -> None:
    assert llm.pydantic_program_mode == PydanticProgramMode.DEFAULT


def test_the_hosted_api_offers_the_class_alone_and_says_once_the_call_is_not_enforced(
    llm: AI21, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    # docs/structured-output.md: AI21's API has no tool_choice field; the class's tool goes
    # alone, and the log says so once per instance, not once per prediction.
    for _ in range(2):
        script(emulator, "function")
        assert predict(llm, "structured_predict") == ABBEY_ROAD
        sent = emulator.last_request.json
        assert sent["tools"] == [ALBUM_TOOL]
        assert "tool_choice" not in sent
    said = [r for r in caplog.records if "cannot be enforced" in r.getMessage()]
    assert [r.levelname for r in said] == ["WARNING"]


@pytest.mark.parametrize("method", ["structured_predict", "stream_structured_predict"])
def test_a_model_without_function_calling_reads_the_schema_from_the_prompt(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str
) -> None:
    # docs/structured-output.md: "default" on AI21's API with is_function_calling_model=False
    # is the text program, as "llm" mode, without JSON mode.
    llm = make_llm(is_function_calling_model=False)
    script(emulator, "json")
    assert predict(llm, method) == ABBEY_ROAD
    sent = emulator.last_request.json
    assert not sent.keys() & {"tools", "tool_choice", "response_format"}
    (message,) = sent["messages"]
    assert json.dumps(Album.model_json_schema()) in message["content"]


def test_json_mode_leaves_an_explicit_response_format_alone(
    make_llm: Callable[..., AI21], emulator: Emulator
) -> None:
    llm = make_llm(pydantic_program_mode=PydanticProgramMode.LLM)
    emulator.reply_next("Abbey Road, by The Beatles (1969).")
    with pytest.raises(ValueError, match="Could not extract json string"):
        llm.structured_predict(
            Album,
            PromptTemplate(TEMPLATE),
            llm_kwargs={"response_format": {"type": "text"}},
            text="hi",
        )
    assert emulator.last_request.json["response_format"] == {"type": "text"}


@pytest.mark.parametrize("mode", MODES)
def test_streamed_structured_output_ends_complete(
    make_llm: Callable[..., AI21], emulator: Emulator, mode: str
) -> None:
    llm = make_llm(pydantic_program_mode=MODES[mode])
    script(emulator, mode)
    partials = list(llm.stream_structured_predict(Album, PromptTemplate(TEMPLATE), text=TEXT))
    assert len(partials) > 1
    assert partials[-1] == ABBEY_ROAD
    assert all(set(p.model_dump()) == {"title", "artist", "year"} for p in partials)


# ------------------------------------------------- streamed: the request and the end of the stream

JAMBA2 = "ai21labs/AI21-Jamba2-3B"
# Where each server's structured call goes: AI21's API calls the class as a tool; a vLLM
# server constrains the text to the schema (guided decoding); "function" mode calls the tool on
# any server, with the call required where the server can require it.
SERVERS = {
    "ai21-default": ("ai21", PydanticProgramMode.DEFAULT),
    "vllm-default": ("vllm", PydanticProgramMode.DEFAULT),
    "vllm-function": ("vllm", PydanticProgramMode.FUNCTION),
    "vllm-llm": ("vllm", PydanticProgramMode.LLM),
}


@pytest.fixture
def server_llm(
    request: pytest.FixtureRequest, emulator: Emulator, ai21_emulator_vllm: Emulator
) -> tuple[AI21, Emulator]:
    flavour, mode = SERVERS[request.param]
    server = emulator if flavour == "ai21" else ai21_emulator_vllm
    model = "jamba-mini" if flavour == "ai21" else JAMBA2
    llm = AI21(
        model=model,
        api_key=server.api_key,
        base_url=server.base_url,
        max_retries=0,
        pydantic_program_mode=mode,
    )
    return llm, server


def stream_last(llm: AI21, use_async: bool) -> Any:
    """The last object ``(a)stream_structured_predict`` yields."""
    if not use_async:
        return list(llm.stream_structured_predict(Album, PromptTemplate(TEMPLATE), text=TEXT))[-1]

    async def run() -> Any:
        stream = await llm.astream_structured_predict(Album, PromptTemplate(TEMPLATE), text=TEXT)
        return [item async for item in stream][-1]

    return asyncio.run(run())


def scripted_answer(server: Emulator, llm: AI21, arguments: dict[str, Any]) -> None:
    """The answer the request asks for: the object as the tool's arguments, or as the text."""
    mode = llm.pydantic_program_mode
    if mode == PydanticProgramMode.LLM or (
        mode == PydanticProgramMode.DEFAULT and server.flavour == "vllm"
    ):
        server.reply_next(json.dumps(arguments))
    else:
        server.reply_next(tool_calls=[{"name": "Album", "arguments": arguments}])


@pytest.mark.parametrize("server_llm", SERVERS, indirect=True)
def test_a_streamed_structured_call_sends_what_structured_predict_sends(
    server_llm: tuple[AI21, Emulator],
) -> None:
    # LlamaIndex's own streamed program does not require the tool call (and so a vLLM server
    # without --enable-auto-tool-choice refuses it), and on a server with guided decoding it
    # used function calling where structured_predict used the schema.
    llm, server = server_llm
    scripted_answer(server, llm, ABBEY_ROAD_ARGS)
    assert llm.structured_predict(Album, PromptTemplate(TEMPLATE), text=TEXT) == ABBEY_ROAD
    whole = dict(server.last_request.json)
    scripted_answer(server, llm, ABBEY_ROAD_ARGS)
    assert stream_last(llm, use_async=False) == ABBEY_ROAD
    streamed = dict(server.last_request.json)
    assert streamed.pop("stream") is True
    streamed.pop("stream_options", None)
    assert whole.pop("stream") is False
    assert streamed == whole


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("server_llm", SERVERS, indirect=True)
def test_a_streamed_structured_answer_without_the_object_is_an_error(
    server_llm: tuple[AI21, Emulator], use_async: bool
) -> None:
    # Before, the stream ended on an empty Album(title=None, ...) partial, silently.
    llm, server = server_llm
    server.reply_next("Sorry, I cannot help with that.")
    with pytest.raises(ValueError, match=r"(?s)Album.*Sorry, I cannot help with that\."):
        stream_last(llm, use_async)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("server_llm", SERVERS, indirect=True)
def test_a_streamed_structured_answer_that_does_not_validate_is_an_error(
    server_llm: tuple[AI21, Emulator], use_async: bool
) -> None:
    llm, server = server_llm
    scripted_answer(server, llm, {"title": "Abbey Road", "artist": "The Beatles"})
    with pytest.raises(ValueError, match=r"(?s)Album.*year.*Field required"):
        stream_last(llm, use_async)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_streamed_json_mode_answer_is_read_as_structured_predict_reads_it(
    make_llm: Callable[..., AI21], emulator: Emulator, use_async: bool
) -> None:
    # JSON in a fence: LlamaIndex's partial reading never gets past the fence (its stream ended
    # on an empty partial object); its parser, as structured_predict uses it, reads it.
    llm = make_llm(pydantic_program_mode=PydanticProgramMode.LLM)
    emulator.reply_next(f"```json\n{json.dumps(ABBEY_ROAD_ARGS)}\n```")
    assert stream_last(llm, use_async) == ABBEY_ROAD


@pytest.mark.parametrize("method", METHODS[:4])
def test_an_answer_without_the_tool_call_is_worded_alike_streamed_or_not(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str
) -> None:
    """Function calling (AI21's API has no json_schema): the same answer, the same error, by
    the class's name; the non-streamed one said "Expected at least one tool call, but the
    response has none", which named neither the class nor the tool."""
    emulator.reply_next("Sorry, I cannot help with that.")
    with pytest.raises(ValueError, match=r"^no Album: ") as caught:
        predict(make_llm(), method)
    assert str(caught.value) == (
        "no Album: the model answered without calling the Album tool: "
        "'Sorry, I cannot help with that.'"
    )


# ------------------------------------------------------------------- an answer cut at max_tokens

CUT_ARGS = '{"title": "Abbey Road", "artist": "The Be'


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("server_llm", SERVERS, indirect=True)
def test_an_answer_cut_at_max_tokens_names_max_tokens(
    server_llm: tuple[AI21, Emulator], stream: bool
) -> None:
    # Before, guided decoding said "Invalid JSON: EOF while parsing" and the text program
    # "Could not extract json string", neither naming the cut; the tool call's error said it.
    llm, server = server_llm
    mode = llm.pydantic_program_mode
    if mode == PydanticProgramMode.LLM or (
        mode == PydanticProgramMode.DEFAULT and server.flavour == "vllm"
    ):
        server.reply_next(CUT_ARGS, finish_reason="length")
    else:
        server.reply_next(
            tool_calls=[{"name": "Album", "arguments": CUT_ARGS}], finish_reason="length"
        )
    method = "stream_structured_predict" if stream else "structured_predict"
    with pytest.raises(ValueError, match=r"cut at max_tokens \(finish_reason 'length'\)") as caught:
        predict(llm, method)
    assert "raise max_tokens" in str(caught.value)
    assert CUT_ARGS in str(caught.value)  # what arrived, as it arrived


@pytest.mark.parametrize("method", METHODS[:4])
def test_text_cut_at_max_tokens_before_the_tool_call_names_max_tokens(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str
) -> None:
    emulator.reply_next("Let me look at the album: it is", finish_reason="length")
    with pytest.raises(ValueError, match=r"^no Album: the answer was cut at max_tokens") as caught:
        predict(make_llm(max_retries=0), method)
    assert "Let me look at the album: it is" in str(caught.value)


# ------------------------------------------------------------------------ a recursive class


class Node(BaseModel):
    """A tree node."""

    name: str
    children: list[Node] = []


TREE = {"name": "root", "children": [{"name": "leaf", "children": []}]}


def _answer_next(llm: AI21, server: Emulator, name: str, data: dict[str, Any]) -> bool:
    """Script the next answer as ``data``, written as the call's mode asks for it: JSON text
    (``llm`` mode, and guided decoding on the vLLM flavour: True) or a call of the class's
    tool (False)."""
    mode = llm.pydantic_program_mode
    by_text = mode == PydanticProgramMode.LLM or (
        mode == PydanticProgramMode.DEFAULT and server.flavour == "vllm"
    )
    if by_text:
        server.reply_next(json.dumps(data))
    else:
        server.reply_next(tool_calls=[{"name": name, "arguments": data}])
    return by_text


@pytest.mark.parametrize("method", ["structured_predict", "astream_structured_predict"])
@pytest.mark.parametrize("server_llm", SERVERS, indirect=True)
def test_a_recursive_class_is_sent_with_its_schema_and_read_back(
    server_llm: tuple[AI21, Emulator], method: str
) -> None:
    # Its JSON schema's root is a $ref, which LlamaIndex's tool metadata drops: the tool went
    # out as {"$defs": ...} with no properties (AI21's API answered 422), and LlamaIndex's
    # function-calling program then failed on it with "Error: 'properties'".
    llm, server = server_llm
    schema = Node.model_json_schema()
    mode = llm.pydantic_program_mode
    by_text = _answer_next(llm, server, "Node", TREE)
    prompt = PromptTemplate("Build the tree of {text}")
    if method == "structured_predict":
        tree = llm.structured_predict(Node, prompt, text="root and leaf")
    else:

        async def last() -> Any:
            stream = await llm.astream_structured_predict(Node, prompt, text="root and leaf")
            return [item async for item in stream][-1]

        tree = asyncio.run(last())
    assert tree == Node.model_validate(TREE)
    sent = server.last_request.json
    if not by_text:
        (tool,) = sent["tools"]
        node = schema["$defs"]["Node"]
        assert tool["function"]["description"] == "A tree node."
        assert tool["function"]["parameters"] == {
            "type": "object",
            "properties": node["properties"],
            "required": ["name"],
            "$defs": schema["$defs"],
        }
    elif mode == PydanticProgramMode.DEFAULT:
        assert sent["response_format"]["json_schema"]["schema"] == schema
    else:
        assert json.dumps(schema) in sent["messages"][-1]["content"]


# --------------------------------------------------------------- the caller's objects are theirs


@pytest.mark.parametrize("method", METHODS[:4])
@pytest.mark.parametrize("mode", MODES)
def test_the_callers_template_and_llm_kwargs_are_left_as_they_were(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str, mode: str
) -> None:
    # LlamaIndex's text program set its schema-appending parser on the caller's template (a
    # later plain predict with it then asked for an Album's JSON), and its function-calling
    # program popped keys from the caller's llm_kwargs.
    llm = make_llm(pydantic_program_mode=MODES[mode])
    prompt = PromptTemplate(TEMPLATE)
    llm_kwargs = {"max_tokens": 300, "tool_required": True}
    script(emulator, mode)
    result = predict(llm, method, llm_kwargs, prompt)
    assert result == ABBEY_ROAD
    assert emulator.last_request.json["max_tokens"] == 300
    assert prompt.output_parser is None
    assert prompt.format(text=TEXT) == QUESTION
    assert llm_kwargs == {"max_tokens": 300, "tool_required": True}


# ------------------------------------------------------- tool_choice and friends in llm_kwargs

NAMED_ALBUM = {"type": "function", "function": {"name": "Album"}}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    ("llm_kwargs", "sent"),
    [
        ({}, "required"),
        ({"tool_choice": "required"}, "required"),
        ({"tool_choice": "auto"}, "auto"),
        ({"tool_choice": "Album"}, NAMED_ALBUM),
        ({"tool_choice": NAMED_ALBUM}, NAMED_ALBUM),
        ({"tool_required": False}, None),
    ],
    ids=["default", "required", "auto", "name", "named", "not-required"],
)
def test_a_tool_choice_that_lets_the_model_call_the_tool_is_sent(
    make_local: Callable[..., AI21],
    vllm: Emulator,
    llm_kwargs: dict[str, Any],
    sent: Any,
    stream: bool,
) -> None:
    # LlamaIndex's function-calling program dropped tool_choice from llm_kwargs, silently.
    llm = make_local(pydantic_program_mode=PydanticProgramMode.FUNCTION)
    vllm.reply_next(tool_calls=[{"name": "Album", "arguments": ABBEY_ROAD_ARGS}])
    prompt = PromptTemplate(TEMPLATE)
    if stream:
        result = list(llm.stream_structured_predict(Album, prompt, llm_kwargs, text=TEXT))[-1]
    else:
        result = llm.structured_predict(Album, prompt, llm_kwargs, text=TEXT)
    assert result == ABBEY_ROAD
    assert vllm.last_request.json.get("tool_choice") == sent


@pytest.mark.parametrize(
    ("llm_kwargs", "said"),
    [
        ({"tool_choice": "none"}, "tool_choice='none' rules out the call of the Album tool"),
        ({"tool_choice": "Track"}, "tool_choice='Track' rules out the call of the Album tool"),
        ({"allow_parallel_tool_calls": True}, "returns one Album"),
    ],
)
@pytest.mark.parametrize("method", METHODS[:4])
def test_a_tool_choice_that_rules_the_call_out_is_refused_before_any_request(
    make_llm: Callable[..., AI21],
    emulator: Emulator,
    llm_kwargs: dict[str, Any],
    said: str,
    method: str,
) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        predict(make_llm(max_retries=0), method, llm_kwargs)
    assert emulator.requests == []


# ------------------------------------------------------------------------- a reasoning model

REASONING_3B = "ai21labs/AI21-Jamba-Reasoning-3B"
THOUGHT = 'Is it {"title": "Wrong", "artist": "Nobody", "year": 1}? No.'


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    ("parsers", "mode"),
    [
        (True, PydanticProgramMode.DEFAULT),
        (True, PydanticProgramMode.LLM),
        (True, PydanticProgramMode.FUNCTION),
        (False, PydanticProgramMode.DEFAULT),
        (False, PydanticProgramMode.LLM),
    ],
    ids=[
        "parser-json_schema",
        "parser-llm",
        "parser-function",
        "no-parser-json_schema",
        "no-parser-llm",
    ],
)
def test_reasoning_never_reaches_the_object(
    vllm: Emulator, parsers: bool, mode: PydanticProgramMode, stream: bool
) -> None:
    """The reasoning (with JSON of its own) comes in its field behind vLLM's reasoning parser,
    or in the answer's text up to ``</think>`` without one: neither the partial objects nor the
    last one read it, and ``</think>`` never reaches the parser."""
    with contextlib.ExitStack() as stack:
        server = vllm if parsers else stack.enter_context(Emulator(flavour="vllm", parsers=False))
        llm = AI21(
            model=REASONING_3B, base_url=server.base_url, max_retries=0, pydantic_program_mode=mode
        )
        if mode == PydanticProgramMode.FUNCTION:
            server.reply_next(
                tool_calls=[{"name": "Album", "arguments": ABBEY_ROAD_ARGS}], reasoning=THOUGHT
            )
        else:
            server.reply_next(json.dumps(ABBEY_ROAD_ARGS), reasoning=THOUGHT)
        prompt = PromptTemplate(TEMPLATE)
        if stream:
            partials = list(llm.stream_structured_predict(Album, prompt, text=TEXT))
        else:
            partials = [llm.structured_predict(Album, prompt, text=TEXT)]
    assert partials[-1] == ABBEY_ROAD
    assert all(p.title is None or "Abbey Road".startswith(p.title) for p in partials)


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        (PydanticProgramMode.OPENAI, "the OpenAI LLM's own program"),
        ("openai", "the OpenAI LLM's own program"),
        (PydanticProgramMode.GUIDANCE, "a guidance model's program"),
        (PydanticProgramMode.LM_FORMAT_ENFORCER, "a local HuggingFace or LlamaCPP model's"),
    ],
)
def test_a_program_mode_of_another_llm_class_is_refused_when_set(
    make_llm: Callable[..., AI21], mode: Any, said: str
) -> None:
    # Before, the first structured call failed: "No module named 'llama_index.program'",
    # "Unsupported pydantic program mode", or an ImportError naming a package to install.
    with pytest.raises(ValueError, match=re.escape(said)) as caught:
        make_llm(pydantic_program_mode=mode)
    assert "AI21 runs 'default'" in str(caught.value)
    llm = make_llm()
    with pytest.raises(ValueError, match=re.escape(said)):
        llm.pydantic_program_mode = mode
    assert llm.pydantic_program_mode == PydanticProgramMode.DEFAULT


# ------------------------------------------------------------ an output class that cannot be sent


class Tracked(BaseModel):
    """A class pydantic writes no JSON schema for: one of its fields is a function."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    title: str
    on_change: Callable[[str], None]


@dataclasses.dataclass
class AlbumRecord:
    title: str


@pytest.mark.parametrize(
    ("output_cls", "said"),
    [
        (AlbumRecord, "output_cls must be a pydantic model class"),
        (dict, "output_cls must be a pydantic model class"),
        (ABBEY_ROAD, "output_cls must be a pydantic model class (a subclass of pydantic.Base"),
        (list[Album], "output_cls must be a pydantic model class"),
        (Tracked, "Tracked has no JSON schema to send (field 'on_change'): Cannot generate"),
    ],
    ids=["dataclass", "dict", "instance", "list", "callable-field"],
)
@pytest.mark.parametrize("method", METHODS[:4])
def test_an_output_class_that_cannot_be_sent_is_refused_before_any_request(
    make_llm: Callable[..., AI21], emulator: Emulator, output_cls: Any, said: str, method: str
) -> None:
    # Before: AttributeError ("no attribute 'model_json_schema'", "'Album' object has no
    # attribute '__name__'", after a request in JSON mode), or pydantic's error naming no field.
    with pytest.raises(ValueError, match=re.escape(said)):
        predict(make_llm(max_retries=0), method, output_cls=output_cls)
    assert emulator.requests == []


# ----------------------------------------------------------------------- the cost of a stream


@pytest.mark.parametrize("mode", ["json_schema", "function"])
def test_a_stream_makes_the_partial_class_once_not_once_a_chunk(
    make_local: Callable[..., AI21], vllm: Emulator, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # LlamaIndex's process_streaming_objects(flexible_mode=True) makes a new pydantic class for
    # every chunk: 0.75 ms each, three fifths of a long structured stream's time.
    class Shelf(BaseModel):  # a class of this test's own: none made for it yet
        albums: list[Album]

    made: list[str] = []
    real = program_utils.create_model

    def counting(name: str, /, **kwargs: Any) -> Any:
        made.append(name)
        return real(name, **kwargs)

    monkeypatch.setattr(program_utils, "create_model", counting)
    program = PydanticProgramMode.FUNCTION if mode == "function" else PydanticProgramMode.DEFAULT
    llm = make_local(pydantic_program_mode=program)
    shelf = {"albums": [ABBEY_ROAD_ARGS] * 5}
    if mode == "function":
        vllm.reply_next(tool_calls=[{"name": "Shelf", "arguments": shelf}])
    else:
        vllm.reply_next(json.dumps(shelf))
    partials = list(llm.stream_structured_predict(Shelf, PromptTemplate(TEMPLATE), text=TEXT))
    assert len(partials) > 40
    assert partials[-1] == Shelf.model_validate(shelf)
    assert made == ["FlexibleShelf"]


# ---------------------------------------------------------------- a stream that breaks mid-answer


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("server_llm", SERVERS, indirect=True)
def test_a_structured_stream_broken_mid_answer_raises_stream_interrupted(
    server_llm: tuple[AI21, Emulator], use_async: bool
) -> None:
    # The partial objects so far arrive, then the package's error: never a last partial object
    # passed off as the answer.
    llm, server = server_llm
    llm.metadata  # noqa: B018 (a vLLM server is asked what it serves first: not the stream)
    scripted_answer(server, llm, ABBEY_ROAD_ARGS)
    server.inject(Fault(drop_after=8, path_contains="/chat/"))
    prompt = PromptTemplate(TEMPLATE)
    received: list[Any] = []

    async def run_async() -> None:
        async for item in await llm.astream_structured_predict(Album, prompt, text=TEXT):
            received.append(item)

    def run() -> None:
        if use_async:
            asyncio.run(run_async())
        else:
            received.extend(llm.stream_structured_predict(Album, prompt, text=TEXT))

    with pytest.raises(StreamInterruptedError, match="stream broke"):
        run()
    assert received  # partial objects came first
    assert not any(isinstance(item, Album) and item == ABBEY_ROAD for item in received)


@pytest.mark.parametrize("server_llm", ["vllm-default"], indirect=True)
def test_partial_objects_grow_with_the_answer_and_the_last_is_complete(
    server_llm: tuple[AI21, Emulator],
) -> None:
    llm, server = server_llm
    scripted_answer(server, llm, ABBEY_ROAD_ARGS)
    partials = list(llm.stream_structured_predict(Album, PromptTemplate(TEMPLATE), text=TEXT))
    titles = [p.title for p in partials if p.title is not None]
    assert titles[0] != "Abbey Road"  # a title part-way through its string
    assert all("Abbey Road".startswith(t) for t in titles)
    assert titles == sorted(titles, key=len)
    assert type(partials[0]) is not Album  # not valid yet: the class's twin, fields optional
    assert type(partials[-1]) is Album
    assert partials[-1] == ABBEY_ROAD


# ----------------------------------------------------------------- the schemas users write


class Format(str, enum.Enum):
    VINYL = "vinyl"
    CD = "cd"


class Track(BaseModel):
    name: str
    seconds: int


class Release(BaseModel):
    """A release of an album."""

    title: Annotated[str, Field(description="The album's title")]
    kind: Literal["LP", "EP"]
    format: Format
    released: datetime.date
    recorded_at: datetime.datetime | None = None
    label: str | None = None
    tracks: list[Track]


RELEASE = {
    "title": "Abbey Road",
    "kind": "LP",
    "format": "vinyl",
    "released": "1969-09-26",
    "recorded_at": "1969-08-20T14:30:00Z",
    "label": None,
    "tracks": [{"name": "Come Together", "seconds": 259}, {"name": "Something", "seconds": 182}],
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("server_llm", SERVERS, indirect=True)
def test_a_class_of_every_kind_of_field_is_sent_whole_and_read_back(
    server_llm: tuple[AI21, Emulator], stream: bool
) -> None:
    llm, server = server_llm
    schema = Release.model_json_schema()
    mode = llm.pydantic_program_mode
    by_text = _answer_next(llm, server, "Release", RELEASE)
    prompt = PromptTemplate("Extract the release: {text}")
    if stream:
        release = list(llm.stream_structured_predict(Release, prompt, text="Abbey Road"))[-1]
    else:
        release = llm.structured_predict(Release, prompt, text="Abbey Road")
    assert release == Release.model_validate(RELEASE)
    utc = datetime.timezone.utc
    assert release.recorded_at == datetime.datetime(1969, 8, 20, 14, 30, tzinfo=utc)
    sent = server.last_request.json
    if not by_text:
        (tool,) = sent["tools"]
        assert tool["function"]["description"] == "A release of an album."
        assert tool["function"]["parameters"] == {
            key: schema[key] for key in ("$defs", "properties", "required", "type")
        }
    elif mode == PydanticProgramMode.DEFAULT:
        assert sent["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "Release", "schema": schema},
        }
    else:
        assert json.dumps(schema) in sent["messages"][-1]["content"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_json_mode_on_a_jurassic_2_model_asks_for_no_response_format(
    make_llm: Callable[..., AI21], emulator: Emulator, stream: bool
) -> None:
    # JSON mode came from the deployment's limits, not the model's: Jurassic-2, which has no
    # response_format, refused the json_object the package had added itself.
    llm = make_llm(model="j2-ultra", pydantic_program_mode=PydanticProgramMode.LLM)
    prompt = PromptTemplate("Extract the album: {text}")
    if stream:
        album = list(llm.stream_structured_predict(Album, prompt, text=TEXT))[-1]
    else:
        album = llm.structured_predict(Album, prompt, text=TEXT)
    assert isinstance(album, Album)
    sent = emulator.last_request
    assert sent.path.endswith("/j2-ultra/complete")  # not a chat model: the text program
    assert "responseFormat" not in sent.json
    assert "response_format" not in sent.json


@pytest.mark.parametrize("method", ["structured_predict", "stream_structured_predict"])
def test_function_mode_on_a_jurassic_2_model_is_refused_before_any_request(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str
) -> None:
    # docs/structured-output.md: J2 has no tools, so "function" is a ValueError.
    llm = make_llm(model="j2-ultra", pydantic_program_mode=PydanticProgramMode.FUNCTION)
    with pytest.raises(ValueError, match="neither documents nor tools"):
        predict(llm, method)
    assert emulator.requests == []


class StrictAlbum(BaseModel):
    """An album, and nothing else."""

    model_config = ConfigDict(extra="forbid")
    title: str


@pytest.mark.parametrize("server_llm", ["ai21-default", "vllm-function"], indirect=True)
def test_a_class_that_forbids_extra_fields_says_so_in_its_tool(
    server_llm: tuple[AI21, Emulator],
) -> None:
    # LlamaIndex's tool parameters drop additionalProperties, which the json_schema and the
    # prompt of the other modes carry.
    llm, server = server_llm
    server.reply_next(tool_calls=[{"name": "StrictAlbum", "arguments": {"title": "Abbey Road"}}])
    assert llm.structured_predict(StrictAlbum, PromptTemplate(TEMPLATE), text=TEXT) == (
        StrictAlbum(title="Abbey Road")
    )
    (tool,) = server.last_request.json["tools"]
    assert tool["function"]["parameters"] == {
        "type": "object",
        "properties": {"title": {"title": "Title", "type": "string"}},
        "required": ["title"],
        "additionalProperties": False,
    }


class Undocumented(BaseModel):
    title: str


@pytest.mark.parametrize("method", ["structured_predict", "stream_structured_predict"])
def test_a_class_without_a_docstring_is_described_as_the_answer(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str
) -> None:
    # Before, the model read what FunctionTool writes of a function's signature:
    # "Undocumented(*args: Any, **kwargs: Any) -> ~Model\nModel function."
    emulator.reply_next(tool_calls=[{"name": "Undocumented", "arguments": {"title": "x"}}])
    prompt = PromptTemplate(TEMPLATE)
    if method == "structured_predict":
        assert make_llm().structured_predict(Undocumented, prompt, text=TEXT).title == "x"
    else:
        assert list(make_llm().stream_structured_predict(Undocumented, prompt, text=TEXT))[-1]
    (tool,) = emulator.last_request.json["tools"]
    assert tool["function"]["description"] == "The answer, as Undocumented."


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_guided_decodings_answer_in_a_fence_or_prose_is_read(
    make_local: Callable[..., AI21], vllm: Emulator, stream: bool
) -> None:
    # A server that does not honour response_format json_schema (a proxy, a server that drops
    # the field) lets the model write its JSON as it likes: the text program's parser read it,
    # guided decoding's reading said "Invalid JSON".
    llm = make_local()
    vllm.reply_next(f"Here it is:\n```json\n{json.dumps(ABBEY_ROAD_ARGS)}\n```")
    assert predict(llm, "stream_structured_predict" if stream else "structured_predict") == (
        ABBEY_ROAD
    )
    assert vllm.last_request.json["response_format"]["type"] == "json_schema"
