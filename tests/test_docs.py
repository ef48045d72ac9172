"""The snippets docs/python-api.md promises run as they are: three lines to re-initialize a loop of one's
own, ten to measure its warm-start penalty."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def snippets() -> dict[str, str]:
    """The python blocks of the doc that follow a ``<!-- snippet: NAME -->`` marker, by name."""
    text = DOC.read_text()
    found = re.findall(r"<!-- snippet: ([\w-]+) -->\s*```python\n(.*?)```", text, flags=re.S)
    return dict(found)


def code_lines(source: str) -> list[str]:
    return [line for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]


@pytest.fixture
def own_loop_namespace() -> dict:
    blocks = snippets()
    namespace: dict = {}
    torch.manual_seed(0)
    exec(compile(blocks["own-loop-setup"], f"{DOC}:own-loop-setup", "exec"), namespace)
    return namespace


def test_the_doc_has_the_snippets():
    assert {"own-loop-setup", "own-loop-reinit", "own-loop-penalty"} <= set(snippets())


def test_three_lines_reinitialize_a_loop_of_ones_own(own_loop_namespace):
    source = snippets()["own-loop-reinit"]
    # the lines activews adds to the user's loop: the import, the re-initializer, the call
    added = [line for line in code_lines(source) if "activews" in line or "reinit" in line]
    assert len(added) == 3, added
    ns = own_loop_namespace
    first = ns["model"]
    exec(compile(source, f"{DOC}:own-loop-reinit", "exec"), ns)
    assert ns["reinit"].round == len(ns["rounds"]) - 1
    assert ns["model"] is first  # shrink_perturb works in place
    # the optimizer the loop trained with holds the model's parameters
    held = {id(p) for group in ns["optimizer"].param_groups for p in group["params"]}
    assert held == {id(p) for p in ns["model"].parameters()}


def test_ten_lines_measure_the_penalty_with_confidence_intervals(own_loop_namespace, capsys):
    source = snippets()["own-loop-penalty"]
    assert len(code_lines(source)) <= 10
    ns = own_loop_namespace
    exec(compile(snippets()["own-loop-reinit"], f"{DOC}:own-loop-reinit", "exec"), ns)  # read in order
    exec(compile(source, f"{DOC}:own-loop-penalty", "exec"), ns)
    printed = capsys.readouterr().out
    summary = {arm["arm"]: arm for arm in ns["log"].summary()}
    assert set(summary) == {"random", "warm"}
    warm = summary["warm"]
    assert warm["seeds"] == [0, 1, 2]
    assert warm["penalty"] is not None and len(warm["penalty_ci"]) == 2
    assert warm["penalty_ci"][0] <= warm["penalty"] <= warm["penalty_ci"][1]
    assert warm["compute_ratio"] == 1.0  # the doc's train() runs a fixed number of epochs
    assert "warm" in printed and "random" in printed


def test_roundlog_basics_run_and_save_a_folder_report_reads(tmp_path, monkeypatch, capsys):
    import activews
    from activews.cli import main

    monkeypatch.chdir(tmp_path)
    ns = {"activews": activews}
    exec(compile(snippets()["roundlog-basics"], f"{DOC}:roundlog-basics", "exec"), ns)
    warm = next(arm for arm in ns["log"].summary() if arm["arm"] == "warm")
    assert warm["penalty"] == pytest.approx(0.03) and warm["compute_ratio"] == pytest.approx(0.3)
    assert (tmp_path / "runs" / "mine" / "records.csv").exists()
    capsys.readouterr()
    assert main(["report", "runs/mine"]) == 0
    assert "+3.00" in capsys.readouterr().out


def test_roundlog_continual_rounds_give_the_continual_metrics(capsys):
    import activews

    ns = {"activews": activews}
    exec(compile(snippets()["roundlog-continual"], f"{DOC}:roundlog-continual", "exec"), ns)
    random_arm, warm = ns["log"].summary()
    # A[1][1]: 0.80 vs 0.88; forgetting and BWT over task 0: 0.90 -> 0.60 vs 0.88 -> 0.80
    assert warm["newest_task_accuracy"] == pytest.approx(0.80)
    assert warm["newest_task_accuracy_vs_ref"] == pytest.approx(-0.08)
    assert warm["forgetting"] == pytest.approx(0.30) and random_arm["forgetting"] == pytest.approx(0.08)
    assert warm["bwt"] == pytest.approx(-0.30) and warm["online_accuracy"] == pytest.approx(0.10)
    assert "Continual metrics (2 tasks)" in capsys.readouterr().out


def test_the_bench_on_your_model_and_training_function_runs_as_a_script(tmp_path):
    import subprocess
    import sys

    text = DOC.read_text()
    section = text[text.index("## Your model and training function in the bench") :]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    script = tmp_path / "user_bench.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # random, warm, shrink_perturb: same epochs each, so the same steps; accuracies are fractions
    arms = eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 - the script's own printed list
    assert [a for a, _, _ in arms] == ["random", "warm", "shrink_perturb"]
    assert len({steps for _, _, steps in arms}) == 1
    assert all(0.0 <= acc <= 1.0 for _, acc, _ in arms)
