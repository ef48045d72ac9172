"""The scripts under examples/ run as documented."""

from __future__ import annotations

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
