"""LlamaIndex's conventions for an integration package, as the monorepo checks them.

Every integration in the LlamaIndex repository has a ``tests/test_<package>.py`` that checks its
class is one of the framework's LLMs, and a ``[tool.llamahub]`` table that LlamaHub reads to
list it. The metadata that points users somewhere (the project URLs, the notebook's Colab badge)
must agree.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.llms.function_calling import FunctionCallingLLM

from llama_index.llms.ai21 import AI21

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the dev group's tomli backport
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
REPOSITORY = PYPROJECT["project"]["urls"]["Repository"]
THIS = Path(__file__).relative_to(ROOT).as_posix()


def test_ai21_is_a_function_calling_llm() -> None:
    names_of_base_classes = [b.__name__ for b in AI21.__mro__]
    assert BaseLLM.__name__ in names_of_base_classes
    assert FunctionCallingLLM.__name__ in names_of_base_classes
    assert issubclass(AI21, FunctionCallingLLM)


def test_llamahub_table_names_the_importable_classes() -> None:
    llamahub = PYPROJECT["tool"]["llamahub"]
    module = importlib.import_module(llamahub["import_path"])
    assert set(llamahub["class_authors"]) == {"AI21"}
    for name in llamahub["class_authors"]:
        assert name in module.__all__
        assert getattr(module, name) is AI21


def test_development_tools_are_a_dependency_group_not_an_extra() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(extras) == {"tokenizer", "emulator"}, "only user-facing extras are published"
    dev = " ".join(PYPROJECT["dependency-groups"]["dev"])
    for tool in ("pytest", "ruff", "mypy", "mkdocs", "nbclient", "ai21-tokenizer", "ai21-emulator"):
        assert tool in dev, tool
    # `uv run` takes the emulator from this checkout, editable, as ./dev does.
    source = PYPROJECT["tool"]["uv"]["sources"]["ai21-emulator"]
    assert source == {"path": "emulator", "editable": True}
    emulator = tomllib.loads((ROOT / "emulator" / "pyproject.toml").read_text(encoding="utf-8"))
    assert emulator["project"]["name"] == "ai21-emulator"
    assert not any("llama-index" in dep for dep in emulator["project"]["dependencies"])


def test_the_pythons_named_are_the_pythons_tested() -> None:
    """Both distributions list, as classifiers, every minor Python from requires-python's floor
    (what ./dev test-lowest runs on) to the one ./dev test-newest runs on; no more, no fewer."""
    newest = re.search(r"^NEWEST=3\.(\d+)$", (ROOT / "scripts/test_newest.sh").read_text(), re.M)
    assert newest is not None
    for path in (ROOT / "pyproject.toml", ROOT / "emulator" / "pyproject.toml"):
        project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
        floor = re.fullmatch(r">=3\.(\d+)", project["requires-python"])
        assert floor is not None, path
        minors = [
            int(c.rsplit(".", 1)[1])
            for c in project["classifiers"]
            if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
        ]
        assert minors == list(range(int(floor[1]), int(newest[1]) + 1)), path


def test_project_urls_and_colab_badge_name_one_repository() -> None:
    urls = PYPROJECT["project"]["urls"]
    assert urls["Homepage"] == REPOSITORY
    assert REPOSITORY.startswith("https://github.com/")
    for name in ("Documentation", "Changelog"):
        assert urls[name].replace("/blob/", "/tree/").startswith(REPOSITORY + "/"), name
    # A URL into the repository must name a path that exists in this checkout.
    for name in ("Documentation", "Changelog"):
        relative = urls[name].replace("/blob/", "/tree/").removeprefix(REPOSITORY + "/")
        assert (ROOT / relative).exists(), f"{name} points at {relative}, which is not here"

    github = REPOSITORY.removeprefix("https://github.com/")
    owner_repo, _, rest = github.partition("/tree/")
    branch, _, subdir = rest.partition("/")
    badge = (
        f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/"
        f"{subdir}/notebooks/ai21.ipynb"
    )
    notebook = json.loads((ROOT / "notebooks" / "ai21.ipynb").read_text(encoding="utf-8"))
    first = "".join(notebook["cells"][0]["source"])
    assert f'href="{badge}"' in first, "the Colab badge opens this notebook in that repository"
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for link in re.findall(
            r"https://colab\.research\.google\.com/github/[^)\s\"]+", page.read_text()
        ):
            assert link == badge, f"{page.name} links the notebook elsewhere: {link}"


def test_docs_site_links_the_same_repository() -> None:
    mkdocs = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert f"\nrepo_url: {REPOSITORY}\n" in mkdocs


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=120
    ).stdout


@pytest.mark.slow
def test_uv_run_pytest_works_from_a_fresh_clone(tmp_path: Path) -> None:
    """What every integration in the LlamaIndex repository runs: ``uv run -- pytest``, here on
    a clone of the last commit, with nothing installed beforehand (uv makes the environment
    from ``pyproject.toml``: the package and its ``dev`` group). One test file, so that the
    suite does not run itself again (and its fast tests only, not this one)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout of the project")
    uv = pytest.importorskip("uv", reason="uv is in the dev group").find_uv_bin()
    clone = tmp_path / "clone"
    _git("clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("UV_", "VIRTUAL_ENV", "PYTEST_", "AI21_"))
    }
    env["UV_PYTHON"] = sys.executable  # this Python; never download one
    env["UV_PYTHON_DOWNLOADS"] = "never"
    result = subprocess.run(
        [uv, "run", "--", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", THIS],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
    assert (clone / ".venv").is_dir()
    # uv's lock file and environment are ignored: the clone stays clean.
    assert _git("status", "--porcelain", cwd=clone) == ""
