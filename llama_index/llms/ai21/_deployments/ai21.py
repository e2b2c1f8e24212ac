"""AI21's hosted API (``https://api.ai21.com/studio/v1``): the default deployment.

Chat completions at ``/chat/completions`` with a bearer key (``AI21_API_KEY``); legacy
Jurassic-2 models at ``/{model}/complete`` and ``/{model}/chat``. Client-side limits follow
AI21's Jamba API reference: ``max_tokens`` up to 4096, ``response_format`` ``text`` or
``json_object``, documents as ``{"content", "id", "metadata"}`` with string metadata.
AI21 retired this API on 2026-08-09: it answers ``410 Gone`` to every request since, which
:meth:`AI21Studio.error` turns into :class:`~llama_index.llms.ai21.errors.HostedAPIRetiredError`
(AI21's deprecation notice, https://docs.ai21.com/august-deprecation-notice). Everything here
still works against the emulator and against any endpoint that speaks this API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from ai21.errors import AI21APIError

from llama_index.llms.ai21._convert import to_ai21_documents
from llama_index.llms.ai21._deployments import Deployment
from llama_index.llms.ai21._dialect import Dialect, Limits
from llama_index.llms.ai21._j2 import J2, check_model_name
from llama_index.llms.ai21._models import is_j2
from llama_index.llms.ai21.errors import SELF_HOSTED_DOCS, HostedAPIRetiredError


class AI21Studio(Deployment):
    kind = "ai21"
    default_base_url = "https://api.ai21.com/studio/v1"
    api_key_env = "AI21_API_KEY"
    api_key_required = True
    limits = Limits(
        max_tokens=4096,
        response_formats=frozenset({"text", "json_object"}),
        # The chat API's schema has no such field; its answers carry "logprobs": null.
        no_logprobs=(
            "AI21's chat API sends no token log-probabilities (logprobs is not one of its "
            "fields); a self-hosted server (vLLM, llama.cpp, Ollama) sends them"
        ),
    )
    reasoning_fields = ("reasoning_content",)  # AI21's 2026 spec: assistant reasoning_content
    tool_choice_support = "emulated"  # the API has no tool_choice field
    reads_documents = True
    missing_key_message = (
        "No AI21 API key. AI21's hosted API was retired on 2026-08-09, so there are three ways "
        "on: pass base_url=... of a server of your own serving Jamba's open weights (vLLM, "
        'llama.cpp; e.g. AI21(model="ai21labs/AI21-Jamba2-3B", '
        'base_url="http://localhost:8000/v1"), no key needed; run the offline emulator '
        '(pip install "llama-index-llms-ai21[emulator]", then python -m ai21_emulator, or its '
        "ai21_emulator pytest fixture) and pass its base_url and api_key; or, for an endpoint "
        "that still speaks AI21's API, pass api_key=... or set AI21_API_KEY. "
        f"See {SELF_HOSTED_DOCS}"
    )

    @classmethod
    def claims(cls, url: httpx.URL) -> bool:
        host = url.host.lower()
        return host == "ai21.com" or host.endswith(".ai21.com") or "/studio/" in url.path + "/"

    @classmethod
    def api_root(cls, url: httpx.URL) -> httpx.URL:
        # An ai21.com host alone is AI21's API at /studio/v1: the ai21 SDK before 4.0 took the
        # host (its STUDIO_HOST, and AI21_API_HOST, were "https://api.ai21.com") and added
        # /studio/v1 to it (ai21-python 2.x, ai21/clients/studio/client_url_parser.py), and
        # this package's 0.8 passed base_url to it as that host.
        host = url.host.lower()
        if (host == "ai21.com" or host.endswith(".ai21.com")) and url.path in ("", "/"):
            return url.copy_with(path="/studio/v1")
        return url

    def check(self, model: str) -> None:
        if is_j2(model):
            check_model_name(model)

    def dialect(self, model: str) -> Dialect:
        if is_j2(model):
            return J2()
        return super().dialect(model)

    def documents(self, documents: Sequence[Any]) -> list[dict[str, Any]]:
        return to_ai21_documents(documents)

    def error(self, exc: Exception) -> Exception:
        # 410 Gone is how AI21's API says it was retired (chat, streams, J2 routes, /models
        # alike); the SDK maps it to a bare AI21APIError that says nothing about why.
        if isinstance(exc, AI21APIError) and exc.status_code == 410:
            return HostedAPIRetiredError(exc.details)
        return exc


DEPLOYMENT = AI21Studio
