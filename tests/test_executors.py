"""Parallel cells and Ray tasks give the same results as one process."""

from __future__ import annotations

import sys

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
    return {
        (r["arm"], r["seed"], r["round"]): {k: v for k, v in r.items() if k not in TIMING} for r in records
    }


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
    with pytest.raises(ActivewsError, match="workers must be a count >= 1"):
        run_bench(config, workers=0)
    with pytest.raises(ActivewsError, match="unknown executor"):
        run_bench(config, executor="dask")


def _listeners() -> set[tuple[str, int]]:
    """Listening TCP sockets of the machine, as (address, port)."""
    import ipaddress
    from pathlib import Path

    out = set()
    for name, v6 in (("tcp", False), ("tcp6", True)):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            hex_ip, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_ip)
            if v6:  # four 32-bit words, each in host (little-endian) order
                ip = ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
            else:
                ip = ipaddress.IPv4Address(raw[::-1])
            out.add((str(ip), int(hex_port, 16)))
    return out


def _loopback(address: str) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net")
def test_a_local_ray_listens_on_the_loopback_interface_only(tmp_path):
    pytest.importorskip("ray")
    before = _listeners()
    during: list[set] = []

    def progress(event):
        if event.kind == "round_end" and not during:
            during.append(_listeners())

    config = BenchConfig.build(**(TINY | {"rounds": 2, "seeds": 1}))
    run_bench(config, executor="ray", workers=2, output=tmp_path / "run", progress=progress)
    opened = during[0] - before
    assert opened, "Ray opened no listener?"
    assert all(_loopback(address) for address, _ in opened), sorted(opened)


def _sleep(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def test_the_pool_calls_back_while_a_task_runs_not_only_when_it_ends():
    """The progress display reads the store in ``on_wait``: it must run every half second."""
    import time

    from activews.engine.workers import WorkerPool

    calls: list[float] = []
    with WorkerPool(1, _sleep) as pool:
        start = time.monotonic()
        assert pool.run([(2.5,)], on_wait=lambda: calls.append(time.monotonic() - start)) == [2.5]
    before_the_end = [t for t in calls if t < calls[-1] - 0.2]
    assert len(before_the_end) >= 3, calls


def test_built_in_datasets_are_reloaded_in_the_workers_not_shipped(config, monkeypatch, tmp_path):
    """Only tensors the caller passed travel to the cells; a built-in dataset is named and re-loaded there
    (pickling its tensors to every worker process and Ray task cost time and memory)."""
    from activews.data import from_arrays
    from activews.engine import bench

    shipped: list[dict] = []
    real = bench.execute_cells

    def spy(*args, **kwargs):
        shipped.append(dict(kwargs["datasets"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(bench, "execute_cells", spy)
    run_bench(config, output=tmp_path / "builtin")
    assert shipped == [{}]

    x = torch.randn(400, 8, generator=torch.Generator().manual_seed(0))
    own = from_arrays(x.numpy(), (x[:, 0] > 0).long().numpy(), test_fraction=0.25, name="own")
    small = config.model_copy(update={"initial": 50, "query_size": 50, "rounds": 2, "seeds": (0,)})
    run_bench(small, dataset=own, output=tmp_path / "given")
    assert list(shipped[1]) == [0] and shipped[1][0] is own
