"""MkDocs hook: show ``benchmarks/results/latest.md`` (and its chart) on the benchmarks page.

The results are written by ``./dev bench`` and may not exist in a fresh checkout, so the page
holds a marker that becomes either the results or a note on how to produce them. Headings of the
results move one level down, under the page's own title.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

MARKER = "<!-- benchmark-results -->"
PAGE = "benchmarks.md"
CHART = "latest.svg"
CHART_URI = "assets/benchmarks-latest.svg"  # where the chart goes in the site
_HEADING = re.compile(r"^(#{1,5}) ", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)

MISSING = """!!! info "No results in this build"
    `benchmarks/results/latest.md` did not exist when this site was built. Produce it with
    `./dev bench` (about four minutes on two cores), then rebuild the docs.
"""


def results_dir(config: Any) -> Path:
    return Path(config.config_file_path).resolve().parent / "benchmarks" / "results"


def demote_headings(markdown: str) -> str:
    """``#`` -> ``##`` and so on, outside fenced code."""
    parts = []
    last = 0
    for fence in _FENCE.finditer(markdown):
        parts.append(_HEADING.sub(r"#\1 ", markdown[last : fence.start()]))
        parts.append(fence.group(0))
        last = fence.end()
    parts.append(_HEADING.sub(r"#\1 ", markdown[last:]))
    return "".join(parts)


def render(page_markdown: str, directory: Path) -> str:
    """The page with the marker replaced by the results in ``directory`` (or the note)."""
    results = directory / "latest.md"
    if not results.is_file():
        return page_markdown.replace(MARKER, MISSING)
    included = demote_headings(results.read_text(encoding="utf-8"))
    if (directory / CHART).is_file():
        included = f"![Benchmark chart]({CHART_URI})\n\n{included}"
    return page_markdown.replace(MARKER, included)


def on_files(files: Files, *, config: Any) -> Files:
    chart = results_dir(config) / CHART
    if chart.is_file():
        files.append(File.generated(config, CHART_URI, abs_src_path=str(chart)))
    return files


def on_page_markdown(markdown: str, *, page: Any, config: Any, files: Files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    return render(markdown, results_dir(config))
