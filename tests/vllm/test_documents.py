"""``documents=`` on vLLM: every accepted shape reaches the chat template as text and title.

The template renders ``<|documents|>`` then, per document, ``# <title>\\n`` (when there is a
title) and ``<text>\\n``. The server's own tokenizer (``POST /tokenize``) counts the tokens that
rendering adds, so the request's ``prompt_tokens`` says exactly what reached the prompt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    CitableBlock,
    DocumentBlock,
    TextBlock,
)
from llama_index.core.schema import Document, NodeWithScore, TextNode

from llama_index.llms.ai21 import AI21
from tests.calls import METHOD_IDS, arg_for, call
from tests.vllm.conftest import MODEL, Servers, require_servers

require_servers()

TEXT = "alpha beta"
UNTITLED = f"<|documents|>{TEXT}\n"
TITLED = f"<|documents|># Greek\n{TEXT}\n"


def count_tokens(servers: Servers, text: str) -> int:
    root = servers.url.removesuffix("/v1")
    response = httpx.post(
        f"{root}/tokenize",
        json={"model": MODEL, "prompt": text, "add_special_tokens": False},
        headers={"Authorization": f"Bearer {servers.key}"},
    )
    response.raise_for_status()
    return int(response.json()["count"])


def prompt_tokens(llm: AI21, **kwargs: Any) -> int:
    response = llm.chat([ChatMessage(role="user", content="Hi")], **kwargs)
    return int(response.additional_kwargs["prompt_tokens"])


@pytest.mark.parametrize(
    ("documents", "rendered"),
    [
        ([TEXT], UNTITLED),
        ([{"text": TEXT}], UNTITLED),
        ([{"text": TEXT, "title": "Greek"}], TITLED),
        ([{"text": TEXT, "metadata": {"title": "Greek", "year": 2024}}], TITLED),
        ([Document(text=TEXT)], UNTITLED),
        ([Document(text=TEXT, metadata={"title": "Greek", "year": 2024, "tags": ["a"]})], TITLED),
        ([TextNode(text=TEXT, metadata={"title": "Greek"})], TITLED),
        ([NodeWithScore(node=TextNode(text=TEXT), score=0.5)], UNTITLED),
        (["alpha", {"text": "beta", "title": "B"}], "<|documents|>alpha\n# B\nbeta\n"),
    ],
    ids=[
        "string",
        "dict",
        "dict-title",
        "dict-nested-metadata",
        "document",
        "document-metadata",
        "node",
        "node-with-score",
        "two",
    ],
)
def test_documents_reach_the_prompt_as_text_and_title(
    make_llm: Callable[..., AI21], servers: Servers, documents: list[Any], rendered: str
) -> None:
    llm = make_llm()
    bare = prompt_tokens(llm)
    assert prompt_tokens(llm, documents=documents) == bare + count_tokens(servers, rendered)


@pytest.mark.parametrize("method", METHOD_IDS)
def test_every_method_sends_documents(
    make_llm: Callable[..., AI21], servers: Servers, method: str
) -> None:
    llm = make_llm()
    bare = call(llm, method, arg_for(method, "Hi")).responses[-1].additional_kwargs
    grounded = call(llm, method, arg_for(method, "Hi"), documents=[TEXT])
    added = grounded.responses[-1].additional_kwargs["prompt_tokens"] - bare["prompt_tokens"]
    assert added == count_tokens(servers, UNTITLED)
    assert grounded.text == servers.answer


def test_document_blocks_in_a_message_go_as_the_documents_field(
    make_llm: Callable[..., AI21], servers: Servers
) -> None:
    # Jamba 1.x's template reads the documents field, so message blocks go there too.
    llm = make_llm()
    bare = prompt_tokens(llm)
    card = CitableBlock(content=[TextBlock(text=TEXT)], title="Greek", source="x")
    note = DocumentBlock(data=b"gamma", document_mimetype="text/plain")
    message = ChatMessage(role="user", blocks=[card, note, TextBlock(text="Hi")])
    response = llm.chat([message])
    rendered = "<|documents|># Greek\nalpha beta\ngamma\n"
    assert response.additional_kwargs["prompt_tokens"] == bare + count_tokens(servers, rendered)
    assert response.message.content == servers.answer
