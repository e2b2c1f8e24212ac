"""LlamaIndex engines over the emulator: query engine, chat engine with history, router."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.async_utils import asyncio_run
from llama_index.core.base.response.schema import RESPONSE_TYPE
from llama_index.core.memory import ChatMemoryBuffer, Memory
from llama_index.core.query_engine import RouterQueryEngine

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21
from tests.rag_corpus import (  # noqa: F401 - the fixture is autouse
    COMPANY,
    CONTEXT_WINDOW,
    JAMBA,
    _close_the_loop_llama_index_leaves_open,
    engine_tools,
    make_index,
)

ANSWER = "256K tokens, says the context."


def query(engine: Any, mode: str, question: str) -> tuple[str, RESPONSE_TYPE]:
    """Run a query engine in ``mode`` (query, aquery, stream, astream); the text and response."""

    async def run_async() -> tuple[str, RESPONSE_TYPE]:
        response = await engine.aquery(question)
        if mode == "astream":
            return "".join([delta async for delta in response.async_response_gen()]), response
        return str(response), response

    if mode.startswith("a"):
        return asyncio.run(run_async())
    response = engine.query(question)
    if mode == "stream":
        return "".join(response.response_gen), response
    return str(response), response


@pytest.mark.parametrize("mode", ["query", "aquery", "stream", "astream"])
def test_query_engine_answers_from_the_retrieved_context(
    llm: AI21, emulator: Emulator, mode: str
) -> None:
    engine = make_index(JAMBA + COMPANY).as_query_engine(
        llm=llm, similarity_top_k=4, streaming=mode.endswith("stream")
    )
    emulator.reply_next(ANSWER)
    text, response = query(engine, mode, CONTEXT_WINDOW)
    assert text == ANSWER
    assert len(response.source_nodes) == 4
    (request,) = emulator.requests
    assert request.json["stream"] is mode.endswith("stream")
    prompt = request.json["messages"][-1]["content"]
    assert all(paragraph in prompt for paragraph in JAMBA + COMPANY)
    assert f"Query: {CONTEXT_WINDOW}" in prompt


async def _achat(engine: Any, message: str, stream: bool) -> str:
    if stream:
        response = await engine.astream_chat(message)
        return "".join([delta async for delta in response.async_response_gen()])
    return str(await engine.achat(message))


@pytest.mark.parametrize("mode", ["chat", "achat", "stream_chat", "astream_chat"])
def test_chat_engine_keeps_the_history(llm: AI21, emulator: Emulator, mode: str) -> None:
    # An in-process memory: the default Memory keeps history in an aiosqlite database whose
    # connections llama-index-core never closes (a ResourceWarning, an error under pytest here).
    engine = make_index(JAMBA).as_chat_engine(
        chat_mode="context", llm=llm, similarity_top_k=2, memory=ChatMemoryBuffer.from_defaults()
    )
    questions = [CONTEXT_WINDOW, "Which layers does it combine?"]
    scripted = [ANSWER, "Transformer and Mamba layers."]
    for answer in scripted:
        emulator.reply_next(answer)
    if mode.startswith("a"):

        async def converse() -> list[str]:
            return [await _achat(engine, q, stream="stream" in mode) for q in questions]

        answers = asyncio.run(converse())
    elif mode == "stream_chat":
        answers = ["".join(engine.stream_chat(q).response_gen) for q in questions]
    else:
        answers = [str(engine.chat(q)) for q in questions]

    assert answers == scripted
    system, *conversation = emulator.last_request.json["messages"]
    assert system["role"] == "system"
    assert all(paragraph in system["content"] for paragraph in JAMBA)
    assert conversation == [
        {"role": "user", "content": questions[0]},
        {"role": "assistant", "content": answers[0]},
        {"role": "user", "content": questions[1]},
    ]


@pytest.mark.parametrize("is_async", [False, True], ids=["query", "aquery"])
@pytest.mark.parametrize(
    ("question", "choice"), [(CONTEXT_WINDOW, 0), ("Who founded AI21 Labs?", 1)]
)
def test_router_selects_an_engine_through_structured_output(
    llm: AI21, emulator: Emulator, is_async: bool, question: str, choice: int
) -> None:
    tools = engine_tools(llm)
    router = RouterQueryEngine.from_defaults(tools, llm=llm)
    # The selector's structured output (a tool call, 1-based index), then the chosen engine's.
    reason = "The question is about this engine's subject."
    arguments = {"index": choice + 1, "reason": reason}
    emulator.reply_next(tool_calls=[{"name": "SingleSelection", "arguments": arguments}])
    emulator.reply_next(f"Answered by engine {choice}.")
    response = asyncio.run(router.aquery(question)) if is_async else router.query(question)

    assert str(response) == f"Answered by engine {choice}."
    assert response.metadata["selector_result"].ind == choice
    assert response.metadata["selector_result"].reason == reason
    selection, answer = emulator.requests
    assert [t["function"]["name"] for t in selection.json["tools"]] == ["SingleSelection"]
    assert f"question: '{question}'" in selection.json["messages"][-1]["content"]
    chosen = (JAMBA, COMPANY)[choice]
    prompt = answer.json["messages"][-1]["content"]
    assert all(paragraph in prompt for paragraph in chosen)
    assert not any(paragraph in prompt for paragraph in (JAMBA, COMPANY)[1 - choice])


@pytest.fixture(scope="module")
def laptop_server() -> Iterator[Emulator]:
    """A vLLM server with a laptop-sized context (`vllm serve --max-model-len 4096`; the
    default `-c` of llama-server and LM Studio's default context are 4096 too)."""
    with Emulator(flavour="vllm", max_model_len=4096) as server:
        yield server


CITIES = [f"City number {n} has a population of {n * 1000} people. " * 4 for n in range(12)]
TURNS = [
    f"What do you know about city number {n}: its population, its rivers, its history? " * 6
    for n in range(24)
]


@pytest.mark.parametrize("memory", ["llamaindex-default", "documented-buffer"])
@pytest.mark.parametrize("chat_mode", ["context", "condense_plus_context"])
def test_a_chat_engine_on_a_small_context_holds_a_long_conversation(
    laptop_server: Emulator, chat_mode: str, memory: str
) -> None:
    # The context engines pack the history, 500 tokens of padding and num_output into the
    # window; LlamaIndex's default memory keeps up to all but 256 tokens of it (70 % for the
    # conversation). With num_output a quarter of the window, the engine failed once the memory
    # filled ("Chunk size -N is not positive"); an eighth leaves room. A
    # ChatMemoryBuffer's default, three quarters, fits with no num_output: docs/rag.md gives
    # it half the window.
    laptop_server.reset()
    llm = AI21(base_url=laptop_server.base_url, model="ai21labs/AI21-Jamba2-3B", max_retries=0)
    window = llm.metadata.context_window  # discovered: the server's max_model_len
    assert window == 4096
    if memory == "llamaindex-default":  # what as_chat_engine builds when given no memory
        history: Any = Memory.from_defaults(token_limit=window - 256)
    else:
        history = ChatMemoryBuffer.from_defaults(llm=llm, token_limit=window // 2)
    engine = make_index(CITIES).as_chat_engine(
        chat_mode=chat_mode, llm=llm, similarity_top_k=3, memory=history
    )
    try:
        answers = [str(engine.chat(question)) for question in TURNS]
    finally:
        if memory == "llamaindex-default":  # its aiosqlite connection, never closed by it
            asyncio_run(history.sql_store._async_engine.dispose())
    assert all(answer.strip() for answer in answers)
    chats = [r for r in laptop_server.requests if r.path.endswith("/chat/completions")]
    assert len(chats) >= len(TURNS)  # each answered: a prompt over the window is a 400
