"""SGLang's OpenAI-compatible server (https://docs.sglang.ai/basic_usage/openai_api_completions.html).

Like vLLM's: ``GET /v1/models`` entries say ``owned_by: "sglang"`` and carry
``max_model_len``; ``tool_choice`` ``"required"`` and a named function are honoured. Whether it
reads earlier reasoning from ``reasoning`` or ``reasoning_content`` is not documented, so both
are sent; whether it hands a ``documents`` field to the chat template is not documented
either, so documents go into the prompt (never lost).
"""

from __future__ import annotations

from llama_index.llms.ai21._deployments.openai_compatible import OpenAICompatible


class SGLang(OpenAICompatible):
    kind = "sglang"
    key_setting = "it was started with --api-key"
    owned_by = frozenset({"sglang"})
    adopts_recognised_server = False
    reasoning_fields = ("reasoning", "reasoning_content")
    tool_choice_support = "native"
    reads_documents = False
    # SGLang's parsers (its "Tool Parser" docs) are named per model family, with no
    # --enable-auto-tool-choice; vLLM's flags are AI21's recipe.
    tool_call_advice = (
        "start SGLang with a --tool-call-parser that reads this format, or serve the model "
        "with vLLM and {flags} (AI21's recipe for {models}), so that the server returns "
        "tool calls itself"
    )


DEPLOYMENT = SGLang
