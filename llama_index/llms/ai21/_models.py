"""The model table: what each AI21 model name can do (docs/models.md).

Hosted names follow AI21's Jamba API reference; the open-weight models are listed by their
Hugging Face ids (``ai21labs/...``, the model cards give 256K context and tool use), as a
self-hosted server such as vLLM serves them by default.

A name that is not in the table never fails: AI21 adds models faster than packages are
released (the published 0.8.0 raised on ``jamba-large``). Names that look like Jamba get
Jamba's figures, anything else a conservative default; :func:`is_known` tells the caller
whether to warn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["jamba", "j2"]

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

# AI21's open-weight models (Apache-2.0) by their Hugging Face ids.
OPEN_MODELS = (
    "ai21labs/AI21-Jamba2-Mini",
    "ai21labs/AI21-Jamba2-3B",
    "ai21labs/AI21-Jamba-Reasoning-3B",
    "ai21labs/AI21-Jamba-Mini-1.7",
    "ai21labs/AI21-Jamba-Large-1.7",
    "ai21labs/AI21-Jamba-Mini-1.6",
    "ai21labs/AI21-Jamba-Large-1.6",
    "ai21labs/AI21-Jamba-1.5-Mini",
    "ai21labs/AI21-Jamba-1.5-Large",
)

MODELS: dict[str, ModelInfo] = {
    **dict.fromkeys(_JAMBA_NAMES, _JAMBA),
    **dict.fromkeys(_J2_NAMES, _J2),
    **dict.fromkeys(OPEN_MODELS, _JAMBA),
}
# Served names are often a local path or a lower-cased id: match on the last path part.
_BY_BASENAME = {name.rsplit("/", 1)[-1].lower(): info for name, info in MODELS.items()}
DEFAULT_MODEL = "jamba-mini"


def _lookup(model: str) -> ModelInfo | None:
    return MODELS.get(model) or _BY_BASENAME.get(model.rstrip("/").rsplit("/", 1)[-1].lower())


def is_known(model: str) -> bool:
    """Whether ``model`` is in the table (by name, Hugging Face id or its last part)."""
    return _lookup(model) is not None


def model_info(model: str) -> ModelInfo:
    """Return the facts for ``model``; never raises for an unknown name."""
    info = _lookup(model)
    if info is not None:
        return info
    basename = model.rstrip("/").rsplit("/", 1)[-1].lower()
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
