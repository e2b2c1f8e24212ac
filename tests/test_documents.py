"""Grounded generation: ``documents=`` on every method, mapped to the API's documents field."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core import Document
from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.schema import NodeWithScore, TextNode
from llama_index.core.tools import FunctionTool

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21
from tests.calls import METHOD_IDS

QUESTION = "How long is the context window of Jamba?"
DOCUMENTS: list[Any] = [
    "Jurassic-2 models were retired in November 2024.",
    {"content": "AI21 Labs was founded in 2017.", "id": 7, "metadata": {"year": 2017}},
    Document(
        text="Jamba handles a context window of 256K tokens.",
        id_="doc-jamba",
        metadata={"source": "model card", "pages": [1, 2]},
    ),
    TextNode(text="LlamaIndex builds query engines over your data.", id_="node-1"),
    NodeWithScore(node=TextNode(text="Mamba layers are state-space layers.", id_="node-2")),
]
SENT = [
    {"content": "Jurassic-2 models were retired in November 2024."},
    {"content": "AI21 Labs was founded in 2017.", "id": "7", "metadata": {"year": "2017"}},
    {
        "content": "Jamba handles a context window of 256K tokens.",
        "id": "doc-jamba",
        "metadata": {"source": "model card", "pages": "[1, 2]"},
    },
    {"content": "LlamaIndex builds query engines over your data.", "id": "node-1"},
    {"content": "Mamba layers are state-space layers.", "id": "node-2"},
]


def answer(llm: AI21, method: str, **kwargs: Any) -> str:
    """Call ``method`` with the question; the final text."""
    arg: Any = QUESTION
    if "chat" in method:
        arg = [ChatMessage(role="user", content=QUESTION)]

    def text(response: Any) -> str:
        return response.message.content if isinstance(response, ChatResponse) else response.text

    async def run_async() -> str:
        result = await getattr(llm, method)(arg, **kwargs)
        if "stream" in method:
            return text([chunk async for chunk in result][-1])
        return text(result)

    if method.startswith("a"):
        return asyncio.run(run_async())
    result = getattr(llm, method)(arg, **kwargs)
    return text(list(result)[-1] if "stream" in method else result)


@pytest.mark.parametrize("method", METHOD_IDS)
def test_documents_are_sent_and_the_answer_returned(
    llm: AI21, emulator: Emulator, method: str
) -> None:
    # Scripted: how the emulator grounds answers on documents is tested in emulator/tests.
    emulator.reply_next("256K tokens, says the model card.")
    text = answer(llm, method, documents=DOCUMENTS)
    assert emulator.last_request.json["documents"] == SENT
    assert emulator.last_request.json["messages"][-1] == {"role": "user", "content": QUESTION}
    assert text == "256K tokens, says the model card."


def test_documents_reach_tool_calls_too(llm: AI21, emulator: Emulator) -> None:
    def search(query: str) -> str:
        """Search the web."""
        return query

    llm.chat_with_tools([FunctionTool.from_defaults(search)], QUESTION, documents=DOCUMENTS[:1])
    assert emulator.last_request.json["documents"] == SENT[:1]


def test_no_documents_means_no_documents_field(llm: AI21, emulator: Emulator) -> None:
    llm.complete(QUESTION)
    assert "documents" not in emulator.last_request.json


@pytest.mark.parametrize(
    ("documents", "message"),
    [
        ("just a string", "documents must be a list"),
        ({"content": "a dict"}, "documents must be a list"),
        ([42], r"documents\[0\] is a int"),
        ([{"text": "wrong key"}], r"documents\[0\] needs a string 'content'"),
        ([{"content": "x", "title": "t"}], r"unknown keys \['title'\]"),
        ([{"content": "x", "metadata": ["a"]}], r"documents\[0\]\.metadata must be a mapping"),
    ],
)
def test_bad_documents_fail_before_any_request(
    llm: AI21, emulator: Emulator, documents: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        llm.complete(QUESTION, documents=documents)
    assert emulator.requests == []


def test_jurassic_2_refuses_documents(make_llm: Callable[..., AI21], emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="supports neither documents nor tools"):
        make_llm(model="j2-ultra").complete(QUESTION, documents=["x"])
    assert emulator.requests == []
