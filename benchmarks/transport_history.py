"""``python -m benchmarks.transport_history``: what the sync transport costs a streamed chunk,
end to end, on the code from before the HTTP layer moved onto httpx's own transport.

Issue 20 moved the sync path from a hand-written urllib3 transport onto httpx's own. Its
premise was that a streamed chunk cost the same on both ("within 1 µs"), measured by handing
the package a plain ``httpx.Client`` through ``http_client=``. This measures that comparison
again, on the same code, and today's package beside it:

- ``before, urllib3``: the package at ``--commit`` (default: the last commit with the
  hand-written transports), with its own transport;
- ``before, httpx``: the same code handed ``http_client=httpx.Client()``;
- ``now``: this checkout (httpx's own transport).

Each contender runs in a process of its own (``PYTHONPATH`` picks the tree), ``--streams``
streams of ``--tokens`` tokens a round, against one emulator process; the order is reversed
every other round. Figures are client CPU per chunk, median over rounds, through LlamaIndex's
wrapper (``stream_chat``) and without it (``_stream_chat``). Needs the git history (a full
clone); the old tree is checked out in a temporary worktree and removed afterwards.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LAST_OWN_TRANSPORT = "090057c^"  # the parent of "HTTP on maintained libraries: ..."


def _worker(argv: list[str]) -> int:
    """In a contender's process: print its per-chunk CPU, wrapped and unwrapped (µs)."""
    import httpx
    from llama_index.core.base.llms.types import ChatMessage

    from llama_index.llms.ai21 import AI21

    base_url, model, prompt_file, mode, streams = argv
    options = {"api_key": "benchmark-key", "base_url": base_url, "model": model, "max_retries": 0}
    if mode == "httpx":
        options["http_client"] = httpx.Client(timeout=60)
    llm = AI21(**options)
    messages = [ChatMessage(role="user", content=Path(prompt_file).read_text())]

    def per_chunk(stream: object) -> float:
        gc.collect()
        start = time.process_time()
        chunks = sum(1 for _ in stream(messages))  # type: ignore[operator]
        return (time.process_time() - start) / max(chunks, 1) * 1e6

    for _ in range(2):  # warm-up: the pool, imports, first calls
        per_chunk(llm.stream_chat)
    wrapped = [per_chunk(llm.stream_chat) for _ in range(int(streams))]
    unwrapped = [per_chunk(llm._stream_chat) for _ in range(int(streams))]
    print(statistics.median(wrapped), statistics.median(unwrapped))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return _worker(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transport_history")
    parser.add_argument("--commit", default=LAST_OWN_TRANSPORT)
    parser.add_argument("--tokens", type=int, default=1000, help="tokens in each stream")
    parser.add_argument("--streams", type=int, default=6, help="streams a round, per contender")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)

    from benchmarks.emulator import EmulatorProcess
    from benchmarks.prompts import long_prompt

    with tempfile.TemporaryDirectory() as scratch:
        old_tree = Path(scratch, "before")
        git = ["git", "-C", str(REPO_ROOT)]
        subprocess.run(
            [*git, "worktree", "add", "--detach", "--quiet", str(old_tree), args.commit], check=True
        )
        try:
            prompt_file = Path(scratch, "prompt.txt")
            prompt_file.write_text(long_prompt(args.tokens))
            contenders = {
                "before, urllib3": (old_tree, "own"),
                "before, httpx": (old_tree, "httpx"),
                "now": (REPO_ROOT, "own"),
            }
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
            with EmulatorProcess() as emulator:
                for round_ in range(args.rounds):
                    order = list(contenders.items())
                    for name, (tree, mode) in order if round_ % 2 == 0 else reversed(order):
                        command = [sys.executable, __file__, "--worker", emulator.base_url]
                        command += [emulator.model, str(prompt_file), mode, str(args.streams)]
                        done = subprocess.run(
                            command,
                            env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
                            cwd=tree,
                            capture_output=True,
                            text=True,
                            check=False,
                        )
                        if done.returncode:
                            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
                        wrapped, unwrapped = map(float, done.stdout.split())
                        samples[name].append((wrapped, unwrapped))
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(old_tree)], check=False)

    print(f"{'contender':<16} {'stream_chat':>12} {'_stream_chat':>13}  (CPU per chunk)")
    for name, rows in samples.items():
        wrapped = statistics.median(row[0] for row in rows)
        unwrapped = statistics.median(row[1] for row in rows)
        print(f"{name:<16} {wrapped:>9.1f} µs {unwrapped:>10.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
