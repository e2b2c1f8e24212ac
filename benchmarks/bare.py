"""The least a LlamaIndex LLM streaming over httpx's sync transport can do per chunk.

``BareLLM.stream_chat`` runs under the same ``llm_chat_callback`` as every LlamaIndex LLM and
builds the same ``ChatResponse`` per chunk as the ``floor``, but reads the chunks from a live
stream: httpx's ``iter_raw``, a split at line feeds and ``orjson``, and nothing else (no
error handling, no reasoning, no tool calls, no usage, no limits; httpx's ``iter_lines``
costs more, as it decodes to text first). No integration can spend less on a chunk on
the same transport, so its figures bound what the sync stream targets can ask of any code:
its "own share" (its chunk minus the floor's) is what httpx's transport and the thinnest
possible parser cost, before an adapter does anything.

Only ``stream_chat`` is measured (``streams_only``); the other methods are not implemented.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import orjson
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms.callbacks import llm_chat_callback
from llama_index.core.llms.custom import CustomLLM
from pydantic import PrivateAttr


class BareLLM(CustomLLM):
    """``stream_chat`` over a plain ``httpx.Client``: iter_raw, orjson, a ChatResponse."""

    model: str
    base_url: str
    api_key: str
    timeout: float
    _client: httpx.Client = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=self.timeout,
        )

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model, is_chat_model=True)

    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        raise NotImplementedError("the bare contender only streams")

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        raise NotImplementedError("the bare contender only streams")

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        body = {
            "model": self.model,
            "messages": [{"role": m.role.value, "content": m.content} for m in messages],
            "stream": True,
        }

        def gen() -> ChatResponseGen:
            text, rest = "", b""
            with self._client.stream("POST", "/chat/completions", json=body) as response:
                response.raise_for_status()
                for chunk in response.iter_raw():
                    *lines, rest = (rest + chunk).split(b"\n")
                    for line in lines:
                        if not line.startswith(b"data: "):
                            continue
                        if line.startswith(b"data: [DONE]"):
                            return
                        event = orjson.loads(line[6:])
                        delta = event["choices"][0]["delta"].get("content") or ""
                        text += delta
                        message = ChatMessage(role=MessageRole.ASSISTANT, content=text)
                        yield ChatResponse(message=message, delta=delta, raw=event)

        return gen()

    def close(self) -> None:
        self._client.close()
