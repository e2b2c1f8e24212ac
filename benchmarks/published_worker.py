"""The published llama-index-llms-ai21 0.8.0 as a benchmark contender, in its own process.

0.8.0 pins ``ai21<3``, so it cannot share a virtualenv with this package (ai21 4.x). The
benchmark starts this file as a script with the python of ``benchmarks/.venv-published`` and
drives it over stdin/stdout, one JSON object per line:

- on start it prints ``{"ready": true, "versions": {...}, "errors": {kind: message}}``, having
  tried every workload kind once (``errors`` names the kinds 0.8.0 cannot do);
- then for each ``{"spec": {...}}`` read it runs that batch with :func:`benchmarks.measure.run`
  and prints ``{"sample": {...}}`` or ``{"error": "..."}``; end of input ends it.

It is started as a script (not ``-m``) and without ``PYTHONPATH`` so that the repository's own
``llama_index.llms.ai21`` cannot shadow the published one: the repository is appended to
``sys.path`` only after the published package has been imported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import traceback
import warnings
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any, TextIO

from llama_index.core.base.llms.types import ChatMessage, MessageRole

from llama_index.llms.ai21 import AI21

sys.path.append(str(Path(__file__).resolve().parents[1]))
from benchmarks import measure
from benchmarks.prompts import MODEL

PROBE_TOKENS = 20


class Published:
    """llama-index-llms-ai21 0.8.0, through the same four calls as the in-process LLMs."""

    name = "published"

    def __init__(self, base_url: str, api_key: str, max_tokens: int) -> None:
        # 0.8.0 always sends max_tokens (default 512), so it gets the longest answer we ask for.
        self.llm = AI21(
            model=MODEL, api_key=api_key, base_url=base_url, max_retries=0, max_tokens=max_tokens
        )

    @staticmethod
    def _user(prompt: str) -> list[ChatMessage]:
        return [ChatMessage(role=MessageRole.USER, content=prompt)]

    def call(self, prompt: str) -> str:
        return str(self.llm.complete(prompt).text)

    async def acall(self, prompt: str) -> str:
        response = await self.llm.achat(self._user(prompt))
        return str(response.message.content)

    def stream(self, prompt: str) -> Iterator[str]:
        for response in self.llm.stream_chat(self._user(prompt)):
            if response.delta:
                yield response.delta

    async def astream(self, prompt: str) -> AsyncIterator[str]:
        async for response in await self.llm.astream_chat(self._user(prompt)):
            if response.delta:
                yield response.delta


def _probe(
    contender: Published, loop: asyncio.AbstractEventLoop, kind: str
) -> tuple[str, str | None]:
    tokens = PROBE_TOKENS if "stream" in kind else 0
    try:
        measure.run(contender, measure.Spec(kind, calls=1, tokens=tokens), loop)
    except Exception as exc:
        return kind, f"{type(exc).__name__}: {exc}"
    return kind, None


def serve(args: argparse.Namespace, commands: TextIO, out: TextIO) -> None:
    def reply(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    contender = Published(args.base_url, args.api_key, args.max_tokens)
    loop = asyncio.new_event_loop()
    probes = dict(_probe(contender, loop, kind) for kind in ("call", "acall", "stream", "astream"))
    versions = {name: version(name) for name in ("llama-index-llms-ai21", "ai21")}
    versions["llama-index-core"] = version("llama-index-core")
    errors = {kind: error for kind, error in probes.items() if error is not None}
    reply({"ready": True, "versions": versions, "errors": errors})
    for line in commands:
        if not line.strip():
            continue
        spec = measure.Spec(**json.loads(line)["spec"])
        try:
            sample = measure.run(contender, spec, loop)
        except Exception as exc:
            traceback.print_exc()
            reply({"error": f"{type(exc).__name__}: {exc}"})
        else:
            reply({"sample": sample.to_json()})
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--max-tokens", type=int, required=True)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # old SDK/pydantic deprecation noise, not our concern here
    out = sys.stdout
    sys.stdout = sys.stderr  # anything the libraries print must not corrupt the protocol
    serve(args, sys.stdin, out)


if __name__ == "__main__":
    main()
