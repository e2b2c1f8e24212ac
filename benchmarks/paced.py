"""``python -m benchmarks.paced``: streams paced as a model sends them, one event every few ms.

The main run's emulator sends a stream's events all at once, so a reader finds many of them in
each read. A model served for real sends one token every few milliseconds: every event is then
a read of its own, after a wakeup, with cold caches. Here the emulator (a separate process)
waits ``--delay`` seconds between events (its ``stream_delay`` fault, sent as a request header),
and each reader's client CPU is divided by the events it received, best of ``--rounds``:

- ``httpx`` and ``urllib3``: the same stream read by plain httpx (``iter_lines``) and by urllib3
  (``read_chunked``), each line decoded with ``json.loads``: the transports' own floors;
- ``sdk`` / ``sdk async``: the raw ``ai21`` SDK's stream;
- ``package`` / ``package async``: this package's ``stream_chat`` / ``astream_chat``.

No targets: what a process pays per token of a real stream, for the figures in
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable

import httpx
import urllib3
from ai21 import AI21Client, AsyncAI21Client
from ai21.models.chat import UserMessage
from llama_index.core.base.llms.types import ChatMessage

from benchmarks.emulator import EmulatorProcess
from benchmarks.prompts import MODEL
from llama_index.llms.ai21 import AI21

PROMPT = "Tell me a story, one token at a time."


def _headers(tokens: int, delay: float) -> dict[str, str]:
    return {
        "X-Emulator-Answer-Tokens": str(tokens),
        "X-Emulator-Fault": json.dumps({"stream_delay": delay}),
    }


def _body() -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": True}


def _events(line: bytes | str) -> int:
    """1 for a ``data:`` line of an event (decoded, as any client must), else 0."""
    text = (line.decode() if isinstance(line, bytes) else line).rstrip("\r")
    if not text.startswith("data: ") or text == "data: [DONE]":
        return 0
    json.loads(text[6:])
    return 1


Reader = Callable[[], int]  # reads one stream; returns the events it received


def readers(
    base_url: str, api_key: str, headers: dict[str, str]
) -> tuple[dict[str, Reader], Callable[[], None]]:
    """The readers, and what closes their clients and event loop."""
    auth = {"Authorization": f"Bearer {api_key}", **headers}
    client = httpx.Client(headers=auth, timeout=60)
    pool = urllib3.PoolManager(headers={**auth, "Content-Type": "application/json"})
    url = base_url + "/chat/completions"
    sdk = AI21Client(api_key=api_key, api_host=base_url, headers=headers)
    asdk = AsyncAI21Client(api_key=api_key, api_host=base_url, headers=headers)
    llm = AI21(
        api_key=api_key, base_url=base_url, model=MODEL, max_retries=0, default_headers=headers
    )
    messages = [ChatMessage(role="user", content=PROMPT)]
    loop = asyncio.new_event_loop()

    def with_httpx() -> int:
        with client.stream("POST", url, json=_body()) as response:
            return sum(_events(line) for line in response.iter_lines())

    def with_urllib3() -> int:
        response = pool.request(
            "POST", url, body=json.dumps(_body()).encode(), preload_content=False
        )
        events, rest = 0, b""
        for piece in response.read_chunked():
            *lines, rest = (rest + piece).split(b"\n")
            events += sum(_events(line) for line in lines)
        response.release_conn()
        return events

    def with_sdk() -> int:
        user = [UserMessage(content=PROMPT)]
        return sum(1 for _ in sdk.chat.completions.create(model=MODEL, messages=user, stream=True))

    def with_sdk_async() -> int:
        async def run() -> int:
            user = [UserMessage(content=PROMPT)]
            stream = await asdk.chat.completions.create(model=MODEL, messages=user, stream=True)
            return sum([1 async for _ in stream])

        return loop.run_until_complete(run())

    def with_package() -> int:
        return sum(1 for _ in llm.stream_chat(messages))

    def with_package_async() -> int:
        async def run() -> int:
            return sum([1 async for _ in await llm.astream_chat(messages)])

        return loop.run_until_complete(run())

    def close() -> None:
        loop.run_until_complete(llm.aclose())
        loop.run_until_complete(asdk._client.aclose())  # the SDK has no public close
        loop.close()
        llm.close()
        sdk._client.close()  # the same
        client.close()
        pool.clear()

    runs = {
        "httpx": with_httpx,
        "urllib3": with_urllib3,
        "sdk": with_sdk,
        "sdk async": with_sdk_async,
        "package": with_package,
        "package async": with_package_async,
    }
    return runs, close


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paced")
    parser.add_argument("--tokens", type=int, default=200, help="events in each stream")
    parser.add_argument("--delay", type=float, default=0.002, help="seconds between events")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    best: dict[str, float] = {}
    with EmulatorProcess() as emulator:
        runs, close = readers(
            emulator.base_url, emulator.api_key, _headers(args.tokens, args.delay)
        )
        try:
            for read in runs.values():  # a warm-up stream each: pools, imports, first calls
                read()
            for _ in range(args.rounds):
                for name, read in runs.items():
                    start = time.process_time()
                    events = read()
                    per_event = (time.process_time() - start) / max(events, 1)
                    best[name] = min(best.get(name, float("inf")), per_event)
        finally:
            close()
    print(f"{'reader':<14} {'CPU per event':>14}  ratio")
    for name, seconds in best.items():
        baseline = best["sdk async" if name.endswith("async") else "sdk"]
        print(f"{name:<14} {seconds * 1e6:>11.1f} µs  {seconds / baseline:.2f}x sdk")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
