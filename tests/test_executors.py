"""Parallel cells and Ray tasks give the same results as one process."""

from __future__ import annotations

import pytest

from activews import BenchConfig, run_bench
from activews.errors import ActivewsError

from .run_helpers import TINY, comparable, record_keys


@pytest.fixture(scope="module")
def config():
    return BenchConfig.build(**(TINY | {"strategies": ["shrink_perturb", "partial_reset"]}))


@pytest.fixture(scope="module")
def serial(config):
    return run_bench(config)


def test_workers_2_equals_workers_1(config, serial, tmp_path):
    events = []
    parallel = run_bench(config, workers=2, output=tmp_path / "run", progress=events.append)
    assert record_keys(parallel.records) == record_keys(serial.records)
    assert comparable(parallel.summary) == comparable(serial.summary)
    # progress of cells running in other processes is read back from the store
    assert sum(e.kind == "round_end" for e in events) == 4 * 2 * 3
    assert sum(e.kind == "arm_end" for e in events) == 4 * 2


def test_ray_executor_equals_local(config, serial, tmp_path):
    pytest.importorskip("ray")
    result = run_bench(config, executor="ray", workers=2, output=tmp_path / "run")
    assert record_keys(result.records) == record_keys(serial.records)
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
