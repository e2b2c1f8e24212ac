"""Grounding that reaches the model: ``documents`` go as the request field only where the
server hands it to the chat template and the model's template reads it (Jamba 1.x on vLLM,
AI21's API); otherwise they are written into the prompt, so prompt tokens grow. Document
blocks in messages become documents the same way. Over real HTTP against the emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    CitableBlock,
    DocumentBlock,
    ImageBlock,
    TextBlock,
)
from llama_index.core.schema import ImageDocument, ImageNode, NodeWithScore

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21._deployments.openai_compatible import OpenAICompatible
from llama_index.llms.ai21._dialect import JambaChat
from tests.calls import METHOD_IDS, arg_for, call

REASONING_3B = "ai21labs/AI21-Jamba-Reasoning-3B"
JAMBA2 = "ai21labs/AI21-Jamba2-Mini"
JAMBA_1 = "ai21labs/AI21-Jamba-Mini-1.7"
QUESTION = "What is Jamba?"
PNG = "iVBORw0KGgo="  # base64 of a PNG's first bytes: an image, as far as a node knows
DOCS = ["Jamba is a hybrid SSM-Transformer model.", {"text": "It has 256K context.", "title": "T"}]
IN_PROMPT = (
    "Context documents:\n\n"
    "Document 1\nJamba is a hybrid SSM-Transformer model.\n\n"
    "Document 2 (title: T)\nIt has 256K context.\n\n"
    "What is Jamba?"
)
GROUNDED = "Jamba is a hybrid SSM-Transformer model."


@pytest.fixture
def vllm(ai21_emulator_vllm: Emulator) -> Emulator:
    return ai21_emulator_vllm


@pytest.fixture
def make(vllm: Emulator) -> Callable[..., AI21]:
    def build(model: str, **kwargs: Any) -> AI21:
        return AI21(model=model, base_url=vllm.base_url, max_retries=0, **kwargs)

    return build


@pytest.mark.parametrize("model", [REASONING_3B, JAMBA2])
@pytest.mark.parametrize("method", ["chat", "astream_chat", "complete", "stream_complete"])
def test_documents_go_into_the_prompt_where_the_template_has_no_documents(
    make: Callable[..., AI21], vllm: Emulator, model: str, method: str
) -> None:
    # The emulator, like vLLM, drops a documents field for these models (their templates have
    # no documents variable): only documents in the prompt can ground the answer.
    outcome = call(make(model), method, arg_for(method, QUESTION), documents=DOCS)
    assert outcome.text == GROUNDED
    body = vllm.last_request.json
    assert "documents" not in body
    assert body["messages"][-1] == {"role": "user", "content": IN_PROMPT}


def test_prompt_tokens_grow_with_documents_in_the_prompt(
    make: Callable[..., AI21], vllm: Emulator
) -> None:
    llm = make(REASONING_3B)
    without = llm.complete(QUESTION).additional_kwargs["prompt_tokens"]
    with_documents = llm.complete(QUESTION, documents=DOCS).additional_kwargs["prompt_tokens"]
    assert with_documents > without + 10


def test_a_jamba_1_template_reads_the_field(make: Callable[..., AI21], vllm: Emulator) -> None:
    assert make(JAMBA_1).complete(QUESTION, documents=DOCS).text == GROUNDED
    body = vllm.last_request.json
    assert body["documents"] == [
        {"text": "Jamba is a hybrid SSM-Transformer model."},
        {"text": "It has 256K context.", "title": "T"},
    ]
    assert body["messages"] == [{"role": "user", "content": QUESTION}]


def test_the_hosted_api_gets_the_field(llm: AI21, emulator: Emulator) -> None:
    llm.complete(QUESTION, documents=["Jamba is a model."])
    assert emulator.last_request.json["documents"] == [{"content": "Jamba is a model."}]


@pytest.mark.parametrize("model", [JAMBA_1, "local-model"])
def test_a_server_that_ignores_the_field_gets_the_documents_in_the_prompt(model: str) -> None:
    class LlamaServer(OpenAICompatible):
        kind = "test-llamacpp"
        reads_documents = False

    body = (
        JambaChat(LlamaServer())
        .chat(
            model,
            [ChatMessage(role="user", content=QUESTION)],
            {"documents": DOCS},
            system_prompt=None,
            stream=False,
        )
        .body
    )
    assert "documents" not in body
    assert body["messages"] == [{"role": "user", "content": IN_PROMPT}]


def test_documents_go_into_the_last_user_message_and_nothing_is_mutated(
    make: Callable[..., AI21], vllm: Emulator
) -> None:
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="Hi"),
        ChatMessage(role="assistant", content="Hello."),
        ChatMessage(role="user", content=QUESTION),
    ]
    before = [m.model_copy(deep=True) for m in messages]
    documents = list(DOCS)
    make(REASONING_3B).chat(messages, documents=documents)
    sent = vllm.last_request.json["messages"]
    assert sent[:3] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
    ]
    assert sent[3] == {"role": "user", "content": IN_PROMPT}
    assert messages == before
    assert documents == DOCS


CITABLE = CitableBlock(
    content=[TextBlock(text="Jamba is a hybrid SSM-Transformer model.")],
    title="Jamba card",
    source="https://huggingface.co/ai21labs",
)
TEXT_DOCUMENT = DocumentBlock(data=b"It has 256K context.", document_mimetype="text/plain")


def test_document_blocks_in_a_message_become_documents_in_the_prompt(
    make: Callable[..., AI21], vllm: Emulator
) -> None:
    message = ChatMessage(role="user", blocks=[CITABLE, TEXT_DOCUMENT, TextBlock(text=QUESTION)])
    make(REASONING_3B).chat([message], documents=["First."])
    assert vllm.last_request.json["messages"] == [
        {
            "role": "user",
            "content": "Context documents:\n\n"
            "Document 1\nFirst.\n\n"
            "Document 2 (title: Jamba card; source: https://huggingface.co/ai21labs)\n"
            "Jamba is a hybrid SSM-Transformer model.\n\n"
            "Document 3\nIt has 256K context.\n\n"
            "What is Jamba?",
        }
    ]


def test_document_blocks_go_as_the_field_where_it_is_read(
    make: Callable[..., AI21], vllm: Emulator
) -> None:
    message = ChatMessage(role="user", blocks=[CITABLE, TextBlock(text=QUESTION)])
    make(JAMBA_1).chat([message])
    body = vllm.last_request.json
    assert body["documents"] == [
        {
            "text": "Jamba is a hybrid SSM-Transformer model.",
            "title": "Jamba card",
            "source": "https://huggingface.co/ai21labs",
        }
    ]
    assert body["messages"] == [{"role": "user", "content": QUESTION}]


@pytest.mark.parametrize(
    ("kwargs", "blocks", "match"),
    [
        ({"documents": [b"bytes"]}, [], "documents\\[0\\] is a bytes"),
        ({"documents": [{"text": 5}]}, [], "documents\\[0\\] needs a string 'text'"),
        ({"documents": "one string"}, [], "documents must be a list"),
        (
            {"documents": [ImageDocument(image=PNG)]},
            [],
            r"documents\[0\] is a ImageDocument with image, image_resource; documents must be text",
        ),
        (
            {"documents": ["text", NodeWithScore(node=ImageNode(text="a caption", image=PNG))]},
            [],
            "documents\\[1\\] is a ImageNode with image; documents must be text",
        ),
        (
            {},
            [DocumentBlock(data=b"%PDF-1.4 ...", document_mimetype="application/pdf")],
            "DocumentBlock of type 'application/pdf'; documents must be text",
        ),
        (
            {},
            [
                CitableBlock(
                    content=[ImageBlock(url="http://example.invalid/x.png")], title="t", source="s"
                )
            ],
            "CitableBlock with a 'image' part; documents must be text",
        ),
    ],
)
def test_documents_that_are_not_text_fail_before_any_request(
    make: Callable[..., AI21], vllm: Emulator, kwargs: dict[str, Any], blocks: list[Any], match: str
) -> None:
    message = ChatMessage(role="user", blocks=[*blocks, TextBlock(text=QUESTION)])
    for model in (REASONING_3B, JAMBA_1):
        with pytest.raises(ValueError, match=match):
            make(model).chat([message], **kwargs)
    assert vllm.requests == []


@pytest.mark.parametrize("model", [REASONING_3B, JAMBA_1])
def test_an_empty_list_of_documents_sends_none(
    make: Callable[..., AI21], vllm: Emulator, model: str
) -> None:
    make(model).chat([ChatMessage(role="user", content=QUESTION)], documents=[])
    body = vllm.last_request.json
    assert "documents" not in body
    assert body["messages"] == [{"role": "user", "content": QUESTION}]


@pytest.mark.parametrize("method", METHOD_IDS)
def test_no_documents_no_change(make: Callable[..., AI21], vllm: Emulator, method: str) -> None:
    call(make(REASONING_3B), method, arg_for(method, QUESTION))
    body = vllm.last_request.json
    assert "documents" not in body
    assert body["messages"][-1] == {"role": "user", "content": QUESTION}
