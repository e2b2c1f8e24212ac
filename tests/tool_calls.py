"""What the real-server suites (tests/vllm, tests/llamacpp) share for tool calls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatResponse

from llama_index.llms.ai21 import AI21

METHODS = [
    "chat_with_tools",
    "stream_chat_with_tools",
    "achat_with_tools",
    "astream_chat_with_tools",
]

# llama-index-workflows finds an agent's steps with inspect.getmembers, which touches every
# deprecated pydantic attribute of the agent (warnings from their code, not ours).
agent_warnings = pytest.mark.filterwarnings(
    "ignore::pydantic.warnings.PydanticDeprecatedSince20",
    "ignore::pydantic.warnings.PydanticDeprecatedSince211",
)


def responses(llm: AI21, method: str, *args: Any, **kwargs: Any) -> list[ChatResponse]:
    """Every response of one ``*chat_with_tools`` call (one unless streamed)."""

    async def run_async() -> list[ChatResponse]:
        result = await getattr(llm, method)(*args, **kwargs)
        return [c async for c in result] if "stream" in method else [result]

    if method.startswith("a"):
        return asyncio.run(run_async())
    result = getattr(llm, method)(*args, **kwargs)
    return list(result) if "stream" in method else [result]


def raw_calls(response: ChatResponse) -> list[dict[str, Any]]:
    return list(response.message.additional_kwargs.get("tool_calls") or [])
