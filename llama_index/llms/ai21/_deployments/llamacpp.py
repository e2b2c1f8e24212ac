"""llama.cpp's ``llama-server`` (its ``tools/server/README.md``), where Jamba runs on a laptop.

``llama-server -m model.gguf --jinja -c 8192`` (or the GGUF card's
``llama serve -hf ai21labs/AI21-Jamba-Reasoning-3B-GGUF:F16``) serves one model at
``http://localhost:8080/v1``. What differs from vLLM, from llama.cpp's server sources:

- ``GET /v1/models`` entries say ``owned_by: "llamacpp"``; their ``id`` is the GGUF path or the
  Hugging Face repository (the request's ``model`` is ignored), ``meta.n_ctx_train`` the
  trained context. The context the server accepts is ``GET /props``
  ``default_generation_settings.n_ctx`` (per slot: ``-c`` divided by an explicit
  ``--parallel``; slots the server picks itself share one cache, each up to ``-c``);
  ``chat_template_caps.supports_tool_calls`` says whether the template can call tools.
- Reasoning comes back in ``reasoning_content`` (``--reasoning-format deepseek``, the default,
  or ``auto``, the default of some builds, which does the same)
  or stays in ``content`` up to ``</think>`` (``--reasoning-format none``: split client-side
  for models that always reason); earlier reasoning is read back from ``reasoning_content``.
- ``tool_choice`` takes ``"auto"``, ``"none"`` and ``"required"``; a named function silently
  becomes ``"auto"`` (llama.cpp issue 26535), so only the named tool is offered, with
  ``"required"``.
- ``documents`` are ignored (no error): they go into the prompt.
- ``response_format`` ``json_object`` and ``json_schema`` become a grammar.
"""

from __future__ import annotations

from typing import Any

from llama_index.llms.ai21._deployments.openai_compatible import OpenAICompatible
from llama_index.llms.ai21._dialect import Limits
from llama_index.llms.ai21._discovery import Ask, Served, as_list, context_length, names


class LlamaCpp(OpenAICompatible):
    kind = "llamacpp"
    key_setting = "it was started with --api-key"
    aliases = ("llama.cpp", "llama-server")
    owned_by = frozenset({"llamacpp"})
    adopts_recognised_server = False
    reasoning_fields = ("reasoning_content",)
    tool_choice_support = "required_only"
    reads_documents = False
    # llama-server reads tool calls (Hermes' <tool_call> among its formats) only with its
    # Jinja templates on (llama.cpp's docs/function-calling.md: "when started w/ --jinja").
    tool_call_advice = (
        "start llama-server with --jinja (the model's own chat template) so that it returns "
        "tool calls itself"
    )
    limits = Limits(
        max_tokens=None,
        response_formats=frozenset({"text", "json_object", "json_schema"}),
        n_max=None,
    )

    def learn(self, ask: Ask, model: str | None, listed: list[dict[str, Any]]) -> Served:
        served = names(listed, "id")
        aliases = [a for e in listed for a in as_list(e.get("aliases")) if isinstance(a, str)]
        if model is None and len(served) == 1:
            model = served[0]  # one model, and any name answers
        entry = next(
            (e for e in listed if model in (e.get("id"), *as_list(e.get("aliases")))), None
        )
        meta = entry.get("meta") if entry is not None else None
        meta = meta if isinstance(meta, dict) else {}
        props = ask.get("/props", root=True)
        props = props if isinstance(props, dict) else {}
        settings = props.get("default_generation_settings")
        slot_context = context_length(settings.get("n_ctx")) if isinstance(settings, dict) else None
        caps = props.get("chat_template_caps")
        tool_calls = caps.get("supports_tool_calls") if isinstance(caps, dict) else None
        template = props.get("chat_template")
        return Served(
            kind=self.kind,
            model=model,
            models=tuple(dict.fromkeys([*served, *aliases])),
            context_window=slot_context or context_length(meta.get("n_ctx")),
            trained_context_window=context_length(meta.get("n_ctx_train")),
            function_calling=tool_calls if isinstance(tool_calls, bool) else None,
            reasoning=True if isinstance(template, str) and opens_think(template) else None,
        )


def opens_think(template: str) -> bool:
    """Whether the chat template's generation prompt opens ``<think>`` (the model always
    reasons: Jamba Reasoning 3B's ends in ``<|im_start|>assistant\n<think>\n``). Only the text
    right after ``if add_generation_prompt`` counts: templates that merely strip earlier
    ``<think>`` blocks, or open one only when asked, do not."""
    for part in template.split("add_generation_prompt")[1:]:
        segment = part.split("%}", 1)[-1].split("{%", 1)[0]
        if "<think>" in segment:
            return True
    return False


DEPLOYMENT = LlamaCpp
