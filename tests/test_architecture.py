"""The package's imports point one way (docs/architecture.md, "One chat() request"): no cycle
between its modules, and no import inside a function except of an optional extra."""

from __future__ import annotations

import ast
from pathlib import Path

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
