"""The shell commands users copy from the docs, checked against the tools that run them.

Python samples are run by test_docs.py; this module reads the ``bash`` fences of README.md and
docs/*.md (and, where a page names flags in prose or the package names them in a message, those
too) and checks them against:

- the emulator's own command line (parsed in-process: options, their combinations, values),
  ``./dev``'s subcommands, the benchmarks' options and the package's extras;
- llama.cpp's ``llama-server --help``, when ``./dev test-llamacpp`` has built it (skipped
  otherwise);
- vLLM's ``--help=all`` and its reasoning-parser and quantization registries, from the venv
  ``./dev test-vllm`` installs (skipped otherwise; slow: vLLM takes seconds to import).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai21_emulator.__main__ import _parser as emulator_parser
from ai21_emulator.__main__ import configure
from benchmarks.cli import _parser as bench_parser
from llama_index.llms.ai21._markup import HERMES, JAMBA
from llama_index.llms.ai21._models import OPEN_MODELS
from tests.test_docs import extract_blocks

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the dev group's tomli backport
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "emulator/README.md"]
# Where the package and the emulator name commands in messages and docstrings.
SOURCES = [
    *sorted((ROOT / "llama_index").rglob("*.py")),
    *sorted((ROOT / "emulator/ai21_emulator").rglob("*.py")),
    *sorted((ROOT / "examples").glob("*.py")),
    ROOT / "notebooks/ai21.ipynb",
]
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llama-index-llms-ai21"


def _where(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def shell_commands() -> Iterator[tuple[str, list[str]]]:
    """``(page:line, argv)`` of each command in the pages' bash fences: continuation lines
    joined, comments and leading ``VAR=value`` assignments dropped."""
    for page in PAGES:
        for block in extract_blocks(page.read_text(encoding="utf-8"), _where(page)):
            if block.lang != "bash":
                continue
            for offset, line in enumerate(block.code.replace("\\\n", " ").splitlines()):
                argv = shlex.split(line, comments=True)
                while argv and ASSIGNMENT.match(argv[0]):
                    argv.pop(0)
                if argv:
                    yield f"{block.page}:{block.line + offset}", argv


def commands_of(program: list[str]) -> list[tuple[str, list[str]]]:
    """The bash fences' commands that start with ``program``, with the arguments after it."""
    return [
        (at, argv[len(program) :])
        for at, argv in shell_commands()
        if argv[: len(program)] == program
    ]


def texts() -> Iterator[tuple[str, str]]:
    for path in [*PAGES, *SOURCES]:
        yield _where(path), path.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- the emulator


def emulator_command_lines() -> list[tuple[str, list[str]]]:
    """Every ``python -m ai21_emulator ...`` with options, in fences, prose, messages and
    docstrings (a usage synopsis, with its ``[...]``, is not a command)."""
    found = commands_of(["python", "-m", "ai21_emulator"])
    pattern = re.compile(
        r"python -m ai21_emulator((?: +--?[a-z][^\s`\"#)]*(?: +[^\s`\"#)-][^\s`\"#)]*)?)+)"
    )
    for where, text in texts():
        for match in pattern.finditer(text):
            found.append((where, shlex.split(match[1])))
    return found


@pytest.mark.parametrize(("at", "args"), emulator_command_lines(), ids=lambda v: str(v)[:60])
def test_every_emulator_command_in_the_docs_runs(at: str, args: list[str]) -> None:
    try:
        configure(args)
    except SystemExit as exc:
        pytest.fail(f"{at}: python -m ai21_emulator {shlex.join(args)} exits {exc.code}")


def test_the_emulator_command_lines_are_found() -> None:
    """The scan sees the commands it must check (a regex that stopped matching would pass
    every case above by finding none)."""
    lines = {shlex.join(args) for _, args in emulator_command_lines()}
    assert "--flavour vllm --port 8000 --served-model-name ai21labs/AI21-Jamba2-3B" in lines
    assert "--port 8021 --log" in lines
    with pytest.raises(SystemExit):  # and the check refuses what the emulator refuses
        configure(["--served-model-name", "x"])  # needs --flavour vllm


def test_the_emulator_page_lists_every_option_of_its_command_line() -> None:
    text = (ROOT / "docs/emulator.md").read_text(encoding="utf-8")
    paragraph = text[text.index("Options: `--host`") :].split("\n\n")[0]
    listed = set(re.findall(r"`(--[a-z][\w-]*)", paragraph))
    options = {
        option
        for action in emulator_parser()._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    assert listed == options


# ----------------------------------------------------------------- ./dev, benchmarks, extras


def test_every_dev_subcommand_in_the_docs_exists() -> None:
    script = (ROOT / "dev").read_text(encoding="utf-8")
    cases = set(re.findall(r"^    ([a-z-]+)\)$", script, re.MULTILINE))
    assert {"demo", "test", "lint", "bench"} <= cases
    named = {
        (where, name)
        for where, text in texts()
        for name in re.findall(r"(?<![\w/.])\./dev ([a-z][a-z-]*)", text)
    }
    assert named
    unknown = sorted(f"{where}: ./dev {name}" for where, name in named if name not in cases)
    assert not unknown, unknown


def test_every_benchmark_command_in_the_docs_parses() -> None:
    found = commands_of(["./dev", "bench"])
    assert found
    for at, args in found:
        try:
            bench_parser().parse_args(args)
        except SystemExit:
            pytest.fail(f"{at}: ./dev bench {shlex.join(args)}")


def test_every_extra_named_in_an_install_line_exists() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = set(project["optional-dependencies"])
    named = {
        (where, extra.strip())
        for where, text in texts()
        for group in re.findall(r"llama-index-llms-ai21\[([^\]]+)\]", text)
        for extra in group.split(",")
    }
    assert {extra for _, extra in named} >= {"tokenizer", "emulator"}
    assert not [(w, e) for w, e in named if e not in extras]


# ------------------------------------------------------------------------- server flags


def _flags(args: list[str]) -> list[tuple[str, str | None]]:
    """``(flag, value)`` pairs of a command's arguments (``value`` None for a switch)."""
    pairs: list[tuple[str, str | None]] = []
    for i, arg in enumerate(args):
        if arg.startswith("-"):
            value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("-") else None
            pairs.append((arg, value))
    return pairs


def _options(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", help_text))


def llama_server() -> Path | None:
    found = subprocess.run(
        ["bash", str(ROOT / "scripts/llamacpp/build_server.sh"), "--cached-only"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return Path(found.stdout.strip()) if found.returncode == 0 else None


def test_every_llama_server_command_uses_flags_the_server_has() -> None:
    server = llama_server()
    if server is None:
        pytest.skip("llama-server is not built here (./dev test-llamacpp builds it)")
    help_text = subprocess.run(
        [str(server), "--help"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    options = _options(help_text)
    used = [
        (at, flag, value)
        for at, args in commands_of(["llama-server"])
        for flag, value in _flags(args)
    ]
    # the flags the pages and the package name in prose
    for where, text in texts():
        if "llama" in where or where.endswith(("laptop.md", "self-hosted.md")):
            for flag, value in re.findall(r"--(reasoning-format|parallel|jinja)(?: (\w+))?", text):
                used.append((where, f"--{flag}", value or None))
    assert {flag for _, flag, _ in used} >= {"-hf", "-m", "--jinja", "-c", "--api-key", "--port"}
    unknown = [f"{at}: {flag}" for at, flag, _ in used if flag not in options]
    assert not unknown, unknown
    formats = {value for _, flag, value in used if flag == "--reasoning-format" and value}
    assert formats >= {"none", "deepseek"}
    for value in formats:
        assert re.search(rf"^\s*- {value}:", help_text, re.MULTILINE), f"--reasoning-format {value}"


def vllm_python() -> Path | None:
    """The venv ``./dev test-vllm`` installs vLLM in (scripts/vllm/install.sh), newest first."""
    found = sorted(CACHE.glob("vllm-*/venv/bin/python"), reverse=True)
    return next((p for p in found if (p.parent.parent / ".installed").exists()), None)


# Runs inside vLLM's venv: its --help=all, and which of the names given on stdin its
# registries know (reasoning parsers and quantization methods are not choices in --help).
VLLM_PROBE = """
import contextlib, io, json, runpy, sys, warnings
warnings.simplefilter("ignore")
names = json.loads(sys.stdin.read())
out = io.StringIO()
sys.argv = ["vllm", "--help=all"]
with contextlib.redirect_stdout(out):
    try:
        runpy.run_module("vllm.entrypoints.openai.api_server", run_name="__main__")
    except SystemExit:
        pass
from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
from vllm.reasoning import ReasoningParserManager
def reasoning(name):
    try:
        ReasoningParserManager.get_reasoning_parser(name)
    except Exception:
        return False
    return True
print(json.dumps({
    "help": out.getvalue(),
    "--reasoning-parser": [n for n in names["--reasoning-parser"] if reasoning(n)],
    "--quantization": [n for n in names["--quantization"] if n in QUANTIZATION_METHODS],
}))
"""


def vllm_uses() -> list[tuple[str, str, str | None]]:
    """``(where, flag, value)`` of every vLLM flag the docs and the package give."""
    used = [
        (at, flag, value)
        for at, args in commands_of(["vllm", "serve"])
        for flag, value in _flags(args[1:])  # args[0]: the model
    ]
    for name, info in OPEN_MODELS.items():
        for flag, value in _flags(shlex.split(info.vllm_flags or "")):
            used.append((f"_models.py {name}", flag, value))
    for markup in (HERMES, JAMBA):  # the flags the unread-tool-call error names
        for flag, value in _flags(shlex.split(markup.flags)):
            used.append((f"_markup.py {markup.parser}", flag, value))
    # flags named in the vLLM pages' prose, in backticks (values only where they are literal),
    # but llama-server's (test_every_llama_server_command_uses_flags_the_server_has checks them)
    for page in ("self-hosted.md", "scaling.md", "chat-and-completion.md", "tools-and-agents.md"):
        text = (ROOT / "docs" / page).read_text(encoding="utf-8")
        for other_server, span in re.findall(r"(llama-server's )?`(--[a-z][^`]*)`", text):
            if other_server:
                continue
            for flag, value in _flags(shlex.split(span)):
                literal = value if value and not value.isupper() else None
                used.append((f"docs/{page}", flag, literal))
    return used


def test_every_vllm_command_uses_flags_and_values_vllm_has() -> None:
    python = vllm_python()
    if python is None:
        pytest.skip("vLLM's venv is not installed here (./dev test-vllm installs it)")
    used = vllm_uses()
    assert {flag for _, flag, _ in used} >= {
        "--mamba-ssm-cache-dtype",
        "--tool-call-parser",
        "--reasoning-parser",
        "--quantization",
        "--data-parallel-size",
        "--tensor-parallel-size",
        "--api-key",
        "--max-model-len",
    }
    registries = ("--reasoning-parser", "--quantization")
    names = {r: sorted({v for _, f, v in used if f == r and v}) for r in registries}
    probe = subprocess.run(
        [str(python), "-c", VLLM_PROBE],
        input=json.dumps(names),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "VLLM_LOGGING_LEVEL": "ERROR"},
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    answer = json.loads(probe.stdout.strip().splitlines()[-1])
    help_text = answer["help"]
    options = _options(help_text)
    assert "--enable-auto-tool-choice" in options  # the help was read
    unknown = sorted({f"{at}: {flag}" for at, flag, _ in used if flag not in options})
    assert not unknown, unknown
    for registry in registries:
        assert sorted(answer[registry]) == names[registry], registry
    # values of flags whose --help lists its choices: {a,b,c}
    choices = {
        flag: set(listed.split(","))
        for flag, listed in re.findall(r"^\s+(--[a-z][\w-]*) \{([^}]+)\}", help_text, re.MULTILINE)
    }
    assert "hermes" in choices["--tool-call-parser"]
    wrong = sorted(
        {
            f"{at}: {flag} {value}"
            for at, flag, value in used
            if value and flag in choices and value not in choices[flag]
        }
    )
    assert not wrong, wrong
