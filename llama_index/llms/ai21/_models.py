"""The model table: what each AI21 model name can do (docs/models.md).

Hosted names follow AI21's Jamba API reference; the open-weight models are listed by their
Hugging Face ids (``ai21labs/...``), with AI21's serving recipe from each model card: the
tool-call format its chat template uses (``hermes`` or ``jamba``), whether it always reasons
(its generation prompt opens ``<think>``), whether its template reads a ``documents`` variable,
its context and the lowest vLLM release the card names, and the card's ``vllm serve`` flags.

Served names are matched by their last path part in any case, with what local servers add
stripped: a ``:tag`` (``...-GGUF:Q4_K_M``), a ``.gguf`` file name and its quantization
(``AI21-Jamba-Reasoning-3B-F16.gguf``), ``-GGUF``, a ``ai21labs_`` prefix (bartowski's
uploads, as Ollama runs them) and the ``AI21-`` prefix (LM Studio's
``ai21labs/jamba-reasoning-3b``).

A name that is not in the table never fails: AI21 adds models faster than packages are
released (the published 0.8.0 raised on ``jamba-large``). Names that look like Jamba get
Jamba's figures, anything else a conservative default; :func:`is_known` tells the caller
whether to warn. What a server reports about its model (the laptop deployments' discovery)
wins over the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

Family = Literal["jamba", "j2"]
ToolFormat = Literal["hermes", "jamba"]

JAMBA_CONTEXT_WINDOW = 256_000
JAMBA_MAX_OUTPUT = 4096  # the hosted API's cap on max_tokens (AI21's Jamba API reference)
J2_CONTEXT_WINDOW = 8192


@dataclass(frozen=True)
class ModelInfo:
    """Static facts about one model name."""

    family: Family
    context_window: int
    max_output: int
    is_chat_model: bool
    is_function_calling_model: bool
    tool_format: ToolFormat | None = None
    """How the model's chat template writes tool calls: ``hermes`` (``<tool_call>{...}
    </tool_call>``, vLLM's ``--tool-call-parser hermes``), ``jamba`` (``<tool_calls>[...]
    </tool_calls>``, ``--tool-call-parser jamba``); ``None``: not known (hosted names)."""
    always_reasons: bool = False
    """The generation prompt opens ``<think>``: every answer starts with reasoning."""
    template_reads_documents: bool = True
    """The chat template renders a ``documents`` variable (else documents go into the prompt)."""
    min_vllm: str | None = None
    """The lowest vLLM release the model card names."""
    vllm_flags: str | None = None
    """The model card's ``vllm serve`` flags (docs/self-hosted.md quotes them)."""


_JAMBA = ModelInfo("jamba", JAMBA_CONTEXT_WINDOW, JAMBA_MAX_OUTPUT, True, True)
# J2 is served through /complete (and /chat without tools), so LlamaIndex should
# prompt it as a completion model.
_J2 = ModelInfo("j2", J2_CONTEXT_WINDOW, 2048, False, False)
_UNKNOWN = ModelInfo("jamba", 8192, 1024, True, False)

_JAMBA_NAMES = (
    "jamba-mini",
    "jamba-large",
    "jamba-mini-2",
    "jamba-mini-2-2026-01",
    "jamba-large-1.7",
    "jamba-large-1.7-2025-07",
    "jamba-mini-1.7",
    "jamba-mini-1.7-2025-07",
    "jamba-mini-1.6",
    "jamba-large-1.6",
    "jamba-mini-1.6-2025-03",
    "jamba-large-1.6-2025-03",
    "jamba-1.5-mini",
    "jamba-1.5-large",
    "jamba-1.5",  # in llama-index-llms-ai21 0.8.0's table
    "jamba-instruct",
)
_J2_NAMES = (
    "j2-light",
    "j2-mid",
    "j2-ultra",
    # older aliases once routed by the J2 endpoints (AI21's J2 API reference)
    "j2-large",
    "j2-grande",
    "j2-jumbo",
    "j2-grande-instruct",
    "j2-jumbo-instruct",
)

# AI21's open-weight models by their Hugging Face ids, with each card's vLLM recipe.
_HERMES_FLAGS = (
    "--mamba-ssm-cache-dtype float32 --enable-auto-tool-choice --tool-call-parser hermes "
    "--enable-prefix-caching"
)
_JAMBA_1_FLAGS = "--enable-auto-tool-choice --tool-call-parser jamba"
_JAMBA2_MINI = replace(
    _JAMBA,
    tool_format="hermes",
    template_reads_documents=False,  # the card pastes documents into the user turn
    min_vllm="0.12.0",
    vllm_flags=f"{_HERMES_FLAGS} --quantization experts_int8",
)
_JAMBA2_3B = replace(_JAMBA2_MINI, min_vllm="0.10.2", vllm_flags=_HERMES_FLAGS)
_REASONING_3B = replace(
    _JAMBA,
    tool_format="hermes",
    always_reasons=True,  # its generation prompt ends in "<think>\n"
    template_reads_documents=False,  # its template has no documents variable
    min_vllm="0.11.0",
    vllm_flags=(
        "--mamba-ssm-cache-dtype float32 --reasoning-parser deepseek_r1 "
        "--enable-auto-tool-choice --tool-call-parser hermes"
    ),
)
# Jamba 1.5-1.7: AI21's vLLM guide names vLLM 0.6.5 to 0.8.5.post1 and the jamba parser.
_JAMBA_1 = replace(
    _JAMBA,
    tool_format="jamba",
    template_reads_documents=True,
    min_vllm="0.6.5",
    vllm_flags=_JAMBA_1_FLAGS,
)
OPEN_MODELS: dict[str, ModelInfo] = {
    "ai21labs/AI21-Jamba2-Mini": _JAMBA2_MINI,
    "ai21labs/AI21-Jamba2-3B": _JAMBA2_3B,
    "ai21labs/AI21-Jamba-Reasoning-3B": _REASONING_3B,
    "ai21labs/AI21-Jamba-Mini-1.7": _JAMBA_1,
    "ai21labs/AI21-Jamba-Large-1.7": _JAMBA_1,
    "ai21labs/AI21-Jamba-Mini-1.6": _JAMBA_1,
    "ai21labs/AI21-Jamba-Large-1.6": _JAMBA_1,
    "ai21labs/AI21-Jamba-1.5-Mini": _JAMBA_1,
    "ai21labs/AI21-Jamba-1.5-Large": _JAMBA_1,
}

MODELS: dict[str, ModelInfo] = {
    **dict.fromkeys(_JAMBA_NAMES, _JAMBA),
    **dict.fromkeys(_J2_NAMES, _J2),
    **OPEN_MODELS,
}
# What local servers add around a model's name (see the module docstring).
_QUANT = re.compile(r"[-.](?:f16|f32|bf16|q\d\w*|iq\d\w*|mxfp4\w*)$")


def _basename(model: str) -> str:
    """The last path part of ``model``, lower-cased."""
    return model.rstrip("/").rsplit("/", 1)[-1].lower()


def _served_key(model: str) -> str:
    """``model`` with a local server's decorations stripped (``:tag``, ``.gguf`` and its
    quantization, ``-gguf``, ``ai21labs_``, ``ai21-``), lower-cased."""
    name = model.rstrip("/").rsplit("/", 1)[-1].lower()
    name = name.split(":", 1)[0]
    if name.endswith(".gguf"):
        name = _QUANT.sub("", name.removesuffix(".gguf"))
    name = name.removesuffix("-gguf").removeprefix("ai21labs_").removeprefix("ai21-")
    return name


# Served names are often a local path, a lower-cased id or a GGUF: match on the last path part.
_BY_BASENAME = {_basename(name): info for name, info in MODELS.items()}
_BY_SERVED_KEY = {_served_key(name): info for name, info in OPEN_MODELS.items()}
_OPEN_BY_BASENAME = {_basename(name): name for name in OPEN_MODELS}
_OPEN_BY_SERVED_KEY = {_served_key(name): name for name in OPEN_MODELS}
DEFAULT_MODEL = "jamba-mini"


def _lookup(model: str) -> ModelInfo | None:
    return (
        MODELS.get(model)
        or _BY_BASENAME.get(_basename(model))
        or _BY_SERVED_KEY.get(_served_key(model))
    )


def open_model_id(model: str) -> str | None:
    """The Hugging Face id of the open model ``model`` names, in any form a server gives it
    (the id in any case, a local path, a GGUF file, an Ollama or LM Studio name); None for
    AI21's hosted names and names not in the table."""
    if model in _JAMBA_NAMES:
        return None
    return _OPEN_BY_BASENAME.get(_basename(model)) or _OPEN_BY_SERVED_KEY.get(_served_key(model))


def is_known(model: str) -> bool:
    """Whether ``model`` is in the table (by name, Hugging Face id or its last part)."""
    return _lookup(model) is not None


def model_info(model: str) -> ModelInfo:
    """Return the facts for ``model``; never raises for an unknown name."""
    info = _lookup(model)
    if info is not None:
        return info
    basename = _basename(model)
    if "jamba" in basename:
        return _JAMBA
    if basename.startswith("j2-"):
        return _J2
    return _UNKNOWN


def describe_guess(model: str) -> str:
    """What :func:`model_info` assumes for a name not in the table, for a warning."""
    info = model_info(model)
    kind = "Jamba" if info is _JAMBA else "Jurassic-2" if info is _J2 else "conservative default"
    return f"{kind} figures (context window {info.context_window})"


def is_j2(model: str) -> bool:
    """True for the legacy Jurassic-2 family, which uses its own endpoints."""
    return model_info(model).family == "j2"
