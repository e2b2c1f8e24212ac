"""The in-process contenders: each calls the emulator the way its kind of user would.

- ``sdk``: the raw ``ai21`` SDK 4.3.0 (``AI21Client`` / ``AsyncAI21Client``), the floor we
  compare everything with.
- ``sdk+aiohttp``: the same async SDK client handed an ``httpx_aiohttp.HttpxAiohttpClient``
  (the transport this package uses for async), to separate the transport's effect from ours.
- ``httpx``: plain httpx posting the same JSON and parsing JSON / SSE lines with
  ``json.loads``: the transport's floor.
- ``package``: this package, ``llama_index.llms.ai21.AI21`` with ``max_retries=0``.
- ``floor``: a do-nothing LlamaIndex LLM under the same callback decorators that returns a
  canned answer without I/O: the framework's own floor.
- ``bare``: the least a LlamaIndex LLM can do per chunk of a sync stream on httpx's transport
  (``benchmarks/bare.py``; ``stream_chat`` only): what the sync stream targets can ask of any
  code on it.

On the emulator's vLLM flavour (a self-hosted OpenAI-compatible server, ``VLLM_FACTORIES``):

- ``openai-like``: LlamaIndex's ``OpenAILike`` (llama-index-llms-openai-like, on the ``openai``
  SDK), which self-hosting users pick today: the baseline there.
- ``package``: this package with ``deployment="openai-compatible"``.
- ``httpx``: plain httpx again, the transport's floor on that server.
- ``bare``: the bare sync stream again.

The published 0.8.0 contender lives in ``published_worker.py`` (another virtualenv).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
from ai21 import AI21Client, AsyncAI21Client
from ai21.models.chat import UserMessage
from httpx_aiohttp import HttpxAiohttpClient
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.llms.openai_like import OpenAILike  # type: ignore[import-untyped]

from benchmarks.bare import BareLLM
from benchmarks.floor import FloorLLM
from benchmarks.prompts import MODEL, VLLM_MODEL
from llama_index.llms.ai21 import AI21

TIMEOUT = 300.0


class RawSDK:
    """``ai21`` SDK 4.3.0, as its README shows it."""

    name = "sdk"

    def __init__(self, base_url: str, api_key: str) -> None:
        self.client = AI21Client(api_key=api_key, api_host=base_url)
        self.aclient = AsyncAI21Client(api_key=api_key, api_host=base_url)

    def call(self, prompt: str) -> str:
        response = self.client.chat.completions.create(
            model=MODEL, messages=[UserMessage(content=prompt)]
        )
        return response.choices[0].message.content or ""

    async def acall(self, prompt: str) -> str:
        response = await self.aclient.chat.completions.create(
            model=MODEL, messages=[UserMessage(content=prompt)]
        )
        return response.choices[0].message.content or ""

    def stream(self, prompt: str) -> Iterator[str]:
        chunks = self.client.chat.completions.create(
            model=MODEL, messages=[UserMessage(content=prompt)], stream=True
        )
        for chunk in chunks:
            delta = chunk.choices[0].delta.content
            if delta:
                yield delta

    async def astream(self, prompt: str) -> AsyncIterator[str]:
        chunks = await self.aclient.chat.completions.create(
            model=MODEL, messages=[UserMessage(content=prompt)], stream=True
        )
        async for chunk in chunks:
            delta = chunk.choices[0].delta.content
            if delta:
                yield delta

    async def aclose(self) -> None:
        # The SDK has no public close; its default pool is ``_client``.
        await self.aclient._client.aclose()


class RawSDKAiohttp(RawSDK):
    """The async SDK client on ``httpx_aiohttp.HttpxAiohttpClient`` (async workloads only)."""

    name = "sdk+aiohttp"
    async_only = True

    def __init__(self, base_url: str, api_key: str) -> None:
        self.http = HttpxAiohttpClient(timeout=TIMEOUT)
        self.aclient = AsyncAI21Client(api_key=api_key, api_host=base_url, http_client=self.http)

    async def aclose(self) -> None:
        await self.http.aclose()


def _body(model: str, prompt: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        body["stream"] = True
    return body


def _sse_delta(line: str) -> str | None:
    """The content of one ``data:`` line; ``None`` at ``[DONE]``, ``""`` for no content."""
    if not line.startswith("data: "):
        return ""
    payload = line[6:]
    if payload == "[DONE]":
        return None
    return json.loads(payload)["choices"][0]["delta"].get("content") or ""


class RawHttpx:
    """httpx posting the same JSON: what any client at all has to do."""

    name = "httpx"

    def __init__(self, base_url: str, api_key: str, model: str = MODEL) -> None:
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"}
        self.client = httpx.Client(base_url=base_url, headers=headers, timeout=TIMEOUT)
        self.aclient = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=TIMEOUT)

    def call(self, prompt: str) -> str:
        response = self.client.post(
            "/chat/completions", json=_body(self.model, prompt, stream=False)
        )
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])

    async def acall(self, prompt: str) -> str:
        response = await self.aclient.post(
            "/chat/completions", json=_body(self.model, prompt, stream=False)
        )
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])

    def stream(self, prompt: str) -> Iterator[str]:
        body = _body(self.model, prompt, stream=True)
        with self.client.stream("POST", "/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                delta = _sse_delta(line)
                if delta is None:
                    return
                if delta:
                    yield delta

    async def astream(self, prompt: str) -> AsyncIterator[str]:
        body = _body(self.model, prompt, stream=True)
        async with self.aclient.stream("POST", "/chat/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                delta = _sse_delta(line)
                if delta is None:
                    return
                if delta:
                    yield delta

    async def aclose(self) -> None:
        await self.aclient.aclose()


def _user(prompt: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=prompt)]


class LlamaIndexLLM:
    """Any LlamaIndex LLM, through ``complete`` / ``achat`` / ``stream_chat`` /
    ``astream_chat``: this package, the framework floor, or the bare stream
    (``sync_streams_only``: it implements ``stream_chat`` alone)."""

    def __init__(self, name: str, llm: Any, sync_streams_only: bool = False) -> None:
        self.name = name
        self.llm = llm
        self.sync_streams_only = sync_streams_only

    def call(self, prompt: str) -> str:
        return str(self.llm.complete(prompt).text)

    async def acall(self, prompt: str) -> str:
        response = await self.llm.achat(_user(prompt))
        return str(response.message.content)

    def stream(self, prompt: str) -> Iterator[str]:
        for response in self.llm.stream_chat(_user(prompt)):
            if response.delta:
                yield response.delta

    async def astream(self, prompt: str) -> AsyncIterator[str]:
        async for response in await self.llm.astream_chat(_user(prompt)):
            if response.delta:
                yield response.delta

    async def aclose(self) -> None:
        """Release the async connection pool, where the LLM has one to release."""
        if isinstance(self.llm, AI21):
            await self.llm.aclose()
        elif isinstance(self.llm, BareLLM):
            self.llm.close()
        elif isinstance(self.llm, OpenAILike) and self.llm._aclient is not None:
            # OpenAILike has no close of its own; its reused ``AsyncOpenAI`` client does.
            await self.llm._aclient.close()


def package(base_url: str, api_key: str) -> LlamaIndexLLM:
    return LlamaIndexLLM(
        "package", AI21(api_key=api_key, base_url=base_url, model=MODEL, max_retries=0)
    )


def floor(base_url: str, api_key: str) -> LlamaIndexLLM:
    return LlamaIndexLLM("floor", FloorLLM())


def bare(base_url: str, api_key: str, model: str = MODEL) -> LlamaIndexLLM:
    llm = BareLLM(model=model, base_url=base_url, api_key=api_key, timeout=TIMEOUT)
    return LlamaIndexLLM("bare", llm, sync_streams_only=True)


def bare_vllm(base_url: str, api_key: str) -> LlamaIndexLLM:
    return bare(base_url, api_key, model=VLLM_MODEL)


def package_vllm(base_url: str, api_key: str) -> LlamaIndexLLM:
    llm = AI21(
        deployment="openai-compatible",
        api_key=api_key,
        base_url=base_url,
        model=VLLM_MODEL,
        max_retries=0,
    )
    return LlamaIndexLLM("package", llm)


def openai_like(base_url: str, api_key: str) -> LlamaIndexLLM:
    """``OpenAILike`` as its README configures it for a vLLM server (one client reused)."""
    llm = OpenAILike(
        model=VLLM_MODEL,
        api_base=base_url,
        api_key=api_key or "none",
        is_chat_model=True,
        max_retries=0,
        timeout=TIMEOUT,
    )
    return LlamaIndexLLM("openai-like", llm)


def httpx_vllm(base_url: str, api_key: str) -> RawHttpx:
    return RawHttpx(base_url, api_key, model=VLLM_MODEL)


Factory = Callable[[str, str], Any]  # (base_url, api_key) -> a contender

FACTORIES: dict[str, Factory] = {
    "sdk": RawSDK,
    "sdk+aiohttp": RawSDKAiohttp,
    "httpx": RawHttpx,
    "package": package,
    "floor": floor,
    "bare": bare,
}
"""Contenders on the AI21-flavoured emulator (``.../studio/v1``)."""

VLLM_FACTORIES: dict[str, Factory] = {
    "httpx": httpx_vllm,
    "package": package_vllm,
    "openai-like": openai_like,
    "bare": bare_vllm,
}
"""Contenders on the vLLM-flavoured emulator (``.../v1``)."""


def is_async_only(contender: object) -> bool:
    return bool(getattr(contender, "async_only", False))


def is_sync_streams_only(contender: object) -> bool:
    return bool(getattr(contender, "sync_streams_only", False))


async def aclose_all(contenders: list[Any]) -> None:
    await asyncio.gather(*(c.aclose() for c in contenders), return_exceptions=True)
