"""``python -m benchmarks.stream_scale``: streams that are large in what the server sends.

Two inputs a hostile or merely busy server can send, each read by the package and by a
reference client from the same bytes, as ratios measured in one run (best of ``--rounds``):

- one server-sent event line of ``--mib`` MiB (a huge answer in one event), cut into 64 KiB
  reads: the package's ``stream_chat`` against httpx's ``iter_lines`` over the same response;
- ``--calls`` tool calls streamed as an OpenAI-compatible server streams them (the name, then
  the arguments, one event each): the package's ``stream_chat`` against the openai SDK
  iterating the same stream (which only parses each chunk; the package also accumulates the
  calls into every response, as LlamaIndex expects).

Both clients read from an ``httpx.MockTransport`` (no sockets, no server CPU in the
measurement). Targets (issue "Trust no server"): each ratio at most 2.0.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
from llama_index.core.base.llms.types import ChatMessage

from llama_index.llms.ai21 import AI21

READ = 64 * 1024
TARGET = 2.0
MESSAGES = [ChatMessage(role="user", content="go")]


def _sse(events: list[dict[str, Any]]) -> bytes:
    lines = [b"data: " + json.dumps(event).encode() + b"\n\n" for event in events]
    return b"".join(lines) + b"data: [DONE]\n\n"


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def long_line(mib: int) -> bytes:
    return _sse([_chunk({"content": "x" * (mib << 20)}, "stop")])


def tool_calls(calls: int) -> bytes:
    events = [_chunk({"role": "assistant", "content": ""})]
    for i in range(calls):
        function = {"name": "lookup", "arguments": ""}
        events.append(
            _chunk(
                {
                    "tool_calls": [
                        {"index": i, "id": f"call_{i}", "type": "function", "function": function}
                    ]
                }
            )
        )
        arguments = {"arguments": json.dumps({"key": f"k{i}"})}
        events.append(_chunk({"tool_calls": [{"index": i, "function": arguments}]}))
    events.append(_chunk({}, "tool_calls"))
    return _sse(events)


def _client(body: bytes) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # a server's model list, if the package asks
            return httpx.Response(200, json={"object": "list", "data": []})
        reads: Iterator[bytes] = (body[i : i + READ] for i in range(0, len(body), READ))
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=reads)

    return httpx.Client(transport=httpx.MockTransport(handle))


def _package(body: bytes) -> Callable[[], None]:
    llm = AI21(
        deployment="openai-compatible",
        base_url="http://stream-scale.invalid/v1",
        model="ai21labs/AI21-Jamba-Mini-1.7",
        max_retries=0,
        context_window=4096,
        http_client=_client(body),
    )

    def run() -> None:
        for _ in llm.stream_chat(MESSAGES):
            pass

    return run


def _httpx_lines(body: bytes) -> Callable[[], None]:
    client = _client(body)

    def run() -> None:
        with client.stream("POST", "http://stream-scale.invalid/v1/chat/completions") as response:
            for _ in response.iter_lines():
                pass

    return run


def _openai(body: bytes) -> Callable[[], None]:
    client = openai.OpenAI(
        base_url="http://stream-scale.invalid/v1", api_key="x", http_client=_client(body)
    )

    def run() -> None:
        for _ in client.chat.completions.create(model="m", messages=[], stream=True):
            pass

    return run


def _best(run: Callable[[], None], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stream_scale")
    parser.add_argument("--mib", type=int, default=32, help="size of the long line")
    parser.add_argument("--calls", type=int, default=1500, help="streamed tool calls")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    line = long_line(args.mib)
    ours, theirs = _best(_package(line), args.rounds), _best(_httpx_lines(line), args.rounds)
    rows.append((f"one {args.mib} MiB event line", "httpx iter_lines", ours, theirs))
    calls = tool_calls(args.calls)
    ours, theirs = _best(_package(calls), args.rounds), _best(_openai(calls), args.rounds)
    rows.append((f"{args.calls} streamed tool calls", "openai SDK", ours, theirs))
    print(f"{'input':<28} {'reference':<18} {'package s':>10} {'ref s':>8} {'ratio':>6}  target")
    for name, reference, ours, theirs in rows:
        ratio = ours / theirs
        verdict = "ok" if ratio <= TARGET else "MISSED"
        print(
            f"{name:<28} {reference:<18} {ours:>10.3f} {theirs:>8.3f} {ratio:>6.2f}"
            f"  <= {TARGET} {verdict}"
        )
    return 0  # a missed target is a result, not a failure (as in ``python -m benchmarks``)


if __name__ == "__main__":
    raise SystemExit(main())
