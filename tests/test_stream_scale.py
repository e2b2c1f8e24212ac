"""Streams stay linear in what the server sends: long lines, many tool calls.

Counts and growth ratios of CPU time, not clocks (benchmarks/stream_scale.py has the timings against
httpx and the openai SDK).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from llama_index.core.base.llms.types import ChatMessage, ToolCallBlock

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21, _stream
from llama_index.llms.ai21._stream import LineDecoder
from llama_index.llms.ai21.errors import MalformedResponseError

EVENTS = b'data: {"a": 1}\r\n\r\ndata: {"b": 2}\n\ndata: {"c": 3}\r\rdata: [DONE]\n\n'
LINES = [b'data: {"a": 1}', b'data: {"b": 2}', b'data: {"c": 3}', b"data: [DONE]"]


def _decode(chunks: list[bytes]) -> list[bytes]:
    decoder = LineDecoder()
    lines = [line for chunk in chunks for line in decoder.feed(chunk)]
    return lines + decoder.flush()


def test_lines_end_at_lf_crlf_and_bare_cr_wherever_the_chunks_are_cut() -> None:
    assert _decode([EVENTS]) == LINES
    for cut in range(len(EVENTS) + 1):
        assert _decode([EVENTS[:cut], EVENTS[cut:]]) == LINES, cut
    assert _decode([bytes([byte]) for byte in EVENTS]) == LINES
    assert _decode([b"data: [DONE]"]) == [b"data: [DONE]"], "a last line without an ending"


def _seconds_to_split(line_bytes: int, chunk_bytes: int = 1024) -> float:
    line = b"data: " + b"x" * line_bytes + b"\n\n"
    chunks = [line[i : i + chunk_bytes] for i in range(0, len(line), chunk_bytes)]
    best = float("inf")
    for _ in range(5):
        decoder = LineDecoder()
        start = time.process_time()
        for chunk in chunks:
            decoder.feed(chunk)
        best = min(best, time.process_time() - start)
    return best


def test_splitting_a_long_line_grows_linearly_with_its_length() -> None:
    # A 4x longer line, cut into 4x as many chunks: about 4x the CPU time when the pieces are
    # joined once (up to 7x from caches); 16x when every chunk re-joins what is pending.
    ratio = _seconds_to_split(4 << 20) / _seconds_to_split(1 << 20)
    assert ratio < 10, f"4x the bytes took {ratio:.1f}x the time"


def test_a_bad_event_is_quoted_from_a_prefix_of_its_bytes() -> None:
    huge = b"data: " + b"\xff" * (64 << 20)  # invalid UTF-8 and JSON, 64 MiB
    with pytest.raises(MalformedResponseError) as caught:
        _stream.decode_sse_line(huge)
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize(
    "chunks",
    [
        [b"data: " + b"x" * 4, b"x" * 4],  # pieces of one unfinished line
        [b"data: x\ndata: yyyyy"],  # the unfinished tail of a chunk
        [b"data: x\ndata: " + b"y" * 5 + b"\n"],  # a whole line inside one large chunk
        [b"data: ", b"yyyyy\n"],  # the pieces and the chunk that ends them
    ],
    ids=["pieces", "tail", "inside-a-chunk", "ended"],
)
def test_a_line_longer_than_the_limit_is_refused_wherever_it_is_cut(chunks: list[bytes]) -> None:
    decoder = LineDecoder(limit=10)
    for chunk in chunks[:-1]:
        decoder.feed(chunk)
    with pytest.raises(MalformedResponseError, match="a line is longer than 10 bytes") as caught:
        decoder.feed(chunks[-1])
    assert "data: " in str(caught.value), "quotes the line's start"
    assert _decode([b"data: 1234\n", b"data", b": 5678\n"]) == [b"data: 1234", b"data: 5678"]


def test_an_event_nested_too_deeply_is_malformed_at_any_length() -> None:
    for padding in (0, _stream.LARGE_EVENT):  # orjson's depth limit; the stdlib's recursion
        line = b'data: {"pad": "' + b" " * padding + b'", "x": ' + b"[" * 100_000
        with pytest.raises(MalformedResponseError, match="not valid JSON"):
            _stream.decode_sse_line(line + b"]" * 100_000 + b"}")


@pytest.fixture
def counted_blocks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many tool-call blocks the stream state builds."""
    built = [0]

    class Counted(ToolCallBlock):
        def __init__(self, **data: object) -> None:
            built[0] += 1
            super().__init__(**data)

    monkeypatch.setattr(_stream, "ToolCallBlock", Counted)
    return built


@pytest.mark.parametrize("calls", [10, 600])
def test_each_streamed_tool_call_is_built_once_per_event_that_touches_it(
    make_llm: Callable[..., AI21], emulator: Emulator, counted_blocks: list[int], calls: int
) -> None:
    expected = [
        {"name": "lookup", "arguments": {"key": f"k{i}", "pad": "x" * (i % 7)}}
        for i in range(calls)
    ]
    emulator.reply_next(tool_calls=expected)
    llm = make_llm(max_retries=0)
    responses = list(llm.stream_chat([ChatMessage(role="user", content="look them up")]))
    touched = sum(
        len(r.raw["choices"][0]["delta"].get("tool_calls") or [])
        for r in responses
        if isinstance(r.raw, dict) and r.raw.get("choices")
    )
    final = responses[-1].message
    selections = llm.get_tool_calls_from_response(responses[-1])
    assert [(s.tool_name, s.tool_kwargs) for s in selections] == [
        (c["name"], c["arguments"]) for c in expected
    ]
    assert len(final.additional_kwargs["tool_calls"]) == calls
    # Linear: one block per fragment the server sent, not one per call per event.
    assert 0 < counted_blocks[0] <= touched, (counted_blocks[0], touched)


def test_earlier_stream_responses_keep_the_tool_calls_they_had(
    make_llm: Callable[..., AI21], emulator: Emulator
) -> None:
    emulator.reply_next(
        tool_calls=[{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {"y": 2}}]
    )
    llm = make_llm(max_retries=0)
    seen: Iterator[object] = llm.stream_chat([ChatMessage(role="user", content="go")])
    counts = [len(r.message.additional_kwargs.get("tool_calls", [])) for r in list(seen)]
    assert counts[-1] == 2
    assert counts == sorted(counts), "a response never shows calls that came after it"
