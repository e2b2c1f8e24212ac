"""Model names as local servers report them, matched to the model table.

llama.cpp reports a GGUF path or a Hugging Face repository with a quantization tag
(``ai21labs/AI21-Jamba-Reasoning-3B-GGUF:F16``), Ollama a tagged name
(``hf.co/bartowski/ai21labs_AI21-Jamba-Reasoning-3B-GGUF:Q4_K_M``), LM Studio a short key
(``ai21labs/jamba-reasoning-3b``). Each is reduced to the model it packages, so the table's
facts (tool-call format, always reasoning, context) apply.
"""

from __future__ import annotations

import re

from llama_index.llms.ai21._models import ModelInfo, is_known, model_info

# A quantization or precision suffix: -F16, .Q4_K_M, -q8_0, -IQ4_XS, -BF16, -MXFP4 ...
_QUANT = re.compile(r"[-_.](?:i?q\d\w*|[bf]f?\d+|mxfp\d+)$", re.IGNORECASE)


def candidates(name: str) -> list[str]:
    """``name`` and the table names it may package, most specific first."""
    base = name.strip().rstrip("/").rsplit("/", 1)[-1]
    base = base.split(":", 1)[0]  # an Ollama or Hugging Face tag (":Q4_K_M", ":latest")
    if base.lower().endswith(".gguf"):
        base = base[: -len(".gguf")]
    base = _QUANT.sub("", base)
    if base.lower().endswith("-gguf"):
        base = base[: -len("-gguf")]
    base = re.sub(r"^ai21labs_", "", base, flags=re.IGNORECASE)  # bartowski's file names
    found = [name, base]
    if not base.lower().startswith("ai21-"):
        found.append(f"ai21-{base}")  # LM Studio's key drops the "AI21-" of the repository name
    return found


def local_model_info(name: str) -> ModelInfo:
    """The table's facts for the model ``name`` packages (the guess for ``name`` if none)."""
    for candidate in candidates(name):
        if is_known(candidate):
            return model_info(candidate)
    return model_info(name)


def is_known_locally(name: str) -> bool:
    return any(is_known(candidate) for candidate in candidates(name))
