"""The leaderboard suite (benchmarks/leaderboard/run.py): its frontier rule, its tables and a tiny run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.leaderboard import run as leaderboard

ROOT = Path(__file__).resolve().parent.parent


def test_frontier_keeps_exactly_the_undominated_arms():
    points = {
        "random": (0.71, 1.00),
        "warm": (0.68, 0.33),
        "good": (0.72, 0.88),  # dominates random: more accurate for less compute
        "dominated": (0.69, 0.90),  # good is better on both
        "tie": (0.68, 0.33),  # equal to warm: neither dominates the other
        "cheapest": (0.50, 0.10),
    }
    assert leaderboard.frontier(points) == {"warm", "good", "tie", "cheapest"}


def test_gain_over_warm_is_paired_by_seed_on_the_last_round():
    records = [
        {"arm": arm, "seed": seed, "round": rnd, "test_accuracy": acc}
        for arm, seed, rnd, acc in [
            ("warm", 0, 0, 0.1), ("warm", 0, 1, 0.50), ("warm", 1, 1, 0.60),
            ("x", 0, 0, 0.9), ("x", 0, 1, 0.55), ("x", 1, 1, 0.70),
        ]
    ]  # fmt: skip
    mean, ci = leaderboard.gain_over_warm(records, "x")
    assert mean == 0.075 or abs(mean - 0.075) < 1e-12
    assert ci is not None and ci[0] < mean < ci[1]
    assert leaderboard.gain_over_warm(records, "warm")[0] == 0.0


def run_tiny(script: str, axis: list[str], tmp_path: Path, docs: Path) -> dict:
    """Run a leaderboard script at its tiny settings with --update-docs on ``docs``; its JSON."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable, str(ROOT / "benchmarks" / "leaderboard" / script),
            "--tiny", "--seeds", "2", "--workers", "1", *axis,
            "--strategies", "shrink_perturb", "--work", str(tmp_path / "work"), "--out", str(out),
            "--docs", str(docs), "--update-docs",
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "leaderboard.json").read_text())


def test_tiny_leaderboard_runs_and_rewrites_only_its_docs_block(tmp_path):
    docs = tmp_path / "page.md"
    docs.write_text(f"before\n{leaderboard.BEGIN}\nold table\n{leaderboard.END}\nafter\n")
    out = tmp_path / "out"
    data = run_tiny("run.py", ["--streams", "passive"], tmp_path, docs)
    rows = data["streams"]["passive"]["rows"]
    assert {r["arm"] for r in rows} == {"random", "warm", "shrink_perturb"}
    assert all(r["final_accuracy"] > 0.1 for r in rows)
    assert (out / "passive" / "summary.json").is_file()
    text = docs.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old table" not in text
    assert "`shrink_perturb`" in text and "--strategies shrink_perturb --tiny --update-docs" in text


def test_unknown_strategy_is_a_one_line_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "leaderboard" / "run.py"), "--strategies", "shrink_pertub"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "did you mean 'shrink_perturb'" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_tiny_continual_leaderboard_runs_and_rewrites_only_its_block(tmp_path):
    from benchmarks.leaderboard import continual

    docs = tmp_path / "page.md"
    docs.write_text(
        f"{leaderboard.BEGIN}\nkeep\n{leaderboard.END}\n{continual.BEGIN}\nold\n{continual.END}\nafter\n"
    )
    data = run_tiny("continual.py", ["--protocols", "permuted-labels"], tmp_path, docs)
    rows = data["protocols"]["permuted-labels"]["rows"]
    assert {r["arm"] for r in rows} == {"random", "warm", "shrink_perturb"}
    assert data["protocols"]["permuted-labels"]["config"]["shift"] == "permuted_labels"
    random = next(r for r in rows if r["arm"] == "random")
    assert random["vs_random"] == 0.0 and random["verdict"] == "reference" and len(random["per_task"]) == 2
    text = docs.read_text()
    assert "keep" in text and "old" not in text and "| `warm` |" in text and text.endswith("after\n")


def test_continual_table_marks_verdicts_and_the_frontier():
    from benchmarks.leaderboard import continual

    def arm(name, newest, diff, ci, steps):
        return {
            "arm": name, "newest_task_accuracy": newest, "newest_task_accuracy_vs_ref": diff,
            "newest_task_accuracy_vs_ref_ci": ci, "compute_ratio": steps, "per_task": [],
            "per_round": [{"dormant_fraction": 0.01, "feature_rank": 200.0}],
        }  # fmt: skip

    class Result:
        summary = [
            arm("random", 0.30, 0.0, [0.0, 0.0], 1.0),
            arm("warm", 0.25, -0.05, [-0.06, -0.04], 0.8),
            arm("good", 0.33, 0.03, [0.01, 0.05], 0.9),
        ]
        records: list = []

    rows = {r["arm"]: r for r in continual.table(Result())}
    assert [r["arm"] for r in continual.table(Result())] == ["good", "random", "warm"]
    assert rows["warm"]["verdict"] == "worse" and rows["good"]["verdict"] == "better"
    assert rows["random"]["verdict"] == "reference"
    assert rows["warm"]["dormant_fraction"] == 0.01 and rows["warm"]["feature_rank"] == 200.0
    assert (
        rows["warm"]["frontier_steps"]
        and rows["good"]["frontier_steps"]
        and not rows["random"]["frontier_steps"]
    )
