"""Resume: a killed run continues from its last finished round and ends with the same numbers."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch

from activews import BenchConfig, run_bench
from activews.engine.arm import run_arm
from activews.engine.setup import load_bench_dataset
from activews.errors import ActivewsError

from .run_helpers import TINY, TINY_FLAGS, cli, comparable, read_json, record_keys


class Interrupt(Exception):
    pass


@pytest.mark.parametrize(
    ("strategy", "extra"),
    [
        ("shrink_perturb", {"stream": "active", "acquisition": "random"}),  # draws from the stream generator
        (
            "shrink_perturb",
            {
                "stream": "passive",
                "keep_optimizer_state": True,
                "params": {"shrink_perturb": {"noise": "gaussian"}},
            },
        ),
        (
            "random",
            {"stream": "active", "model": "cnn", "model_params": {"channels": [4], "batchnorm": True}},
        ),
    ],
)
def test_run_arm_resumes_exactly_from_its_checkpoint(tmp_path, strategy, extra):
    config = BenchConfig.build(**(TINY | {"rounds": 4} | extra))
    data = load_bench_dataset(config)
    reference = run_arm(config, data, strategy, 0)
    ckpt = tmp_path / "arm.pt"

    def stop_after_round_1(record):
        if record["round"] == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_arm(config, data, strategy, 0, checkpoint=ckpt, on_record=stop_after_round_1)
    saved = torch.load(ckpt, weights_only=True)  # loads without unpickling arbitrary objects
    assert saved["round"] == 1 and len(saved["records"]) == 2
    seen = []
    resumed = run_arm(config, data, strategy, 0, checkpoint=ckpt, on_record=seen.append)
    assert [r["round"] for r in seen] == [2, 3]  # finished rounds were not recomputed
    assert record_keys(resumed) == record_keys(reference)


def test_a_torn_checkpoint_restarts_the_arm(tmp_path):
    config = BenchConfig.build(**TINY)
    data = load_bench_dataset(config)
    ckpt = tmp_path / "arm.pt"
    ckpt.write_bytes(b"not a checkpoint")
    assert record_keys(run_arm(config, data, "warm", 1, checkpoint=ckpt)) == record_keys(
        run_arm(config, data, "warm", 1)
    )


def test_rerunning_into_the_folder_resumes_and_different_config_is_refused(tmp_path):
    config = BenchConfig.build(**TINY)
    reference = run_bench(config)
    folder = tmp_path / "run"
    calls = {"n": 0}

    def crash_midway(event):
        if event.kind == "round_end":
            calls["n"] += 1
            if calls["n"] == 7:
                raise Interrupt

    with pytest.raises(Interrupt):
        run_bench(config, output=folder, progress=crash_midway)
    with sqlite3.connect(folder / "store.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 7
    events = []
    resumed = run_bench(config, output=folder, progress=events.append)
    assert events[0].kind == "start" and events[0].round == 7 and events[0].num_rounds == 18
    assert sum(e.kind == "round_end" for e in events) == 18 - 7
    assert comparable(resumed.summary) == comparable(reference.summary)
    with pytest.raises(ActivewsError, match=r"different config \(rounds: 3 -> 2\).*--resume"):
        run_bench(BenchConfig.build(**(TINY | {"rounds": 2})), output=folder)


def _rounds_stored(folder) -> int:
    try:
        with sqlite3.connect(f"file:{folder / 'store.sqlite'}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    except sqlite3.Error:
        return 0


def _settled_rounds(folder, quiet: float = 2.0, limit: float = 20.0) -> int:
    """The rounds stored once a killed run's workers have stopped: they exit within about a second of
    their parent's death, and one may commit the round it was finishing first (a commit is atomic), so
    the count is read once it has not moved for ``quiet`` seconds."""
    last, since, end = _rounds_stored(folder), time.monotonic(), time.monotonic() + limit
    while time.monotonic() < end and time.monotonic() - since < quiet:
        time.sleep(0.1)
        now = _rounds_stored(folder)
        if now != last:
            last, since = now, time.monotonic()
    return last


@pytest.fixture(scope="module")
def uninterrupted():
    return {"arms": run_bench(BenchConfig.build(**TINY)).summary}


@pytest.mark.parametrize("kill_after", [2, 11])
def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path, uninterrupted, kill_after):
    folder = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "activews",
            "bench",
            *TINY_FLAGS,
            "--quiet",
            "--no-plot",
            "--output",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while _rounds_stored(folder) < kill_after and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = _settled_rounds(folder)
    assert kill_after <= stored < 18, "the kill should land mid-run"
    with sqlite3.connect(folder / "store.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    done = cli(
        "bench",
        "--resume",
        str(folder),
        "--progress",
        "plain",
        "--no-plot",
        "--json",
        str(tmp_path / "r.json"),
    )
    assert done.returncode == 0, done.stderr
    assert f"resuming: {stored}/18 rounds already stored" in done.stderr
    assert comparable(read_json(tmp_path / "r.json")["arms"]) == comparable(uninterrupted["arms"])
    with sqlite3.connect(folder / "store.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM records").fetchone()[0] == 18
    assert not list((folder / "checkpoints").glob("*.pt")), "finished arms leave no checkpoint behind"


def test_resume_refuses_config_flags(tmp_path, uninterrupted):
    done = cli("bench", "--resume", str(tmp_path / "missing"))
    assert done.returncode == 2 and "no activews run" in done.stderr and "Traceback" not in done.stderr
    done = cli("bench", "--resume", str(tmp_path), "--rounds", "4")
    assert done.returncode == 2 and "drop --rounds" in done.stderr
