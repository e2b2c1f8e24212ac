"""``python -m benchmarks``: start the emulator (AI21's flavour, and vLLM's for the self-hosted
workloads), run every workload through every contender of its server, write ``latest.json`` and
``latest.md`` (and ``latest.svg``) and print the Markdown."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import time
import warnings
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmarks import contenders, plot, report
from benchmarks.emulator import EmulatorProcess, measure_rate
from benchmarks.published import PublishedRunner, PublishedUnavailable, ensure_venv
from benchmarks.runner import LocalRunner, Runner, run_workload
from benchmarks.workloads import BASELINE, SERVERS, Plan, full_plan, smoke_plan

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FACTORIES = {"ai21": contenders.FACTORIES, "vllm": contenders.VLLM_FACTORIES}
IN_PROCESS = tuple(dict.fromkeys(name for f in FACTORIES.values() for name in f))
ALL_CONTENDERS = (*IN_PROCESS, "published")
META_KEYS = {"ai21": "emulator", "vllm": "emulator_vllm"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, well under 30 s; numbers meaningless"
    )
    parser.add_argument(
        "--published",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also run the published 0.8.0 in its own virtualenv (default: on, off with --smoke)",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR, help=f"results directory (default: {RESULTS_DIR})"
    )
    parser.add_argument(
        "--only",
        metavar="NAME[,NAME...]",
        default="",
        help="workload keys, groups (call, concurrency, stream, memory), servers (ai21, vllm) "
        f"and/or contenders ({', '.join(ALL_CONTENDERS)}); the baselines (sdk, openai-like) "
        "always run",
    )
    return parser


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _versions() -> dict[str, str]:
    found = {}
    names = ("llama-index-llms-ai21", "ai21", "llama-index-core", "httpx", "httpx-aiohttp")
    for name in (*names, "llama-index-llms-openai-like", "openai"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "source tree" if name == "llama-index-llms-ai21" else "missing"
    return found


def _published_runner(emulator: EmulatorProcess, meta: dict[str, Any]) -> PublishedRunner | None:
    _say("published 0.8.0: preparing benchmarks/.venv-published (first time: a minute or two)")
    try:
        python = ensure_venv()
        runner = PublishedRunner(python, emulator.base_url, emulator.api_key, emulator.max_tokens)
    except (PublishedUnavailable, OSError) as exc:
        _say(f"published 0.8.0 skipped: {exc}")
        meta["reason"] = str(exc)
        return None
    meta["versions"] = runner.versions
    meta["unsupported"] = runner.unsupported
    return runner


def run(plan: Plan, wanted: set[str], published: bool, smoke: bool) -> dict[str, Any]:
    """Run ``plan`` against a fresh emulator; return the result document."""
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "smoke": smoke,
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        "versions": _versions(),
        "published": {},
    }
    workloads: dict[str, Any] = {}
    failed = False
    servers = [s for s in SERVERS if any(w.server == s for w in plan.workloads)]
    with contextlib.ExitStack() as stack:
        emulators = {s: stack.enter_context(EmulatorProcess(flavour=s)) for s in servers}
        requests = 200 if smoke else 2000
        for server, emulator in emulators.items():
            meta[META_KEYS[server]] = {
                "sequential": measure_rate(emulator, requests, 1).to_json(),
                "concurrent": measure_rate(emulator, requests * 2, 64).to_json(),
            }
        loop = asyncio.new_event_loop()
        local = []
        runners: dict[str, list[Runner]] = {}
        for server, emulator in emulators.items():
            made = [
                factory(emulator.base_url, emulator.api_key)
                for name, factory in FACTORIES[server].items()
                if name in wanted or name == BASELINE[server]
            ]
            local += made
            runners[server] = [LocalRunner(c, loop) for c in made]
        published_runner = None
        if published and "published" in wanted and "ai21" in emulators:
            published_runner = _published_runner(emulators["ai21"], meta["published"])
            if published_runner is not None:
                ai21 = runners["ai21"]
                ai21.insert(-1 if "floor" in wanted else len(ai21), published_runner)
        try:
            for workload in plan.workloads:
                _say(f"{workload.title}: {workload.rounds} round(s)")
                outcome = run_workload(workload, runners[workload.server], _say)
                failed |= any(name in IN_PROCESS for name in outcome.errors)
                workloads[workload.key] = report.summarize(workload, outcome)
                emulators[workload.server].forget_requests()
        finally:
            if published_runner is not None:
                published_runner.close()
            loop.run_until_complete(contenders.aclose_all(local))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
    meta["duration_s"] = time.perf_counter() - started
    return {
        "meta": meta,
        "failed": failed,
        "targets": [target.judge(workloads) for target in report.targets(plan)],
        "workloads": workloads,
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The SDKs' own deprecation noise (e.g. httpx's ``data=``) is not what we are here for.
    warnings.simplefilter("ignore", DeprecationWarning)
    names = {n.strip() for n in args.only.split(",") if n.strip()}
    plan = (smoke_plan() if args.smoke else full_plan()).only(names)
    chosen = names & set(ALL_CONTENDERS)
    wanted = (chosen | set(BASELINE.values())) if chosen else set(ALL_CONTENDERS)
    published = (not args.smoke) if args.published is None else args.published
    result = run(plan, wanted, published, args.smoke)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    text = report.markdown(result)
    (args.out / "latest.md").write_text(text)
    (args.out / "latest.svg").write_text(plot.svg(result))
    print(text)
    return 1 if result["failed"] else 0
