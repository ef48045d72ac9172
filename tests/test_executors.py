"""Parallel cells and Ray tasks give the same results as one process."""

from __future__ import annotations

import pytest
import torch

from activews import BenchConfig, run_bench
from activews.errors import ActivewsError

from .run_helpers import TINY, comparable


@pytest.fixture(scope="module")
def config():
    return BenchConfig.build(**(TINY | {"strategies": ["shrink_perturb", "partial_reset"]}))


@pytest.fixture(scope="module")
def serial(config):
    """A serial run from a process with two torch threads (workers run with one of their own)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = run_bench(config)
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before
    return result


TIMING = {"seconds", "init_seconds", "select_seconds", "cumulative_seconds"}


def every_field_but_wall_times(records: list[dict]) -> dict:
    return {(r["arm"], r["seed"], r["round"]): {k: v for k, v in r.items() if k not in TIMING} for r in records}


def test_workers_2_equals_workers_1(config, serial, tmp_path):
    events = []
    parallel = run_bench(config, workers=2, output=tmp_path / "run", progress=events.append)
    # Every field, training losses included: cells train with the same thread count in both.
    assert every_field_but_wall_times(parallel.records) == every_field_but_wall_times(serial.records)
    assert comparable(parallel.summary) == comparable(serial.summary)
    # progress of cells running in other processes is read back from the store
    assert sum(e.kind == "round_end" for e in events) == 4 * 2 * 3
    assert sum(e.kind == "arm_end" for e in events) == 4 * 2


def test_ray_executor_equals_local(config, serial, tmp_path):
    pytest.importorskip("ray")
    result = run_bench(config, executor="ray", workers=2, output=tmp_path / "run")
    assert every_field_but_wall_times(result.records) == every_field_but_wall_times(serial.records)
    assert comparable(result.summary) == comparable(serial.summary)


def test_worker_errors_surface_in_the_caller(tmp_path):
    config = BenchConfig.build(
        **(
            TINY
            | {"strategies": ["partial_reset"], "params": {"partial_reset": {"pattern": "no_such_layer"}}}
        )
    )
    with pytest.raises(ActivewsError, match="matches no layer"):
        run_bench(config, workers=2, output=tmp_path / "run")


def test_bad_executor_settings(config):
    with pytest.raises(ActivewsError, match="workers must be >= 1"):
        run_bench(config, workers=0)
    with pytest.raises(ActivewsError, match="unknown executor"):
        run_bench(config, executor="dask")
