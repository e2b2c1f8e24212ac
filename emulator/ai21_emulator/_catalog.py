"""The models the emulator serves, and the precomputed ``GET /models`` body.

Context lengths follow the model cards and AI21's docs (256K for Jamba, written 256_000 as in the
llama-index-llms-ai21 model table; 8_192 for J2). ``updated``, ``quantization`` and ``pricing``
values are illustrative: the reference lists them as unknown. Prices are USD per token, as strings,
matching the OAS-2026 ``ModelPricing`` shape ``{"prompt": str, "completion": str}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelInfo:
    """One served model."""

    id: str
    name: str
    family: str  # "jamba" (chat/completions) or "j2" (/{model}/complete and /{model}/chat)
    updated: str
    context_length: int
    max_completion_tokens: int
    quantization: str
    prompt_price: str
    completion_price: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "updated": self.updated,
            "context_length": self.context_length,
            "quantization": self.quantization,
            "max_completion_tokens": self.max_completion_tokens,
            "pricing": {"prompt": self.prompt_price, "completion": self.completion_price},
        }


_JAMBA_CONTEXT = 256_000
_JAMBA_MAX_OUT = 4096
_MINI = ("FP8", "0.0000002", "0.0000004")
_LARGE = ("experts_int8", "0.000002", "0.000008")


def _jamba(model_id: str, name: str, updated: str, tier: tuple[str, str, str]) -> ModelInfo:
    return ModelInfo(
        model_id, name, "jamba", updated, _JAMBA_CONTEXT, _JAMBA_MAX_OUT, tier[0], tier[1], tier[2]
    )


def _j2(model_id: str, name: str, price: str) -> ModelInfo:
    return ModelInfo(model_id, name, "j2", "2023-03-09", 8192, 8192, "FP8", price, price)


MODELS: tuple[ModelInfo, ...] = (
    _jamba("jamba-mini", "Jamba Mini", "2026-01-15", _MINI),
    _jamba("jamba-large", "Jamba Large", "2025-07-03", _LARGE),
    _jamba("jamba-mini-2", "Jamba Mini 2", "2026-01-15", _MINI),
    _jamba("jamba-mini-2-2026-01", "Jamba Mini 2 (2026-01)", "2026-01-15", _MINI),
    _jamba("jamba-large-1.7", "Jamba Large 1.7", "2025-07-03", _LARGE),
    _jamba("jamba-large-1.7-2025-07", "Jamba Large 1.7 (2025-07)", "2025-07-03", _LARGE),
    _jamba("jamba-mini-1.7", "Jamba Mini 1.7", "2025-07-03", _MINI),
    _jamba("jamba-mini-1.7-2025-07", "Jamba Mini 1.7 (2025-07)", "2025-07-03", _MINI),
    _jamba("jamba-mini-1.6", "Jamba Mini 1.6", "2025-03-06", _MINI),
    _jamba("jamba-large-1.6", "Jamba Large 1.6", "2025-03-06", _LARGE),
    _jamba("jamba-mini-1.6-2025-03", "Jamba Mini 1.6 (2025-03)", "2025-03-06", _MINI),
    _jamba("jamba-large-1.6-2025-03", "Jamba Large 1.6 (2025-03)", "2025-03-06", _LARGE),
    _jamba("jamba-1.5-mini", "Jamba 1.5 Mini", "2024-08-22", _MINI),
    _jamba("jamba-1.5-large", "Jamba 1.5 Large", "2024-08-22", _LARGE),
    _jamba("jamba-instruct", "Jamba Instruct", "2024-03-28", ("FP8", "0.0000005", "0.0000007")),
    _j2("j2-light", "Jurassic-2 Light", "0.000003"),
    _j2("j2-mid", "Jurassic-2 Mid", "0.00001"),
    _j2("j2-ultra", "Jurassic-2 Ultra", "0.000015"),
)

BY_ID: dict[str, ModelInfo] = {m.id: m for m in MODELS}
JAMBA_IDS: tuple[str, ...] = tuple(m.id for m in MODELS if m.family == "jamba")
J2_IDS: frozenset[str] = frozenset(m.id for m in MODELS if m.family == "j2")
MODELS_BODY: bytes = json.dumps(
    {"data": [m.to_json() for m in MODELS]}, separators=(",", ":")
).encode()


# -- vLLM flavour ------------------------------------------------------------------------------
# AI21's open-weight models by their Hugging Face ids, as ``vllm serve <id>`` names them
# (AI21's vLLM guide, docs.ai21.com/docs/vllm); 256K context (the model cards).
VLLM_JAMBA2_MINI = "ai21labs/AI21-Jamba2-Mini"
VLLM_JAMBA2_3B = "ai21labs/AI21-Jamba2-3B"
VLLM_JAMBA_REASONING_3B = "ai21labs/AI21-Jamba-Reasoning-3B"
VLLM_JAMBA_MINI_17 = "ai21labs/AI21-Jamba-Mini-1.7"
VLLM_JAMBA_LARGE_17 = "ai21labs/AI21-Jamba-Large-1.7"
VLLM_MODELS: tuple[str, ...] = (
    VLLM_JAMBA2_MINI,
    VLLM_JAMBA2_3B,
    VLLM_JAMBA_REASONING_3B,
    VLLM_JAMBA_MINI_17,
    VLLM_JAMBA_LARGE_17,
)
DEFAULT_MAX_MODEL_LEN = 262_144


@dataclass(frozen=True)
class VllmTemplate:
    """What a model's chat template does with the parts of a request vLLM hands it.

    Attributes:
        reads_documents: Whether the template has a ``documents`` variable. vLLM passes the
            request's ``documents`` to the template, and one without the variable renders the
            same prompt as without them (vLLM's protocol: "If the template does not support
            RAG, this argument will have no effect").
        tool_markup: How the model writes tool calls: ``"jamba"`` (``<tool_calls>[...]
            </tool_calls>``, Jamba 1.5-1.7) or ``"hermes"`` (``<tool_call>...</tool_call>``
            blocks, Jamba2 and Reasoning 3B).
    """

    reads_documents: bool
    tool_markup: str


# AI21's model cards: Jamba 1.5-1.7's template reads ``documents``; Jamba2 Mini's card pastes
# retrieved documents into the user turn and Reasoning 3B's template has no ``documents``
# variable (docs/self-hosted.md, "Grounded generation").
JAMBA_1_TEMPLATE = VllmTemplate(reads_documents=True, tool_markup="jamba")
JAMBA_2_TEMPLATE = VllmTemplate(reads_documents=False, tool_markup="hermes")
VLLM_TEMPLATES: dict[str, VllmTemplate] = {
    VLLM_JAMBA2_MINI: JAMBA_2_TEMPLATE,
    VLLM_JAMBA2_3B: JAMBA_2_TEMPLATE,
    VLLM_JAMBA_REASONING_3B: JAMBA_2_TEMPLATE,
    VLLM_JAMBA_MINI_17: JAMBA_1_TEMPLATE,
    VLLM_JAMBA_LARGE_17: JAMBA_1_TEMPLATE,
}
_JAMBA_1_NAME = re.compile(r"jamba[\w.-]*-1\.[5-7](?![0-9])")


def vllm_template(model: str) -> VllmTemplate:
    """The chat template behind a served model name.

    AI21's open models by Hugging Face id; any other name (``--served-model-name``, a local
    path) by its last path part: one that names Jamba 1.5-1.7 (``jamba-mini-1.7``,
    ``AI21-Jamba-1.5-Large``) has Jamba 1.x's template, every other name Jamba2's, the
    template of AI21's current open models (no ``documents`` variable, Hermes tool calls).
    """
    known = VLLM_TEMPLATES.get(model)
    if known is not None:
        return known
    basename = model.rstrip("/").rsplit("/", 1)[-1].lower()
    return JAMBA_1_TEMPLATE if _JAMBA_1_NAME.search(basename) else JAMBA_2_TEMPLATE
