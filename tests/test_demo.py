"""The README's first command: the demo runs offline against the AI21 emulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata


def test_demo_runs_offline_and_labels_each_part() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI21_")}
    result = subprocess.run(
        [sys.executable, "-m", "llama_index.llms.ai21"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "emulator" in lines[0], "says on one line that it uses the emulator"
    for label in ("1. complete", "2. chat with preamble_override", "3. stream_complete", "4. a"):
        assert any(label in line for line in lines), label
    assert "[system: You are a pirate" in result.stdout
    assert "256K tokens" in result.stdout, "the query engine answers from the bundled text"


def test_demo_uses_a_server_of_your_own_from_ai21_api_host() -> None:
    from ai21_emulator import Emulator

    env = {k: v for k, v in os.environ.items() if not k.startswith("AI21_")}
    with Emulator(flavour="vllm") as server:  # a self-hosted vLLM, as far as the demo can tell
        result = subprocess.run(
            # The emulator serves several models; a server of one model needs no --model.
            [sys.executable, "-m", "llama_index.llms.ai21", "--model", "ai21labs/AI21-Jamba2-3B"],
            capture_output=True,
            text=True,
            env={**env, "AI21_API_HOST": server.base_url},
            timeout=120,
            check=False,
        )
        paths, url = {r.path for r in server.requests}, server.base_url
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"Using the server at AI21_API_HOST ({url})."
    assert "/v1/chat/completions" in paths, "the demo's calls went to that server"
    assert "256K tokens" in result.stdout


def test_help_reads_as_plain_text() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llama_index.llms.ai21", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("usage: python -m llama_index.llms.ai21 ")
    assert "AI21_API_KEY" in text
    assert "emulator" in text
    assert "--model" in text
    for markup in ("``", ":class:", ":func:"):
        assert markup not in text, f"--help shows reST markup {markup!r}"
    assert not re.search(r"^\s*\.\. ", text, re.MULTILINE), "--help shows a reST directive"
    documentation = metadata.metadata("llama-index-llms-ai21").get_all("Project-URL") or []
    url = next(u.split(", ", 1)[1] for u in documentation if u.startswith("Documentation, "))
    assert f"docs: {url}" in text


# The demo with ai21_emulator not importable (None in sys.modules blocks an import).
WITHOUT_EMULATOR = (
    "import runpy, sys; sys.modules['ai21_emulator'] = None; "
    "runpy.run_module('llama_index.llms.ai21', run_name='__main__')"
)


def test_without_the_emulator_the_demo_says_how_to_install_it() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI21_")}
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_EMULATOR],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'pip install "llama-index-llms-ai21[emulator]"' in result.stderr
    assert "from a checkout of the repository: pip install ./emulator" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
