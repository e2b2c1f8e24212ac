"""The package's imports point one way (docs/architecture.md, "One chat() request"): no cycle
between its modules, no import inside a function except of an optional extra and the two
imports by name the docs name, and one ``chat()`` runs code in five of its modules."""

from __future__ import annotations

import ast
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import pytest
from llama_index.core.llms import ChatMessage

from ai21_emulator import Emulator
from llama_index.llms.ai21 import AI21

PACKAGE = "llama_index.llms.ai21"
ROOT = Path(__file__).resolve().parents[1] / "llama_index" / "llms" / "ai21"
# Imported where they are needed because they are optional extras, not runtime dependencies.
OPTIONAL = {"ai21_tokenizer", "tokenizers", "ai21_emulator"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def imported(node: ast.Import | ast.ImportFrom, here: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: from the package this module is in
        anchor = here if is_package else here.rpartition(".")[0]
        for _ in range(node.level - 1):
            anchor = anchor.rpartition(".")[0]
        base = f"{anchor}.{base}" if base else anchor
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def edges() -> dict[str, set[str]]:
    """Each module's imports of the package's other modules, type-checking ones included
    (the package's ``__init__`` is left out: importing any module runs it anyway)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in imported(node, name, path.name == "__init__.py"):
                    if target in MODULES and target not in (name, PACKAGE):
                        targets.add(target)
        graph[name] = targets
    return graph


def test_the_package_has_no_import_cycle() -> None:
    graph = edges()
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, "import cycle: " + " -> ".join([*visiting, name])
        visiting.append(name)
        for target in sorted(graph[name]):
            visit(target)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_no_import_inside_a_function_but_optional_extras() -> None:
    found = []
    for name, path in MODULES.items():
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    roots = {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    roots = {(node.module or "").split(".")[0]}
                elif isinstance(node, ast.ImportFrom):
                    roots = {PACKAGE}
                else:
                    continue
                if not roots <= OPTIONAL:
                    found.append(f"{name}.{function.name} (line {node.lineno})")
    assert not found, f"imports inside functions: {found}"


# The package's imports by name (``importlib.import_module``), all inside functions, each for a
# reason docs/architecture.md gives: the SDK, imported when the package is, so that what its
# import does to httpx's logger can be undone; and each module of ``_deployments/``, imported
# to find its deployment (one new module is one new deployment).
IMPORTS_BY_NAME = {
    f"{PACKAGE}._import_sdk_without_its_httpx_handler",
    f"{PACKAGE}._deployments.kinds",
}


def test_the_only_imports_by_name_are_the_two_the_docs_name() -> None:
    found = set()
    for name, path in MODULES.items():
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if not isinstance(node, ast.Call):
                    continue
                called = node.func
                if isinstance(called, ast.Attribute):
                    called_name = called.attr
                elif isinstance(called, ast.Name):
                    called_name = called.id
                else:
                    continue
                if called_name in {"import_module", "__import__"}:
                    found.add(f"{name}.{function.name}")
    assert found == IMPORTS_BY_NAME


def modules_entered(call: Callable[[], object]) -> list[str]:
    """The package's modules whose code runs during ``call()``, in order, a change of module
    counted once (a profiler hook; ``sys.setprofile`` sees every Python-level call)."""
    entered: list[str] = []

    def hook(frame: FrameType, event: str, _: object) -> None:
        name = frame.f_globals.get("__name__", "")
        if event == "call" and name.startswith(PACKAGE + "."):
            short = name.removeprefix(PACKAGE + ".")
            if not entered or entered[-1] != short:
                entered.append(short)

    sys.setprofile(hook)
    try:
        call()
    finally:
        sys.setprofile(None)
    return entered


ONE_CHAT = ["_convert", "_dialect", "_http", "_retry", "base"]


@pytest.mark.parametrize("ai21_emulator", ["ai21", "vllm"], indirect=True)
def test_one_chat_runs_code_in_five_modules(ai21_emulator: Emulator) -> None:
    """docs/architecture.md's path: after an instance's first call, one ``chat()`` (sync or
    async) runs code in base, _dialect, _convert, _retry and _http only; a stream adds _stream."""
    llm = AI21(
        api_key=ai21_emulator.api_key,
        base_url=ai21_emulator.base_url,
        model="jamba-mini" if ai21_emulator.api_key else "ai21labs/AI21-Jamba2-3B",
        max_retries=0,
    )
    messages = [ChatMessage(role="user", content="Hi")]
    calls: dict[str, Callable[[], object]] = {
        "chat": lambda: llm.chat(messages),
        "achat": lambda: asyncio.run(llm.achat(messages)),
        "stream_chat": lambda: list(llm.stream_chat(messages)),
    }
    for call in calls.values():
        call()  # the first call of each kind: the server is asked, the dialect made
    seen = {name: modules_entered(call) for name, call in calls.items()}
    assert sorted(set(seen["chat"])) == ONE_CHAT
    assert sorted(set(seen["achat"])) == ONE_CHAT
    assert sorted(set(seen["stream_chat"])) == sorted([*ONE_CHAT, "_stream"])
    assert len(seen["chat"]) <= 9  # entries: base → _dialect → _convert → ... (now 9)
    # Async: the same five modules, entered more often (each resumption of a coroutine counts,
    # and each asyncio.run makes and closes its loop's client): 19 entries now.
    assert len(set(seen["achat"])) <= 5
