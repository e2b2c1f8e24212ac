"""A dependency-free SVG chart: each contender's client CPU as a multiple of its workload's
baseline (the raw SDK on AI21's API; ``OpenAILike`` on the vLLM flavour)."""

from __future__ import annotations

from html import escape
from typing import Any

from benchmarks.report import CONTENDER_ORDER

COLOURS = {
    "sdk": "#4c72b0",
    "sdk+aiohttp": "#8172b2",
    "httpx": "#55a868",
    "package": "#dd8452",
    "published": "#c44e52",
    "floor": "#937860",
    "bare": "#8c8c8c",
    "openai-like": "#64b5cd",
}
BAR, GAP, LABEL_W, CHART_W, MAX_RATIO = 9, 10, 230, 520, 4.0


def svg(result: dict[str, Any]) -> str:
    """Horizontal bars per CPU workload; ratios above ``MAX_RATIO`` are clipped and labelled."""
    rows = [w for w in result["workloads"].values() if w["group"] != "memory"]
    names = [n for n in CONTENDER_ORDER if any(n in w["contenders"] for w in rows)]
    parts: list[str] = []
    y = 40
    for workload in rows:
        present = [n for n in names if "cpu_us" in workload["contenders"].get(n, {})]
        height = len(present) * BAR
        parts.append(_text(LABEL_W - 8, y + height / 2 + 4, workload["title"], "end"))
        for name in present:
            entry = workload["contenders"][name]
            base = workload.get("baseline", "sdk")
            ratio = 1.0 if name == base else entry.get(f"ratio_{base}", 0.0)
            width = min(ratio, MAX_RATIO) / MAX_RATIO * CHART_W
            parts.append(
                f'<rect x="{LABEL_W}" y="{y}" width="{width:.1f}" height="{BAR - 1}" '
                f'fill="{COLOURS.get(name, "#999")}"><title>{escape(name)}: {ratio:.2f}x'
                "</title></rect>"
            )
            parts.append(_text(LABEL_W + width + 3, y + BAR - 1, f"{ratio:.2f}", size=8))
            y += BAR
        y += GAP
    one = LABEL_W + CHART_W / MAX_RATIO
    parts.append(
        f'<line x1="{one}" y1="30" x2="{one}" y2="{y}" stroke="#333" stroke-dasharray="3"/>'
    )
    legend = [
        f'<rect x="{10 + i * 100}" y="{y + 8}" width="10" height="10" fill="{COLOURS[n]}"/>'
        + _text(10 + i * 100 + 14, y + 17, n)
        for i, n in enumerate(names)
    ]
    title = (
        "Client CPU as a multiple of the raw ai21 SDK (vLLM rows: of OpenAILike); "
        "1.0 = dashed line, lower is better"
    )
    width, height = LABEL_W + CHART_W + 60, y + 30
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">'
        f'<rect width="100%" height="100%" fill="white"/>{_text(10, 18, title, size=13)}'
        + "".join(parts + legend)
        + "</svg>\n"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = 11) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}">'
        f"{escape(text)}</text>"
    )
