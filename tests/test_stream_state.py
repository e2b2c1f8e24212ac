"""Stream decoding and accumulation (ai21-api.md 1.4). Pure: no server."""

from __future__ import annotations

from typing import Any

import pytest

from llama_index.llms.ai21._stream import DONE, ChatStreamState, decode_sse_line, iter_lines
from llama_index.llms.ai21.errors import MalformedResponseError


def event(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": "chat-1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


USAGE = {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_content_stream() -> None:
    state = ChatStreamState()
    responses = [
        state.feed(e)
        for e in [
            event({"role": "assistant"}),
            event({"content": "Hel"}),
            event({"content": "lo"}),
            event({"content": ""}, "stop", USAGE),
        ]
    ]
    assert responses[0] is None, "the role-only first event yields nothing"
    chunks = [r for r in responses if r is not None]
    assert [c.delta for c in chunks] == ["Hel", "lo", ""]
    assert "".join(c.delta or "" for c in chunks) == chunks[-1].message.content == "Hello"
    assert chunks[-1].additional_kwargs == {**USAGE, "finish_reason": "stop"}
    assert chunks[0].additional_kwargs == {}


def test_tool_call_fragments_merge_by_index() -> None:
    state = ChatStreamState()
    state.feed(event({"role": "assistant"}))
    first = {"index": 0, "id": "call_a", "type": "function", "function": {"name": "add"}}
    second = {"index": 1, "id": "call_b", "type": "function", "function": {"name": "mul"}}
    state.feed(event({"tool_calls": [first]}))
    state.feed(event({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": '}}]}))
    state.feed(event({"tool_calls": [second]}))
    state.feed(event({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}))
    state.feed(event({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}))
    last = state.feed(event({"content": ""}, "tool_calls", USAGE))
    assert last is not None
    assert last.message.additional_kwargs["tool_calls"] == [
        {"id": "call_a", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}},
        {"id": "call_b", "type": "function", "function": {"name": "mul", "arguments": "{}"}},
    ]
    assert last.additional_kwargs["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"", None),
        (b'data: {"a": 1}', {"a": 1}),
        (b'data:{"a": 1}', {"a": 1}),
        (b"data: [DONE]", DONE),
        (b": keep-alive", None),
        (b"event: message", None),
    ],
)
def test_decode_sse_line(line: bytes, expected: Any) -> None:
    assert (
        decode_sse_line(line) == expected if expected is not DONE else decode_sse_line(line) is DONE
    )


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (b'data: {"id": "chat-1", "choi', "not valid JSON"),
        (b"data: [1, 2]", "JSON object"),
        (b"garbage", "not a server-sent event line"),
    ],
)
def test_bad_lines_name_the_problem(line: bytes, match: str) -> None:
    with pytest.raises(MalformedResponseError, match=match):
        decode_sse_line(line)


@pytest.mark.parametrize(
    ("chunk", "match"),
    [
        ({"id": "x"}, "'choices' should be a list"),
        ({"choices": []}, "'choices' is empty"),
        ({"choices": [{"delta": None}]}, "delta should be an object"),
        ({"choices": [{"delta": {"content": 3}}]}, "content should be a string"),
        (
            {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {}}]}}]},
            "needs a string 'id'",
        ),
        (
            {"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": {"total_tokens": "x"}},
            "usage",
        ),
    ],
)
def test_malformed_events_name_the_problem(chunk: dict[str, Any], match: str) -> None:
    with pytest.raises(MalformedResponseError, match=match):
        ChatStreamState().feed(chunk)


@pytest.mark.parametrize(
    "chunks",
    [
        [b"data: 1\n\ndata: 2\n\n"],
        [b"da", b"ta: 1\n", b"\ndata: 2", b"\n\n"],
        [b"data: 1\r\n\r\ndata: 2\r\n\r\n"],
        [b"data: 1\n\n", b"data: 2"],  # a last line without its newline still counts
    ],
)
def test_iter_lines_splits_across_chunk_boundaries(chunks: list[bytes]) -> None:
    assert [line for line in iter_lines(chunks) if line] == [b"data: 1", b"data: 2"]
