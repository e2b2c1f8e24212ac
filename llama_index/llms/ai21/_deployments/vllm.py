"""vLLM's OpenAI-compatible server (https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html).

What differs from a generic OpenAI-compatible server: ``GET /v1/models`` entries say
``owned_by: "vllm"`` and carry ``max_model_len`` (the context the server accepts); earlier
reasoning is read back from ``reasoning`` only (vLLM issue 38488: ``reasoning_content`` on
input is dropped); ``tool_choice`` ``"required"`` and a named function are honoured (vLLM
0.8.3+); ``documents`` reach the chat template.
"""

from __future__ import annotations

from llama_index.llms.ai21._deployments.openai_compatible import OpenAICompatible


class VLLM(OpenAICompatible):
    kind = "vllm"
    key_setting = "it was started with --api-key"
    owned_by = frozenset({"vllm"})
    adopts_recognised_server = False
    reasoning_fields = ("reasoning",)
    tool_choice_support = "native"
    reads_documents = True


DEPLOYMENT = VLLM
