"""benchmarks/gpu/check.py, the prepared GPU check: its dry run (every stage on the CPU, tiny sizes)
writes figures for every stage, and without CUDA a real run refuses in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.gpu.check import STAGES

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "benchmarks" / "gpu" / "check.py"


def run_check(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python benchmarks/gpu/check.py ARGS`` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, str(CHECK), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_dry_run_records_figures_for_every_stage(tmp_path):
    out = tmp_path / "x.json"
    # about 35-50 s on the 2-core machine; generous for a busy one
    done = run_check("--dry-run", "--json", str(out), timeout=240)
    assert out.is_file(), done.stderr[-2000:]
    result = json.loads(out.read_text())
    errors = {name: row.get("error") for name, row in result["stages"].items() if row.get("error")}
    assert not errors, errors
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert list(result["stages"]) == list(STAGES)
    for name, row in result["stages"].items():
        assert row["status"] == "ok" and row["figures"] and row["seconds"] >= 0, name
    assert result["dry_run"] is True and result["failed"] == []
    for key in ("date", "command", "machine"):
        assert result[key]
    assert {"torch", "cuda", "device_name"} <= set(result["machine"])
    stages = {name: row["figures"] for name, row in result["stages"].items()}
    # every CUDA test is collected and skips on the CPU
    assert stages["cuda_tests"]["tests"] > 0
    assert stages["cuda_tests"]["skipped"] == stages["cuda_tests"]["tests"]
    assert stages["determinism"]["fp32"]["identical"] and stages["determinism"]["bf16"]["identical"]
    assert stages["kill_resume"]["resumed_identical"] and not stages["kill_resume"]["finished_before_kill"]
    assert 0 < stages["kill_resume"]["stored_at_kill"] < stages["kill_resume"]["rounds_total"]
    assert set(stages["epoch_time"]["results"]) == {"resnet18/fp32", "resnet18/bf16"}
    assert all(r["activews_vs_minimal"] > 0 for r in stages["epoch_time"]["results"].values())
    assert {r["arm"] for r in stages["reproduce_online"]["rounds"]} == {"random", "warm"}
    assert stages["several_cells"]["identical"]
    assert stages["memory"]["fp32"]["estimate_bytes"] > 0
    assert "Summary" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_cuda_a_real_run_exits_2_with_one_line(tmp_path):
    out = tmp_path / "y.json"
    done = run_check("--json", str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--dry-run" in lines[0] and "CUDA" in lines[0], done.stderr
    assert not out.exists()


def test_unknown_stage_exits_2_with_one_line(tmp_path):
    done = run_check("--dry-run", "--only", "epoch,memory", "--json", str(tmp_path / "z.json"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "epoch" in lines[0] and "epoch_time" in lines[0], done.stderr


def test_a_failing_stage_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    from benchmarks.gpu import check

    def broken(ctx):
        raise ValueError("boom\nsecond line")

    monkeypatch.setattr(check, "stage_determinism", broken)
    threads = torch.get_num_threads()
    code = check.main(["--dry-run", "--only", "memory,determinism", "--json", str(tmp_path / "f.json")])
    assert torch.get_num_threads() == threads  # the dry run's one thread is put back
    assert code == 1
    result = json.loads((tmp_path / "f.json").read_text())
    assert list(result["stages"]) == ["determinism", "memory"]  # in the check's order
    assert result["stages"]["determinism"]["status"] == "failed"
    assert result["stages"]["determinism"]["error"] == "ValueError: boom"
    assert result["stages"]["memory"]["status"] == "ok"
    assert result["failed"] == ["determinism"]
