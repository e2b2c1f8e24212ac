"""``python -m benchmarks.llamacpp``: client CPU per streamed token against a real llama-server.

The package next to LlamaIndex's ``OpenAILike`` (what a llama.cpp user picks today) and plain
httpx (the transport's floor), all streaming from the same llama.cpp ``llama-server`` on
loopback, which serves the tiny Jamba GGUF of ``scripts/llamacpp/build_model.py`` (Jamba
Reasoning 3B's template). Its ``#loop`` prompt makes the model reason for three tokens, then
answer without end until ``max_tokens``: each stream is ``--tokens`` content chunks.

    python -m benchmarks.llamacpp                 # 1,000-token streams, 6 rounds (~2 minutes)
    python -m benchmarks.llamacpp --tokens 200 --rounds 2 --calls 1   # a quick look
    python -m benchmarks.llamacpp --build         # build llama-server first if it is not cached

The numbers are client CPU (``time.process_time()`` of this process, all threads) over whole
streams (request included) divided by the content chunks received; the server's work is in its
own process and does not count. Each round runs every contender once (order reversed every
other round, after a warm-up stream each), and a ratio is the median of the per-round ratios,
as in ``python -m benchmarks`` (benchmarks/README.md). Results: ``llamacpp.md`` and
``llamacpp.json`` in ``--out`` (default ``benchmarks/results``).

Without a built llama-server (``./dev test-llamacpp`` builds and caches it) the run says so and
exits 0, unless ``--build`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.llms.openai_like import OpenAILike  # type: ignore[import-untyped]

from llama_index.llms.ai21 import AI21

REPO = Path(__file__).resolve().parents[1]
PREPARE = REPO / "scripts" / "llamacpp" / "prepare.sh"
MODEL = "ai21labs/AI21-Jamba-Reasoning-3B"
PROMPT = "#loop"  # the tiny model's marker for an answer that never ends
REASONING_TOKENS = 3  # "Looping", " forever.\n", "</think>" before the answer
TIMEOUT = 300.0
BASELINE = "openai-like"


class Contender(Protocol):
    name: str

    def stream(self) -> Iterator[str]: ...

    def astream(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


def _user() -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=PROMPT)]


class Package:
    """This package, as a llama.cpp user configures it (no key: the server has none).

    Default retries here, and for ``OpenAILike``: llama-server closes a connection idle for 5 s
    (cpp-httplib's keep-alive timeout), and without retries the package's next request on that
    pooled connection fails (``RemoteProtocolError``) where httpx's pool reconnects.
    """

    name = "package"

    def __init__(self, base_url: str, max_tokens: int) -> None:
        self.llm = AI21(model=MODEL, base_url=base_url, max_tokens=max_tokens)

    def stream(self) -> Iterator[str]:
        for response in self.llm.stream_chat(_user()):
            if response.delta:
                yield response.delta

    async def astream(self) -> AsyncIterator[str]:
        async for response in await self.llm.astream_chat(_user()):
            if response.delta:
                yield response.delta

    async def aclose(self) -> None:
        await self.llm.aclose()


class OpenAILikeContender:
    """``OpenAILike`` as its README configures it for a local server (one client reused)."""

    name = "openai-like"

    def __init__(self, base_url: str, max_tokens: int) -> None:
        self.llm = OpenAILike(
            model=MODEL,
            api_base=base_url,
            api_key="none",
            is_chat_model=True,
            max_tokens=max_tokens,
            timeout=TIMEOUT,
        )

    def stream(self) -> Iterator[str]:
        for response in self.llm.stream_chat(_user()):
            if response.delta:
                yield response.delta

    async def astream(self) -> AsyncIterator[str]:
        async for response in await self.llm.astream_chat(_user()):
            if response.delta:
                yield response.delta

    async def aclose(self) -> None:
        if self.llm._aclient is not None:  # OpenAILike has no close of its own
            await self.llm._aclient.close()


class Httpx:
    """Plain httpx reading the SSE lines with ``json.loads``: what any client has to do."""

    name = "httpx"

    def __init__(self, base_url: str, max_tokens: int) -> None:
        self.body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": max_tokens,
            "stream": True,
        }
        self.client = httpx.Client(base_url=base_url, timeout=TIMEOUT)
        self.aclient = httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT)

    @staticmethod
    def _delta(line: str) -> str | None:
        if not line.startswith("data: "):
            return ""
        if line == "data: [DONE]":
            return None
        choices = json.loads(line[6:])["choices"]
        return (choices[0]["delta"].get("content") or "") if choices else ""

    def stream(self) -> Iterator[str]:
        with self.client.stream("POST", "/chat/completions", json=self.body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                delta = self._delta(line)
                if delta is None:
                    return
                if delta:
                    yield delta

    async def astream(self) -> AsyncIterator[str]:
        async with self.aclient.stream("POST", "/chat/completions", json=self.body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                delta = self._delta(line)
                if delta is None:
                    return
                if delta:
                    yield delta

    async def aclose(self) -> None:
        self.client.close()
        await self.aclient.aclose()


def batch(
    contender: Contender, kind: str, calls: int, loop: asyncio.AbstractEventLoop
) -> dict[str, float]:
    """``calls`` streams of ``kind`` ("stream" or "astream"): client CPU, wall, chunks."""

    async def drain_async() -> int:
        return sum([1 async for _ in contender.astream()])

    gc.collect()
    gc.freeze()  # as benchmarks/measure.py: a batch pays for its own garbage only
    cpu0, wall0 = time.process_time(), time.perf_counter()
    chunks = 0
    for _ in range(calls):
        if kind == "stream":
            chunks += sum(1 for _ in contender.stream())
        else:
            chunks += loop.run_until_complete(drain_async())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    gc.unfreeze()
    return {"cpu": cpu, "wall": wall, "chunks": chunks, "calls": calls}


def measure(
    contenders: list[Contender], kind: str, rounds: int, calls: int, tokens: int
) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    try:
        for contender in contenders:  # warm-up: connections, imports, caches
            batch(contender, kind, 1, loop)
        samples: dict[str, list[dict[str, float]]] = {c.name: [] for c in contenders}
        for r in range(rounds):
            order = contenders if r % 2 == 0 else contenders[::-1]
            for contender in order:
                sample = batch(contender, kind, calls, loop)
                if sample["chunks"] != tokens * calls:
                    raise RuntimeError(
                        f"{contender.name}: {sample['chunks']} chunks in {calls} streams, "
                        f"expected {tokens} each"
                    )
                samples[contender.name].append(sample)

        async def close_all() -> None:
            await asyncio.gather(*(c.aclose() for c in contenders))

        loop.run_until_complete(close_all())
    finally:
        loop.close()
    per_chunk = {name: [s["cpu"] / s["chunks"] for s in rows] for name, rows in samples.items()}
    result: dict[str, Any] = {"per_chunk_us": {}, "ratio_to_" + BASELINE: {}, "tokens_per_s": {}}
    for name, values in per_chunk.items():
        result["per_chunk_us"][name] = statistics.median(values) * 1e6
        result["ratio_to_" + BASELINE][name] = statistics.median(
            v / b for v, b in zip(values, per_chunk[BASELINE], strict=True)
        )
        result["tokens_per_s"][name] = statistics.median(
            s["chunks"] / s["wall"] for s in samples[name]
        )
    return result


# ---------------------------------------------------------------------------- the server


def prepare(build: bool) -> tuple[Path, Path] | None:
    """The cached llama-server and model (``None`` when llama-server is not built)."""
    args = ["bash", str(PREPARE), sys.executable, *([] if build else ["--cached-only"])]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode in (3, 4):
        sys.stderr.write(done.stderr)
        return None
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"preparing llama-server failed (exit {done.returncode})")
    server_bin, model_dir = done.stdout.split()
    return Path(server_bin), Path(model_dir)


class Server:
    """A llama-server on a free loopback port, in a process group of its own."""

    def __init__(self, server_bin: Path, model_dir: Path, n_ctx: int, threads: int) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        self.process = subprocess.Popen(
            [
                str(server_bin),
                *("-m", str(model_dir / "tiny-jamba.gguf"), "--jinja"),
                *("-c", str(n_ctx), "-np", "1", "-t", str(threads)),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit("llama-server did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


# ---------------------------------------------------------------------------- the report


def report(results: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        "# Client CPU per streamed token, real llama-server",
        "",
        f"llama-server (llama-cpp-python {meta['llama_cpp_python']} sdist), tiny Jamba GGUF, "
        f"{meta['tokens']:,}-token streams, {meta['rounds']} rounds x {meta['calls']} streams; "
        f"{meta['python']}, {meta['machine']}.",
        "",
        "| workload | contender | CPU per chunk (µs) | ratio to openai-like | tokens/s (wall) |",
        "|---|---|---:|---:|---:|",
    ]
    for kind, result in results.items():
        for name, us in result["per_chunk_us"].items():
            ratio = result["ratio_to_" + BASELINE][name]
            rate = result["tokens_per_s"][name]
            lines.append(f"| {kind} | {name} | {us:.1f} | {ratio:.2f}x | {rate:,.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.llamacpp", description=__doc__)
    parser.add_argument("--tokens", type=int, default=1000, help="content chunks per stream")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=2, help="streams per batch")
    parser.add_argument("--threads", type=int, default=1, help="llama-server's -t")
    parser.add_argument("--build", action="store_true", help="build llama-server if not cached")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)

    prepared = prepare(args.build)
    if prepared is None:
        print(
            "SKIPPED: no llama-server is built yet. `./dev test-llamacpp` builds and caches it "
            "(about 10 minutes on 2 cores), or run with --build.",
            file=sys.stderr,
        )
        return 0
    server = Server(*prepared, n_ctx=REASONING_TOKENS + args.tokens + 512, threads=args.threads)
    try:
        max_tokens = REASONING_TOKENS + args.tokens
        results = {}
        for kind, title in (("stream", "stream_chat()"), ("astream", "astream_chat()")):
            print(f"==> {title}, {args.tokens:,} tokens", file=sys.stderr)
            contenders: list[Contender] = [
                OpenAILikeContender(server.url, max_tokens),
                Package(server.url, max_tokens),
                Httpx(server.url, max_tokens),
            ]
            results[title] = measure(contenders, kind, args.rounds, args.calls, args.tokens)
    finally:
        server.stop()
    meta = {
        "tokens": args.tokens,
        "rounds": args.rounds,
        "calls": args.calls,
        "llama_cpp_python": "0.3.36",
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    text = report(results, meta)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "llamacpp.md").write_text(text)
    (args.out / "llamacpp.json").write_text(
        json.dumps({"meta": meta, "results": results}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
