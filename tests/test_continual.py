"""Continual streams in the bench: --shift, --tasks, --classes-per-task, --replay; seeded, resumable,
identical across workers, refused with one line and exit 2 on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from activews import BenchConfig, run_bench
from activews.engine.arm import run_arm
from activews.engine.setup import load_bench_dataset

from .run_helpers import cli, read_json

SMALL = dict(n_examples=1000, rounds=4, initial=60, query_size=30, seeds=2, stream="passive")
CONTINUAL_KEYS = {"task", "task_accuracy", "seen_accuracy", "task_accuracies", "online_accuracy"}


def exact(records):
    """Every field of every record but the wall times."""
    drop = {"seconds", "init_seconds", "select_seconds", "cumulative_seconds"}
    return sorted(
        (tuple(sorted((k, repr(v)) for k, v in r.items() if k not in drop)) for r in records),
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"shift": "permuted_inputs", "tasks": 2},
        {"shift": "permuted_labels", "tasks": 2, "replay": "none"},
        {"shift": "random_labels", "tasks": 4, "replay": "buffer:50"},
        {"shift": "class_incremental", "dataset": "digits", "classes_per_task": 5, "tasks": 2},
        {"shift": "permuted_inputs", "tasks": 2, "stream": "active"},
    ],
)
def test_each_shift_runs_and_records_its_tasks(extra):
    config = BenchConfig.build(**(SMALL | {"seeds": 1} | extra))
    data = load_bench_dataset(config)
    records = run_arm(config, data, "warm", 0)
    tasks = extra["tasks"]
    per_task = 4 // tasks
    assert [r["task"] for r in records] == [r // per_task for r in range(4)]
    for r in records:
        assert CONTINUAL_KEYS <= set(r)
        assert len(r["task_accuracies"]) == tasks
        assert r["task_accuracy"] == r["task_accuracies"][r["task"]]
        assert r["seen_accuracy"] == pytest.approx(np.mean(r["task_accuracies"][: r["task"] + 1]))
    assert records[0]["online_accuracy"] is None
    assert all(0 <= r["online_accuracy"] <= 1 for r in records[1:])
    replay = extra.get("replay", "all")
    if replay == "none":
        assert [r["n_train"] for r in records] == [r["n_new"] for r in records]
    elif replay == "buffer:50":
        # buffer of at most 50 earlier examples + the round's new ones
        assert [r["n_train"] for r in records] == [60, 110, 110, 110]
    else:
        assert "n_train" not in records[0]
    assert exact(run_arm(config, data, "warm", 0)) == exact(records)  # same seed, same numbers


def test_arms_with_the_same_seed_share_the_task_sequence_and_round_zero():
    config = BenchConfig.build(**(SMALL | {"seeds": 1, "shift": "permuted_inputs", "tasks": 2}))
    data = load_bench_dataset(config)
    warm, rand = run_arm(config, data, "warm", 0), run_arm(config, data, "random", 0)
    assert warm[0]["task_accuracies"] == rand[0]["task_accuracies"]  # same tasks, same round 0
    # Round 1's online accuracy is the shared round-0 model on the shared round-1 arrivals.
    assert warm[1]["online_accuracy"] == rand[1]["online_accuracy"]
    assert warm[1]["test_accuracy"] != rand[1]["test_accuracy"]


def test_stationary_records_carry_no_continual_fields():
    config = BenchConfig.build(**(SMALL | {"seeds": 1, "rounds": 2}))
    records = run_arm(config, load_bench_dataset(config), "warm", 0)
    assert not (CONTINUAL_KEYS | {"n_train"}) & set(records[0])


def test_a_shifting_run_resumes_exactly_from_its_checkpoint(tmp_path):
    config = BenchConfig.build(
        **(SMALL | {"seeds": 1, "shift": "permuted_labels", "tasks": 2, "replay": "buffer:40"})
    )
    data = load_bench_dataset(config)
    reference = run_arm(config, data, "shrink_perturb", 0)

    class Interrupt(Exception):
        pass

    def stop(record):
        if record["round"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_arm(config, data, "shrink_perturb", 0, checkpoint=tmp_path / "a.pt", on_record=stop)
    resumed = run_arm(config, data, "shrink_perturb", 0, checkpoint=tmp_path / "a.pt")
    assert exact(resumed) == exact(reference)


def test_workers_give_the_records_of_a_serial_run(tmp_path):
    config = BenchConfig.build(**(SMALL | {"shift": "permuted_inputs", "tasks": 2, "replay": "buffer:40"}))
    serial = run_bench(config, output=tmp_path / "serial")
    parallel = run_bench(config, workers=2, output=tmp_path / "parallel")
    assert exact(serial.records) == exact(parallel.records)
    warm = next(a for a in serial.summary if a["arm"] == "warm")
    assert {"newest_task_accuracy", "forgetting", "bwt", "online_accuracy", "per_task"} <= set(warm)
    assert len(warm["per_task"]) == 2


def test_cli_shift_run_is_reproducible_and_stored(tmp_path):
    flags = [
        "bench", "--stream", "passive", "--shift", "permuted_inputs", "--tasks", "2", "--rounds", "2",
        "--initial", "60", "--n-examples", "600", "--seeds", "1", "--quiet",
    ]  # fmt: skip
    a = cli(*flags, "--output", str(tmp_path / "a"))
    b = cli(*flags, "--output", str(tmp_path / "b"))
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    config = read_json(tmp_path / "a" / "config.json")
    assert config["shift"] == "permuted_inputs" and config["tasks"] == 2
    ra, rb = (read_json(tmp_path / x / "summary.json")["arms"] for x in "ab")
    assert [r["newest_task_accuracy"] for r in ra] == [r["newest_task_accuracy"] for r in rb]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--shift", "permuted"], "unknown shift 'permuted'; did you mean"),
        (["--shift", "permuted_inputs", "--tasks", "0"], "tasks"),
        (["--tasks", "2"], "--tasks 2 needs a shift between tasks"),
        (
            ["--shift", "permuted_inputs", "--tasks", "3", "--rounds", "4"],
            "--rounds 4 is not a multiple of the 3 tasks; use --rounds 3 or 6",
        ),
        (
            [
                "--shift",
                "class_incremental",
                "--dataset",
                "digits",
                "--classes-per-task",
                "3",
                "--rounds",
                "4",
            ],
            "--classes-per-task 3 does not divide the 10 classes",
        ),
        (["--shift", "permuted_inputs", "--classes-per-task", "2"], "--classes-per-task applies to shifts"),
        (["--replay", "buffer:100000"], "holds every example the stream labels"),
        (["--replay", "some"], "give all, none or buffer:N"),
        (
            ["--shift", "permuted_inputs", "--rounds", "2", "--initial", "400"],
            "task 0 (350 examples): initial 400",
        ),
        (
            ["--shift", "permuted_inputs", "--schedule", "0.5,1.0"],
            "--schedule does not apply to a shifting stream",
        ),
    ],
)
def test_bad_continual_input_is_one_line_and_exit_2(tmp_path, flags, message):
    proc = cli(
        "bench", "--stream", "passive", "--n-examples", "1000", *flags, "--output", str(tmp_path / "r")
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "r" / "records.csv").exists()


def test_a_shift_on_data_that_cannot_take_it(tmp_path):
    path = tmp_path / "one_feature.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X=rng.normal(size=(200, 1)).astype("float32"), y=rng.integers(0, 2, 200))
    proc = cli(
        "bench", "--dataset", str(path), "--stream", "passive", "--shift", "permuted_inputs", "--tasks", "2",
        "--rounds", "2", "--initial", "20", "--output", str(tmp_path / "r"),
    )  # fmt: skip
    assert proc.returncode == 2
    assert "permutes the input features, and these examples have 1" in proc.stderr.strip()
