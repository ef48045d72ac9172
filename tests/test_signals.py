"""Stopping a run: Ctrl-C, SIGTERM and kill -9, to the process group or to the parent alone.

Every case starts a real ``activews bench --workers 2`` (or a serial one) in its own process group,
signals it once two rounds are stored, checks that every process of the run is gone in time with one
message and no traceback, then resumes the run and compares every record field but wall times with an
uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.robustness.kills import live as live_members
from benchmarks.robustness.kills import stored as stored_rounds

from .run_helpers import TINY_FLAGS, cli

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

FLAGS = [*TINY_FLAGS, "--no-plot"]
TIMING = {"seconds", "init_seconds", "select_seconds", "cumulative_seconds"}


def start_bench(folder: Path, *extra: str) -> subprocess.Popen:
    """``activews bench`` in a new process group, with Ctrl-C handled as in an interactive shell."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "activews",
            "bench",
            *FLAGS,
            "--progress",
            "plain",
            "--output",
            str(folder),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_rounds(proc: subprocess.Popen, folder: Path, n: int, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while stored_rounds(folder) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run stored no rounds in time"
        time.sleep(0.05)


def gone_within(pgid: int, limit: float) -> float:
    """Seconds until no process of the group runs (fails after ``limit``)."""
    start = time.monotonic()
    while live_members(pgid):
        elapsed = time.monotonic() - start
        assert elapsed < limit, f"processes {live_members(pgid)} still run {elapsed:.1f} s after the signal"
        time.sleep(0.05)
    return time.monotonic() - start


def comparable_records(folder: Path) -> dict:
    rows = json.loads((folder / "records.json").read_text())
    return {(r["arm"], r["seed"], r["round"]): {k: v for k, v in r.items() if k not in TIMING} for r in rows}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """An uninterrupted serial run's records."""
    folder = tmp_path_factory.mktemp("ref") / "run"
    done = cli("bench", *FLAGS, "--quiet", "--output", str(folder))
    assert done.returncode == 0, done.stderr
    return comparable_records(folder)


TOTAL = 3 * 2 * 3  # arms x seeds x rounds


@pytest.mark.parametrize(
    "sig, target, workers, code, limit",
    [
        (signal.SIGINT, "group", "2", 130, 5.0),  # Ctrl-C in the terminal
        (signal.SIGTERM, "parent", "2", 143, 10.0),  # kill PID
        (signal.SIGTERM, "group", "2", 143, 10.0),  # a container stop of the whole group
        (signal.SIGKILL, "parent", "2", -9, 10.0),  # kill -9 PID: the workers notice
        (signal.SIGTERM, "parent", "1", 143, 10.0),
    ],
    ids=["ctrl-c-group-w2", "term-parent-w2", "term-group-w2", "kill9-parent-w2", "term-parent-serial"],
)
def test_a_signal_stops_every_process_and_the_run_resumes_identically(
    tmp_path, reference, sig, target, workers, code, limit
):
    folder = tmp_path / "run"
    proc = start_bench(folder, "--workers", workers)
    wait_for_rounds(proc, folder, 2)
    if target == "group":
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    gone_within(proc.pid, limit)
    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    if code > 0:  # the parent could say something: one line, and how to continue
        word = "interrupted" if sig == signal.SIGINT else "terminated (SIGTERM)"
        last = err.strip().splitlines()[-1]
        assert last == f"{word}; finished rounds are stored. Continue with: activews bench --resume {folder}"
    stored = stored_rounds(folder)
    assert stored < TOTAL, "the run went on after the signal"
    time.sleep(1.0)
    assert stored_rounds(folder) == stored, "a process still writes to the store"

    resumed = cli("bench", "--resume", str(folder), "--quiet", "--no-plot")
    assert resumed.returncode == 0, resumed.stderr
    assert comparable_records(folder) == reference


def test_two_runs_started_together_on_one_folder(tmp_path):
    folder = tmp_path / "run"
    procs = [start_bench(folder, "--quiet") for _ in range(2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    err = next(e for code, e in results if code == 2)
    assert err.count("\n") == 1 and err.startswith("activews: error: run folder "), err
    assert "is in use by another activews process (pid " in err
    assert stored_rounds(folder) == TOTAL


def test_resume_while_the_run_is_running_is_refused(tmp_path):
    folder = tmp_path / "run"
    proc = start_bench(folder, "--quiet", "--seeds", "8")  # long enough to outlast the second start
    try:
        wait_for_rounds(proc, folder, 1)
        second = cli("bench", "--resume", str(folder), "--quiet", "--no-plot")
        assert proc.poll() is None, "the first run ended before the second started: lengthen it"
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1
        assert f"(pid {proc.pid}" in second.stderr and f"kill {proc.pid}" in second.stderr
    finally:
        proc.terminate()  # no need to finish it
        proc.communicate(timeout=60)
    assert proc.returncode == 143
