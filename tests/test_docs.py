"""The docs site builds with ``--strict``, and every code sample on it runs.

Samples are the fenced ``python`` blocks of ``docs/*.md``. Each page's blocks run in order in one
namespace, exactly as written, with ``AI21_API_KEY``/``AI21_API_HOST`` pointing at a running
emulator, so a sample says ``AI21(model="jamba-mini")`` the way a user would. A block opts out with
``<!-- skip-test -->`` on the line before its fence (pip commands, real-key-only snippets). The
docstring examples that the API reference page renders run too, and the tables that restate the
code (constructor fields, models, the error table) are checked against the code itself.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import dataclasses
import doctest
import enum
import functools
import gc
import html
import importlib
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Settings

from ai21_emulator import Emulator, Fault
from llama_index.llms.ai21 import AI21
from llama_index.llms.ai21._models import MODELS
from tests import browser, local_servers
from tests.statuses import STATUSES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
SKIP_MARKER = re.compile(r"^\s*<!--\s*skip-test\b.*-->\s*$")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
SNIPPET = re.compile(r"^\s*-{1,}8<-{1,}")
MKDOCS_TIMEOUT = 120


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    page: str
    line: int  # 1-based line of the first line of code
    lang: str
    code: str
    skip: bool

    @property
    def runnable(self) -> bool:
        # A fence whose body is a snippet include (``--8<--``) shows a file that is tested
        # where it lives (the examples are run by test_examples.py).
        return self.lang == "python" and not self.skip and not SNIPPET.match(self.code)


def extract_blocks(text: str, page: str = "<page>") -> list[Block]:
    """Fenced code blocks in document order (indented fences too, e.g. inside admonitions)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        info = match["info"].strip()
        lang = info.split()[0].lstrip(".").split("{")[0] if info else ""
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = lines[j].strip()
            if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
                break
            body.append(lines[j])
            j += 1
        else:
            raise AssertionError(f"{page}:{i + 1}: the code fence is never closed")
        code = textwrap.dedent("\n".join(line.removeprefix(indent) for line in body))
        blocks.append(Block(page, i + 2, lang, code, bool(SKIP_MARKER.match(previous))))
        i = j + 1
    return blocks


def page_blocks(page: Path) -> list[Block]:
    return extract_blocks(page.read_text(encoding="utf-8"), page.relative_to(ROOT).as_posix())


# The README's samples are held to the same standard as the site's.
RUNNABLE_PAGES = [
    p for p in [*PAGES, ROOT / "README.md"] if any(b.runnable for b in page_blocks(p))
]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def docs_emulator() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def emulator_env(docs_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator, reset, with the environment a user of the docs would have set."""
    docs_emulator.reset()
    monkeypatch.setenv("AI21_API_KEY", docs_emulator.api_key)
    monkeypatch.setenv("AI21_API_HOST", docs_emulator.base_url)
    return docs_emulator


def run_sample(block: Block, namespace: dict[str, Any]) -> None:
    # Leading newlines make tracebacks point at the Markdown file's own line numbers.
    # Top-level ``await`` is allowed, as in a notebook cell.
    source = "\n" * (block.line - 1) + block.code
    try:
        # dont_inherit: this module's `from __future__ import annotations` must not reach the
        # samples, which users run without it (it would hide an annotation naming nothing).
        code = compile(
            source, block.page, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
        )
        result = eval(code, namespace)
        if inspect.iscoroutine(result):
            asyncio.run(result)
    except Exception as exc:
        raise AssertionError(
            f"the sample at {block.page}:{block.line} failed: {type(exc).__name__}: {exc}\n\n"
            f"{block.code}"
        ) from exc


def run_sample_tests(block: Block, namespace: dict[str, Any], emulator: Emulator) -> None:
    """Call the ``test_*`` functions a sample defines, as pytest would, with the plugin's
    emulator fixtures; each runs once."""
    fixtures = {"ai21_emulator": emulator, "ai21_emulator_server": emulator}
    done = namespace.setdefault("__tests_run__", set())
    for name, function in list(namespace.items()):
        if not (name.startswith("test_") and inspect.isfunction(function)) or name in done:
            continue
        done.add(name)
        emulator.reset()
        arguments = {p: fixtures[p] for p in inspect.signature(function).parameters}
        try:
            function(**arguments)
        except Exception as exc:
            raise AssertionError(
                f"{name}, defined by the sample at {block.page}:{block.line}, failed: {exc!r}"
            ) from exc


# --------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs site, built once with ``mkdocs build --strict``."""
    out = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=MKDOCS_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}"
    return out


def test_site_builds_strict(site: Path) -> None:
    assert (site / "reference" / "index.html").is_file()


# llama-index-workflows inspects agent instances with inspect.getmembers, which touches
# pydantic's deprecated instance attributes: a third-party warning, not the sample's.
THIRD_PARTY_WARNINGS = pytest.mark.filterwarnings(
    "ignore::pydantic.warnings.PydanticDeprecationWarning:inspect"
)


# Samples written for a self-hosted server at its usual address talk to the emulator's vLLM
# flavour instead.
LOCAL_SERVER = "http://localhost:8000/v1"


@pytest.fixture(scope="module")
def docs_vllm_emulator() -> Iterator[Emulator]:
    with Emulator(flavour="vllm") as emulator:
        yield emulator


# Samples for llama.cpp, LM Studio and Ollama at their default addresses talk to scripted
# servers that answer what those servers answer (tests/local_servers.py).
LAPTOP_SERVERS = {
    # the context the page's commands start them with (-c 16384, --context-length 16384)
    "http://localhost:8080/v1": functools.partial(local_servers.llamacpp, n_ctx=16384),
    "http://localhost:1234/v1": functools.partial(local_servers.lmstudio, context_length=16384),
    "http://localhost:11434/v1": local_servers.ollama,
}


@pytest.fixture(scope="module")
def docs_laptop_servers() -> Iterator[dict[str, str]]:
    with contextlib.ExitStack() as stack:
        yield {
            url: stack.enter_context(local_servers.serving(script())).base_url
            for url, script in LAPTOP_SERVERS.items()
        }


@THIRD_PARTY_WARNINGS
@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=[p.name for p in RUNNABLE_PAGES])
def test_page_samples_run(
    page: Path,
    emulator_env: Emulator,
    docs_vllm_emulator: Emulator,
    docs_laptop_servers: dict[str, str],
) -> None:
    saved_llm = Settings._llm  # samples may set Settings.llm, as users do
    namespace: dict[str, Any] = {"__name__": "__main__"}
    servers = {LOCAL_SERVER: docs_vllm_emulator.base_url, **docs_laptop_servers}
    try:
        for block in page_blocks(page):
            if block.runnable:
                code = block.code
                for written, running in servers.items():
                    code = code.replace(written, running)
                block = dataclasses.replace(block, code=code)
                run_sample(block, namespace)
                run_sample_tests(block, namespace, emulator_env)
                _collect_quietly()  # what the block let go of (a chat engine it replaced)
    finally:
        Settings._llm = saved_llm
        namespace.clear()
        _collect_quietly()


def _collect_quietly() -> None:
    """Collect garbage with ResourceWarning ignored. llama-index-core's chat memory leaves an
    aiosqlite connection for the garbage collector, which warns about it: collected at a random
    point of a later sample or test, the warning is an error there (an unraisable exception in
    ``Connection.__del__``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_every_fence_names_its_language() -> None:
    """An untagged or ``py`` fence would escape the sample runner; they must say ``python``."""
    for page in PAGES:
        for block in page_blocks(page):
            where = f"{block.page}:{block.line - 1}"
            assert block.lang, f"{where}: give the code fence a language"
            assert block.lang not in ("py", "python3", "py3", "pycon"), (
                f"{where}: write ```python so the sample is run by the tests"
            )


def test_skip_markers_are_rare_and_deliberate() -> None:
    """Opting out is for real-key or download-only snippets, not for samples that fail."""
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if SKIP_MARKER.match(line):
                following = next((x for x in lines[number:] if x.strip()), "")
                assert following.strip().startswith("```python"), (
                    f"{page.name}:{number}: a skip marker only applies to a python block"
                )
    skipped = [b for p in PAGES for b in page_blocks(p) if b.lang == "python" and b.skip]
    runnable = [b for p in PAGES for b in page_blocks(p) if b.runnable]
    assert len(skipped) <= len(runnable) // 10, [f"{b.page}:{b.line}" for b in skipped]


def test_extract_blocks() -> None:
    text = textwrap.dedent(
        """\
        Intro.

        ```python
        a = 1
        ```

        <!-- skip-test -->
        ```python
        pip_only()
        ```

        !!! note
            ```python title="indented"
            b = 2
            ```

        ````markdown
        ```python
        nested = True
        ```
        ````
        """
    )
    blocks = extract_blocks(text)
    assert [(b.lang, b.code, b.skip, b.line) for b in blocks] == [
        ("python", "a = 1", False, 4),
        ("python", "pip_only()", True, 9),
        ("python", "b = 2", False, 14),
        ("markdown", "```python\nnested = True\n```", False, 18),
    ]


# ------------------------------------------------------- docstring examples on the reference


def _reference_objects() -> list[Any]:
    objects = []
    for line in (DOCS / "reference.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("::: "):
            module_name, _, attr = line[4:].strip().rpartition(".")
            try:
                module = importlib.import_module(f"{module_name}.{attr}")
                objects.append(module)
            except ImportError:
                objects.append(getattr(importlib.import_module(module_name), attr))
    return objects


def _docstrings(obj: Any) -> Iterator[tuple[str, str]]:
    yield getattr(obj, "__name__", repr(obj)), inspect.getdoc(obj) or ""
    if inspect.isclass(obj):
        for name, member in vars(obj).items():
            doc = inspect.getdoc(member) if not name.startswith("_") else None
            if doc:
                yield f"{obj.__qualname__}.{name}", doc


def test_reference_docstring_examples_run(
    emulator_env: Emulator, docs_vllm_emulator: Emulator
) -> None:
    ran = 0
    for obj in _reference_objects():
        for name, doc in _docstrings(obj):
            for block in extract_blocks(doc, name):
                if block.lang == "python":
                    code = block.code.replace(LOCAL_SERVER, docs_vllm_emulator.base_url)
                    run_sample(dataclasses.replace(block, code=code), {"__name__": "__main__"})
                    ran += 1
            if ">>>" in doc:
                test = doctest.DocTestParser().get_doctest(doc, {}, name, name, 0)
                runner = doctest.DocTestRunner(
                    optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
                )
                runner.run(test, out=lambda text: None)
                failed, attempted = runner.summarize(verbose=False)
                assert failed == 0, f"the doctest in {name}'s docstring fails"
                ran += attempted
    assert ran >= 3


# ------------------------------------------------------------- tables that restate the code


def _table_rows(page: str, first_header: str) -> dict[str, list[str]]:
    """The rows of the page's table whose first column is ``first_header``, keyed by that
    column (backticks stripped)."""
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    header = next(
        (i for i, line in enumerate(lines) if re.match(rf"^\|\s*{first_header}\s*\|", line)), None
    )
    assert header is not None, f"docs/{page} has no table headed {first_header!r}"
    rows = {}
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0].strip("`")] = cells
    return rows


def _shown_default(field: Any) -> str:
    if field.default_factory is not None:
        return f"`{json.dumps(field.default_factory())}`"
    if isinstance(field.default, enum.Enum):  # PydanticProgramMode: the string a user passes
        return f'`"{field.default.value}"`'
    if isinstance(field.default, str):
        return f'`"{field.default}"`'
    return f"`{field.default!r}`"


def test_configuration_page_lists_every_field_with_its_default() -> None:
    rows = _table_rows("configuration.md", "field")
    assert "AI21_API_KEY" in " ".join(rows["api_key"])
    own = AI21.__annotations__
    for name, field in AI21.model_fields.items():
        assert name in rows, f"docs/configuration.md: the field {name!r} is not in the table"
        if name in own:
            default = rows[name][1]
            assert _shown_default(field) in default, (
                f"docs/configuration.md: {name} defaults to {_shown_default(field)}, "
                f"the table says {default}"
            )
        for variable in re.findall(r"AI21_[A-Z_]+", field.description or ""):
            assert variable in " ".join(rows[name]), f"{name}: mention {variable}"


def test_models_page_matches_the_model_table() -> None:
    rows = _table_rows("models.md", "model")
    assert set(rows) == set(MODELS), "docs/models.md and _models.MODELS list different names"
    for model, info in MODELS.items():
        _, window, output, chat, tools, _status = rows[model]
        assert (window, output, chat, tools) == (
            f"{info.context_window:,}",
            f"{info.max_output:,}",
            "yes" if info.is_chat_model else "no",
            "yes" if info.is_function_calling_model else "no",
        ), f"docs/models.md row {model}"


def test_emulator_page_lists_every_fault_field() -> None:
    rows = _table_rows("emulator.md", "field")
    assert set(rows) == {f.name for f in dataclasses.fields(Fault)}, "docs/emulator.md Fault table"


def test_error_table_is_the_tests_status_table() -> None:
    """docs/errors-and-retries.md and tests/statuses.py (what the tests check) agree."""
    rows = {k: v for k, v in _table_rows("errors-and-retries.md", "status").items() if k.isdigit()}
    documented = {
        int(code): (cells[1].strip("`"), cells[2].lower().startswith("yes"))
        for code, cells in rows.items()
    }
    assert documented == {
        s.code: (f"{s.error.__module__}.{s.error.__name__}", s.retried) for s in STATUSES
    }


def test_error_table_matches_behaviour(emulator_env: Emulator) -> None:
    """Each row: the status, the class the caller gets, and whether it is retried."""
    rows = {k: v for k, v in _table_rows("errors-and-retries.md", "status").items() if k.isdigit()}
    assert set(rows) >= {"400", "401", "403", "404", "408", "422", "429", "500", "502", "503"}
    llm = AI21(max_retries=1)
    for status, cells in rows.items():
        emulator_env.reset()
        emulator_env.inject(Fault(status=int(status), count=2, retry_after="0"))
        with pytest.raises(Exception) as caught:  # noqa: PT011 - the class is what we check
            llm.complete("hi")
        shown = cells[1].strip("`")
        actual = f"{type(caught.value).__module__}.{type(caught.value).__name__}"
        assert shown == actual, f"docs/errors-and-retries.md row {status}: the SDK raises {actual}"
        retried = cells[2].lower().startswith("yes")
        assert len(emulator_env.requests) == (2 if retried else 1), f"row {status}: retried?"


def test_benchmarks_page_includes_the_latest_results(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("benchmarks_hook", DOCS / "_hooks/benchmarks.py")
    assert spec is not None
    assert spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = f"# Benchmarks\n\n{hook.MARKER}\n"
    assert "./dev bench" in hook.render(page, tmp_path)  # no results yet: how to make them
    (tmp_path / "latest.md").write_text("# Results\n\n```bash\n# a comment\n```\n\n## Calls\n")
    assert hook.render(page, tmp_path) == (
        "# Benchmarks\n\n## Results\n\n```bash\n# a comment\n```\n\n### Calls\n\n"
    )
    (tmp_path / "latest.svg").write_text("<svg/>")
    assert f"![Benchmark chart]({hook.CHART_URI})" in hook.render(page, tmp_path)


# ------------------------------------------------------------------ the reference, as built


def _reference_html(site: Path) -> str:
    return (site / "reference" / "index.html").read_text(encoding="utf-8")


def _html_text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_reference_lists_every_constructor_argument_with_its_default(site: Path) -> None:
    page = _reference_html(site)
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", page, re.DOTALL):
        cells = [_html_text(c).strip() for c in re.findall(r"<td>(.*?)</td>", row, re.DOTALL)]
        if len(cells) == 4:
            rows[cells[0]] = cells[1:]
    assert "AI21_API_KEY" in rows["api_key"][2]
    for name, field in AI21.model_fields.items():
        assert name in rows, f"the reference page does not list AI21's {name!r}"
        _type, default, description = rows[name]
        if field.default_factory is None and type(field.default) in (str, int, float):
            assert default == repr(field.default), name
        if field.default_factory is dict:
            assert default == "{}", name
        if field.description:
            assert " ".join(field.description.split()) in description, name


def test_reference_docstring_examples_render_as_code(site: Path) -> None:
    page = _reference_html(site)
    assert "<blockquote>" not in page, "a docstring example rendered as a quotation"
    for name in ("Emulator", "Fault"):
        start = page.index(f'id="ai21_emulator.{name}"')
        section = page[start : page.find('class="doc doc-object doc-class"', start + 1)]
        assert '<span class="gp">&gt;&gt;&gt; </span>' in section, f"{name}: no code example"


# -------------------------------------------------------------- diagrams without a network

MERMAID = DOCS / "assets" / "javascripts" / "mermaid.min.js"
DIAGRAM_PAGES = {
    page.stem: count
    for page in PAGES
    if (count := sum(b.lang == "mermaid" for b in page_blocks(page)))
}


def test_diagrams_use_the_sites_own_mermaid(site: Path) -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pinned = re.search(r"dist/mermaid\.min\.js of mermaid (\d+\.\d+\.\d+)", config)
    assert pinned is not None, "mkdocs.yml says which mermaid it vendors"
    assert f'version:"{pinned[1]}"' in MERMAID.read_text(encoding="utf-8")
    assert (site / "assets" / "javascripts" / "mermaid.min.js").is_file()
    assert DIAGRAM_PAGES, "no page has a diagram"
    for page in DIAGRAM_PAGES:
        built = (site / page / "index.html").read_text(encoding="utf-8")
        assert re.search(r'<script src="[./]*assets/javascripts/mermaid\.min\.js">', built), page


@pytest.mark.slow
def test_diagrams_render_offline_in_a_browser(site: Path) -> None:
    """Each diagram is drawn as an SVG by a browser that can reach nothing but the loopback
    server of the built site."""
    executable = browser.find_browser()
    if executable is None:
        pytest.skip("no headless Chromium here (apt-get install chromium-headless-shell)")

    async def look(endpoint: str, base_url: str) -> dict[str, tuple[int, list[int], list[str]]]:
        seen = {}
        async with browser.open_page(endpoint) as page:
            for name, expected in DIAGRAM_PAGES.items():
                page.events.clear()
                await page.call("Page.navigate", url=f"{base_url}/{name}/")
                for _ in range(150):  # until every diagram is drawn, or 30 s
                    await asyncio.sleep(0.2)
                    diagrams = browser.rendered_diagrams(await page.document())
                    if len(diagrams) >= expected:
                        break
                sizes = [browser.count_nodes(d) for d in diagrams]
                seen[name] = (len(diagrams), sizes, page.requested_urls())
        return seen

    with browser.serve(site) as base_url, browser.launch(executable) as endpoint:
        seen = asyncio.run(look(endpoint, base_url))
    for name, (drawn, sizes, urls) in seen.items():
        assert drawn == DIAGRAM_PAGES[name], f"{name}: {drawn} of {DIAGRAM_PAGES[name]} drawn"
        assert all(size > 20 for size in sizes), f"{name}: an empty diagram ({sizes})"
        # The theme asks GitHub for the repository's star count; nothing else leaves loopback.
        off_site = [
            url
            for url in urls
            if not url.startswith((base_url, "data:"))
            and not url.startswith("https://api.github.com/repos/")
        ]
        assert not off_site, f"{name} needed the network: {off_site}"


# What ``llama_index.llms.ai21.utils`` exported in the published 0.8.0.
UTILS_0_8 = (
    "JAMBA_MODELS",
    "ai21_model_to_context_size",
    "is_function_calling_model",
    "message_to_ai21_message",
    "message_to_ai21_j2_message",
    "from_ai21_message_to_chat_message",
)


def test_migration_page_names_a_replacement_for_each_0_8_helper() -> None:
    assert importlib.util.find_spec("llama_index.llms.ai21.utils") is None, (
        "a utils module exists again: document it instead of the table"
    )
    rows = {
        name.split("(")[0]: cells for name, cells in _table_rows("migration.md", "0.8 name").items()
    }
    assert set(rows) == set(UTILS_0_8)
    for name, cells in rows.items():
        assert cells[2].strip(), f"docs/migration.md: no replacement for {name}"
