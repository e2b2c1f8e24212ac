"""LlamaIndex engines over the emulator: query engine, chat engine with history, router."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.response.schema import RESPONSE_TYPE
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.query_engine import RouterQueryEngine
from llama_index.core.tools import QueryEngineTool

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21
from tests.rag_corpus import (  # noqa: F401 - the fixture is autouse
    COMPANY,
    CONTEXT_WINDOW,
    JAMBA,
    _close_the_loop_llama_index_leaves_open,
)

ANSWER = "256K tokens, says the context."


def make_index(texts: list[str]) -> VectorStoreIndex:
    # MockEmbedding gives every text the same vector, so engines retrieve every chunk
    # (similarity_top_k below); the answers are scripted, so these tests check what the
    # adapter sends and returns, not how the emulator ranks sentences (emulator/tests does).
    return VectorStoreIndex.from_documents(
        [Document(text=text) for text in texts], embed_model=MockEmbedding(embed_dim=8)
    )


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
    tools = [
        QueryEngineTool.from_defaults(
            make_index(JAMBA).as_query_engine(llm=llm, similarity_top_k=2),
            name="jamba_models",
            description="Facts about the Jamba language models",
        ),
        QueryEngineTool.from_defaults(
            make_index(COMPANY).as_query_engine(llm=llm, similarity_top_k=2),
            name="company",
            description="Facts about the company AI21 Labs: founders, history, offices",
        ),
    ]
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
