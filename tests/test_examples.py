"""The scripts under examples/ run as documented."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .run_helpers import TINY_FLAGS, cli, read_json

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("script", ["custom_strategy.py", "python_api_loop.py"])
def test_example_script_runs(script, tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "random" in done.stdout and "warm" in done.stdout


def _run_tiny(script: str, *args: str, tmp_path: Path) -> dict[str, list[str]]:
    """Run an example at its tiny settings; its table's rows by their first column."""
    env = dict(os.environ, ACTIVEWS_EXAMPLE_TINY="1")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines()[2:] if line.strip()]
    return {row[0] + ("/" + row[1] if script == "skactiveml_stream.py" else ""): row for row in rows}


def test_skactiveml_stream_example_refits_on_new_labels_only(tmp_path):
    """examples/skactiveml_stream.py: with refit="on_new_labels", rounds = labels and fewer steps."""
    pytest.importorskip("skactiveml", reason="scikit-activeml is not installed: pip install -e '.[test]'")
    rows = _run_tiny("skactiveml_stream.py", tmp_path=tmp_path)
    # columns: strategy, refit, refits, rounds, labels, steps, accuracy
    assert set(rows) == {f"{s}/{r}" for s in ("warm", "shrink_perturb") for r in ("always", "on_new_labels")}
    for strategy in ("warm", "shrink_perturb"):
        always, skipping = rows[f"{strategy}/always"], rows[f"{strategy}/on_new_labels"]
        assert always[2] == always[3] == skipping[2]  # every refit is a round ...
        assert skipping[3] == skipping[4] and int(skipping[3]) < int(skipping[2])  # ... or only labeled ones
    assert int(rows["shrink_perturb/on_new_labels"][5]) < int(rows["shrink_perturb/always"][5])


def test_baal_example_runs(tmp_path):
    """examples/baal_loop.py: baal's BALD loop with an activews strategy at every round."""
    pytest.importorskip("baal", reason="baal is not installed: pip install -e '.[test]' (or activews[baal])")
    rows = _run_tiny("baal_loop.py", tmp_path=tmp_path)
    assert set(rows) == {"random", "warm", "shrink_perturb"}
    # columns: strategy, 3 accuracies, refit steps, steps vs random; round 0 is the same for every arm
    assert len({row[1] for row in rows.values()}) == 1
    assert all(int(row[4]) > 0 for row in rows.values()) and rows["random"][5] == "1.00"


def test_own_loop_example_runs(tmp_path):
    """examples/own_loop.py: a plain PyTorch loop with Reinitializer; l2_init exercises the hooks."""
    rows = _run_tiny("own_loop.py", "random", "warm", "l2_init", tmp_path=tmp_path)
    assert set(rows) == {"random", "warm", "l2_init"}
    # columns: strategy, 3 accuracies, refit steps, steps vs random
    assert rows["random"][1] == rows["warm"][1]  # the same round 0 (l2_init's hook trains it differently)
    assert int(rows["warm"][4]) < int(rows["random"][4])


def test_custom_strategy_plugin_on_the_cli(tmp_path):
    done = cli(
        "--plugin",
        str(EXAMPLES / "custom_strategy.py"),
        "bench",
        "--strategy",
        "shrink_to_init",
        "--param",
        "shrink_to_init.alpha=0.5",
        *TINY_FLAGS,
        "--rounds",  # the last --rounds wins: two rounds are enough here
        "2",
        "--quiet",
        "--no-plot",
        "--output",
        str(tmp_path / "run"),
        "--json",
        str(tmp_path / "r.json"),
    )
    assert done.returncode == 0, done.stderr
    arms = read_json(tmp_path / "r.json")["arms"]
    assert [a["arm"] for a in arms] == ["random", "warm", "shrink_to_init"]


def test_active_cli_example_runs(tmp_path):
    """examples/active_cli.sh: an active and a selective bench, each with the init/selection split."""
    # 200 columns: the split's full headers (at 80 they are the documented short "init [CI]")
    env = dict(os.environ, ACTIVEWS=f"{sys.executable} -m activews", COLUMNS="200")
    done = subprocess.run(
        ["bash", str(EXAMPLES / "active_cli.sh"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.count("init effect") == 2 and "selective (margin; top 0.25 of each chunk)" in done.stdout
    )
    for stream in ("active", "selective"):
        arms = read_json(tmp_path / "out" / stream / "summary.json")["arms"]
        warm = next(a for a in arms if a["arm"] == "warm")
        assert warm["init_effect"] + warm["selection_effect"] == pytest.approx(warm["penalty"])
        assert 0 < warm["overlap_with_random"] <= 1


def test_plugin_example_package_tests_pass():
    """examples/activews-plugin-example/tests: the package's own contract tests (activews.testing on its
    strategy and acquisition), run from its folder as its author would, without installing it."""
    example = EXAMPLES / "activews-plugin-example"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=example,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


def test_continual_shift_example_registers_its_shift_and_compares_on_the_newest_task(tmp_path):
    """examples/continual_shift.py: a user's Shift subclass runs as a continual stream."""
    rows = _run_tiny("continual_shift.py", tmp_path=tmp_path)
    # columns: arm, newest %, vs random, forgetting, step ratio
    assert set(rows) == {"random", "warm", "head_reset"}
    assert rows["random"][2] == "+0.00" and rows["random"][4] == "1.00"
    assert all(0 < float(r[1]) <= 100 for r in rows.values())
