"""Structured output on vLLM: the adapter asks for guided decoding (``json_schema``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel

from llama_index.llms.ai21 import AI21
from tests.vllm.conftest import require_servers

require_servers()

PROMPT = PromptTemplate("#json Name a {thing} and how many.")  # "#json": the model answers JSON


class Pen(BaseModel):
    name: str
    count: int


class FourPens(BaseModel):
    name: str
    count: Literal[4]  # the model itself says 3: only the schema can make this 4


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_structured_predict_returns_the_validated_object(
    make_llm: Callable[..., AI21], is_async: bool
) -> None:
    llm = make_llm(max_tokens=32)
    if is_async:
        pen = await llm.astructured_predict(Pen, PROMPT, thing="pen")
    else:
        pen = llm.structured_predict(Pen, PROMPT, thing="pen")
    assert pen == Pen(name="pen", count=3)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_the_schema_reaches_the_server_and_constrains_the_answer(
    make_llm: Callable[..., AI21], is_async: bool
) -> None:
    # Greedy: where the schema rules out the model's own token, the first allowed one wins.
    llm = make_llm(max_tokens=32, temperature=0.0)
    if is_async:
        four = await llm.astructured_predict(FourPens, PROMPT, thing="pen")
    else:
        four = llm.structured_predict(FourPens, PROMPT, thing="pen")
    assert four == FourPens(name="pen", count=4)


def test_as_structured_llm_chats_in_objects(make_llm: Callable[..., AI21]) -> None:
    structured = make_llm(max_tokens=32).as_structured_llm(Pen)
    response = structured.chat([ChatMessage(role="user", content="#json Name a pen.")])
    assert response.raw == Pen(name="pen", count=3)
    assert Pen.model_validate_json(response.message.content or "") == Pen(name="pen", count=3)
