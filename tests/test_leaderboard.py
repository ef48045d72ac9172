"""The leaderboard suite (benchmarks/leaderboard/run.py): its frontier rule, its tables and a tiny run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from activews.report.tables import TextTable
from benchmarks.leaderboard import run as leaderboard

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "leaderboard" / "results"


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
    assert data["seeds"] == 2 and data["workers"] == 1
    # --from-json re-renders the same file from the JSON alone (no bench: --work is not even there)
    recorded = (out / "leaderboard.md").read_bytes()
    (out / "leaderboard.md").unlink()
    assert leaderboard.main(["--from-json", "--out", str(out), "--work", str(tmp_path / "none")]) == 0
    assert (out / "leaderboard.md").read_bytes() == recorded and not (tmp_path / "none").exists()


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


def leaderboard_row(**changes):
    row = {
        "arm": "l2_init", "final_accuracy": 0.6221, "penalty": 0.0936, "penalty_ci": [0.0896, 0.0976],
        "vs_random": "worse", "gain_over_warm": -0.0639, "gain_over_warm_ci": [-0.0777, -0.0502],
        "vs_warm": "worse", "step_ratio": 1.14, "time_ratio": 1.8, "frontier_steps": False,
        "frontier_time": True, "reached_target": 0.0, "dormant_fraction": 0.018, "feature_rank": 237.0,
    }  # fmt: skip
    return row | changes


def continual_row(**changes):
    row = {
        "arm": "l2", "newest_task_accuracy": 0.402, "vs_random": 0.0733, "vs_random_ci": [0.0582, 0.0883],
        "verdict": "better", "plasticity_change": 0.0207, "plasticity_change_ci": [-0.0245, 0.0658],
        "average_accuracy": 0.209, "forgetting": 0.214, "online_accuracy": 0.189, "step_ratio": 3.7,
        "time_ratio": 4.91, "frontier_steps": True, "reached_target": 0.26, "dormant_fraction": 0.032,
        "feature_rank": 139.0,
    }  # fmt: skip
    return row | changes


def spy_tables(monkeypatch) -> list[TextTable]:
    """Record every TextTable whose markdown() is called."""
    seen: list[TextTable] = []
    render = TextTable.markdown

    def spy(self: TextTable) -> str:
        seen.append(self)
        return render(self)

    monkeypatch.setattr(TextTable, "markdown", spy)
    return seen


def test_leaderboard_markdown_is_a_texttable_with_the_cells_as_before(monkeypatch):
    seen = spy_tables(monkeypatch)
    lines = leaderboard.markdown([leaderboard_row(), leaderboard_row(arm="random", penalty=None)])
    assert len(seen) == 1 and seen[0].title == ""
    assert lines == seen[0].markdown().split("\n")  # TextTable's rule, not one of its own
    # the arm, the two verdicts and the frontier align left; every number column right
    assert [seen[0].left(i) for i in range(11)] == [
        True, False, False, True, False, True, False, False, True, False, False,
    ]  # fmt: skip
    assert lines[0] == (
        "| arm | final accuracy | penalty vs random [95% CI] | vs random | gain over warm [95% CI] | vs warm "
        "| step ratio | time ratio | frontier (steps / time) | dormant units | feature rank |"
    )
    assert lines[2] == (
        "| `l2_init` (0% at target) | 62.2 % | +9.36 [+8.96, +9.76] | worse | -6.39 [-7.77, -5.02] | worse "
        "| 1.14 | 1.80 | - / yes | 1.8 % | 237 |"
    )
    assert lines[3].startswith("| `random` (0% at target) | 62.2 % | - | worse | -6.39")
    assert len(lines) == 4


def test_continual_markdown_is_a_texttable_with_the_cells_as_before(monkeypatch):
    from benchmarks.leaderboard import continual

    seen = spy_tables(monkeypatch)
    lines = continual.markdown([continual_row(), continual_row(arm="random", reached_target=1.0)])
    assert len(seen) == 1 and seen[0].title == ""
    assert lines == seen[0].markdown().split("\n")
    assert [seen[0].left(i) for i in range(13)] == [
        True, False, False, True, False, False, False, False, False, False, True, False, False,
    ]  # fmt: skip
    assert lines[0].startswith("| arm | newest task | vs random [95% CI] | vs random | first → last task")
    assert lines[2] == (
        "| `l2` (26% at target) | 40.2 % | +7.33 [+5.82, +8.83] | better | +2.07 [-2.45, +6.58] | 20.9 % "
        "| 21.4 | 18.9 % | 3.70 | 4.91 | yes | 3.2 % | 139 |"
    )
    assert lines[3].startswith("| `random` | 40.2 % | - | better |")


@pytest.mark.parametrize("script", ["run", "continual"])
def test_from_json_rerenders_the_recorded_leaderboard_byte_for_byte(script, tmp_path):
    """The recorded leaderboard.md files and docs blocks are what the scripts render from their JSON."""
    import importlib

    module = importlib.import_module(f"benchmarks.leaderboard.{script}")
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results, ignore=shutil.ignore_patterns("*.png", "*.csv"))
    out = results if script == "run" else results / "continual"
    docs = tmp_path / "strategies.md"
    shutil.copyfile(ROOT / "docs" / "strategies.md", docs)
    recorded_json = (out / "leaderboard.json").read_bytes()
    (out / "leaderboard.md").write_text("stale")
    argv = ["--from-json", "--out", str(out), "--docs", str(docs), "--update-docs"]
    assert module.main([*argv, "--work", str(tmp_path / "work")]) == 0
    assert (out / "leaderboard.md").read_bytes() == (
        RESULTS / out.relative_to(results) / "leaderboard.md"
    ).read_bytes()
    assert docs.read_bytes() == (ROOT / "docs" / "strategies.md").read_bytes()
    assert (out / "leaderboard.json").read_bytes() == recorded_json  # the source, left as it was
    assert not (tmp_path / "work").exists()  # no bench ran


def test_from_json_without_a_recorded_run_is_a_one_line_error(tmp_path, capsys):
    assert leaderboard.main(["--from-json", "--out", str(tmp_path)]) == 2
    assert "leaderboard.json not found" in capsys.readouterr().err
