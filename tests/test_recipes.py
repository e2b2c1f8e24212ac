"""AI21's serving recipe per model (the model cards), as the model table knows it, under every
name people serve the models by."""

from __future__ import annotations

from pathlib import Path

import pytest

from llama_index.llms.ai21._deployments.ai21 import AI21Studio
from llama_index.llms.ai21._deployments.openai_compatible import OpenAICompatible
from llama_index.llms.ai21._models import OPEN_MODELS, is_known, model_info

REASONING_3B_NAMES = [
    "ai21labs/AI21-Jamba-Reasoning-3B",
    "AI21LABS/ai21-jamba-reasoning-3b",  # any case
    "/srv/models/AI21-Jamba-Reasoning-3B/",  # a local path
    "ai21labs/AI21-Jamba-Reasoning-3B-GGUF",
    "ai21labs/AI21-Jamba-Reasoning-3B-GGUF:Q4_K_M",
    "hf.co/bartowski/ai21labs_AI21-Jamba-Reasoning-3B-GGUF:Q4_K_M",  # Ollama
    "ai21labs/jamba-reasoning-3b",  # LM Studio
    "/models/AI21-Jamba-Reasoning-3B-F16.gguf",  # llama-server's id: the file
    "AI21-Jamba-Reasoning-3B-Q8_0.gguf",
]


@pytest.mark.parametrize("name", REASONING_3B_NAMES)
def test_reasoning_3b_under_every_name(name: str) -> None:
    info = model_info(name)
    assert is_known(name)
    assert (info.tool_format, info.always_reasons, info.template_reads_documents) == (
        "hermes",
        True,
        False,
    )
    assert info.min_vllm == "0.11.0"
    assert info.context_window == 256_000


@pytest.mark.parametrize(
    ("name", "tool_format", "reasons", "documents", "min_vllm", "quantized"),
    [
        ("ai21labs/AI21-Jamba2-Mini", "hermes", False, False, "0.12.0", True),
        ("ai21labs/AI21-Jamba2-3B", "hermes", False, False, "0.10.2", False),
        ("ai21labs/AI21-Jamba-Reasoning-3B", "hermes", True, False, "0.11.0", False),
        ("ai21labs/AI21-Jamba-Mini-1.7", "jamba", False, True, "0.6.5", False),
        ("ai21labs/AI21-Jamba-Large-1.7", "jamba", False, True, "0.6.5", False),
        ("ai21labs/AI21-Jamba-1.5-Mini", "jamba", False, True, "0.6.5", False),
    ],
)
def test_each_open_model_has_its_cards_recipe(
    name: str, tool_format: str, reasons: bool, documents: bool, min_vllm: str, quantized: bool
) -> None:
    info = OPEN_MODELS[name]
    assert (info.tool_format, info.always_reasons, info.template_reads_documents) == (
        tool_format,
        reasons,
        documents,
    )
    assert info.min_vllm == min_vllm
    flags = info.vllm_flags or ""
    assert f"--tool-call-parser {tool_format}" in flags
    assert "--enable-auto-tool-choice" in flags
    assert ("--reasoning-parser deepseek_r1" in flags) is reasons
    assert ("--quantization experts_int8" in flags) is quantized
    if tool_format == "hermes":
        assert "--mamba-ssm-cache-dtype float32" in flags


@pytest.mark.parametrize(
    "name", ["local-model", "/models/model.gguf", "my-org/finetune", "qwen2.5:0.5b", "", "::", "/"]
)
def test_a_name_outside_the_table_never_fails_and_calls_tools_on_a_server_of_your_own(
    name: str,
) -> None:
    info = OpenAICompatible().model_info(name)
    assert info.is_function_calling_model is True
    assert info.template_reads_documents is False  # documents go into the prompt
    assert info.always_reasons is False  # the server's reasoning field decides
    assert AI21Studio().model_info(name).family == "jamba"


def test_near_misses_stay_unknown() -> None:
    assert not is_known("ai21labs/AI21-Jamba-Mini-1.7X")
    assert not is_known("ai21labs/AI21-Jamba-Reasoning-3B-GGUF-extra")


def test_the_self_hosted_page_gives_each_cards_flags() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "self-hosted.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| `ai21labs/")]
    commands = page.replace("\\\n    ", "")  # the commands, their continuation lines joined
    for name, info in OPEN_MODELS.items():
        short = "`-" + name.removeprefix("ai21labs/AI21-Jamba-") + "`"  # "`-Large-1.7`"
        (row,) = [r for r in rows if f"`{name}`" in r.split("|")[1] or short in r.split("|")[1]]
        assert f"`{info.vllm_flags}`" in row, name
        assert f"| {info.min_vllm}" in row, name
        if info.tool_format == "hermes":
            assert f"vllm serve {name} {info.vllm_flags}" in commands, name
