"""AI21's hosted API (``https://api.ai21.com/studio/v1``): the default deployment.

Chat completions at ``/chat/completions`` with a bearer key (``AI21_API_KEY``); legacy
Jurassic-2 models at ``/{model}/complete`` and ``/{model}/chat``. Client-side limits follow
AI21's Jamba API reference: ``max_tokens`` up to 4096, ``response_format`` ``text`` or
``json_object``, documents as ``{"content", "id", "metadata"}`` with string metadata.
AI21 announced the sunset of this API on 2026-08-09 (docs/models.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from llama_index.llms.ai21._convert import to_ai21_documents
from llama_index.llms.ai21._deployments import Deployment
from llama_index.llms.ai21._j2 import check_model_name
from llama_index.llms.ai21._models import is_j2
from llama_index.llms.ai21._params import Limits

if TYPE_CHECKING:
    from llama_index.llms.ai21._dialect import Dialect


class AI21Studio(Deployment):
    kind = "ai21"
    default_base_url = "https://api.ai21.com/studio/v1"
    api_key_env = "AI21_API_KEY"
    api_key_required = True
    limits = Limits(max_tokens=4096, response_formats=frozenset({"text", "json_object"}))

    @classmethod
    def claims(cls, url: httpx.URL) -> bool:
        host = url.host.lower()
        return host == "ai21.com" or host.endswith(".ai21.com") or "/studio/" in url.path + "/"

    def check(self, model: str) -> None:
        if is_j2(model):
            check_model_name(model)

    def dialect(self, model: str) -> Dialect:
        if is_j2(model):
            from llama_index.llms.ai21._j2 import J2

            return J2()
        return super().dialect(model)

    def documents(self, documents: Sequence[Any]) -> list[dict[str, Any]]:
        return to_ai21_documents(documents)


DEPLOYMENT = AI21Studio
