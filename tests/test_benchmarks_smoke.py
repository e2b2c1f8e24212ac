"""``python -m benchmarks --smoke`` runs end to end and writes its results: every contender
on the AI21-flavoured emulator, and ``package`` next to ``OpenAILike`` on the vLLM-flavoured one;
the bare sync stream (the least possible) in the sync stream workloads only.

No timing asserts: on a shared machine the numbers of a smoke run mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SYNC_CONTENDERS = {"sdk", "httpx", "package", "floor"}
ASYNC_CONTENDERS = SYNC_CONTENDERS | {"sdk+aiohttp"}
WORKLOADS = {
    "complete": SYNC_CONTENDERS,
    "achat_x1": ASYNC_CONTENDERS,
    "achat_x8": ASYNC_CONTENDERS,
    "stream_chat_30": SYNC_CONTENDERS | {"bare"},
    "astream_chat_30": ASYNC_CONTENDERS,
    "memory_stream_200": SYNC_CONTENDERS,
    "memory_achat_x20": ASYNC_CONTENDERS,
}
VLLM_CONTENDERS = {"httpx", "package", "openai-like"}
VLLM_WORKLOADS = {
    f"vllm_{key}": VLLM_CONTENDERS | ({"bare"} if key == "stream_chat_30" else set())
    for key in ("complete", "achat_x1", "achat_x8", "stream_chat_30", "astream_chat_30")
}
BASELINES = {"ai21": "sdk", "vllm": "openai-like"}
VLLM_TARGETS = {"vllm_complete", "vllm_stream_chat_30", "vllm_achat_x8"}


def test_smoke_run_writes_json_and_markdown(tmp_path: Path) -> None:
    # Works whether or not the package is pip-installed: the repository goes on PYTHONPATH.
    paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    result = json.loads((tmp_path / "latest.json").read_text())
    assert {"meta", "targets", "workloads"} <= result.keys()
    assert result["meta"]["smoke"] is True
    for emulator in ("emulator", "emulator_vllm"):
        assert result["meta"][emulator]["sequential"]["per_second"] > 0, emulator
    assert result["meta"]["versions"]["llama-index-llms-openai-like"] != "missing"
    assert set(result["workloads"]) == set(WORKLOADS) | set(VLLM_WORKLOADS)
    for key, contenders in (WORKLOADS | VLLM_WORKLOADS).items():
        workload = result["workloads"][key]
        assert workload["errors"] == {}, key
        assert set(workload["contenders"]) == contenders, key
        base = BASELINES[workload["server"]]
        assert workload["baseline"] == base, key
        for name, entry in workload["contenders"].items():
            field = "peak_bytes" if key.startswith("memory") else "cpu_us"
            assert entry[field] > 0, (key, name)
            if name != base:
                assert entry[f"ratio_{base}"] > 0, (key, name)
    assert "published" not in result["workloads"]["complete"]["contenders"]
    assert {t["status"] for t in result["targets"]} <= {"PASS", "MISS", "n/a"}
    assert len(result["targets"]) == 12
    own_share = [t for t in result["targets"] if t["field"] == "own_share_sdk"]
    assert [t["workload"] for t in own_share] == ["stream_chat_30", "astream_chat_30"]
    assert all(t["status"] in {"PASS", "MISS"} for t in own_share)  # measured, never n/a
    vllm_targets = [t for t in result["targets"] if t["workload"].startswith("vllm_")]
    assert {t["workload"] for t in vllm_targets} == VLLM_TARGETS
    assert all(t["field"] == "ratio_openai-like" for t in vllm_targets)
    assert {t["status"] for t in vllm_targets} <= {"PASS", "MISS"}  # measured, never n/a
    # The bare sync stream bounds the sync stream targets, and only those.
    bounded = {(t["workload"], t["field"]) for t in result["targets"] if t["bound"] is not None}
    assert bounded == {
        ("stream_chat_30", "ratio_sdk"),
        ("stream_chat_30", "own_share_sdk"),
        ("vllm_stream_chat_30", "ratio_openai-like"),
    }

    markdown = (tmp_path / "latest.md").read_text()
    assert markdown.startswith("# Benchmark results")
    assert "## Targets" in markdown
    assert "| target | measured | bare (the least possible) | result |" in markdown
    assert "## Self-hosted (vLLM-flavoured emulator)" in markdown
    assert done.stdout.strip() == markdown.strip()
    assert (tmp_path / "latest.svg").read_text().startswith("<svg")


@pytest.mark.slow
def test_stream_scale_runs_and_prints_both_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import stream_scale

    assert stream_scale.main(["--mib", "1", "--calls", "20", "--rounds", "1"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split("  ")[0] for row in rows] == [
        "one 1 MiB event line",
        "20 streamed tool calls",
    ]


@pytest.mark.slow
def test_paced_streams_run_and_print_every_reader(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import paced

    assert paced.main(["--tokens", "5", "--delay", "0.001", "--rounds", "1"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row[:14].strip() for row in rows] == [
        "httpx",
        "urllib3",
        "sdk",
        "sdk async",
        "package",
        "package async",
    ]


@pytest.mark.slow
def test_in_situ_runs_and_prints_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import in_situ

    assert in_situ.main(["--tokens", "5", "--rounds", "1"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row[:18].strip() for row in rows] == [
        "package",
        "package unwrapped",
        "wrapper in situ",
        "wrapper alone",
        "uuid4 in situ",
        "uuid4 alone",
    ]


def _has_commit(commit: str) -> bool:
    found = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    return found.returncode == 0


@pytest.mark.slow
def test_transport_history_runs_both_trees_and_cleans_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from benchmarks import transport_history

    if not _has_commit(transport_history.LAST_OWN_TRANSPORT):
        pytest.skip("needs the git history (a shallow clone lacks the old commit)")
    worktrees = subprocess.run(
        ["git", "-C", str(REPO), "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout
    args = ["--tokens", "5", "--streams", "1", "--rounds", "1"]
    assert transport_history.main(args) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row[:16].strip() for row in rows] == ["before, urllib3", "before, httpx", "now"]
    after = subprocess.run(
        ["git", "-C", str(REPO), "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert after == worktrees  # the temporary worktree is gone
