"""The SQLite run store: schema, commits, integrity, and the runs/report commands built on it."""

from __future__ import annotations

import sqlite3

import pytest

from activews import BenchConfig, run_bench
from activews.engine.store import STORE_FILE, RunStore
from activews.errors import ActivewsError

from .run_helpers import TINY, cli, read_json


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "tiny"
    result = run_bench(BenchConfig.build(**TINY), output=folder)
    return folder, result


def test_every_round_is_committed_with_the_config(finished_run):
    folder, result = finished_run
    with RunStore(folder) as store:
        assert store.integrity_check() == "ok"
        assert len(store.records()) == len(result.records) == 3 * 2 * 3
        assert store.progress() == (6, 6)
        ((exp, label, cfg),) = store.experiments()
        assert BenchConfig.model_validate(cfg) == result.config
        assert store.meta()["schema_version"] == "1"
    conn = sqlite3.connect(folder / STORE_FILE)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = conn.execute("SELECT arm, seed, round, steps FROM records ORDER BY arm, seed, round").fetchall()
    assert {r[0] for r in rows} == {"random", "warm", "shrink_perturb"}
    assert all(r[3] > 0 for r in rows)


def test_commit_round_is_idempotent(tmp_path):
    store = RunStore(tmp_path, create=True)
    store.initialize({"experiments": []}, [("", {})], [(0, "warm", 0, "warm", {})])
    rec = {"arm": "warm", "seed": 0, "round": 0, "test_accuracy": 0.5, "steps": 3, "seconds": 0.1}
    store.commit_round(0, rec)
    store.commit_round(0, rec | {"test_accuracy": 0.6})
    assert [r["test_accuracy"] for r in store.records()] == [0.6]
    assert store.cells()[0]["status"] == "running" and store.cells()[0]["rounds_done"] == 1
    store.mark_done(0, "warm", 0)
    assert store.progress() == (1, 1)


def test_opening_a_folder_without_a_store_is_a_clear_error(tmp_path):
    with pytest.raises(ActivewsError, match="not an activews run folder"):
        RunStore(tmp_path)


def test_runs_list_show_export(finished_run, tmp_path):
    folder, result = finished_run
    listed = cli("runs", "list", "--root", str(folder.parent))
    assert listed.returncode == 0 and "tiny" in listed.stdout and "6/6" in listed.stdout
    shown = cli("runs", "show", str(folder))
    assert shown.returncode == 0 and "shrink_perturb" in shown.stdout and "18 rounds stored" in shown.stdout
    csv_out = cli("runs", "export", str(folder))
    lines = csv_out.stdout.strip().splitlines()
    assert lines[0].startswith("arm,strategy,seed,round") and len(lines) == 1 + 18
    out = tmp_path / "summary.json"
    assert (
        cli(
            "runs", "export", str(folder), "--what", "summary", "--format", "json", "--output", str(out)
        ).returncode
        == 0
    )
    arms = read_json(out)
    assert [a["arm"] for a in arms] == ["random", "warm", "shrink_perturb"]
    assert arms[0]["compute_ratio"] == 1.0
    bad = cli("runs", "show", str(tmp_path / "nope"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no activews run" in bad.stderr


def test_report_writes_figures_and_a_self_contained_page(finished_run, tmp_path):
    folder, _ = finished_run
    out = tmp_path / "report"
    done = cli("report", str(folder), "--output", str(out))
    assert done.returncode == 0, done.stderr
    for name in ("accuracy.png", "penalty.png", "compute.png", "frontier.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "shrink_perturb" in page and "penalty" in page and "<table>" in page
    assert "Warm-start penalty vs random" in done.stdout
