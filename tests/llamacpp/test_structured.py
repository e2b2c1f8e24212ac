"""Structured output on llama-server: ``json_schema`` becomes a grammar there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel

from llama_index.llms.ai21 import AI21
from tests.llamacpp.conftest import Recorder, Servers, require_servers

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
    make_llm: Callable[..., AI21], record: Callable[..., Recorder], is_async: bool
) -> None:
    recorder = record()
    llm = make_llm(base_url=recorder.url)
    if is_async:
        pen = await llm.astructured_predict(Pen, PROMPT, thing="pen")
    else:
        pen = llm.structured_predict(Pen, PROMPT, thing="pen")
    assert pen == Pen(name="pen", count=3)
    (body,) = recorder.bodies()
    response_format = body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["schema"]["properties"].keys() == {"name", "count"}


def test_the_schema_constrains_the_answer(make_llm: Callable[..., AI21]) -> None:
    # Greedy: where the grammar rules out the model's own token, the best allowed one wins.
    four = make_llm(temperature=0.0).structured_predict(FourPens, PROMPT, thing="pen")
    assert four == FourPens(name="pen", count=4)


def test_as_structured_llm_chats_in_objects(
    make_llm: Callable[..., AI21], servers: Servers
) -> None:
    structured = make_llm().as_structured_llm(Pen)
    response = structured.chat([ChatMessage(role="user", content="#json Name a pen.")])
    assert response.raw == Pen(name="pen", count=3)
    assert Pen.model_validate_json(response.message.content or "") == Pen(name="pen", count=3)


def test_structured_predict_names_max_tokens_when_reasoning_used_them_all(
    make_llm: Callable[..., AI21],
) -> None:
    # "#long" alone: with a second marker in the prompt, which one wins could change with
    # llama-server's prompt cache (seen once in ten runs).
    prompt = PromptTemplate("#long Name a {thing}.")
    with pytest.raises(ValueError, match="max_tokens"):
        make_llm(max_tokens=8).structured_predict(Pen, prompt, thing="pen")
