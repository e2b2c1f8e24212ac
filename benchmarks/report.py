"""From samples to numbers: medians, ratios to the baselines (the raw SDK on AI21's API,
``OpenAILike`` on vLLM), targets, and the Markdown tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from benchmarks.measure import Sample
from benchmarks.runner import Outcome
from benchmarks.workloads import Plan, Workload

BASELINES = ("sdk", "published", "openai-like")  # ratio_<name> wherever <name> ran too
CONTENDER_ORDER = (
    "sdk",
    "sdk+aiohttp",
    "httpx",
    "package",
    "published",
    "floor",
    "bare",
    "openai-like",
)
BOUND = "bare"  # the least any LlamaIndex LLM on httpx's sync transport costs (bare.py)
SMALL_MULTIPLE = 8.0  # "a small multiple of the text": peak memory / answer size


def _per_unit(workload: Workload, sample: Sample) -> float:
    """CPU seconds per call or per chunk; for memory workloads, the peak in bytes."""
    if workload.group == "memory":
        return float(sample.peak)
    count = sample.chunks if workload.unit == "chunk" else sample.calls
    return sample.cpu / count


def summarize(workload: Workload, outcome: Outcome) -> dict[str, Any]:
    """Per contender: the median per round, and medians of per-round ratios to baselines
    (time to first token: added over the workload's own baseline)."""
    values = {
        name: [_per_unit(workload, s) for s in samples]
        for name, samples in outcome.samples.items()
        if samples
    }
    contenders: dict[str, Any] = {}
    for name, mine in values.items():
        entry: dict[str, Any] = {"rounds": len(mine)}
        if workload.group == "memory":
            entry.update(_memory(workload, outcome.samples[name]))
        else:
            entry["cpu_us"] = median(mine) * 1e6
            entry["cpu_us_min"] = min(mine) * 1e6
            entry["per_second"] = median(
                (s.chunks if workload.unit == "chunk" else s.calls) / s.wall
                for s in outcome.samples[name]
            )
        for base in BASELINES:
            if base in values and base != name:
                pairs = zip(mine, values[base], strict=False)
                entry[f"ratio_{base}"] = median(a / b for a, b in pairs)
        if workload.unit == "chunk" and "floor" in values and "sdk" in values and name != "floor":
            # Its own share: what is left of a chunk's CPU once LlamaIndex's floor (the same
            # callbacks around a canned stream) is taken off, per round, to the raw SDK's chunk.
            rounds = zip(mine, values["floor"], values["sdk"], strict=False)
            entry["own_share_sdk"] = median((a - floor) / sdk for a, floor, sdk in rounds)
        if workload.unit == "chunk" and workload.group == "stream":
            entry.update(_ttft(outcome.samples[name], outcome.samples.get(workload.baseline)))
        contenders[name] = entry
    return {
        "title": workload.title,
        "group": workload.group,
        "server": workload.server,
        "baseline": workload.baseline,
        "unit": workload.unit,
        "spec": {
            "kind": workload.spec.kind,
            "calls_per_batch": workload.spec.calls,
            "in_flight": workload.spec.in_flight,
            "tokens": workload.spec.tokens,
        },
        "rounds": workload.rounds,
        "contenders": contenders,
        "errors": outcome.errors,
    }


def _memory(workload: Workload, samples: list[Sample]) -> dict[str, Any]:
    peak = median(s.peak for s in samples)
    entry: dict[str, Any] = {"peak_bytes": int(peak)}
    text = samples[0].text_bytes
    if text:
        entry["text_bytes"] = text
        entry["peak_per_text"] = peak / text
    else:
        entry["peak_per_request_bytes"] = int(peak / workload.spec.calls)
    return entry


def _ttft(samples: list[Sample], base: list[Sample] | None) -> dict[str, Any]:
    entry = {
        "ttft_ms": median(t for s in samples for t in s.ttft) * 1e3,
        "ttft_cpu_ms": median(t for s in samples for t in s.ttft_cpu) * 1e3,
    }
    if base:
        rounds = list(zip(samples, base, strict=False))
        added = median(median(a.ttft) - median(b.ttft) for a, b in rounds)
        added_cpu = median(median(a.ttft_cpu) - median(b.ttft_cpu) for a, b in rounds)
        entry["ttft_added_ms"] = added * 1e3
        entry["ttft_cpu_added_ms"] = added_cpu * 1e3
    return entry


# ---------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """``field`` of ``contender`` in workload ``key`` must be at most ``limit``."""

    name: str
    key: str
    field: str
    limit: float
    contender: str = "package"

    def judge(self, workloads: dict[str, Any]) -> dict[str, Any]:
        """The verdict, and ``bound``: the same figure for the ``bare`` contender, where it ran
        (sync streams), which no code on the same transport can beat."""
        contenders = workloads.get(self.key, {}).get("contenders", {})
        measured = contenders.get(self.contender, {}).get(self.field)
        status = "n/a" if measured is None else ("PASS" if measured <= self.limit else "MISS")
        return {
            "name": self.name,
            "workload": self.key,
            "field": self.field,
            "measured": measured,
            "limit": self.limit,
            "status": status,
            "bound": contenders.get(BOUND, {}).get(self.field),
        }


def targets(plan: Plan) -> list[Target]:
    """The raw SDK's targets (AI21's API), then OpenAILike's (vLLM's server)."""
    tokens, in_flight = plan.stream_tokens, plan.target_in_flight
    per_chunk = [
        Target(
            f"{method}() CPU per chunk ({tokens:,} tokens) <= {limit}x {base}",
            f"{method}_{tokens}",
            f"ratio_{base}",
            limit,
        )
        for base, limit in (("sdk", 1.5), ("published", 0.65))
        for method in ("stream_chat", "astream_chat")
    ]
    own_share = [
        Target(
            f"{method}() own CPU per chunk ({tokens:,} tokens; minus LlamaIndex's floor) "
            "<= 0.6x sdk's chunk",
            f"{method}_{tokens}",
            "own_share_sdk",
            0.6,
        )
        for method in ("stream_chat", "astream_chat")
    ]
    return [
        Target("complete() CPU per call <= 1.1x sdk", "complete", "ratio_sdk", 1.1),
        *per_chunk,
        *own_share,
        Target(
            f"achat() CPU per request at {in_flight} in flight <= 0.35x sdk",
            f"achat_x{in_flight}",
            "ratio_sdk",
            0.35,
        ),
        Target(
            f"stream_chat() {plan.memory_tokens:,}-token peak memory <= "
            f"{SMALL_MULTIPLE:g}x the answer's size",
            f"memory_stream_{plan.memory_tokens}",
            "peak_per_text",
            SMALL_MULTIPLE,
        ),
        *_vllm_targets(tokens, in_flight),
    ]


def _vllm_targets(tokens: int, in_flight: int) -> list[Target]:
    field = "ratio_openai-like"
    return [
        Target("complete() CPU per call, vLLM <= 0.5x openai-like", "vllm_complete", field, 0.5),
        Target(
            f"stream_chat() CPU per chunk ({tokens:,} tokens), vLLM <= 0.2x openai-like",
            f"vllm_stream_chat_{tokens}",
            field,
            0.2,
        ),
        Target(
            f"achat() CPU per request at {in_flight} in flight, vLLM <= 0.2x openai-like",
            f"vllm_achat_x{in_flight}",
            field,
            0.2,
        ),
    ]


# ---------------------------------------------------------------------------- Markdown


def _order(names: Sequence[str]) -> list[str]:
    return [n for n in CONTENDER_ORDER if n in names] + sorted(
        n for n in names if n not in CONTENDER_ORDER
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _fmt_us(value: float) -> str:
    return f"{value:,.0f} µs" if value >= 100 else f"{value:.1f} µs"


def _ratio(entry: dict[str, Any], base: str = "sdk") -> str:
    ratio = entry.get(f"ratio_{base}")
    return "" if ratio is None else f" ({ratio:.2f}x)"


def _server(data: dict[str, Any]) -> str:
    return str(data.get("server", "ai21"))  # results from before the vLLM leg have none


def _cpu_cell(entry: dict[str, Any] | None, throughput: bool = False, base: str = "sdk") -> str:
    if entry is None:
        return "—"
    cell = _fmt_us(entry["cpu_us"]) + _ratio(entry, base)
    if throughput:
        cell += f" · {entry['per_second']:,.0f}/s"
    return cell


def _in_table(data: dict[str, Any], group: str) -> bool:
    if _server(data) != "ai21":
        return False
    if group == "concurrency":  # achat() one at a time is the first row of this table too
        return data["spec"]["kind"] == "acall"
    return bool(data["group"] == group)


def _group_table(
    workloads: dict[str, Any], group: str, names: list[str], throughput: bool = False
) -> list[str]:
    rows = []
    for data in workloads.values():
        if not _in_table(data, group):
            continue
        cells = [_cpu_cell(data["contenders"].get(n), throughput) for n in names]
        rows.append([data["title"], *cells])
    return _table(["workload", *names], rows)


def markdown(result: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    meta, workloads = result["meta"], result["workloads"]
    names = _order({n for w in workloads.values() if _server(w) == "ai21" for n in w["contenders"]})
    mode = "smoke run: sizes too small to mean anything" if meta["smoke"] else "full run"
    out = [f"# Benchmark results ({mode})", ""]
    out += _meta_lines(meta)
    out += ["", "## Targets", ""]
    target_rows = [
        [t["name"], _measured(t), _measured(t, "bound"), t["status"]] for t in result["targets"]
    ]
    out += _table(["target", "measured", "bare (the least possible)", "result"], target_rows)
    out += ["", "## Client CPU per call (median; ratio to sdk in brackets)", ""]
    out += _group_table(workloads, "call", names)
    out += ["", "## Async: client CPU per request · requests per second (wall)", ""]
    out += _group_table(workloads, "concurrency", names, throughput=True)
    out += ["", "## Streaming: client CPU per chunk", ""]
    out += _group_table(workloads, "stream", names)
    out += _vs_published(workloads)
    out += ["", "## Time to first token (wall, median; added over sdk in brackets)", ""]
    out += _ttft_table(workloads, names)
    out += ["", "## Peak memory (tracemalloc, in-process)", ""]
    out += _memory_table(workloads, names)
    out += _vllm_table(workloads)
    problems = [
        f"- {data['title']}: {name}: {error}"
        for data in workloads.values()
        for name, error in data["errors"].items()
    ]
    unsupported = meta.get("published", {}).get("unsupported", {})
    problems += [
        f"- published 0.8.0 cannot `{kind}`: {error}" for kind, error in unsupported.items()
    ]
    if problems:
        out += ["", "## Not measured", "", *problems]
    return "\n".join(out) + "\n"


def _emulator_line(label: str, rates: dict[str, Any]) -> str:
    seq, conc = rates["sequential"], rates["concurrent"]
    return (
        f"- {label} (separate process): {seq['per_second']:,.0f} requests/s one at a time "
        f"(httpx), {conc['per_second']:,.0f}/s at {conc['in_flight']} in flight (aiohttp); "
        f"its own CPU {conc['emulator_cpu_per_request_us'] or 0:.0f} µs per request"
    )


def _measured(target: dict[str, Any], field: str = "measured") -> str:
    measured = target.get(field)
    if measured is None:
        return "—"
    # A third digit where two would print the limit itself for a MISS (0.203 is not 0.20).
    digits = 3 if round(measured, 2) == target["limit"] else 2
    return f"{measured:.{digits}f}"


def _meta_lines(meta: dict[str, Any]) -> list[str]:
    lines = [
        f"- When: {meta['created']}; took {meta['duration_s']:.0f} s; {meta['machine']}",
        f"- Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
    ]
    if "emulator" in meta:
        lines.append(_emulator_line("Emulator", meta["emulator"]))
    if "emulator_vllm" in meta:
        lines.append(_emulator_line("Emulator, vLLM flavour", meta["emulator_vllm"]))
    lines.append(
        "- CPU is the client process's `time.process_time()`; each number is the median over "
        "interleaved rounds, each ratio the median of per-round ratios."
    )
    published = meta.get("published", {})
    if published.get("versions"):
        versions = ", ".join(f"{k} {v}" for k, v in published["versions"].items())
        lines.append(f"- published: {versions} (own virtualenv, own process)")
    elif published.get("reason"):
        lines.append(f"- published: not run ({published['reason']})")
    return lines


def _vs_published(workloads: dict[str, Any]) -> list[str]:
    rows = []
    for data in workloads.values():
        ratio = data["contenders"].get("package", {}).get("ratio_published")
        if ratio is not None and data["group"] != "memory":
            rows.append([data["title"], f"{ratio:.2f}x"])
    if not rows:
        return []
    intro = "Package CPU relative to published 0.8.0 (median of per-round ratios):"
    return ["", intro, "", *_table(["workload", "package / published"], rows)]


def _ttft_table(workloads: dict[str, Any], names: list[str]) -> list[str]:
    rows = []
    smallest: dict[str, dict[str, Any]] = {}
    for data in workloads.values():
        if data["group"] == "stream" and _server(data) == "ai21":
            kind = data["spec"]["kind"]
            if kind not in smallest or data["spec"]["tokens"] < smallest[kind]["spec"]["tokens"]:
                smallest[kind] = data
    for data in smallest.values():
        cells = []
        for name in names:
            entry = data["contenders"].get(name)
            if entry is None:
                cells.append("—")
                continue
            added = entry.get("ttft_added_ms")
            extra = "" if added is None else f" ({added:+.2f})"
            cells.append(f"{entry['ttft_ms']:.2f} ms{extra}")
        rows.append([data["title"], *cells])
    return _table(["workload", *names], rows)


def _memory_table(workloads: dict[str, Any], names: list[str]) -> list[str]:
    rows = []
    for data in workloads.values():
        if data["group"] != "memory":
            continue
        cells = []
        for name in names:
            entry = data["contenders"].get(name)
            if entry is None:
                cells.append("—")
            elif "peak_per_text" in entry:
                kib = entry["peak_bytes"] / 1024
                cells.append(f"{kib:,.0f} KiB ({entry['peak_per_text']:.1f}x text)")
            else:
                kib, each = entry["peak_bytes"] / 1024, entry["peak_per_request_bytes"] / 1024
                cells.append(f"{kib:,.0f} KiB ({each:.1f} KiB/request)")
        title = data["title"]
        tokens = data["spec"]["tokens"]
        if tokens:
            text = next(iter(data["contenders"].values())).get("text_bytes", 0)
            title += f" (answer: {text / 1024:,.0f} KiB)"
        rows.append([title, *cells])
    return _table(["workload", *names], rows)


def _vllm_table(workloads: dict[str, Any]) -> list[str]:
    rows = [data for data in workloads.values() if _server(data) == "vllm"]
    if not rows:
        return []
    names = _order(sorted({n for data in rows for n in data["contenders"]}))
    cells = [
        [
            data["title"],
            *(
                _cpu_cell(
                    data["contenders"].get(n), data["spec"]["kind"] == "acall", data["baseline"]
                )
                for n in names
            ),
        ]
        for data in rows
    ]
    title = "## Self-hosted (vLLM-flavoured emulator): client CPU (ratio to openai-like)"
    note = (
        "Per call, per request (with requests per wall second) or per streamed chunk; "
        '`package` is `AI21(deployment="openai-compatible")`, `openai-like` is LlamaIndex\'s '
        "`OpenAILike`, both on the same server."
    )
    return ["", title, "", note, "", *_table(["workload", *names], cells)]
