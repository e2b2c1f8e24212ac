"""tests/llamacpp: the public ``AI21`` class against real llama.cpp servers on loopback.

``./dev test-llamacpp`` (scripts/llamacpp/run_suite.sh) builds llama-server from the
llama-cpp-python sdist, writes the tiny Jamba GGUF of scripts/llamacpp/build_model.py (Jamba
Reasoning 3B's chat template, answers fixed by markers in the prompt) and starts three servers:
one with ``--api-key``, one without, one without and with ``--reasoning-format none``. Their
addresses come in the environment; without them (``./dev test``) each module here is skipped.

``chains.json`` beside the model holds, per mode, the reasoning and the answer the model gives,
piece by piece (one token each). :class:`Recorder` is a loopback proxy in front of a server that
keeps every request it forwards, for exact assertions on what went over the wire.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from llama_index.llms.ai21 import AI21


def require_servers() -> None:
    """Skip the calling test module unless ./dev test-llamacpp has started the servers."""
    if not os.environ.get("AI21_TEST_LLAMACPP_URL"):
        pytest.skip(
            "needs the llama-servers that ./dev test-llamacpp starts", allow_module_level=True
        )


# The name a user of AI21's GGUF passes (llama-server ignores it and serves its one model).
MODEL = "ai21labs/AI21-Jamba-Reasoning-3B"


@dataclass(frozen=True)
class Servers:
    url: str  # base URL (.../v1) of the server started with --api-key
    key: str
    open_url: str  # without --api-key
    raw_url: str  # without --api-key, with --reasoning-format none
    n_ctx: int  # the servers' -c
    server_bin: Path
    model_dir: Path
    chains: dict[str, Any]

    def reasoning(self, mode: str = "default") -> str:
        """The reasoning as llama-server returns it in ``reasoning_content`` (the template's
        generation prompt opened ``<think>\\n``; the model's reasoning ends in a newline)."""
        return "".join(self.chains["modes"][mode]["reasoning"])

    def answer(self, mode: str = "default") -> str:
        """The answer as llama-server returns it (without the newlines after ``</think>``)."""
        return "".join(self.chains["modes"][mode]["answer"]).lstrip("\n")

    def pieces(self, mode: str, part: str) -> list[str]:
        return list(self.chains["modes"][mode][part])

    def completion_tokens(self, mode: str = "default") -> int:
        """Tokens generated for a whole answer: reasoning, ``</think>``, the answer, EOS."""
        modes = self.chains["modes"][mode]
        return len(modes["reasoning"]) + 1 + len(modes["answer"]) + 1

    def root(self, url: str | None = None) -> str:
        return (url or self.url).removesuffix("/v1")

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def apply_template(self, body: dict[str, Any]) -> str:
        """The prompt llama-server renders for a chat request body (``POST /apply-template``)."""
        fields = {k: body[k] for k in ("messages", "tools", "chat_template_kwargs") if k in body}
        response = httpx.post(f"{self.root()}/apply-template", json=fields, headers=self.auth())
        response.raise_for_status()
        return str(response.json()["prompt"])

    def count_tokens(self, text: str) -> int:
        response = httpx.post(
            f"{self.root()}/tokenize",
            json={"content": text, "parse_special": True},
            headers=self.auth(),
        )
        response.raise_for_status()
        return len(response.json()["tokens"])


@pytest.fixture(scope="session")
def servers() -> Servers:
    model_dir = Path(os.environ["AI21_TEST_LLAMACPP_MODEL_DIR"])
    return Servers(
        url=os.environ["AI21_TEST_LLAMACPP_URL"],
        key=os.environ["AI21_TEST_LLAMACPP_KEY"],
        open_url=os.environ["AI21_TEST_LLAMACPP_OPEN_URL"],
        raw_url=os.environ["AI21_TEST_LLAMACPP_RAW_URL"],
        n_ctx=int(os.environ["AI21_TEST_LLAMACPP_N_CTX"]),
        server_bin=Path(os.environ["AI21_TEST_LLAMACPP_SERVER"]),
        model_dir=model_dir,
        chains=json.loads((model_dir / "chains.json").read_text()),
    )


@pytest.fixture
def make_llm(servers: Servers) -> Callable[..., AI21]:
    """``AI21`` configured as a llama.cpp user would; keyword arguments override."""

    def make(**kwargs: Any) -> AI21:
        kwargs.setdefault("model", MODEL)
        kwargs.setdefault("base_url", servers.url)
        kwargs.setdefault("api_key", servers.key)
        kwargs.setdefault("max_tokens", 64)
        return AI21(**kwargs)

    return make


# ---------------------------------------------------------------------------- the recorder


@dataclass
class Exchange:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the JSON body, or None


@dataclass
class Recorder:
    """A loopback proxy in front of ``upstream`` (a server's root URL) that keeps each request.

    Requests are forwarded byte for byte; answers are streamed back as they arrive (SSE
    included), closing the connection after each (HTTP/1.0), so what the client sees is the
    server's own answer.
    """

    upstream: str
    exchanges: list[Exchange] = field(default_factory=list)
    url: str = ""  # this proxy's base URL, .../v1

    def bodies(self, path_suffix: str = "/chat/completions") -> list[dict[str, Any]]:
        return [e.body for e in self.exchanges if e.path.endswith(path_suffix)]

    @property
    def paths(self) -> list[str]:
        return [f"{e.method} {e.path}" for e in self.exchanges]


def _handler(recorder: Recorder) -> type[http.server.BaseHTTPRequestHandler]:
    target = httpx.URL(recorder.upstream)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length) if length else b""
            try:
                body = json.loads(payload) if payload else None
            except ValueError:
                body = None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
            recorder.exchanges.append(Exchange(self.command, self.path, headers, body))
            upstream = http.client.HTTPConnection(target.host, target.port, timeout=60)
            try:
                upstream.request(self.command, self.path, body=payload, headers=headers)
                answer = upstream.getresponse()
                self.send_response_only(answer.status, answer.reason)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Connection", "close")
                self.end_headers()
                while chunk := answer.read1(65536):
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except OSError:
                pass  # the upstream or the client went away: the connection just closes
            finally:
                upstream.close()

        do_GET = do_POST = _forward

    return Handler


@pytest.fixture
def record(servers: Servers) -> Iterator[Callable[..., Recorder]]:
    """``record(url=servers.url)``: a :class:`Recorder` in front of that server."""
    started: list[http.server.ThreadingHTTPServer] = []

    def start(url: str | None = None) -> Recorder:
        recorder = Recorder(upstream=servers.root(url))
        proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
        proxy.daemon_threads = True
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        started.append(proxy)
        recorder.url = f"http://127.0.0.1:{proxy.server_address[1]}/v1"
        return recorder

    yield start
    for proxy in started:
        proxy.shutdown()
        proxy.server_close()
