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
    env = dict(os.environ, ACTIVEWS=f"{sys.executable} -m activews")
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
