"""``documents=`` on llama-server: its template (Jamba Reasoning 3B's) has no ``documents``
variable and the server ignores the field, so the documents go into the prompt. The server's
own tokenizer and ``/apply-template`` show they reached it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.schema import Document

from llama_index.llms.ai21 import AI21
from tests.calls import METHOD_IDS, arg_for, call
from tests.llamacpp.conftest import Recorder, Servers, require_servers

require_servers()

TEXT = "Paris is the capital of France."
HI = [ChatMessage(role="user", content="Hi")]


def test_the_server_ignores_a_documents_field(servers: Servers) -> None:
    # Why the package must not rely on the field here (measured, not assumed).
    body = {"messages": [{"role": "user", "content": "Hi"}]}
    with_field = {**body, "documents": [{"text": TEXT}]}
    assert servers.apply_template(with_field) == servers.apply_template(body)


@pytest.mark.parametrize("method", METHOD_IDS)
def test_documents_reach_the_prompt(
    make_llm: Callable[..., AI21],
    servers: Servers,
    record: Callable[..., Recorder],
    method: str,
) -> None:
    recorder = record()
    llm = make_llm(base_url=recorder.url)
    plain = call(llm, method, arg_for(method, "Hi"))
    grounded = call(llm, method, arg_for(method, "Hi"), documents=[TEXT])
    grown = (
        grounded.responses[-1].additional_kwargs["prompt_tokens"]
        - plain.responses[-1].additional_kwargs["prompt_tokens"]
    )
    assert grown >= servers.count_tokens(TEXT)
    assert grounded.text == servers.answer()
    body = recorder.bodies()[-1]
    assert "documents" not in body  # ignored there: sent in the messages instead
    assert TEXT in servers.apply_template(body)


def test_every_document_and_its_title_reach_the_prompt(
    make_llm: Callable[..., AI21], servers: Servers, record: Callable[..., Recorder]
) -> None:
    recorder = record()
    documents = [
        Document(text=TEXT, metadata={"title": "France"}),
        {"text": "Rome is the capital of Italy.", "title": "Italy"},
    ]
    make_llm(base_url=recorder.url).chat(HI, documents=documents)
    prompt = servers.apply_template(recorder.bodies()[-1])
    for needle in (TEXT, "France", "Rome is the capital of Italy.", "Italy"):
        assert needle in prompt
    assert prompt.index(TEXT) < prompt.index("Rome is the capital of Italy.")
