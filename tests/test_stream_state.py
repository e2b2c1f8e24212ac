"""Stream decoding and accumulation (docs/streaming.md). Pure: no server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llama_index.llms.ai21._stream import (
    DONE,
    ChatStreamState,
    aresponses,
    decode_sse_line,
    responses,
)
from llama_index.llms.ai21.errors import MalformedResponseError, StreamInterruptedError


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


def _sse(*events: dict[str, Any], done: bool = True, newline: bytes = b"\n") -> bytes:
    lines = [b"data: " + json.dumps(e).encode() for e in events]
    if done:
        lines.append(b"data: [DONE]")
    return b"".join(line + newline + newline for line in lines)


STREAM = [event({"role": "assistant"}), event({"content": "Hel"}), event({"content": "lo"})]
STREAM.append(event({}, finish="stop", usage={"prompt_tokens": 1, "completion_tokens": 2}))


def _deltas(chunks: Iterable[bytes]) -> list[str]:
    """The deltas :func:`responses` and :func:`aresponses` give for ``chunks`` (both agree)."""
    chunks = list(chunks)
    sync = [r.delta or "" for r in responses(chunks, ChatStreamState())]

    async def feed() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def collect() -> list[str]:
        return [r.delta or "" async for r in aresponses(feed(), ChatStreamState())]

    assert asyncio.run(collect()) == sync
    return sync


@given(st.data())
def test_responses_do_not_depend_on_where_the_bytes_are_split(data: st.DataObject) -> None:
    body = _sse(*STREAM, newline=data.draw(st.sampled_from([b"\n", b"\r\n"])))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(body) - 1), max_size=12)))
    chunks = [body[i:j] for i, j in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert _deltas(chunks) == ["Hel", "lo", ""]


@pytest.mark.parametrize(
    "body",
    [
        _sse(*STREAM),
        _sse(*STREAM).rstrip(b"\n"),  # a last line without its newline still counts
        _sse(*STREAM, done=False),  # the final event is enough
        b": keep-alive\nevent: message\nid: 7\nretry: 10\n\n" + _sse(*STREAM),
    ],
    ids=["plain", "no-final-newline", "no-done", "other-sse-fields"],
)
def test_responses_read_well_formed_streams(body: bytes) -> None:
    assert _deltas([body]) == ["Hel", "lo", ""]


@pytest.mark.parametrize("body", [_sse(*STREAM[:3], done=False), b""], ids=["cut", "empty"])
def test_responses_reject_streams_without_their_final_event(body: bytes) -> None:
    with pytest.raises(StreamInterruptedError, match="ended before its final event"):
        list(responses([body], ChatStreamState()))
