"""A self-hosted OpenAI-compatible server: the generic kind, and the base of every server's own.

A ``.../v1`` ``base_url`` selects this kind. On first need it asks the server what it is
(``GET /models``: vLLM's entries say ``owned_by: "vllm"``, SGLang's ``"sglang"``, llama.cpp's
``"llamacpp"``, LM Studio's ``"organization_owner"``; Ollama answers ``GET /api/version``) and
becomes that server's kind (:mod:`.vllm`, :mod:`.sglang`, :mod:`.llamacpp`, :mod:`.lmstudio`,
:mod:`.ollama`). A server it does not recognise is served as below, with the defaults that
work on any of them (earlier reasoning sent back in both ``reasoning`` and
``reasoning_content``, documents in the prompt).

AI21 recommends vLLM for its open models (AI21's docs, "vLLM"; ``vllm serve
ai21labs/AI21-Jamba-Mini-1.7 --enable-auto-tool-choice --tool-call-parser jamba``). What
differs from AI21's hosted API, from vLLM's OpenAI-compatible server documentation:

- ``base_url`` is the server's ``/v1`` (no default); the key is optional: without one, no
  ``Authorization`` header is sent (the server's ``--api-key`` decides whether it needs one).
  ``AI21_API_KEY`` is never sent to a server of your own.
- Streams report usage only when asked (``stream_options.include_usage``), which is asked.
- ``documents`` go to the chat template, which takes dicts of strings (``text``, ``title``).
- No client-side ``max_tokens`` cap (the server's ``max_model_len`` answers);
  ``response_format`` may be ``json_schema`` (guided decoding); any extra sampling field
  (``top_k``, ``seed``, ``repetition_penalty``, ...) is passed through.
- ``GET /v1/models`` reports each served model's ``max_model_len``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import httpx

from llama_index.llms.ai21._convert import to_flat_documents
from llama_index.llms.ai21._deployments import Deployment
from llama_index.llms.ai21._dialect import Limits
from llama_index.llms.ai21._models import ModelInfo, is_j2, is_known, model_info


class OpenAICompatible(Deployment):
    kind = "openai-compatible"
    key_setting = (
        "vLLM, SGLang and llama-server want one when started with --api-key, LM Studio with "
        '"Require authentication" on'
    )
    limits = Limits(
        max_tokens=None,
        response_formats=frozenset({"text", "json_object", "json_schema"}),
        n_max=None,
    )
    lists_models = True
    adopts_recognised_server = True
    # An unrecognised server: reasoning sent back in both fields and tool_choice as sent (the
    # base class's defaults), documents in the prompt (a server that ignored the field would
    # lose them silently).
    reads_documents = False

    @classmethod
    def claims(cls, url: httpx.URL) -> bool:
        # Only the generic kind claims a URL: a server's own kind is chosen by name or
        # recognised from the server's answers, never guessed from a port.
        path = url.path.rstrip("/")
        return (
            cls.adopts_recognised_server
            and path.endswith("/v1")
            and not path.endswith("/studio/v1")
        )

    def check(self, model: str) -> None:
        if is_j2(model):
            raise ValueError(
                f"model {model!r} is a Jurassic-2 model, which only AI21's hosted API served; "
                "an OpenAI-compatible server speaks Jamba chat"
            )

    def model_info(self, model: str) -> ModelInfo:
        served = self.served
        if served is not None and served.model == model and served.root and is_known(served.root):
            # The weights behind the name decide, not the name: vLLM's --served-model-name can
            # call Jamba2 "jamba-mini", which the table knows as a Jamba 1.x-style name.
            return model_info(served.root)
        info = model_info(model)
        if is_known(model) or info.family == "j2":
            return info
        if self.served is not None and self.served.reasoning:
            # The server's template opens <think> (llama.cpp's /props): reasoning left in the
            # text (--reasoning-format none) is split off client-side.
            info = replace(info, always_reasons=True)
        # A name outside the table (a local path, "local-model", a GGUF): every current Jamba
        # calls tools, and documents reach any model through the prompt.
        return replace(info, is_function_calling_model=True, template_reads_documents=False)

    def stream_fields(self) -> dict[str, Any]:
        return {"stream_options": {"include_usage": True}}

    def documents(self, documents: Sequence[Any]) -> list[dict[str, Any]]:
        return list(to_flat_documents(documents))


DEPLOYMENT = OpenAICompatible
