"""Stream folding for what OpenAI-compatible servers (vLLM) send: usage events, in-stream
errors, reasoning deltas. Pure: bytes in, responses out, no server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import ai21.errors
import pytest
from llama_index.core.base.llms.types import ChatResponse, ThinkingBlock

from llama_index.llms.ai21._stream import ChatStreamState, aresponses, responses

USAGE = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}


def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": choices, **extra}


def body(*events: dict[str, Any] | str) -> bytes:
    lines = [e if isinstance(e, str) else json.dumps(e) for e in events]
    return b"".join(f"data: {line}\n\n".encode() for line in [*lines, "[DONE]"])


async def _achunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 7):  # odd splits, as a network would make them
        yield data[i : i + 7]


def fold(data: bytes, use_async: bool) -> list[ChatResponse]:
    if not use_async:
        return list(responses([data[i : i + 7] for i in range(0, len(data), 7)], ChatStreamState()))

    async def run() -> list[ChatResponse]:
        return [r async for r in aresponses(_achunks(data), ChatStreamState())]

    return asyncio.run(run())


both = pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])


@both
def test_usage_in_its_own_event_lands_in_the_final_response(use_async: bool) -> None:
    data = body(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hi"}),
        chunk({"content": "!"}, "stop"),
        chunk(None, usage=USAGE),  # stream_options.include_usage: choices is empty
    )
    out = fold(data, use_async)
    assert [r.delta for r in out] == ["Hi", "!"]
    assert out[-1].additional_kwargs == {**USAGE, "finish_reason": "stop"}
    assert out[-1].message.content == "Hi!"


@both
def test_continuous_usage_on_every_chunk(use_async: bool) -> None:
    data = body(
        chunk(None, usage={"prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7}),
        chunk({"role": "assistant", "content": ""}, usage={**USAGE, "completion_tokens": 0}),
        chunk({"content": "Hi"}, usage={**USAGE, "completion_tokens": 1, "total_tokens": 8}),
        chunk({}, "stop", usage=USAGE),
        chunk(None, usage=USAGE),
    )
    out = fold(data, use_async)
    assert [r.delta for r in out] == ["Hi", ""]
    assert out[0].additional_kwargs == {}, "only the final response carries usage"
    assert out[-1].additional_kwargs == {**USAGE, "finish_reason": "stop"}


@both
def test_a_final_event_without_usage_and_no_usage_event_still_ends_the_stream(
    use_async: bool,
) -> None:
    out = fold(body(chunk({"content": "Hi"}), chunk({}, "length")), use_async)
    assert out[-1].additional_kwargs == {"finish_reason": "length"}


@both
@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (500, ai21.errors.AI21ServerError),
        (503, ai21.errors.ServiceUnavailable),
        (400, ai21.errors.BadRequest),
        ("429", ai21.errors.TooManyRequestsError),
        (None, ai21.errors.AI21ServerError),
    ],
)
def test_an_error_event_raises_the_sdk_class_for_its_code(
    use_async: bool, code: Any, cls: type[Exception]
) -> None:
    error = {"message": "engine died: out of KV cache", "type": "InternalServerError", "code": code}
    data = body(
        chunk({"role": "assistant", "content": ""}), chunk({"content": "Hi"}), {"error": error}
    )
    with pytest.raises(cls) as caught:
        fold(data, use_async)
    assert "engine died: out of KV cache" in str(caught.value)


@both
def test_reasoning_is_a_thinking_block_and_never_answer_text(use_async: bool) -> None:
    data = body(
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning": "Two plus "}),
        chunk({"reasoning_content": "two is four."}),
        chunk({"content": "4"}, "stop", usage=USAGE),
    )
    out = fold(data, use_async)
    assert [r.delta for r in out] == ["", "", "4"]
    assert [r.additional_kwargs.get("thinking_delta") for r in out[:2]] == [
        "Two plus ",
        "two is four.",
    ]
    final = out[-1].message
    assert final.content == "4"
    thinking = [b for b in final.blocks if isinstance(b, ThinkingBlock)]
    assert [b.content for b in thinking] == ["Two plus two is four."]
