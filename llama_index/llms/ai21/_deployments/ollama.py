"""Ollama (https://docs.ollama.com/api): Jamba from Hugging Face GGUFs on a laptop.

``ollama run hf.co/bartowski/ai21labs_AI21-Jamba-Reasoning-3B-GGUF:Q4_K_M`` serves at
``http://localhost:11434/v1``. What differs, from Ollama's documentation and sources
(``server/routes.go``, ``server/prompt.go``, ``openai/openai.go``):

- ``GET /v1/models`` lists every pulled model, ``owned_by`` its namespace (``"library"``, or a
  Hugging Face user); ``GET /api/version`` answers ``{"version": ...}``.
- The context in effect is ``num_ctx``: ``GET /api/ps`` ``context_length`` while the model is
  loaded, else a Modelfile's ``PARAMETER num_ctx`` (``POST /api/show`` ``parameters``), else
  the server's default (2048 before 0.6.7, then 4096; since 0.15.5 4096, 32768 or 262144 by
  VRAM; ``OLLAMA_CONTEXT_LENGTH`` overrides): 4096 (2048 on older servers) is assumed, the
  smallest. ``POST /api/show`` also gives the trained length
  (``model_info["<arch>.context_length"]``) and ``capabilities`` (``tools``).
- **A prompt over ``num_ctx`` loses its oldest messages without an error** (``chatPrompt``
  keeps the system messages and the last one): each request is checked against the context
  before it is sent, and a warning says so.
- ``/v1`` ignores ``tool_choice`` (not sent: a named tool is offered alone, and
  ``tool_required`` cannot be enforced), ``n``, ``documents`` (they go into the prompt) and
  ``chat_template_kwargs``; reasoning comes back in ``reasoning`` and is read back from it.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from llama_index.llms.ai21._deployments.openai_compatible import OpenAICompatible
from llama_index.llms.ai21._dialect import Limits
from llama_index.llms.ai21._discovery import (
    Ask,
    Served,
    context_length,
    entries,
    names,
    shown_name,
)

logger = logging.getLogger("llama_index.llms.ai21")

DEFAULT_NUM_CTX = 4096
"""Ollama's smallest default context since 0.6.7 (2048 before)."""
BYTES_PER_TOKEN = 4
"""For the estimate of a prompt's tokens before it is sent (English text averages about four
bytes a token; the estimate only decides whether to warn)."""


def _version(text: Any) -> tuple[int, ...]:
    """``(major, minor, patch)`` of a version string; ``()`` (read as older) if it is none."""
    parts = re.findall(r"[0-9]+", text)[:3] if isinstance(text, str) else []
    if any(len(part) > 9 for part in parts):  # int() refuses 4,300 digits: not a version
        return ()
    return tuple(int(p) for p in parts)


class Ollama(OpenAICompatible):
    kind = "ollama"
    owned_by = frozenset({"library"})
    adopts_recognised_server = False
    reasoning_fields = ("reasoning",)
    tool_choice_support = "ignored"
    reads_documents = False
    key_setting = "Ollama itself takes no key: a proxy in front of it asks for one"
    # No server flag of its own reads a format its template does not declare.
    tool_call_advice = (
        "this server returns such calls as text; vLLM started with {flags} (AI21's recipe "
        "for {models}) returns them as tool calls"
    )
    limits = Limits(
        max_tokens=None,
        response_formats=frozenset({"text", "json_object", "json_schema"}),
        n_max=1,
    )

    @classmethod
    def identify(cls, ask: Ask) -> bool:
        answer = ask.get("/api/version", root=True)
        return isinstance(answer, dict) and isinstance(answer.get("version"), str)

    def learn(self, ask: Ask, model: str | None, listed: list[dict[str, Any]]) -> Served:
        pulled = names(listed, "id")
        running = entries(ask.get("/api/ps", root=True), "models")
        if model is None:
            loaded = names(running, "model")
            model = loaded[0] if len(loaded) == 1 else pulled[0] if len(pulled) == 1 else None
        if model is None:
            return Served(kind=self.kind, model=None, models=pulled)
        notes: list[str] = []
        entry = next((m for m in running if model in (m.get("model"), m.get("name"))), None)
        context = context_length(entry.get("context_length")) if entry is not None else None
        show = ask.post("/api/show", {"model": model}, root=True)
        show = show if isinstance(show, dict) else {}
        info = show.get("model_info")
        info = info if isinstance(info, dict) else {}
        architecture = info.get("general.architecture")
        trained = (
            context_length(info.get(f"{architecture}.context_length"))
            if isinstance(architecture, str)
            else None
        )
        if context is None:
            context = _num_ctx(show.get("parameters"))
        if context is None and show:
            version = ask.get("/api/version", root=True)
            older = isinstance(version, dict) and _version(version.get("version")) < (0, 6, 7)
            context = 2048 if older else DEFAULT_NUM_CTX
            notes.append(
                f"model {shown_name(model)} is not loaded and sets no num_ctx: Ollama's smallest "
                f"default context ({context}) is assumed"
            )
        if context is not None and trained is not None:
            context = min(context, trained)
        capabilities = show.get("capabilities")
        capabilities = capabilities if isinstance(capabilities, list) else None
        return Served(
            kind=self.kind,
            model=model,
            models=tuple(dict.fromkeys([*pulled, *names(running, "model", "name")])),
            context_window=context,
            trained_context_window=trained,
            function_calling="tools" in capabilities if capabilities is not None else None,
            notes=tuple(notes),
        )

    def check_call(self, body: dict[str, Any], served: Served | None) -> None:
        if served is None or served.context_window is None:
            return
        size = len(json.dumps([body.get("messages"), body.get("tools")]).encode())
        estimate = size // BYTES_PER_TOKEN
        if estimate > served.context_window:
            logger.warning(
                "This prompt is about %d tokens, over the %d-token context Ollama runs %r "
                "with: Ollama drops the oldest messages of such a prompt without an error. "
                "Start Ollama with a larger context (OLLAMA_CONTEXT_LENGTH=...), set PARAMETER "
                "num_ctx in a Modelfile, or send less.",
                estimate,
                served.context_window,
                served.model,
            )


def _num_ctx(parameters: Any) -> int | None:
    """``num_ctx`` from ``/api/show``'s ``parameters`` text (one ``name value`` a line)."""
    if not isinstance(parameters, str):
        return None
    for line in parameters.splitlines():
        name, _, value = line.strip().partition(" ")
        digits = value.strip()
        # ASCII digits, few enough for int() (which refuses 4,300 of them, and "²")
        if name == "num_ctx" and digits.isascii() and digits.isdigit() and len(digits) <= 10:
            return context_length(int(digits))
    return None


DEPLOYMENT = Ollama
