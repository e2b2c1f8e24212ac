"""Stream decoding to the letter: whole error messages, line splitting, error events by code,
and what each response carries. Pure: bytes or events in, responses out."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import ai21.errors
import pytest
from llama_index.core.base.llms.types import ChatResponse, MessageRole, TextBlock, ThinkingBlock

from llama_index.llms.ai21._stream import (
    DONE,
    ChatStreamState,
    _alines,
    _lines,
    aresponses,
    decode_sse_line,
    raise_error_event,
    responses,
)
from llama_index.llms.ai21.errors import MalformedResponseError, StreamInterruptedError
from tests.statuses import STATUSES


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def event(delta: Any, finish: Any = None, **extra: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


# -------------------------------------------------------------------------------- lines

SPLITS = [
    ([b"data: a\n\ndata: b\n\n"], [b"data: a", b"data: b"]),
    ([b"data: a\r\n\r\ndata: b\r\n\r\n"], [b"data: a", b"data: b"]),
    ([b"da", b"ta: a\r", b"\n\r\n", b"data: b"], [b"data: a", b"data: b"]),
    ([b"data: a\n", b"", b"\ndata: b\n"], [b"data: a", b"data: b"]),
    ([b"\n\n\r\n"], []),
    ([b"x"], [b"x"]),
    ([], []),
]


@pytest.mark.parametrize(("chunks", "lines"), SPLITS)
def test_lines_sync_and_async(chunks: list[bytes], lines: list[bytes]) -> None:
    assert list(_lines(iter(chunks))) == lines

    async def collect() -> list[bytes]:
        async def source() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        return [line async for line in _alines(source())]

    assert asyncio.run(collect()) == lines


# ------------------------------------------------------------------------------- events


@pytest.mark.parametrize(
    ("line", "decoded"),
    [
        (b'data: {"a":1}', {"a": 1}),
        (b'data:{"a":1}', {"a": 1}),
        (b"data: [DONE]", DONE),
        (b"data:[DONE]", DONE),
        (b"data: [DONE] trailing", DONE),
        (b"event: message", None),
        (b"id: 7", None),
        (b"retry: 10", None),
        (b": keep-alive", None),
        (b"", None),
    ],
)
def test_decode_sse_line(line: bytes, decoded: Any) -> None:
    assert decode_sse_line(line) == decoded


def test_done_is_named() -> None:
    assert repr(DONE) == "DONE"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"data: [1]", "malformed AI21 stream: event should be a JSON object: [1]"),
        (b'data: "s"', 'malformed AI21 stream: event should be a JSON object: "s"'),
        (b"hello", "malformed AI21 stream: not a server-sent event line: hello"),
        (b"x" * 201, f"malformed AI21 stream: not a server-sent event line: {'x' * 200}..."),
        (b"y" * 200, f"malformed AI21 stream: not a server-sent event line: {'y' * 200}"),
        (b"\xff\xfe", "malformed AI21 stream: not a server-sent event line: \ufffd\ufffd"),
    ],
)
def test_bad_lines_are_named_and_clipped(line: bytes, message: str) -> None:
    with pytest.raises(MalformedResponseError, match=exact(message)):
        decode_sse_line(line)


def test_bad_json_names_the_error_and_chains_it() -> None:
    with pytest.raises(
        MalformedResponseError,
        match=r"^malformed AI21 stream: event is not valid JSON \(.+\): \{\"a\": $",
    ) as caught:
        decode_sse_line(b'data: {"a": ')
    assert caught.value.__cause__ is not None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({}, "'choices' should be a list, got NoneType"),
        ({"choices": "x"}, "'choices' should be a list, got str"),
        ({"choices": []}, "'choices' is empty"),
        ({"choices": [1]}, "choices[0] should be an object"),
        ({"choices": [{}]}, "choices[0].delta should be an object, got NoneType"),
        ({"choices": [{"delta": "x"}]}, "choices[0].delta should be an object, got str"),
        ({"choices": [], "usage": None}, "'choices' is empty"),
        ({"choices": [], "usage": []}, "malformed AI21 response: 'usage' should be dict, got list"),
        (event({"content": 3}), "delta.content should be a string, got int"),
        (event({"reasoning": 3}), "delta.reasoning should be a string"),
        (event({"content": ""}, finish=1), "finish_reason should be a string"),
        (event({"tool_calls": {}}), "delta.tool_calls should be a list"),
        (event({"tool_calls": ["x"]}), "delta.tool_calls[0] should be an object"),
        (
            event({"tool_calls": [{"id": "a", "function": {"name": "f"}}, {"index": "1"}]}),
            "delta.tool_calls[1].index should be an integer",
        ),
        (
            event({"tool_calls": [{"index": 0, "function": "f"}]}),
            "delta.tool_calls[0].function should be an object",
        ),
        (
            event({"tool_calls": [{"index": 2, "function": {"name": "f"}}]}),
            "the first fragment of tool call 2 needs a string 'id' and 'function.name'",
        ),
        (
            event({"tool_calls": [{"index": 0, "id": "a", "function": {}}]}),
            "the first fragment of tool call 0 needs a string 'id' and 'function.name'",
        ),
        (
            event({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": {}}}]}),
            "tool call 0 arguments should be a string fragment",
        ),
        (
            event({"content": "x"}, usage={"total_tokens": "9"}),
            "malformed AI21 response: usage.total_tokens should be a non-negative int, got str",
        ),
        (
            event({"content": "x"}, usage={"total_tokens": -1}),
            "malformed AI21 response: usage.total_tokens should be a non-negative int, got -1",
        ),
    ],
)
def test_malformed_events_are_named(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(
        MalformedResponseError, match=exact(f"malformed AI21 stream event: {message}")
    ):
        ChatStreamState().feed(bad)


# ---------------------------------------------------------------------- error events


@pytest.mark.parametrize(
    ("code", "error"),
    [
        *((s.code, s.error) for s in STATUSES),  # an error status's class (tests/statuses.py)
        ("401", ai21.errors.Unauthorized),  # a code sent as a string
        (599, ai21.errors.AI21APIError),  # the top of the error range keeps its own code
        (600, ai21.errors.AI21ServerError),  # not an HTTP error status: a server error
        (399, ai21.errors.AI21ServerError),
        ("4x", ai21.errors.AI21ServerError),
        (None, ai21.errors.AI21ServerError),
    ],
)
def test_error_events_raise_the_sdk_class_of_their_code(code: Any, error: type) -> None:
    payload = {"error": {"message": "engine died", "code": code}}
    with pytest.raises(error) as caught:
        raise_error_event(payload)
    assert type(caught.value) is error
    assert '"message":"engine died"' in str(caught.value)


def test_an_error_that_is_not_an_object_is_a_server_error() -> None:
    with pytest.raises(ai21.errors.AI21ServerError, match='"error":"boom"'):
        ChatStreamState().feed({"error": "boom"})


def test_an_error_beside_choices_is_not_an_error_event() -> None:
    with pytest.raises(MalformedResponseError, match="'choices' is empty"):
        ChatStreamState().feed({"error": {"code": 500}, "choices": []})


# ------------------------------------------------------------------------------ folding


def test_reasoning_deltas_then_answer() -> None:
    state = ChatStreamState()
    thought = event({"reasoning_content": "Think"})
    first = state.feed(thought)
    second = state.feed(event({"content": None, "reasoning": "ing."}))
    assert isinstance(first, ChatResponse)
    assert isinstance(second, ChatResponse)
    assert (first.delta, first.additional_kwargs) == ("", {"thinking_delta": "Think"})
    assert first.raw is thought
    assert first.message.role == MessageRole.ASSISTANT
    assert second.additional_kwargs == {"thinking_delta": "ing."}
    # vLLM's deepseek_r1 parser sends both when </think> falls inside a multi-token delta.
    answer = state.feed(event({"content": "Hi", "reasoning": " Done."}))
    assert answer is not None
    assert (answer.delta, answer.additional_kwargs) == ("Hi", {"thinking_delta": " Done."})
    assert answer.message.blocks == [
        ThinkingBlock(content="Thinking. Done."),
        TextBlock(text="Hi"),
    ]
    assert state.reasoning == "Thinking. Done."
    last = state.feed(event({}, "stop"))
    assert last is not None
    assert last.additional_kwargs == {"finish_reason": "stop", "reasoning": "Thinking. Done."}


def test_what_each_response_carries() -> None:
    state = ChatStreamState()
    raw = event({"content": "A"})
    first = state.feed(raw)
    assert first is not None
    assert (first.delta, first.raw, first.additional_kwargs) == ("A", raw, {})
    assert first.message.role == MessageRole.ASSISTANT
    assert first.message.blocks == [TextBlock(text="A")]
    assert first.message.additional_kwargs == {}
    assert state.feed(event({"role": "assistant", "content": ""})) is None
    assert state.feed(event({"tool_calls": []})) is None  # nothing yet
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    last = state.feed(event({"content": "B"}, "length", usage=usage))
    assert last is not None
    assert (last.delta, last.message.content) == ("B", "AB")
    assert last.additional_kwargs == {**usage, "finish_reason": "length"}
    assert (state.text, state.finish_reason, state.usage) == ("AB", "length", usage)


def test_tool_call_fragments_default_their_index_to_the_position() -> None:
    state = ChatStreamState()
    state.feed(
        event(
            {
                "tool_calls": [
                    {"id": "a", "function": {"name": "f", "arguments": "{"}},
                    {"id": "b", "function": {"name": "g"}},
                ]
            }
        )
    )
    state.feed(event({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}))
    assert state.tool_calls == [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": ""}},
    ]


def sse(*events: str) -> list[bytes]:
    return [f"data: {e}\n\n".encode() for e in events]


FINAL = '{"choices":[{"delta":{"content":"!"},"finish_reason":"stop"}]}'
USAGE_ONLY = '{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}'


def fold(chunks: list[bytes], use_async: bool) -> list[ChatResponse]:
    if not use_async:
        return list(responses(chunks, ChatStreamState()))

    async def run() -> list[ChatResponse]:
        async def source() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        return [r async for r in aresponses(source(), ChatStreamState())]

    return asyncio.run(run())


both = pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])


@both
def test_usage_after_the_final_event_lands_in_it(use_async: bool) -> None:
    out = fold(
        sse('{"choices":[{"delta":{"content":"Hi"}}]}', FINAL, USAGE_ONLY, "[DONE]"), use_async
    )
    assert [r.delta for r in out] == ["Hi", "!"]
    assert out[-1].additional_kwargs == {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
        "finish_reason": "stop",
    }


@both
def test_a_final_event_without_usage_is_released_at_the_end(use_async: bool) -> None:
    out = fold(sse(FINAL), use_async)  # no [DONE], no usage
    assert [(r.delta, r.additional_kwargs) for r in out] == [("!", {"finish_reason": "stop"})]


@both
def test_more_answer_after_a_final_event_releases_it_first(use_async: bool) -> None:
    more = '{"choices":[{"delta":{"content":"?"},"finish_reason":"stop"}]}'
    out = fold(sse(FINAL, more, "[DONE]"), use_async)
    assert [r.delta for r in out] == ["!", "?"]
    assert out[-1].message.content == "!?"


@both
def test_a_final_event_with_usage_after_a_held_one_comes_right_after_it(use_async: bool) -> None:
    with_usage = (
        '{"choices":[{"delta":{"content":"?"},"finish_reason":"stop"}],'
        '"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}'
    )
    out = fold(sse(FINAL, with_usage, "[DONE]"), use_async)
    assert [r.delta for r in out] == ["!", "?"]
    assert out[-1].additional_kwargs["total_tokens"] == 3


def test_each_delta_is_handed_over_when_its_event_arrives() -> None:
    """Not held back until the next event: a stream is only as fast as its slowest hold."""
    read: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i, chunk in enumerate(
            sse(
                '{"choices":[{"delta":{"content":"A"}}]}',
                '{"choices":[{"delta":{"content":"B"}}]}',
                FINAL,
                USAGE_ONLY,
                "[DONE]",
            )
        ):
            read.append(i)
            yield chunk

    seen = []
    for response in responses(chunks(), ChatStreamState()):
        seen.append((response.delta, len(read)))
    # "A" after one event read, "B" after two; the final one waits for its usage event.
    assert seen == [("A", 1), ("B", 2), ("!", 5)]


@both
def test_reading_stops_at_done(use_async: bool) -> None:
    out = fold([*sse(FINAL, "[DONE]"), b"data: not json\n\n"], use_async)
    assert [r.delta for r in out] == ["!"]


@both
def test_a_stream_that_ends_early_keeps_the_partial_text(use_async: bool) -> None:
    chunks = sse(
        '{"choices":[{"delta":{"content":"Hal"}}]}', '{"choices":[{"delta":{"content":"f"}}]}'
    )
    with pytest.raises(
        StreamInterruptedError,
        match=exact(
            "AI21 stream ended before its final event (no finish_reason); the answer is incomplete"
            " (4 characters of the answer had arrived)"
        ),
    ) as caught:
        fold(chunks, use_async)
    assert caught.value.partial_text == "Half"
