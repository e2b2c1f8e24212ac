"""The smallest round trip: one chat call to the real server."""

from __future__ import annotations

from collections.abc import Callable

from llama_index.core.base.llms.types import ChatMessage

from llama_index.llms.ai21 import AI21
from tests.vllm.conftest import Servers


def test_chat_answers(make_llm: Callable[..., AI21], servers: Servers) -> None:
    response = make_llm().chat([ChatMessage(role="user", content="Hi")])
    assert response.message.content == servers.answer
