"""Usage and observability: callbacks and instrumentation events see AI21's own token counts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import BaseModel
from llama_index.core.callbacks import CallbackManager, TokenCountingHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionStartEvent,
    LLMStructuredPredictEndEvent,
)
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.core.types import PydanticProgramMode

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


TOOLS = [FunctionTool.from_defaults(multiply, description="Multiply two integers.")]
METHODS = [
    "chat",
    "stream_chat",
    "achat",
    "astream_chat",
    "complete",
    "stream_complete",
    "acomplete",
    "astream_complete",
    "chat_with_tools",
    "stream_chat_with_tools",
    "achat_with_tools",
    "astream_chat_with_tools",
]


def run(llm: AI21, method: str) -> None:
    """Call ``method`` with a fixed question and drain any stream."""
    question = "What is 3 times 4?"
    args: tuple[Any, ...] = (question,)
    if method.endswith("_tools"):
        args = (TOOLS, question)
    elif "chat" in method:
        args = ([ChatMessage(role="user", content=question)],)

    async def run_async() -> None:
        result = await getattr(llm, method)(*args)
        if "stream" in method:
            _ = [chunk async for chunk in result]

    if method.startswith("a"):
        asyncio.run(run_async())
    else:
        result = getattr(llm, method)(*args)
        if "stream" in method:
            list(result)


JAMBA2 = "ai21labs/AI21-Jamba2-3B"
USAGE = {"prompt_tokens": 17, "completion_tokens": 5, "total_tokens": 22}
CALL = {"name": "multiply", "arguments": '{"a":3,"b":4}'}


def script(emulator: Emulator, method: str) -> None:
    """The answer, scripted with its usage: a tool call for the ``*_with_tools`` methods."""
    usage = {k: USAGE[k] for k in ("prompt_tokens", "completion_tokens")}
    if method.endswith("_tools"):
        emulator.reply_next(tool_calls=[CALL], usage=usage)
    else:
        emulator.reply_next("12.", usage=usage)


class Recorder(BaseEventHandler):
    events: list[BaseEvent] = []

    @classmethod
    def class_name(cls) -> str:
        return "Recorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """An event handler on the root dispatcher, removed afterwards."""
    dispatcher = get_dispatcher()
    handler = Recorder(events=[])
    dispatcher.add_event_handler(handler)
    try:
        yield handler
    finally:
        dispatcher.event_handlers.remove(handler)


@pytest.mark.parametrize("server", ["ai21", "vllm"])
@pytest.mark.parametrize("method", METHODS)
def test_token_counting_handler_sees_ai21_usage(
    make_llm: Callable[..., AI21],
    emulator: Emulator,
    ai21_emulator_vllm: Emulator,
    method: str,
    server: str,
) -> None:
    # A deliberately poor tokenizer, so a count that matches came from the server, not from it.
    # A self-hosted server streams the usage in an event of its own after the final one
    # (stream_options.include_usage); LlamaIndex's handler reads it from the final raw event.
    counter = TokenCountingHandler(tokenizer=lambda text: [text])
    callbacks = CallbackManager([counter])
    if server == "ai21":
        llm = make_llm(callback_manager=callbacks)
    else:
        emulator = ai21_emulator_vllm
        llm = AI21(model=JAMBA2, base_url=emulator.base_url, callback_manager=callbacks)
    script(emulator, method)
    run(llm, method)
    (event,) = counter.llm_token_counts
    assert event.prompt_token_count == 17
    assert event.completion_token_count == 5
    assert counter.total_llm_token_count == 22


@pytest.mark.parametrize("method", METHODS)
def test_instrumentation_events_carry_ai21_usage(
    llm: AI21, emulator: Emulator, recorder: Recorder, method: str
) -> None:
    script(emulator, method)
    run(llm, method)
    is_chat = "chat" in method
    start, progress, end = (
        (LLMChatStartEvent, LLMChatInProgressEvent, LLMChatEndEvent)
        if is_chat
        else (LLMCompletionStartEvent, LLMCompletionInProgressEvent, LLMCompletionEndEvent)
    )
    kinds = [type(e) for e in recorder.events if type(e).__name__.startswith("LLM")]
    assert kinds[0] is start
    assert kinds[-1] is end
    assert (kinds.count(progress) > 1) is ("stream" in method)
    final = recorder.events[-1]
    assert isinstance(final, end)
    response: Any = final.response
    assert {k: response.additional_kwargs[k] for k in USAGE} == USAGE
    if method.endswith("_tools"):
        assert response.message.additional_kwargs["tool_calls"][0]["function"] == CALL
    elif is_chat:
        assert response.message.content == "12."
    else:
        assert response.text == "12."


@pytest.mark.parametrize(
    "mode",
    [PydanticProgramMode.DEFAULT, PydanticProgramMode.FUNCTION, PydanticProgramMode.LLM],
    ids=["default", "function", "llm"],
)
@pytest.mark.parametrize("server", ["ai21", "vllm"])
def test_a_structured_prediction_is_announced_around_its_one_chat(
    make_llm: Callable[..., AI21],
    ai21_emulator_vllm: Emulator,
    recorder: Recorder,
    server: str,
    mode: PydanticProgramMode,
) -> None:
    # The package runs structured_predict itself (guided decoding, the tool call, the text
    # program): its events are LlamaIndex's own, once each, around the one chat.
    class Album(BaseModel):
        title: str

    if server == "ai21":
        llm = make_llm(pydantic_program_mode=mode)
    else:
        llm = AI21(
            model="ai21labs/AI21-Jamba2-3B",
            base_url=ai21_emulator_vllm.base_url,
            pydantic_program_mode=mode,
        )
    album = llm.structured_predict(Album, PromptTemplate("The album: {t}"), t='"Abbey Road"')
    names = [
        type(e).__name__
        for e in recorder.events
        if "Structured" in type(e).__name__ or type(e).__name__.startswith("LLMChat")
    ]
    assert names == [
        "LLMStructuredPredictStartEvent",
        "LLMChatStartEvent",
        "LLMChatEndEvent",
        "LLMStructuredPredictEndEvent",
    ]
    (end,) = [e for e in recorder.events if isinstance(e, LLMStructuredPredictEndEvent)]
    assert end.output == album
