"""The ``activews`` command line: in-process through ``main(argv)``, and as a real process."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import activews
from activews.cli import main
from activews.cli.flags import parse_assignments, parse_seeds, parse_value
from activews.errors import ActivewsError

BUILTINS = ["partial_reset", "random", "reset_to_init", "shrink_perturb", "warm"]
SMALL = "--n-examples 1500 --rounds 2 --initial 200 --query-size 200 --seeds 2 --quiet".split()
SUMMARY_FIELDS = {"strategy", "final_accuracy", "penalty", "penalty_ci", "compute_ratio", "seconds"}
REPO = Path(activews.__file__).resolve().parent.parent


def make_inputs(tmp: Path) -> None:
    """The files the error cases point at."""
    rng = np.random.default_rng(0)
    (tmp / "garbage.npz").write_bytes(b"\x00\x01 this is not an npz file \xff" * 20)
    np.savez(tmp / "no_y.npz", X=rng.normal(size=(50, 3)))
    (tmp / "a_file").write_text("not a folder\n")
    run = tmp / "existing_run"
    run.mkdir()
    (run / "config.json").write_text('{"stream": "active"}\n')
    (run / "records.csv").write_bytes(b"strategy,seed\nrandom,0\n")
    np.savez(tmp / "volumes.npz", X=rng.normal(size=(2000, 1, 2, 4, 4)), y=rng.integers(0, 3, 2000))
    with open(tmp / "npy_inside.npz", "wb") as fh:
        np.save(fh, rng.normal(size=(50, 3)))


# name -> (extra bench flags, with {tmp} for the case's folder; expected part of the one-line error)
ERRORS = {
    "unknown_strategy": (
        ["--strategy", "shrink_perturbb"],
        "unknown strategy 'shrink_perturbb'; did you mean",
    ),
    "unknown_dataset": (["--dataset", "mnist1"], "unknown dataset 'mnist1'; did you mean 'mnist1d'"),
    "unknown_model": (["--model", "mpl"], "unknown model 'mpl'; did you mean 'mlp'"),
    "unknown_stream": (["--stream", "pasive"], "unknown stream 'pasive'; did you mean 'passive'"),
    "unknown_acquisition": (["--acquisition", "margn"], "unknown acquisition 'margn'; did you mean 'margin'"),
    "param_out_of_range": (
        ["--param", "shrink_perturb.shrink=1.5"],
        "strategy 'shrink_perturb': shrink: Input should be less than or equal to 1",
    ),
    "param_malformed": (["--param", "shrink=0.5"], "expected STRATEGY.KEY=VALUE"),
    "query_size_zero": (["--query-size", "0"], "query_size: Input should be greater than or equal to 1"),
    "query_size_too_large": (["--query-size", "2000"], "the training pool has 1050; lower --initial"),
    "rounds_negative": (["--rounds", "-1"], "rounds: Input should be greater than or equal to 0"),
    "seeds_malformed": (["--seeds", "a,b"], "--seeds 'a,b': give a count (4) or a list (0,1,2)"),
    "npz_garbage": (["--dataset", "{tmp}/garbage.npz"], "as .npz (ValueError); save it with numpy.savez"),
    "npz_without_y": (["--dataset", "{tmp}/no_y.npz"], "lacks array(s) y (found: X)"),
    "npz_missing": (["--dataset", "{tmp}/nowhere.npz"], "no such file"),
    "output_under_a_file": (["--output", "{tmp}/a_file/run"], "cannot create output folder"),
    "output_not_empty": (
        ["--output", "{tmp}/existing_run"],
        "is not empty and holds no activews run; choose another --output",
    ),
    "output_is_a_file": (["--output", "{tmp}/a_file"], "is a file, not a folder"),
    "json_in_missing_folder": (["--json", "{tmp}/missing/x.json"], "folder '{tmp}/missing' does not exist"),
    "json_is_a_folder": (["--json", "{tmp}"], "is a folder; give a file path"),
    "cnn_on_volumes": (["--dataset", "{tmp}/volumes.npz", "--model", "cnn"], "'cnn' supports 1-D"),
    "npz_holding_npy": (["--dataset", "{tmp}/npy_inside.npz"], "cannot read"),
}
# The cases also run as real processes (each costs ~2 s of imports, so the variants that fail at the
# same place as one of these, e.g. --output naming a file, run in-process only).
IN_A_REAL_PROCESS = [
    "unknown_strategy",
    "unknown_dataset",
    "unknown_model",
    "unknown_stream",
    "unknown_acquisition",
    "param_out_of_range",
    "query_size_zero",
    "query_size_too_large",
    "rounds_negative",
    "npz_garbage",
    "npz_without_y",
    "output_under_a_file",
    "output_not_empty",
    "json_in_missing_folder",
    "cnn_on_volumes",
    "npz_holding_npy",
]


def bench_argv(case: str, tmp: Path) -> list[str]:
    flags = ERRORS[case][0]
    return ["bench", *SMALL, "--output", str(tmp / "out"), *(f.format(tmp=tmp) for f in flags)]


def expected_message(case: str, tmp: Path) -> str:
    return ERRORS[case][1].format(tmp=tmp)


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for folders)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def assert_clean_failure(rc: int, out: str, err: str, case: str, tmp: Path) -> None:
    assert rc == 2, err
    assert "Traceback" not in err + out
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("activews: error: ")
    assert expected_message(case, tmp) in lines[0]


@pytest.fixture
def case_dir(tmp_path, monkeypatch) -> Path:
    make_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "case",
    list(ERRORS),
)
def test_bad_input_is_one_line_and_exit_2(case, case_dir, capsys):
    before = tree(case_dir)
    rc = main(bench_argv(case, case_dir))
    captured = capsys.readouterr()
    assert_clean_failure(rc, captured.out, captured.err, case, case_dir)
    assert captured.out == ""
    assert tree(case_dir) == before, "a failed run must not create or change any file"


def test_bad_input_in_a_real_process(tmp_path):
    """Real ``python -m activews`` processes: exit code 2, one stderr line, no file touched."""
    # The checkout goes first on the path, so the child imports this activews however it was installed.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
    }

    def run(case: str) -> tuple[subprocess.CompletedProcess, Path, dict]:
        folder = tmp_path / case
        folder.mkdir()
        make_inputs(folder)
        before = tree(folder)
        argv = [sys.executable, "-m", "activews", *bench_argv(case, folder)]
        proc = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
        return proc, folder, before

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = dict(zip(IN_A_REAL_PROCESS, pool.map(run, IN_A_REAL_PROCESS), strict=True))
    for case, (proc, folder, before) in results.items():
        assert_clean_failure(proc.returncode, proc.stdout, proc.stderr, case, folder)
        assert tree(folder) == before, case


# ----------------------------------------------------------------------------------------- a real bench


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> tuple[Path, Path, str]:
    """One successful tiny bench through the CLI: (run folder, JSON path, stdout)."""
    tmp = tmp_path_factory.mktemp("cli_run")
    folder, json_path = tmp / "run", tmp / "x.json"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["bench", *SMALL, "--output", str(folder), "--json", str(json_path)])
    assert (rc, err.getvalue()) == (0, "")  # --quiet: nothing on stderr
    return folder, json_path, out.getvalue()


def test_run_folder_contents(cli_run):
    folder, _, stdout = cli_run
    assert {p.name for p in folder.iterdir()} == {
        "config.json",
        "store.sqlite",
        "run.lock",  # kept (empty) after the run: deleting a lock file would race with the next run
        "checkpoints",
        "records.csv",
        "records.json",
        "summary.json",
        "accuracy.png",
        "penalty.png",
        "compute.png",
        "frontier.png",
        "report.html",
    }
    for png in ("accuracy.png", "penalty.png", "compute.png", "frontier.png"):
        assert (folder / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((folder / "checkpoints").iterdir())  # finished arms leave no checkpoint
    config = json.loads((folder / "config.json").read_text())
    assert (config["rounds"], config["initial"], config["seeds"]) == (2, 200, [0, 1])
    records = json.loads((folder / "records.json").read_text())
    assert len(records) == 3 * 2 * 2
    csv_lines = (folder / "records.csv").read_text().splitlines()
    assert csv_lines[0].startswith("arm,strategy,seed,round,n_labeled") and len(csv_lines) == 1 + len(records)
    assert "Warm-start penalty" in stdout and "shrink_perturb" in stdout


def test_json_output(cli_run):
    folder, json_path, _ = cli_run
    data = json.loads(json_path.read_text())
    assert set(data) == {"config", "arms"}
    assert data == json.loads((folder / "summary.json").read_text())
    assert [a["strategy"] for a in data["arms"]] == ["random", "warm", "shrink_perturb"]
    for arm in data["arms"]:
        assert SUMMARY_FIELDS <= set(arm)
        assert len(arm["penalty_ci"]) == 2
    assert data["arms"][0]["penalty"] == 0.0 and data["arms"][0]["compute_ratio"] == 1.0
    assert data["config"]["query_size"] == 200


def test_a_finished_run_is_never_overwritten(cli_run, capsys):
    folder, _, _ = cli_run
    before = tree(folder)
    rc = main(["bench", *SMALL, "--rounds", "3", "--output", str(folder)])
    err = capsys.readouterr().err
    assert (
        rc == 2
        and "holds a run with a different config (rounds: 2 -> 3)" in err
        and len(err.splitlines()) == 1
    )
    assert tree(folder) == before
    # the same flags resume a finished run: nothing is recomputed and the stored rounds stay as they were
    with sqlite3.connect(folder / "store.sqlite") as conn:
        stored = conn.execute("SELECT * FROM records ORDER BY seq").fetchall()
    assert main(["bench", *SMALL, "--output", str(folder), "--quiet"]) == 0
    with sqlite3.connect(folder / "store.sqlite") as conn:
        assert conn.execute("SELECT * FROM records ORDER BY seq").fetchall() == stored


# ------------------------------------------------------------------------------------------ other commands


def test_strategies_lists_the_builtins(capsys):
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    for name in BUILTINS:
        assert name in out


def test_strategies_json(capsys):
    assert main(["strategies", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {row["name"]: row for row in rows}
    assert set(BUILTINS) <= set(by_name)
    assert by_name["shrink_perturb"]["parameters"]["shrink"]["default"] == 0.4
    assert by_name["shrink_perturb"]["parameters"]["shrink"]["constraints"] == [">= 0.0", "<= 1.0"]
    assert "1910.08475" in by_name["shrink_perturb"]["reference"]


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "bench" in capsys.readouterr().out


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--rounds", "three"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid int value: 'three'" in err and err.strip().splitlines()[-1].startswith("activews: error:")


@pytest.mark.parametrize(
    ("plugin", "source", "match"),
    [
        ("missing.py", None, "--plugin '{tmp}/missing.py': no such file"),
        ("bad_plugin.py", "raise RuntimeError('boom')", "failed to import: RuntimeError: boom"),
        ("no_such_module_for_activews_tests", None, "module not found (no_such_module_for_activews_tests)"),
    ],
)
def test_broken_plugins(tmp_path, capsys, plugin, source, match):
    path = tmp_path / plugin
    if source is not None:
        path.write_text(source)
    spec = str(path) if plugin.endswith(".py") else plugin
    try:
        rc = main(["--plugin", spec, "strategies"])
    finally:
        sys.modules.pop("activews_plugin_bad_plugin", None)
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert captured.err.splitlines() == [captured.err.strip()]
    assert match.format(tmp=tmp_path) in captured.err


def test_parsing_helpers():
    assert [parse_value(t) for t in ("0.4", "true", "[1, 2]", "128,128", "abc", "a,b")] == [
        0.4,
        True,
        [1, 2],
        [128, 128],
        "abc",
        ["a", "b"],
    ]
    assert parse_assignments(
        ["shrink_perturb.shrink=0.6", "shrink_perturb.noise=gaussian"], "--param", True
    ) == {"shrink_perturb": {"shrink": 0.6, "noise": "gaussian"}}
    assert parse_assignments(["hidden=64,32"], "--model-param", False) == {"hidden": [64, 32]}
    assert parse_seeds("3") == 3 and parse_seeds("0,2,5") == [0, 2, 5]
    for bad in ("=1", ".shrink=1", "shrink_perturb.=1", "noequals"):
        with pytest.raises(ActivewsError, match="expected STRATEGY.KEY=VALUE"):
            parse_assignments([bad], "--param", True)


# ------------------------------------------------------------------------------------- flags from config


def test_every_setting_has_a_flag_whose_help_is_its_description(capsys):
    """The settings flags are built from BenchConfig: one per field, in a named group, help = description."""
    from activews.cli.flags import GROUPS, flag_name, setting_flags
    from activews.engine.config import BenchConfig

    assert [f for _, f in setting_flags()] and {g for g, _ in setting_flags()} == set(GROUPS)
    assert sorted(f for _, f in setting_flags()) == sorted(BenchConfig.model_fields)
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for field, info in BenchConfig.model_fields.items():
        assert info.description, f"{field} has no description"
        assert flag_name(field) in help_text
        assert " ".join(info.description.replace("data_dir", "--data-dir").split()) in help_text, field
    for flag in ("--strategy NAME", "--sweep STRATEGY.KEY=V1,V2", "--channels-last, --no-channels-last"):
        assert flag in help_text
    assert "(default: shrink_perturb)" in help_text and "(default: 4)" in help_text


def test_help_lists_the_names_a_plugin_registers(plugin_file, capsys):
    path, name = plugin_file
    with pytest.raises(SystemExit) as exc:
        main(["--plugin", path, "bench", "--help"])
    assert exc.value.code == 0
    assert name in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bench", "--help"])  # the registry's names, read when the parser is built
    assert "shrink_perturb | warm" in " ".join(capsys.readouterr().out.split())


def test_plugins_are_read_before_the_command_only():
    from activews.cli.main import plugin_specs

    assert plugin_specs(["--plugin", "a.py", "--plugin=b", "bench", "--plugin", "c.py"]) == ["a.py", "b"]
    assert plugin_specs(["bench", "--help"]) == [] and plugin_specs(["--plugin"]) == []


def test_resume_with_settings_names_their_flags(capsys):
    assert main(["bench", "--resume", "somewhere", "--strategy", "warm", "--query-size", "5"]) == 2
    err = capsys.readouterr().err
    assert "--resume uses the run's own config; drop --strategy, --query-size" in err
