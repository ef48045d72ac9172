"""A catalogue of bad inputs to the ``activews`` command line, each checked for one clean line.

    python benchmarks/robustness/bad_inputs.py               # every case (a few minutes on 2 cores)
    python benchmarks/robustness/bad_inputs.py -k npz        # the cases whose name contains "npz" (-k repeats)

Every case runs ``python -m activews ...`` in a temporary folder, with tiny settings
(``--n-examples 1000 --rounds 2 --initial 100 --query-size 100 --seeds 1 --no-plot --quiet``) so that a
case wrongly accepted still finishes quickly, and passes when:

- the exit code is 2,
- standard error is exactly one line, starting ``activews: error:``,
- no ``Traceback`` appears on either stream.

The cases cover every flag of ``bench`` with wrong types, out-of-range values and unknown names; sweep
files (binary, empty, garbage, wrong types, booleans for numbers); ``.npz`` files with missing, mistyped
or mis-shaped arrays, float labels, complex or float32-overflowing features; missing paths; outputs that
are files, non-empty or read-only folders; 0-byte, garbage and truncated ``store.sqlite``; bad ``runs``,
``report`` and ``reproduce`` arguments; and plugins that fail. A few inputs that are *good* but once
crashed (rich markup in paths) are run too and must exit 0 without a traceback.

Cases that need a finished run share one, made once with the tiny settings. Read-only folders: as root
``chmod`` does not stop writes, so ``/sys`` (which refuses new files to everyone) stands in when needed.
Results go to ``benchmarks/robustness/results/bad_inputs.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TINY = {
    "--n-examples": "1000",
    "--rounds": "2",
    "--initial": "100",
    "--query-size": "100",
    "--seeds": "1",
    "--no-plot": None,
    "--quiet": None,
}
TIMEOUT = 180


def bench(*extra: str, drop: tuple[str, ...] = (), command: str = "bench") -> list[str]:
    """``bench`` with the tiny settings, minus ``drop`` and any flag that ``extra`` sets itself."""
    given = {a for a in extra if a.startswith("--")}
    argv = [command]
    for flag, value in TINY.items():
        if flag in drop or flag in given:
            continue
        argv += [flag] if value is None else [flag, value]
    return argv + list(extra)


@dataclass
class Case:
    name: str
    argv: list[str]  # after "python -m activews"; "{tmp}" and "{run}" are filled in
    needs_run: bool = False
    expect_ok: bool = False  # a good input that once crashed: exit 0, no traceback
    env: dict[str, str] = field(default_factory=dict)


def read_only_dir(tmp: Path) -> Path:
    """A folder nobody may create files in: chmod 555, or /sys where chmod does not stop us (root)."""
    folder = tmp / "read_only"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o555)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return folder
    return Path("/sys")


# ------------------------------------------------------------------------------------------- cases


def cases() -> list[Case]:
    c: list[Case] = []

    def add(name: str, argv: list[str], **kw: object) -> None:
        c.append(Case(name, argv, **kw))  # type: ignore[arg-type]

    # -- argparse: wrong types, missing values, unknown flags and commands
    int_flags = [
        "--n-examples", "--split-seed", "--rounds", "--initial", "--query-size", "--pool-subsample",
        "--label-budget", "--score-batch", "--batch-size", "--patience", "--max-epochs",
        "--first-round-epochs", "--eval-batch-size", "--workers",
    ]  # fmt: skip
    for flag in int_flags:
        add(f"type{flag}_text", bench(flag, "abc"))
    for flag in ("--rounds", "--batch-size"):
        add(f"type{flag}_float", bench(flag, "1.5"))
    float_flags = [
        "--test-fraction", "--lr", "--momentum", "--weight-decay", "--target-accuracy", "--min-delta",
        "--label-fraction", "--label-threshold",
    ]  # fmt: skip
    for flag in float_flags:
        add(f"type{flag}_text", bench(flag, "fast"))
    add("missing_value_lr", bench("--lr"))
    add("choice_executor", bench("--executor", "slurm"))
    add("choice_progress", bench("--progress", "fancy"))
    add("unknown_flag", bench("--learning-rate", "0.1"))
    add("unknown_command", ["benchmark"])
    add("strategies_extra_arg", ["strategies", "--verbose"])
    add("acquisitions_extra_arg", ["acquisitions", "extra"])

    # -- ranges
    ranges = {
        "n_examples_1": ("--n-examples", "1"),
        "n_examples_too_many": ("--n-examples", "100000000"),
        "test_fraction_0": ("--test-fraction", "0"),
        "test_fraction_1": ("--test-fraction", "1"),
        "test_fraction_negative": ("--test-fraction", "-0.2"),
        "test_fraction_nan": ("--test-fraction", "nan"),
        "lr_0": ("--lr", "0"),
        "lr_negative": ("--lr", "-1"),
        "lr_nan": ("--lr", "nan"),
        "lr_inf": ("--lr", "inf"),
        "momentum_1": ("--momentum", "1"),
        "momentum_negative": ("--momentum", "-0.5"),
        "weight_decay_negative": ("--weight-decay", "-1"),
        "batch_size_0": ("--batch-size", "0"),
        "target_accuracy_0": ("--target-accuracy", "0"),
        "target_accuracy_1.5": ("--target-accuracy", "1.5"),
        "patience_0": ("--patience", "0"),
        "min_delta_negative": ("--min-delta", "-0.1"),
        "max_epochs_0": ("--max-epochs", "0"),
        "rounds_negative": ("--rounds", "-1"),
        "initial_0": ("--initial", "0"),
        "query_size_0": ("--query-size", "0"),
        "query_size_beyond_pool": ("--query-size", "100000"),
        "initial_beyond_pool": ("--initial", "100000"),
        "score_batch_0": ("--score-batch", "0"),
        "eval_batch_size_0": ("--eval-batch-size", "0"),
        "first_round_epochs_negative": ("--first-round-epochs", "-1"),
        "split_seed_negative": ("--split-seed", "-1"),
        "split_seed_2**32": ("--split-seed", "4294967296"),
        "workers_0": ("--workers", "0"),
        "workers_negative": ("--workers", "-3"),
    }
    for name, (flag, value) in ranges.items():
        add(f"range_{name}", bench(flag, value))

    # -- seeds
    for name, value in {
        "huge": "100000000000000000000,1",
        "2**32": "4294967296",
        "2**32_list": "0,4294967296",
        "negative_list": "-1,2",
        "zero_count": "0",
        "count_too_large": "100000000",
        "text": "abc",
        "repeated": "1,1",
        "float": "1.5",
        "empty": "",
        "hex": "0x10",
    }.items():
        add(f"seeds_{name}", bench("--seeds", value))

    # -- devices, executors
    add("device_gpu", bench("--device", "gpu"))
    add("device_cuda_missing", bench("--device", "cuda"))
    add("device_cuda_99", bench("--device", "cuda:99"))
    add("device_cuda_text", bench("--device", "cuda:x"))
    add("device_mps_missing", bench("--device", "mps"))
    add("address_without_ray", bench("--address", "localhost:6379"))

    # -- threads, workers and the GPU path (issue 12)
    add("threads_0", bench("--threads", "0"))
    add("threads_negative", bench("--threads", "-2"))
    add("type--threads_text", bench("--threads", "two"))
    add("workers_text", bench("--workers", "all"))
    add("precision_fp16_on_cpu", bench("--precision", "fp16"))
    add("precision_fp16_auto_on_cpu", bench("--precision", "fp16", "--device", "auto"))
    add("precision_unknown", bench("--precision", "fp8"))
    add("gpus_per_cell_on_cpu", bench("--gpus-per-cell", "0.5"))
    add("gpus_per_cell_0", bench("--gpus-per-cell", "0", "--device", "cuda"))
    add("gpus_per_cell_text", bench("--gpus-per-cell", "half"))
    add("gpus_per_cell_cuda_missing", bench("--gpus-per-cell", "0.5", "--device", "cuda"))
    add("channels_last_on_cpu", bench("--channels-last"))
    add("compile_without_a_compiler", bench("--compile"), env={"PATH": "/nonexistent", "CXX": ""})

    # -- names
    add("unknown_strategy", bench("--strategy", "shrink_perturbb"))
    add("empty_strategy", bench("--strategy", ""))
    add("unknown_stream", bench("--stream", "pasive"))
    add("unknown_model", bench("--model", "mpl"))
    add("unknown_dataset", bench("--dataset", "mnist2d"))
    add("unknown_acquisition", bench("--acquisition", "margn"))
    add("unknown_optimizer", bench("--optimizer", "adamw"))
    add("unknown_diagnostic", bench("--diagnostics", "grad_norm"))

    # -- strategy parameters and sweeps
    add("param_no_equals", bench("--param", "shrink_perturb.shrink"))
    add("param_no_dot", bench("--param", "shrink=0.5"))
    add("param_empty_owner", bench("--param", ".shrink=0.5"))
    add("param_unknown_strategy", bench("--param", "nope.x=1"))
    add("param_strategy_not_in_run", bench("--param", "partial_reset.fraction=0.5"))
    add("param_unknown_key", bench("--param", "shrink_perturb.shrinkk=0.5"))
    add("param_out_of_range", bench("--param", "shrink_perturb.shrink=1.5"))
    add("param_wrong_type", bench("--param", "shrink_perturb.shrink=abc"))
    add("param_for_warm", bench("--param", "warm.x=1"))
    add("sweep_empty", bench("--sweep", "shrink_perturb.shrink="))
    add("sweep_duplicate", bench("--sweep", "shrink_perturb.shrink=0.2,0.2"))
    add("sweep_out_of_range", bench("--sweep", "shrink_perturb.shrink=0.2,5"))
    add("sweep_unknown_strategy", bench("--sweep", "nope.x=1,2"))

    # -- model parameters
    add("model_param_unknown", bench("--model-param", "hiddenn=64"))
    add("model_param_zero_width", bench("--model-param", "hidden=0"))
    add("model_param_negative_width", bench("--model-param", "hidden=64,-5"))
    add("model_param_text", bench("--model-param", "hidden=wide"))
    add("model_param_huge", bench("--model-param", "hidden=100000000"))
    add("model_param_huge_cnn", bench("--model", "cnn", "--model-param", "channels=100000,100000"))
    add("model_param_activation", bench("--model-param", "activation=sigmoid"))
    add("model_param_dropout_1", bench("--model-param", "dropout=1"))
    add("model_param_for_logreg", bench("--model", "logreg", "--model-param", "hidden=5"))
    add("model_param_no_equals", bench("--model-param", "hidden"))
    add("model_param_bool", bench("--model-param", "hidden=true"))
    add("param_bool", bench("--param", "shrink_perturb.shrink=true"))

    # -- acquisitions
    add("acquisition_param_unknown", bench("--acquisition-param", "samples=20"))
    add("acquisition_bald_samples_0", bench("--acquisition", "bald", "--acquisition-param", "samples=0"))
    add("acquisition_bald_without_dropout", bench("--acquisition", "bald"))
    add("pool_subsample_0", bench("--pool-subsample", "0"))
    add("pool_subsample_below_query", bench("--pool-subsample", "10"))
    add("pool_subsample_passive", bench("--stream", "passive", "--pool-subsample", "500"))

    # -- stream combinations
    add(
        "schedule_decreasing",
        bench("--stream", "passive", "--schedule", "1.0,0.5", drop=("--rounds", "--initial", "--query-size")),
    )
    add(
        "schedule_text",
        bench(
            "--stream", "passive", "--schedule", "half,all", drop=("--rounds", "--initial", "--query-size")
        ),
    )
    add(
        "schedule_above_1",
        bench("--stream", "passive", "--schedule", "0.5,1.5", drop=("--rounds", "--initial", "--query-size")),
    )
    add(
        "schedule_zero",
        bench("--stream", "passive", "--schedule", "0,1", drop=("--rounds", "--initial", "--query-size")),
    )
    add("schedule_with_rounds", bench("--stream", "passive", "--schedule", "0.5,1.0"))
    add("schedule_active", bench("--schedule", "0.5,1.0", drop=("--rounds", "--initial", "--query-size")))
    add("selective_without_budget", bench("--stream", "selective"))
    add("label_fraction_active", bench("--label-fraction", "0.5"))
    add("label_fraction_0", bench("--stream", "selective", "--label-fraction", "0"))
    add("label_fraction_2", bench("--stream", "selective", "--label-fraction", "2"))
    add(
        "label_budget_negative",
        bench("--stream", "selective", "--label-fraction", "0.5", "--label-budget", "-1"),
    )
    add("counterfactual_passive", bench("--stream", "passive", "--counterfactual"))
    add("val_split_mnist1d", bench("--val-split"))
    add("augment_not_images", bench("--augment"))

    # -- grids
    add("grid_duplicate", bench("--grid", "lr=0.001,0.001"))
    add("grid_duplicate_equal_floats", bench("--grid", "lr=0.001,1e-3"))
    add("grid_unknown_field", bench("--grid", "learning_rate=0.1,0.2"))
    add("grid_no_equals", bench("--grid", "lr"))
    add("grid_empty_value", bench("--grid", "lr="))
    add("grid_and_flag", bench("--grid", "lr=0.1,0.2", "--lr", "0.01"))
    add("grid_param_grid", bench("--grid", "param_grid=1,2"))
    add("grid_bad_value", bench("--grid", "lr=0.1,-1"))
    add("grid_unknown_model", bench("--grid", "model=mlp,mpl"))

    # -- sweep files
    for name in (
        "missing.toml", "folder.toml", "binary.toml", "empty.toml", "comments.toml", "garbage.toml",
        "utf16.toml", "unknown_key.toml", "rounds_true.toml", "lr_text.toml", "seeds_text.toml",
        "seeds_huge.toml", "grid_not_table.toml", "grid_not_list.toml", "grid_empty_list.toml",
        "grid_unknown.toml", "grid_duplicate.toml", "strategies_number.toml", "params_not_table.toml",
        "param_grid_not_list.toml", "schedule_bool.toml", "batch_size_false.toml",
    ):  # fmt: skip
        add(
            f"config_{name.removesuffix('.toml')}",
            bench("--config", f"{{tmp}}/cfg/{name}", drop=("--rounds", "--seeds")),
        )

    # -- .npz datasets
    for name in (
        "missing", "folder", "garbage", "empty", "npy_inside", "no_y", "no_X", "X_1d", "y_2d", "y_short",
        "X_text", "X_object", "y_continuous", "y_halves", "y_complex", "X_complex", "X_1e39", "X_nan",
        "y_nan", "one_class", "one_example", "X_test_without_y_test", "X_test_wrong_shape", "X_no_rows",
    ):  # fmt: skip
        add(f"npz_{name}", bench("--dataset", f"{{tmp}}/npz/{name}.npz", drop=("--n-examples",)))
    add(
        "npz_val_split_without_test",
        bench("--dataset", "{tmp}/npz/ok.npz", "--val-split", drop=("--n-examples",)),
    )
    add("npz_n_examples_too_many", bench("--dataset", "{tmp}/npz/ok.npz", "--n-examples", "5000"))
    add("npz_not_npz_suffix", bench("--dataset", "{tmp}/npz/ok.npy"))
    add(
        "cifar10_no_files",
        bench("--dataset", "cifar10", "--data-dir", "{tmp}/no_such_dir", drop=("--n-examples",)),
    )

    # -- outputs
    add("output_is_file", bench("--output", "{tmp}/a_file"))
    add("output_nonempty_folder", bench("--output", "{tmp}/nonempty"))
    add("output_read_only", bench("--output", "{ro}/new_run"))
    add("output_other_config", bench("--output", "{run}", "--lr", "0.01"), needs_run=True)
    add("json_is_folder", bench("--json", "{tmp}/nonempty"))
    add("json_folder_missing", bench("--json", "{tmp}/no_such_dir/x.json"))
    add("json_read_only", bench("--json", "{ro}/x.json"))

    # -- resume
    add("resume_missing", ["bench", "--resume", "{tmp}/no_such_run"])
    add("resume_with_flags", ["bench", "--resume", "{run}", "--lr", "0.1"], needs_run=True)
    for store in ("store_empty", "store_garbage", "store_truncated", "store_never_started"):
        add(f"resume_{store}", ["bench", "--resume", f"{{tmp}}/{store}"])

    # -- runs and report
    add("runs_no_action", ["runs"])
    add("runs_unknown_action", ["runs", "delete"])
    add("runs_show_no_arg", ["runs", "show"])
    add("runs_show_missing", ["runs", "show", "{tmp}/no_such_run"])
    add("runs_show_not_a_run", ["runs", "show", "{tmp}/nonempty"])
    add("runs_show_long_name", ["runs", "show", "x" * 5000])
    add("runs_list_missing_root", ["runs", "list", "--root", "{tmp}/no_such_dir"])
    add("runs_list_root_is_file", ["runs", "list", "--root", "{tmp}/a_file"])
    add("runs_export_what", ["runs", "export", "{run}", "--what", "everything"], needs_run=True)
    add("runs_export_format", ["runs", "export", "{run}", "--format", "xml"], needs_run=True)
    add(
        "runs_export_output_folder", ["runs", "export", "{run}", "--output", "{tmp}/nonempty"], needs_run=True
    )
    add(
        "runs_export_output_missing_dir",
        ["runs", "export", "{run}", "--output", "{tmp}/no_such_dir/x.csv"],
        needs_run=True,
    )
    add("runs_export_read_only", ["runs", "export", "{run}", "--output", "{ro}/x.csv"], needs_run=True)
    add("report_missing", ["report", "{tmp}/no_such_run"])
    add("report_output_file", ["report", "{run}", "--output", "{tmp}/a_file"], needs_run=True)
    add("report_output_read_only", ["report", "{run}", "--output", "{ro}"], needs_run=True)
    add("report_output_under_read_only", ["report", "{run}", "--output", "{ro}/sub/dir"], needs_run=True)
    for store in ("store_empty", "store_garbage", "store_truncated", "store_never_started", "store_bad_json"):
        for command in (["runs", "show"], ["report"], ["runs", "export"]):
            add(f"{'_'.join(command)}_{store}", [*command, f"{{tmp}}/{store}"])

    # -- reproduce
    add("reproduce_no_protocol", ["reproduce"])
    add("reproduce_unknown_protocol", ["reproduce", "two-phaze"])
    add("reproduce_bad_lr", ["reproduce", "two-phase", "--lr", "-1", "--quiet"])
    add("reproduce_bad_seeds", ["reproduce", "online", "--seeds", "100000000000000000000", "--quiet"])
    add("reproduce_bad_grid", ["reproduce", "two-phase", "--grid", "nope=1,2", "--quiet"])
    add("reproduce_binary_config", ["reproduce", "two-phase", "--config", "{tmp}/cfg/binary.toml", "--quiet"])
    add("reproduce_output_file", ["reproduce", "two-phase", "--output", "{tmp}/a_file", "--quiet"])

    # -- plugins
    add("plugin_missing_module", ["--plugin", "no_such_module_xyz", "strategies"])
    add("plugin_missing_file", ["--plugin", "{tmp}/no_such_plugin.py", "strategies"])
    add("plugin_syntax_error", ["--plugin", "{tmp}/plugins/syntax.py", "strategies"])
    add("plugin_raises", ["--plugin", "{tmp}/plugins/raises.py", "strategies"])

    # -- good inputs that once crashed: rich markup in user paths
    add("ok_report_markup_folder", ["report", "{tmp}/markup[/x]"], needs_run=True, expect_ok=True)
    add("ok_runs_show_markup_folder", ["runs", "show", "{tmp}/markup[v2]"], needs_run=True, expect_ok=True)
    add(
        "ok_bench_markup_dataset",
        bench(
            "--dataset",
            "{tmp}/data[/x]/d.npz",
            "--output",
            "{tmp}/out[/x]",
            "--progress",
            "plain",
            drop=("--n-examples", "--quiet"),
        ),
        expect_ok=True,
    )
    return c


# ------------------------------------------------------------------------------------------ inputs


def make_inputs(tmp: Path) -> None:
    """Every file the cases point at."""
    rng = np.random.default_rng(0)
    (tmp / "a_file").write_text("not a folder\n")
    (tmp / "nonempty").mkdir()
    (tmp / "nonempty" / "notes.txt").write_text("mine\n")

    cfg = tmp / "cfg"
    cfg.mkdir()
    (cfg / "folder.toml").mkdir()
    (cfg / "binary.toml").write_bytes(bytes(range(256)) * 8)
    (cfg / "empty.toml").write_bytes(b"")
    (cfg / "comments.toml").write_text("# nothing here\n")
    (cfg / "garbage.toml").write_text("stream = [passive\n[[[\n")
    (cfg / "utf16.toml").write_bytes('stream = "passive"\n'.encode("utf-16"))
    toml = {
        "unknown_key": "learning_rate = 0.1\n",
        "rounds_true": "rounds = true\n",
        "lr_text": 'lr = "fast"\n',
        "seeds_text": 'seeds = "abc"\n',
        "seeds_huge": "seeds = [4294967296, 1]\n",
        "grid_not_table": "grid = 5\n",
        "grid_not_list": "[grid]\nlr = 0.1\n",
        "grid_empty_list": "[grid]\nlr = []\n",
        "grid_unknown": "[grid]\nlearning_rate = [0.1, 0.2]\n",
        "grid_duplicate": '[grid]\nmodel = ["mlp", "mlp"]\n',
        "strategies_number": "strategies = 5\n",
        "params_not_table": "params = 5\n",
        "param_grid_not_list": "[param_grid.shrink_perturb]\nshrink = 0.5\n",
        "schedule_bool": 'stream = "passive"\nschedule = [true, 1.0]\n',
        "batch_size_false": "batch_size = false\n",
    }
    for name, text in toml.items():  # tiny settings unless the case sets them itself
        keys = [("seeds", 1)] + [("rounds", 2)] * ("schedule" not in text)
        tiny = "".join(f"{k} = {v}\n" for k, v in keys if f"{k} =" not in text)
        (cfg / f"{name}.toml").write_text(tiny + text)

    npz = tmp / "npz"
    npz.mkdir()
    X = rng.normal(size=(600, 5))
    y = (X[:, 0] > 0).astype(np.int64)
    arrays = {
        "ok": {"X": X, "y": y},
        "no_y": {"X": X},
        "no_X": {"y": y},
        "X_1d": {"X": X[:, 0], "y": y},
        "y_2d": {"X": X, "y": np.eye(2)[y]},
        "y_short": {"X": X, "y": y[:-10]},
        "X_text": {"X": np.array([["a"] * 5] * 600), "y": y},
        "y_continuous": {"X": X, "y": rng.random(600)},
        "y_halves": {"X": X, "y": y + 0.5},
        "y_complex": {"X": X, "y": y + 1j},
        "X_complex": {"X": X + 1j * X, "y": y},
        "X_1e39": {"X": np.where(np.arange(5) == 2, 1e39, X), "y": y},
        "X_nan": {"X": np.where(X > 2, np.nan, X), "y": y},
        "y_nan": {"X": X, "y": np.where(np.arange(600) == 7, np.nan, y.astype(float))},
        "one_class": {"X": X, "y": np.zeros(600, dtype=int)},
        "one_example": {"X": X[:1], "y": y[:1]},
        "X_test_without_y_test": {"X": X, "y": y, "X_test": X[:50]},
        "X_test_wrong_shape": {"X": X, "y": y, "X_test": X[:50, :3], "y_test": y[:50]},
        "X_no_rows": {"X": X[:0], "y": y[:0]},
    }
    for name, arrs in arrays.items():
        np.savez(npz / f"{name}.npz", **arrs)
    (npz / "folder.npz").mkdir()
    (npz / "garbage.npz").write_bytes(b"\x00\x01 not an npz \xff" * 50)
    (npz / "empty.npz").write_bytes(b"")
    with open(npz / "npy_inside.npz", "wb") as fh:
        np.save(fh, X)
    np.save(npz / "ok.npy", X)
    np.savez(npz / "X_object.npz", X=X.astype(object), y=y)  # needs pickle to load: refused

    data = tmp / "data[" / "x]"  # the dataset path data[/x]/d.npz
    data.mkdir(parents=True)
    np.savez(data / "d.npz", X=X, y=y)

    stores = {"store_empty": b"", "store_garbage": b"SQLite format 3\x00" + b"\xde\xad\xbe\xef" * 500}
    for name, content in stores.items():
        (tmp / name).mkdir()
        (tmp / name / "store.sqlite").write_bytes(content)
    never = tmp / "store_never_started"
    never.mkdir()
    conn = sqlite3.connect(never / "store.sqlite")
    conn.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE experiments (experiment INTEGER PRIMARY KEY, label TEXT, config TEXT);"
        "CREATE TABLE cells (experiment INTEGER, arm TEXT, seed INTEGER, strategy TEXT, params TEXT, "
        "status TEXT, rounds_done INTEGER, updated_at REAL);"
        "CREATE TABLE records (seq INTEGER PRIMARY KEY, experiment INTEGER, arm TEXT, seed INTEGER, "
        "round INTEGER, test_accuracy REAL, steps INTEGER, seconds REAL, data TEXT, committed_at REAL);"
    )
    conn.close()

    plugins = tmp / "plugins"
    plugins.mkdir()
    (plugins / "syntax.py").write_text("def broken(:\n")
    (plugins / "raises.py").write_text("raise RuntimeError('plugin failed on import')\n")


def make_run(tmp: Path, env: dict[str, str]) -> Path:
    """One finished tiny run, and copies of it: damaged ones and ones whose names hold rich markup."""
    run = tmp / "healthy_run"
    proc = subprocess.run(
        [sys.executable, "-m", "activews", *bench("--output", str(run))],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"could not make the shared run: {proc.stderr.strip()}")
    for name in ("markup[/x]", "markup[v2]"):
        shutil.copytree(run, tmp / name)
    truncated = tmp / "store_truncated"
    truncated.mkdir()
    (truncated / "store.sqlite").write_bytes((run / "store.sqlite").read_bytes()[:3000])
    bad_json = tmp / "store_bad_json"
    shutil.copytree(run, bad_json)
    conn = sqlite3.connect(bad_json / "store.sqlite")
    conn.execute("UPDATE experiments SET config = '{not json'")
    conn.commit()
    conn.close()
    return run


# --------------------------------------------------------------------------------------------- run


def run_case(case: Case, tmp: Path, run: Path | None, ro: Path, env: dict[str, str]) -> dict[str, object]:
    argv = [
        a.replace("{tmp}", str(tmp)).replace("{run}", str(run)).replace("{ro}", str(ro)) for a in case.argv
    ]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "activews", *argv],
            cwd=tmp, env=env | case.env, capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = None
        out = (
            (exc.stdout or b"").decode(errors="replace")
            if isinstance(exc.stdout, bytes)
            else (exc.stdout or "")
        )
        err = (
            (exc.stderr or b"").decode(errors="replace")
            if isinstance(exc.stderr, bytes)
            else (exc.stderr or "")
        )
    seconds = time.perf_counter() - start
    lines = err.splitlines()
    traceback = "Traceback" in out or "Traceback" in err
    if case.expect_ok:
        problems = [] if rc == 0 else [f"exit {rc}"]
    else:
        problems = [] if rc == 2 else ["timed out" if rc is None else f"exit {rc}"]
        if len(lines) != 1:
            problems.append(f"{len(lines)} lines on stderr")
        elif not lines[0].startswith("activews: error:"):
            problems.append("stderr does not start with 'activews: error:'")
    if traceback:
        problems.append("traceback")
    return {
        "name": case.name,
        "argv": ["activews", *argv],
        "expect": "exit 0" if case.expect_ok else "one line, exit 2",
        "ok": not problems,
        "problems": problems,
        "exit_code": rc,
        "stderr": lines[-1] if (case.expect_ok or len(lines) <= 1) and lines else "\n".join(lines[-6:]),
        "seconds": round(seconds, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-k", action="append", metavar="TEXT", help="only the cases whose name contains TEXT (repeatable)"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="cases run at once (default: 1; 2 cores are shared)"
    )
    parser.add_argument("--output", default=str(HERE / "results" / "bad_inputs.json"), help="results JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    args = parser.parse_args()
    selected = [c for c in cases() if not args.k or any(k in c.name for k in args.k)]
    names = [c.name for c in selected]
    if len(set(names)) != len(names):
        raise SystemExit(f"duplicate case names: {sorted({n for n in names if names.count(n) > 1})}")

    tmp = Path(tempfile.mkdtemp(prefix="activews-bad-inputs-"))
    env = os.environ | {"COLUMNS": "120", "PYTHONWARNINGS": "default"}
    started = time.perf_counter()
    try:
        make_inputs(tmp)
        ro = read_only_dir(tmp)
        run = make_run(tmp, env) if any(c.needs_run for c in selected) else None

        def one(case: Case) -> dict[str, object]:
            result = run_case(case, tmp, run, ro, env)
            status = "ok  " if result["ok"] else "FAIL"
            print(f"{status} {case.name} ({result['seconds']} s)", flush=True)
            return result

        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            results = list(pool.map(one, selected))
    finally:
        (tmp / "read_only").chmod(0o755) if (tmp / "read_only").exists() else None
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    bad = [r for r in results if r["expect"] != "exit 0"]
    good = [r for r in results if r["expect"] == "exit 0"]
    passed = sum(r["ok"] for r in bad)
    summary = f"{passed} of {len(bad)} bad inputs: one line, exit 2"
    if good:
        summary += f"; {sum(r['ok'] for r in good)} of {len(good)} good inputs with markup in paths: exit 0"
    for r in results:
        if not r["ok"]:
            print(f"FAIL {r['name']}: {', '.join(r['problems'])}\n    $ {' '.join(r['argv'])}")
            for line in str(r["stderr"]).splitlines():
                print(f"    {line}")
    print(summary)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "summary": summary,
        "command": "python benchmarks/robustness/bad_inputs.py" + "".join(f" -k {k}" for k in args.k or []),
        "seconds": round(time.perf_counter() - started, 1),
        "python": sys.version.split()[0],
        "results": results,
    }
    out.write_text(json.dumps(payload, indent=1) + "\n")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
