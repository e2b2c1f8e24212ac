"""Usage and observability: what LlamaIndex's callbacks, its instrumentation and the loggers
show of each call, over real HTTP against the emulator.

- Token counts: ``TokenCountingHandler`` (and ``LlamaDebugHandler``) through a per-instance
  ``callback_manager=`` or ``Settings.callback_manager`` take the server's own counts, for every
  method, on AI21's API, a self-hosted server and legacy J2's ``/complete``: the tokenizer it
  would fall back to (tiktoken) is never run.
- Instrumentation: events carry the messages and the answers (tool calls, reasoning), an error
  ends its span (or, for a stream, arrives in an ``ExceptionEvent`` of the stream's span), a
  stream left early or cancelled ends too, and no span stays open.
- Logging: at DEBUG (httpx's and httpcore's lines included) no key or URL password; at INFO and
  above not a word of the conversation or its documents.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import inspect
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import llama_index.core
import pytest
import tiktoken
from ai21.errors import AI21ServerError
from llama_index.core import Settings
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ThinkingBlock, ToolCallBlock
from llama_index.core.callbacks import (
    CallbackManager,
    EventPayload,
    LlamaDebugHandler,
    TokenCountingHandler,
)
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMChatStartEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
    LLMCompletionStartEvent,
    LLMStructuredPredictEndEvent,
    LLMStructuredPredictStartEvent,
)
from llama_index.core.instrumentation.events.span import SpanDropEvent
from llama_index.core.instrumentation.span import SimpleSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.prompts import PromptTemplate
from llama_index.core.rate_limiter import TokenBucketRateLimiter
from llama_index.core.tools import FunctionTool
from llama_index.core.types import PydanticProgramMode
from pydantic import BaseModel

from ai21_emulator import Emulator, Fault
from llama_index.llms.ai21 import AI21, StreamInterruptedError


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
COMPLETIONS = [m for m in METHODS if "complete" in m]


def _args(method: str, question: str = "What is 3 times 4?") -> tuple[Any, ...]:
    """The arguments ``method`` takes, asking ``question``."""
    if method.endswith("_tools"):
        return (TOOLS, question)
    if "chat" in method:
        return ([ChatMessage(role="user", content=question)],)
    return (question,)


def run(llm: AI21, method: str, question: str = "What is 3 times 4?") -> None:
    """Call ``method`` with a fixed question and drain any stream."""
    args = _args(method, question)

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
REASONING_3B = "ai21labs/AI21-Jamba-Reasoning-3B"
USAGE = {"prompt_tokens": 17, "completion_tokens": 5, "total_tokens": 22}
CALL = {"name": "multiply", "arguments": '{"a":3,"b":4}'}


def script(emulator: Emulator, method: str, reasoning: str | None = None) -> None:
    """The answer, scripted with its usage: a tool call for the ``*_with_tools`` methods."""
    usage = {k: USAGE[k] for k in ("prompt_tokens", "completion_tokens")}
    if method.endswith("_tools"):
        emulator.reply_next(tool_calls=[CALL], reasoning=reasoning, usage=usage)
    else:
        emulator.reply_next("12.", reasoning=reasoning, usage=usage)


# ----------------------------------------------------------------- handlers


class Recorder(BaseEventHandler):
    events: list[BaseEvent] = []

    @classmethod
    def class_name(cls) -> str:
        return "Recorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


class Spans(BaseSpanHandler[SimpleSpan]):
    """Each span's id as it is entered, and how it ends: ``exited`` (its result) or ``dropped``
    (its error)."""

    entered: list[str] = []
    exited: dict[str, Any] = {}
    dropped: dict[str, BaseException | None] = {}
    seen: list[str] = []  # what it was handed, as text

    def __init__(self) -> None:
        super().__init__(open_spans={}, completed_spans=[], dropped_spans=[], current_span_ids={})
        self.entered, self.exited, self.dropped, self.seen = [], {}, {}, []

    @classmethod
    def class_name(cls) -> str:
        return "Spans"

    def new_span(  # type: ignore[override]
        self, id_: str, bound_args: Any, instance: Any = None, **kwargs: Any
    ) -> SimpleSpan:
        self.entered.append(id_)
        self.seen.append(f"{bound_args!r} {instance!r} {instance!s}")
        return SimpleSpan(id_=id_, parent_id=kwargs.get("parent_span_id"))

    def prepare_to_exit_span(  # type: ignore[override]
        self, id_: str, bound_args: Any, instance: Any = None, result: Any = None, **kwargs: Any
    ) -> SimpleSpan:
        # A stream is not kept: holding it would keep it from closing when its caller drops it.
        streamed = inspect.isgenerator(result) or inspect.isasyncgen(result)
        self.exited[id_] = "a stream" if streamed else result
        self.seen.append(repr(result))
        return self.open_spans[id_]

    def prepare_to_drop_span(  # type: ignore[override]
        self, id_: str, bound_args: Any, instance: Any = None, err: Any = None, **kwargs: Any
    ) -> SimpleSpan:
        self.dropped[id_] = err
        self.seen.append(f"{err!r} {err!s}")
        return self.open_spans[id_]


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


@pytest.fixture
def spans() -> Iterator[Spans]:
    """A span handler on the root dispatcher, removed afterwards."""
    dispatcher = get_dispatcher()
    handler = Spans()
    dispatcher.add_span_handler(handler)
    try:
        yield handler
    finally:
        dispatcher.span_handlers.remove(handler)


def _refuse(text: Any) -> list[Any]:
    raise AssertionError(f"a tokenizer was asked to count {text!r}: the server's counts were lost")


@pytest.fixture
def no_tokenizer(monkeypatch: pytest.MonkeyPatch) -> None:
    """LlamaIndex's global tokenizer (tiktoken's, what ``TokenCountingHandler()`` counts with
    when an answer brings no usage it reads) refuses to run, and tiktoken cannot even be asked
    for an encoding (it downloads them)."""
    monkeypatch.setattr(llama_index.core, "global_tokenizer", _refuse)
    monkeypatch.setattr(tiktoken, "get_encoding", _refuse)
    monkeypatch.setattr(tiktoken, "encoding_for_model", _refuse)


@pytest.fixture
def settings_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """LlamaIndex's global ``Settings`` (LLM and callback manager) as they were, afterwards."""
    monkeypatch.setattr(Settings, "_llm", None)
    monkeypatch.setattr(Settings, "_callback_manager", None)


# ------------------------------------------------------------ token counts


def _j2_counts(emulator: Emulator) -> tuple[int, int]:
    """What the emulator's J2 ``/complete`` sends for the last request, asked again with plain
    httpx (deterministic answers): the lengths of its token lists."""
    last = emulator.last_request
    answer = httpx.post(
        f"{emulator.url}{last.path}",
        json=last.json,
        headers={"Authorization": f"Bearer {emulator.api_key}"},
    ).json()
    return len(answer["prompt"]["tokens"]), len(answer["completions"][0]["data"]["tokens"])


SERVER_METHODS = [
    *[("ai21", method) for method in METHODS],
    *[("vllm", method) for method in METHODS],
    *[("j2", method) for method in COMPLETIONS],  # J2 chat sends no counts at all
]


@pytest.mark.parametrize(("server", "method"), SERVER_METHODS)
@pytest.mark.usefixtures("no_tokenizer")
def test_token_counting_handler_takes_the_servers_counts(
    make_llm: Callable[..., AI21],
    emulator: Emulator,
    ai21_emulator_vllm: Emulator,
    method: str,
    server: str,
) -> None:
    # A self-hosted server streams the usage in an event of its own after the final one
    # (stream_options.include_usage); J2 sends token lists, not counts.
    counter = TokenCountingHandler()  # LlamaIndex's default tokenizer: refuses here
    debug = LlamaDebugHandler(print_trace_on_end=False)
    callbacks = CallbackManager([counter, debug])
    if server == "vllm":
        emulator = ai21_emulator_vllm
        llm = AI21(model=JAMBA2, base_url=emulator.base_url, callback_manager=callbacks)
    else:
        llm = make_llm(
            model="j2-mid" if server == "j2" else "jamba-mini", callback_manager=callbacks
        )
    if server != "j2":
        script(emulator, method)
    run(llm, method)
    (event,) = counter.llm_token_counts
    expected = (17, 5) if server != "j2" else _j2_counts(emulator)
    assert (event.prompt_token_count, event.completion_token_count) == expected
    assert counter.total_llm_token_count == sum(expected)
    ((start, end),) = debug.get_llm_inputs_outputs()
    assert start.payload is not None
    assert end.payload is not None
    asked = start.payload[EventPayload.MESSAGES if "chat" in method else EventPayload.PROMPT]
    assert "3 times 4" in str(asked)
    answer = end.payload[EventPayload.RESPONSE if "chat" in method else EventPayload.COMPLETION]
    assert answer.raw["usage"]["prompt_tokens"] == expected[0]


@pytest.mark.parametrize("method", ["chat", "stream_complete", "astream_chat", "acomplete"])
@pytest.mark.usefixtures("no_tokenizer", "settings_restored")
def test_settings_callback_manager_counts_the_servers_tokens(
    make_llm: Callable[..., AI21], emulator: Emulator, method: str
) -> None:
    """``Settings.callback_manager`` reaches the LLM LlamaIndex takes from ``Settings.llm``."""
    counter = TokenCountingHandler()
    Settings.callback_manager = CallbackManager([counter])
    Settings.llm = make_llm()
    for _ in range(2):
        script(emulator, method)
        run(Settings.llm, method)  # type: ignore[arg-type]
    assert [(e.prompt_token_count, e.completion_token_count) for e in counter.llm_token_counts] == [
        (17, 5),
        (17, 5),
    ]


@pytest.mark.parametrize("how", ["deepcopy", "model_copy"])
@pytest.mark.usefixtures("no_tokenizer")
def test_a_deep_copy_reports_to_your_handlers_and_shares_your_rate_limiter(
    make_llm: Callable[..., AI21], emulator: Emulator, how: str
) -> None:
    """Callbacks and the rate limiter are yours, as your HTTP clients are: a deep copy's calls
    are counted by your counter (not a copy of it), within your rate limiter's budget."""
    counter = TokenCountingHandler()
    limiter = TokenBucketRateLimiter(requests_per_minute=600)
    llm = make_llm(callback_manager=CallbackManager([counter]), rate_limiter=limiter)
    copied = copy.deepcopy(llm) if how == "deepcopy" else llm.model_copy(deep=True)
    assert (copied.callback_manager, copied.rate_limiter) == (llm.callback_manager, limiter)
    for instance in (llm, copied):
        script(emulator, "chat")
        run(instance, "chat")
    assert counter.total_llm_token_count == 2 * USAGE["total_tokens"]


# ---------------------------------------------------------------- instrumentation


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
    for event in recorder.events:  # what exporters send on: every event is JSON
        event.model_dump_json()


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


def _span_of(recorder: Recorder) -> str:
    """The span of the call's LLM events (the span its start event names)."""
    (start,) = [
        e for e in recorder.events if isinstance(e, (LLMChatStartEvent, LLMCompletionStartEvent))
    ]
    assert start.span_id is not None
    return start.span_id


def _ended_with(debug: LlamaDebugHandler) -> BaseException:
    """The error the legacy callbacks' one LLM event ended with."""
    ((_, end),) = debug.get_llm_inputs_outputs()
    assert end.payload is not None
    error = end.payload[EventPayload.EXCEPTION]
    assert isinstance(error, BaseException)
    return error


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.usefixtures("no_tokenizer")
def test_a_failed_call_ends_its_span_and_its_callback_event_with_the_error(
    make_llm: Callable[..., AI21],
    emulator: Emulator,
    recorder: Recorder,
    spans: Spans,
    method: str,
) -> None:
    """A call that fails drops its span with the error; a stream, whose span ends when it is
    handed out (LlamaIndex's design), gets the error in an ``ExceptionEvent`` of that span. The
    token counter counts nothing (and runs no tokenizer)."""
    debug = LlamaDebugHandler(print_trace_on_end=False)
    counter = TokenCountingHandler()
    llm = make_llm(max_retries=0, callback_manager=CallbackManager([counter, debug]))
    emulator.inject(Fault(status=500))
    with pytest.raises(Exception) as caught:  # noqa: PT011 (the SDK's AI21ServerError)
        run(llm, method)
    error = caught.value
    span = _span_of(recorder)
    if "stream" in method:
        (event,) = [e for e in recorder.events if isinstance(e, ExceptionEvent)]
        assert (event.span_id, event.exception) == (span, error)
        assert spans.exited[span] == "a stream"
    else:
        assert spans.dropped[span] is error
        (dropped,) = [e for e in recorder.events if isinstance(e, SpanDropEvent)][:1]
        assert dropped.span_id == span
    assert _ended_with(debug) is error
    assert [(e.prompt_token_count, e.completion_token_count) for e in counter.llm_token_counts] == [
        (0, 0)
    ]
    assert spans.open_spans == {}


@pytest.mark.parametrize("method", [m for m in METHODS if "stream" in m])
def test_a_stream_broken_mid_answer_ends_with_the_error_after_its_chunks(
    make_llm: Callable[..., AI21],
    emulator: Emulator,
    recorder: Recorder,
    spans: Spans,
    method: str,
) -> None:
    debug = LlamaDebugHandler(print_trace_on_end=False)
    llm = make_llm(max_retries=0, callback_manager=CallbackManager([debug]))
    emulator.inject(Fault(drop_after=3))
    with pytest.raises(StreamInterruptedError) as caught:
        run(llm, method)
    span = _span_of(recorder)
    chunks = [e for e in recorder.events if "InProgress" in type(e).__name__]
    assert chunks
    assert all(e.span_id == span for e in chunks)
    assert isinstance(recorder.events[-1], ExceptionEvent)
    assert (recorder.events[-1].span_id, recorder.events[-1].exception) == (span, caught.value)
    assert _ended_with(debug) is caught.value
    assert spans.open_spans == {}


def _leave_sync(llm: AI21, how: str) -> None:
    stream = llm.stream_chat([ChatMessage(role="user", content="Tell me a long story.")])
    next(stream)
    if how == "close":
        stream.close()
    elif how == "break":
        for _ in stream:
            break
        del stream  # dropped: CPython closes it at once


async def _leave_async(llm: AI21, how: str) -> None:
    stream = await llm.astream_chat([ChatMessage(role="user", content="Tell me a long story.")])
    if how == "cancel":  # the server is slow: cancelled while waiting for a chunk

        async def drain() -> None:
            _ = [chunk async for chunk in stream]

        # asyncio.TimeoutError: what wait_for raises; the builtin TimeoutError on 3.11+ only
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(drain(), timeout=0.05)
        return
    await anext(stream)
    if how == "close":
        await stream.aclose()
    # "break": left open, closed by the event loop's async-generator finalizer


@pytest.mark.parametrize(
    ("kind", "how"),
    [
        ("sync", "close"),
        ("sync", "break"),
        ("async", "close"),
        ("async", "break"),
        ("async", "cancel"),
    ],
)
def test_a_stream_left_early_or_cancelled_ends_its_events(
    make_llm: Callable[..., AI21],
    emulator: Emulator,
    recorder: Recorder,
    spans: Spans,
    kind: str,
    how: str,
) -> None:
    """An event handler that keeps a stream's span open until its end event (as tracing
    exporters do) sees it end: the stream's ``ExceptionEvent`` (GeneratorExit or
    CancelledError) and the legacy callbacks' end; no span is left open."""
    debug = LlamaDebugHandler(print_trace_on_end=False)
    llm = make_llm(max_retries=0, callback_manager=CallbackManager([debug]))
    if how == "cancel":
        emulator.inject(Fault(stream_delay=0.5))
    if kind == "sync":
        _leave_sync(llm, how)
    else:
        asyncio.run(_leave_async(llm, how))
    span = _span_of(recorder)
    ends = [e for e in recorder.events if isinstance(e, (ExceptionEvent, LLMChatEndEvent))]
    assert [(type(e), e.span_id) for e in ends] == [(ExceptionEvent, span)]
    stopped = ends[0].exception  # type: ignore[union-attr]
    assert isinstance(stopped, (GeneratorExit, asyncio.CancelledError))
    assert _ended_with(debug) is stopped
    assert spans.open_spans == {}


@pytest.mark.parametrize("method", ["achat", "acomplete", "achat_with_tools"])
def test_a_call_cancelled_while_waiting_drops_its_span_and_ends_its_callback_event(
    make_llm: Callable[..., AI21],
    emulator: Emulator,
    recorder: Recorder,
    spans: Spans,
    method: str,
) -> None:
    debug = LlamaDebugHandler(print_trace_on_end=False)
    llm = make_llm(max_retries=0, callback_manager=CallbackManager([debug]))
    emulator.inject(Fault(delay=0.5))  # the answer's headers come late

    async def cancelled() -> None:
        with pytest.raises(asyncio.TimeoutError):  # not the builtin one on 3.10
            await asyncio.wait_for(getattr(llm, method)(*_args(method)), timeout=0.05)

    asyncio.run(cancelled())
    span = _span_of(recorder)
    assert isinstance(spans.dropped[span], asyncio.CancelledError)
    assert isinstance(_ended_with(debug), asyncio.CancelledError)
    assert spans.open_spans == {}


@pytest.mark.parametrize("method", [m for m in METHODS if "chat" in m])
def test_events_carry_the_messages_and_the_answers_reasoning_and_tool_calls(
    vllm: Emulator, recorder: Recorder, method: str
) -> None:
    llm = AI21(model=REASONING_3B, base_url=vllm.base_url, max_retries=0)
    script(vllm, method, reasoning="Three fours are twelve.")
    run(llm, method)
    (start,) = [e for e in recorder.events if isinstance(e, LLMChatStartEvent)]
    assert [m.content for m in start.messages][-1] == "What is 3 times 4?"
    chunks = [e.response for e in recorder.events if isinstance(e, LLMChatInProgressEvent)]
    (end,) = [e for e in recorder.events if isinstance(e, LLMChatEndEvent)]
    assert end.response is not None
    message = end.response.message
    (thinking,) = [b for b in message.blocks if isinstance(b, ThinkingBlock)]
    assert thinking.content == "Three fours are twelve."
    calls = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
    if method.endswith("_tools"):
        assert [(c.tool_name, c.tool_kwargs) for c in calls] == [("multiply", CALL["arguments"])]
    else:
        assert (calls, message.content) == ([], "12.")
    if "stream" in method:
        assert chunks[-1] is end.response  # the end event's answer is the last chunk
        assert "".join(c.delta or "" for c in chunks) == (message.content or "")
        thought = "".join(c.additional_kwargs.get("thinking_delta") or "" for c in chunks)
        assert thought == "Three fours are twelve."
    else:
        assert chunks == []
    for event in recorder.events:
        event.model_dump_json()


class City(BaseModel):
    name: str
    country: str


def _predict(llm: AI21, method: str) -> Any:
    """``method``'s result: for a stream, its last object."""
    call = getattr(llm, method)(City, PromptTemplate("Where is Paris?"))

    async def last_of(stream: Any) -> Any:
        return [item async for item in await stream][-1]

    if method.startswith("astream"):
        return asyncio.run(last_of(call))
    if method.startswith("a"):
        return asyncio.run(call)
    return list(call)[-1] if method.startswith("stream") else call


STRUCTURED = [
    "structured_predict",
    "astructured_predict",
    "stream_structured_predict",
    "astream_structured_predict",
]


@pytest.mark.parametrize("server", ["ai21", "vllm"])
@pytest.mark.parametrize("method", STRUCTURED)
def test_a_structured_prediction_is_one_span_with_its_start_and_end_events(
    make_llm: Callable[..., AI21],
    make_local: Callable[..., AI21],
    emulator: Emulator,
    vllm: Emulator,
    recorder: Recorder,
    spans: Spans,
    server: str,
    method: str,
) -> None:
    """AI21's API answers through a required tool, a self-hosted server with guided decoding
    (``json_schema``); either way the call is one span of the method's name (this package's
    override, not LlamaIndex's nested in it), with the structured-prediction events."""
    city = '{"name": "Paris", "country": "France"}'
    if server == "ai21":
        llm = make_llm(max_retries=0)
        emulator.reply_next(tool_calls=[{"name": "City", "arguments": city}])
    else:
        llm = make_local()
        vllm.reply_next(city)
    result = _predict(llm, method)
    assert result == City(name="Paris", country="France")
    (span,) = [s for s in spans.entered if s.startswith(f"AI21.{method}-")]
    (start,) = [e for e in recorder.events if isinstance(e, LLMStructuredPredictStartEvent)]
    (end,) = [e for e in recorder.events if isinstance(e, LLMStructuredPredictEndEvent)]
    assert end.output == result
    if "stream" not in method:  # (a stream's events come as it is read, after its span)
        assert (start.span_id, end.span_id) == (span, span)
        assert spans.exited[span] == result
    assert spans.open_spans == {}


@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince211")
def test_a_function_agent_run_pairs_every_llm_event_and_counts_the_servers_tokens(
    vllm: Emulator, recorder: Recorder, spans: Spans
) -> None:
    """A streamed FunctionAgent run on a reasoning model: each turn's start and end events share
    its span and carry its reasoning and tool call; the counts are the server's; no span is left
    open. (The agent's memory sizes the conversation with LlamaIndex's tokenizer: only the
    counter's own refuses here.)"""
    counter = TokenCountingHandler(tokenizer=_refuse)
    llm = AI21(
        model=REASONING_3B,
        base_url=vllm.base_url,
        max_retries=0,
        callback_manager=CallbackManager([counter]),
    )
    vllm.reply_next(
        tool_calls=[CALL],
        reasoning="Multiply.",
        usage={"prompt_tokens": 11, "completion_tokens": 7},
    )
    vllm.reply_next("12", reasoning="Done.", usage={"prompt_tokens": 13, "completion_tokens": 2})
    agent = FunctionAgent(tools=TOOLS, llm=llm)

    async def run_agent() -> str:
        return str(await agent.run("What is 3 times 4?"))

    assert asyncio.run(run_agent()) == "12"
    starts = [e for e in recorder.events if isinstance(e, LLMChatStartEvent)]
    ends = [e for e in recorder.events if isinstance(e, LLMChatEndEvent)]
    assert [e.span_id for e in starts] == [e.span_id for e in ends]
    assert len(set(e.span_id for e in starts)) == 2
    turns = [e.response.message for e in ends if e.response is not None]
    assert [
        ([b.content for b in m.blocks if isinstance(b, ThinkingBlock)], m.content) for m in turns
    ] == [(["Multiply."], ""), (["Done."], "12")]
    assert [b.tool_name for b in turns[0].blocks if isinstance(b, ToolCallBlock)] == ["multiply"]
    counts = [(e.prompt_token_count, e.completion_token_count) for e in counter.llm_token_counts]
    assert counts == [(11, 7), (13, 2)]
    assert spans.open_spans == {}
    for event in recorder.events:
        event.model_dump_json()


GATEWAY = "gw-observed-2c8f4a"  # the header of the user's own clients


def test_no_event_span_or_callback_payload_holds_a_secret(
    vllm: Emulator, recorder: Recorder, spans: Spans
) -> None:
    """The key, a ``base_url`` password and a credential header of the user's own client, in
    what handlers are given and exporters write: every event's ``model_dump_json()`` and
    ``dict()``, every span's arguments, instance, result or error, every callback payload;
    over answers, failures and a stream broken mid-answer."""
    host = vllm.base_url.split("//", 1)[1]
    debug = LlamaDebugHandler(print_trace_on_end=False)
    headers = {"X-Gateway-Key": GATEWAY}
    with httpx.Client(headers=headers) as client, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pydantic 1's dict()
        llm = AI21(
            model=REASONING_3B,
            api_key=KEY,
            base_url=f"http://user:{PASSWORD}@{host}",
            max_retries=0,
            http_client=client,
            callback_manager=CallbackManager([debug]),
        )
        for method in ("chat", "stream_chat", "achat", "astream_complete", "chat_with_tools"):
            script(vllm, method, reasoning="Hm.")
            run(llm, method)
        vllm.reply_next('{"name": "Paris", "country": "France"}')
        llm.structured_predict(City, PromptTemplate("Where is Paris?"))
        for fault, method in (
            (Fault(status=500), "chat"),
            (Fault(status=500), "astream_chat"),
            (Fault(drop_after=3), "stream_chat"),
        ):
            vllm.inject(fault)
            with pytest.raises((AI21ServerError, StreamInterruptedError)):
                run(llm, method)
        assert any(r.headers.get("X-Gateway-Key") == GATEWAY for r in vllm.requests)
        texts = [f"{e.model_dump_json(fallback=repr)} {e.dict()!r}" for e in recorder.events]
    texts += [repr(e.payload) for e in debug.get_events()]
    assert len(texts) > 40
    secrets = (KEY, PASSWORD, GATEWAY, base64.b64encode(f"user:{PASSWORD}".encode()).decode())
    for text in [*texts, *spans.seen]:
        assert not any(secret in text for secret in secrets), text


# ------------------------------------------------------------------------ logging

KEY = "sk-observed-5e1d9c"
PASSWORD = "pw-observed-7a3b"
SAID = "Zanzibar-question"  # in the question
DOCUMENT = "Quagga-document"  # in a document


def test_logs_at_debug_hold_no_secret_and_above_it_not_a_word_of_the_conversation(
    vllm: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """What ``logging.basicConfig(level=logging.DEBUG)`` shows of a session (discovery, chat
    with documents, a retried stream, async, tools, reasoning): httpx's and httpcore's lines and
    this package's, on ``llama_index.llms.ai21``; no key or password at any level, and at INFO
    and above neither the question, its documents nor the answer."""
    caplog.set_level(logging.DEBUG)  # the root logger, as basicConfig sets it
    host = vllm.base_url.split("//", 1)[1]
    llm = AI21(
        model=REASONING_3B, api_key=KEY, base_url=f"http://user:{PASSWORD}@{host}", max_retries=1
    )
    question = [ChatMessage(role="user", content=f"{SAID}: what is 3 times 4?")]
    vllm.reply_next("The answer is Ocelot-answer.", reasoning="Ocelot-reasoning.")
    llm.chat(question, documents=[f"{DOCUMENT}: three fours are twelve."])
    vllm.inject(Fault(status=503, retry_after="0"))
    list(llm.stream_chat(question))
    asyncio.run(llm.achat(question))
    script(vllm, "chat_with_tools", reasoning="Ocelot-reasoning.")
    llm.predict_and_call(TOOLS, f"{SAID}: 3 times 4")
    records = caplog.records
    names = {r.name for r in records}
    assert {"httpx", "httpcore.http11", "llama_index.llms.ai21"} <= names
    assert not any(r.levelno >= logging.WARNING for r in records)  # nothing to warn about
    retry = [r for r in records if r.name == "llama_index.llms.ai21"]
    assert [(r.levelname, r.getMessage()) for r in retry] == [
        ("INFO", "AI21 request failed (HTTP 503); retry 1 of 1 in 0.00 s")
    ]
    secrets = (KEY, PASSWORD, base64.b64encode(f"user:{PASSWORD}".encode()).decode())
    for record in records:
        text = f"{record.getMessage()} {record.args!r}"
        assert not any(secret in text for secret in secrets), record
        if record.levelno >= logging.INFO:
            said = (SAID, DOCUMENT, "Ocelot", "twelve")
            assert not any(word in text for word in said), record
