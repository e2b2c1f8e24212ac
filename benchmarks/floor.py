"""The framework's floor: a LlamaIndex LLM that answers from a table, without any I/O.

It runs under the same ``llm_chat_callback`` / ``llm_completion_callback`` decorators as
every LlamaIndex LLM and builds the same response objects per call and per streamed chunk,
so it measures what the framework costs before an adapter does any work of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.llm import LLM

from benchmarks.prompts import SHORT_PROMPT, context_of

SHORT_ANSWER = "This is the framework floor, not a real model. You said: " + SHORT_PROMPT

_tokens_by_prompt: dict[str, tuple[str, ...]] = {}


def answer_tokens(prompt: str) -> tuple[str, ...]:
    """The emulator's answer to one of the benchmark's prompts, as its stream tokens.

    Memoised, so that the floor spends nothing on working out what to say.
    """
    tokens = _tokens_by_prompt.get(prompt)
    if tokens is None:
        text = SHORT_ANSWER if prompt == SHORT_PROMPT else context_of(prompt)
        first, *rest = text.split(" ")
        tokens = (first, *(" " + word for word in rest))
        _tokens_by_prompt[prompt] = tokens
    return tokens


def _chat_response(messages: Sequence[ChatMessage]) -> ChatResponse:
    text = "".join(answer_tokens(str(messages[-1].content)))
    return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text))


def _last_user_text(messages: Sequence[ChatMessage]) -> str:
    return str(messages[-1].content)


class FloorLLM(LLM):
    """Canned answers under the framework's decorators; no network, no parsing."""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="floor", is_chat_model=True)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return _chat_response(messages)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="".join(answer_tokens(prompt)))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        tokens = answer_tokens(_last_user_text(messages))

        def gen() -> ChatResponseGen:
            text = ""
            for token in tokens:
                text += token
                message = ChatMessage(role=MessageRole.ASSISTANT, content=text)
                yield ChatResponse(message=message, delta=token)

        return gen()

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        tokens = answer_tokens(prompt)

        def gen() -> CompletionResponseGen:
            text = ""
            for token in tokens:
                text += token
                yield CompletionResponse(text=text, delta=token)

        return gen()

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return _chat_response(messages)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return CompletionResponse(text="".join(answer_tokens(prompt)))

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        tokens = answer_tokens(_last_user_text(messages))

        async def gen() -> ChatResponseAsyncGen:
            text = ""
            for token in tokens:
                text += token
                message = ChatMessage(role=MessageRole.ASSISTANT, content=text)
                yield ChatResponse(message=message, delta=token)

        return gen()

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        tokens = answer_tokens(prompt)

        async def gen() -> CompletionResponseAsyncGen:
            text = ""
            for token in tokens:
                text += token
                yield CompletionResponse(text=text, delta=token)

        return gen()
