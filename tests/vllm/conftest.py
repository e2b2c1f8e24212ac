"""tests/vllm: the public ``AI21`` class against real vLLM servers on loopback.

``./dev test-vllm`` (scripts/vllm/run_suite.sh) builds the tiny model of
scripts/vllm/build_model.py, starts two vLLM OpenAI-compatible servers with the ``jamba``
tool parser (one with ``--api-key``, one without) and runs this directory with their
addresses in the environment. Without them (``./dev test``) each module here is skipped.

The model answers along fixed token chains picked by its chat template (see the builder's
docstring); ``chains.json`` beside the model holds the text of each.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
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
