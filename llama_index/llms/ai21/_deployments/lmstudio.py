"""LM Studio's server (https://lmstudio.ai/docs/developer): llama.cpp inside, its own API beside.

``lms server start`` serves the loaded models at ``http://localhost:1234/v1`` (LM Studio's
model page for Jamba Reasoning 3B: ``ai21labs/jamba-reasoning-3b``). What differs, from LM
Studio's documentation:

- ``GET /v1/models`` entries say ``owned_by: "organization_owner"`` and carry no context
  length. Its own REST API does: ``GET /api/v1/models`` (0.4+) lists each model's
  ``loaded_instances[].config.context_length`` (the context in effect),
  ``max_context_length`` (trained) and ``capabilities.trained_for_tool_use``; the older
  ``GET /api/v0/models`` (0.3.6+) ``loaded_context_length`` and ``max_context_length``.
- Unknown paths answer HTTP 200 with ``{"error": ...}`` (never read as an answer here).
- With one model loaded the request's ``model`` is ignored.
- Reasoning in ``reasoning_content`` (its "separate reasoning_content" setting); ``tool_choice``
  ``"auto"``/``"none"``/``"required"``; ``response_format`` ``json_schema`` (``json_object``
  is refused); no ``n``.
- Bearer API tokens are optional (0.4+: "Require authentication").
"""

from __future__ import annotations

from typing import Any

from llama_index.llms.ai21._deployments.openai_compatible import OpenAICompatible
from llama_index.llms.ai21._dialect import Limits
from llama_index.llms.ai21._discovery import (
    Ask,
    Served,
    as_list,
    context_length,
    entries,
    names,
    shown_name,
)


class LMStudio(OpenAICompatible):
    kind = "lmstudio"
    aliases = ("lm-studio",)
    owned_by = frozenset({"organization_owner"})
    adopts_recognised_server = False
    reasoning_fields = ("reasoning_content",)
    tool_choice_support = "required_only"
    reads_documents = False
    key_setting = '"Require authentication" is on in its server settings, where the token is made'
    # No server flag of its own reads a format its template does not declare.
    tool_call_advice = (
        "this server returns such calls as text; vLLM started with {flags} (AI21's recipe "
        "for {models}) returns them as tool calls"
    )
    limits = Limits(max_tokens=None, response_formats=frozenset({"text", "json_schema"}), n_max=1)

    def learn(self, ask: Ask, model: str | None, listed: list[dict[str, Any]]) -> Served:
        listed_names = names(listed, "id")
        native = entries(ask.get("/api/v1/models", root=True), "models")
        if native:
            return self._from_v1(model, listed_names, native)
        older = entries(ask.get("/api/v0/models", root=True))
        return self._from_v0(model, listed_names, older)

    def _from_v1(
        self, model: str | None, listed: tuple[str, ...], native: list[dict[str, Any]]
    ) -> Served:
        llms = [m for m in native if m.get("type", "llm") == "llm"]
        loaded = [
            (m, i)
            for m in llms
            for i in as_list(m.get("loaded_instances"))
            if isinstance(i, dict) and isinstance(i.get("id"), str)
        ]
        if model is None:
            if len(loaded) == 1:
                model = loaded[0][1]["id"]
            elif len(listed) == 1:
                model = listed[0]
        match = next(((m, i) for m, i in loaded if model in (i["id"], m.get("key"))), None)
        entry = match[0] if match else next((m for m in llms if m.get("key") == model), None)
        context = None
        if match is not None:
            config = match[1].get("config")
            context = (
                context_length(config.get("context_length")) if isinstance(config, dict) else None
            )
        capabilities = entry.get("capabilities") if entry is not None else None
        capabilities = capabilities if isinstance(capabilities, dict) else {}
        tools = capabilities.get("trained_for_tool_use")
        notes = () if match or model is None else (f"model {shown_name(model)} is not loaded",)
        return Served(
            kind=self.kind,
            model=model,
            models=tuple(dict.fromkeys([*listed, *(i["id"] for _, i in loaded)])),
            context_window=context,
            trained_context_window=(
                context_length(entry.get("max_context_length")) if entry is not None else None
            ),
            function_calling=tools if isinstance(tools, bool) else None,
            notes=notes,
        )

    def _from_v0(
        self, model: str | None, listed: tuple[str, ...], older: list[dict[str, Any]]
    ) -> Served:
        loaded = [m for m in older if m.get("state") == "loaded" and isinstance(m.get("id"), str)]
        if model is None:
            if len(loaded) == 1:
                model = loaded[0]["id"]
            elif len(listed) == 1:
                model = listed[0]
        # A model may be listed twice (loaded and not): the loaded row wins.
        entry = next((m for m in loaded if m["id"] == model), None) or next(
            (m for m in older if m.get("id") == model), None
        )
        return Served(
            kind=self.kind,
            model=model,
            models=tuple(dict.fromkeys([*listed, *(m["id"] for m in loaded)])),
            context_window=(
                context_length(entry.get("loaded_context_length")) if entry is not None else None
            ),
            trained_context_window=(
                context_length(entry.get("max_context_length")) if entry is not None else None
            ),
        )


DEPLOYMENT = LMStudio
