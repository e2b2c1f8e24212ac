"""The model table: what each AI21 model name can do (ai21-api.md 1.7 and 2.1).

A name that is not in the table never fails: AI21 adds models faster than packages are
released (the published 0.8.0 raised on ``jamba-large``). Names that look like Jamba get
Jamba's figures, anything else a conservative default; either way one warning is logged.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger(__name__)

Family = Literal["jamba", "j2"]

JAMBA_CONTEXT_WINDOW = 256_000
JAMBA_MAX_OUTPUT = 4096  # the API's cap on max_tokens (ai21-api.md 1.2)
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
    # older aliases still routed by the J2 endpoints (ai21-api.md 2.2)
    "j2-large",
    "j2-grande",
    "j2-jumbo",
    "j2-grande-instruct",
    "j2-jumbo-instruct",
)

MODELS: dict[str, ModelInfo] = {
    **dict.fromkeys(_JAMBA_NAMES, _JAMBA),
    **dict.fromkeys(_J2_NAMES, _J2),
}
DEFAULT_MODEL = "jamba-mini"

_warned: set[str] = set()
_warned_lock = threading.Lock()


def model_info(model: str) -> ModelInfo:
    """Return the facts for ``model``; never raises for an unknown name."""
    info = MODELS.get(model)
    if info is not None:
        return info
    lowered = model.lower()
    if lowered.startswith("jamba"):
        info = _JAMBA
    elif lowered.startswith("j2-"):
        info = _J2
    else:
        info = _UNKNOWN
    with _warned_lock:
        first_time = model not in _warned
        _warned.add(model)
    if first_time:
        logger.warning(
            "Model %r is not in llama-index-llms-ai21's model table; assuming %s figures "
            "(context window %d). Pass the right values via a newer package if this is wrong.",
            model,
            "Jamba"
            if info is _JAMBA
            else ("Jurassic-2" if info is _J2 else "conservative default"),
            info.context_window,
        )
    return info


def is_j2(model: str) -> bool:
    """True for the legacy Jurassic-2 family, which uses its own endpoints."""
    return model_info(model).family == "j2"
