"""tests/vllm: the public ``AI21`` class against real vLLM servers on loopback.

``./dev test-vllm`` (scripts/vllm/run_suite.sh) builds two tiny models and starts four vLLM
OpenAI-compatible servers, then runs this directory with their addresses in the environment.
Without them (``./dev test``) each module here is skipped.

- A Jamba 1.x stand-in (scripts/vllm/build_model.py) with the ``jamba`` tool parser, once with
  ``--api-key`` and once without. It answers along fixed token chains picked by its chat
  template; ``chains.json`` beside the model holds the text of each.
- A Jamba Reasoning 3B stand-in (scripts/vllm/build_reasoning_model.py: Reasoning 3B's own chat
  template, answers keyed by marker tokens in the prompt), once with the flags of AI21's model
  card (``--enable-auto-tool-choice --tool-call-parser hermes --reasoning-parser deepseek_r1``)
  and once with neither parser. Its ``chains.json`` holds each mode's reasoning and answer.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from llama_index.llms.ai21 import AI21


def require_servers() -> None:
    """Skip the calling test module unless ./dev test-vllm has started the servers (one
    line per module in ./dev test's summary, rather than one per test)."""
    if not os.environ.get("AI21_TEST_VLLM_URL"):
        pytest.skip("needs the vLLM servers that ./dev test-vllm starts", allow_module_level=True)


# --------------------------------------------------------------------------- tool calls


MODEL = "ai21labs/AI21-Jamba-Mini-1.7"  # the name the servers serve the tiny model under
MAX_MODEL_LEN = 2048  # the servers' --max-model-len


@dataclass(frozen=True)
class Servers:
    url: str  # base URL (.../v1) of the server started with --api-key
    key: str
    open_url: str  # base URL of the server started without --api-key
    chains: dict[str, list[str]]  # mode token -> the pieces (one token each) it answers

    def text(self, mode: str) -> str:
        return "".join(self.chains[mode])

    @property
    def answer_pieces(self) -> list[str]:
        """The default answer (no tools, no marker), token by token."""
        return self.chains["<|assistant|>"]

    @property
    def answer(self) -> str:
        return self.text("<|assistant|>")

    def requests_seen(self, handler: str, status: str = "2xx") -> int:
        """How many requests the keyed server has answered on ``handler`` with ``status``
        (its Prometheus ``http_requests_total`` counter at ``/metrics``)."""
        response = httpx.get(
            self.url.removesuffix("/v1") + "/metrics",
            headers={"Authorization": f"Bearer {self.key}"},
        )
        response.raise_for_status()
        labels = f'handler="{handler}",method="{"GET" if handler == "/v1/models" else "POST"}"'
        for line in response.text.splitlines():
            if line.startswith(f'http_requests_total{{{labels},status="{status}"}}'):
                return int(float(line.rsplit(" ", 1)[1]))
        return 0


@pytest.fixture(scope="session")
def servers() -> Servers:
    model_dir = Path(os.environ["AI21_TEST_VLLM_MODEL_DIR"])
    return Servers(
        url=os.environ["AI21_TEST_VLLM_URL"],
        key=os.environ["AI21_TEST_VLLM_KEY"],
        open_url=os.environ["AI21_TEST_VLLM_OPEN_URL"],
        chains=json.loads((model_dir / "chains.json").read_text()),
    )


@pytest.fixture
def make_llm(servers: Servers) -> Callable[..., AI21]:
    """``AI21`` configured as a self-hosted user would; keyword arguments override."""

    def make(**kwargs: Any) -> AI21:
        kwargs.setdefault("model", MODEL)
        kwargs.setdefault("base_url", servers.url)
        kwargs.setdefault("deployment", "openai-compatible")
        kwargs.setdefault("api_key", servers.key)
        kwargs.setdefault("max_tokens", 16)
        return AI21(**kwargs)

    return make


# --------------------------------------------------------------------------- Reasoning 3B

REASONING_MODEL = "ai21labs/AI21-Jamba-Reasoning-3B"  # AI21's name: the model table knows it
LOCAL_NAME = "local-model"  # the same model under a name the table does not know


def require_reasoning_servers() -> None:
    """Skip the calling test module unless ./dev test-vllm has started the Reasoning 3B servers."""
    if not os.environ.get("AI21_TEST_VLLM_REASONING_URL"):
        pytest.skip("needs the vLLM servers that ./dev test-vllm starts", allow_module_level=True)


@dataclass(frozen=True)
class Reasoning3B:
    """The two servers of the Reasoning 3B stand-in (scripts/vllm/build_reasoning_model.py)."""

    url: str  # started with AI21's card flags: hermes tool parser, deepseek_r1 reasoning parser
    plain_url: str  # started with neither parser
    chains: dict[str, dict[str, list[str]]]  # mode -> {"reasoning": [...], "answer": [...]}

    def reasoning(self, mode: str = "default") -> str:
        return "".join(self.chains[mode]["reasoning"])

    def answer(self, mode: str = "default") -> str:
        return "".join(self.chains[mode]["answer"])

    def prompt_tokens(self, messages: list[dict[str, Any]], **fields: Any) -> int:
        """How many tokens the chat template makes of ``messages`` (and ``tools``,
        ``chat_template_kwargs``...): vLLM's ``POST /tokenize`` renders the template as a chat
        request would, generation prompt included."""
        response = httpx.post(
            self.url.removesuffix("/v1") + "/tokenize",
            json={"model": REASONING_MODEL, "messages": messages, **fields},
        )
        response.raise_for_status()
        return int(response.json()["count"])


@pytest.fixture(scope="session")
def r3b() -> Reasoning3B:
    model_dir = Path(os.environ["AI21_TEST_VLLM_REASONING_DIR"])
    return Reasoning3B(
        url=os.environ["AI21_TEST_VLLM_REASONING_URL"],
        plain_url=os.environ["AI21_TEST_VLLM_PLAIN_URL"],
        chains=json.loads((model_dir / "chains.json").read_text()),
    )


@pytest.fixture
def make_r3b(r3b: Reasoning3B) -> Callable[..., AI21]:
    """``AI21`` on the server started with AI21's flags; keyword arguments override."""

    def make(**kwargs: Any) -> AI21:
        kwargs.setdefault("model", REASONING_MODEL)
        kwargs.setdefault("base_url", r3b.url)
        kwargs.setdefault("max_tokens", 32)
        return AI21(**kwargs)

    return make


class Recorder:
    """A loopback reverse proxy in front of one vLLM server that keeps every JSON request body
    (what went over the wire) and can cut a stream: ``cut_when(line)`` true for an SSE line
    drops the connection before that line, without the end of the chunked body."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removesuffix("/v1")
        self.bodies: list[dict[str, Any]] = []
        self.cut_when: Callable[[str], bool] | None = None
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.forward(b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if body:
                    recorder.bodies.append(json.loads(body))
                self.forward(body)

            def forward(self, body: bytes) -> None:
                headers = {"content-type": "application/json"}
                with (
                    httpx.Client(timeout=60) as client,
                    client.stream(
                        self.command, recorder.upstream + self.path, content=body, headers=headers
                    ) as response,
                ):
                    self.send_response(response.status_code)
                    self.send_header("Content-Type", response.headers["content-type"])
                    if not response.headers["content-type"].startswith("text/event-stream"):
                        data = response.read()
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for line in response.iter_lines():
                        if recorder.cut_when is not None and recorder.cut_when(line):
                            self.close_connection = True
                            self.wfile.flush()
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        data = (line + "\n").encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                # A client that drops a connection the proxy cut, or that stops reading: not
                # the proxy's error, and nothing to print.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def chats(self) -> list[dict[str, Any]]:
        """The chat request bodies, in order."""
        return [b for b in self.bodies if "messages" in b]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder(r3b: Reasoning3B) -> Iterator[Recorder]:
    """A :class:`Recorder` in front of the server started with AI21's flags."""
    proxy = Recorder(r3b.url)
    yield proxy
    proxy.close()
