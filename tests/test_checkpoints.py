"""Checkpoints: a damaged or foreign checkpoint is refused, the previous generation is kept, and write
failures (full disk, file-size limit) end in one line that names the file, with no temporary file left."""

from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from activews import BenchConfig, run_bench
from activews.engine.arm import run_arm
from activews.engine.setup import load_bench_dataset
from activews.engine.store import RunStore
from activews.errors import ActivewsError
from activews.files import atomic_write

from .run_helpers import TINY, TINY_FLAGS, Interrupt, cli, read_json, record_keys

ARM = "warm"
CONFIG = BenchConfig.build(**TINY)


@pytest.fixture(scope="module")
def data():
    return load_bench_dataset(CONFIG)


@pytest.fixture(scope="module")
def reference(data):
    """The arm's records from an uninterrupted run, without checkpoints."""
    return run_arm(CONFIG, data, ARM, 0)


def _stop_after(config, data, arm, seed, path: Path, stop_after: int) -> None:
    """Run an arm with checkpoints at ``path`` and stop it right after round ``stop_after``."""

    def stop(record):
        if record["round"] == stop_after:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_arm(config, data, arm, seed, checkpoint=path, on_record=stop)


def _resume(data, path: Path, arm: str = ARM, seed: int = 0) -> tuple[list, list[int]]:
    """Resume the arm; its records and the rounds it computed itself."""
    computed: list = []
    records = run_arm(CONFIG, data, arm, seed, checkpoint=path, on_record=computed.append)
    return records, [r["round"] for r in computed]


def _garble_tensor_data(path: Path, seed: int = 0, n: int = 64) -> None:
    """Overwrite ``n`` random bytes in the middle of the checkpoint's largest tensor (seeded)."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
        tensors = [
            i for i in zf.infolist() if "/data/" in i.filename and i.compress_type == zipfile.ZIP_STORED
        ]
        info = max(tensors, key=lambda i: i.file_size)
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len  # the record's bytes follow its local header
    rng = np.random.default_rng(seed)
    at = start + info.file_size // 2 - n // 2
    old = bytes(raw[at : at + n])
    new = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    assert new != old
    raw[at : at + n] = new
    path.write_bytes(bytes(raw))
    torch.load(path, weights_only=True)  # still loads: only the checksum can tell


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# ------------------------------------------------------------------------------------ damaged files
def test_a_garbled_checkpoint_is_refused_and_the_arm_restarts_with_the_same_numbers(
    tmp_path, data, reference, caplog
):
    ckpt = tmp_path / "arm.pt"
    _stop_after(CONFIG, data, ARM, 0, ckpt, stop_after=0)  # one generation only
    _garble_tensor_data(ckpt)
    with caplog.at_level(logging.WARNING):
        records, computed = _resume(data, ckpt)
    assert computed == [0, 1, 2]
    assert record_keys(records) == record_keys(reference)
    (warning,) = _warnings(caplog)
    assert str(ckpt) in warning and "checksum" in warning and "round 0" in warning
    assert "\n" not in warning


def test_a_garbled_newest_checkpoint_resumes_from_the_previous_generation(tmp_path, data, reference, caplog):
    ckpt = tmp_path / "arm.pt"
    _stop_after(CONFIG, data, ARM, 0, ckpt, stop_after=1)
    previous = tmp_path / "arm.prev.pt"
    assert torch.load(ckpt, weights_only=True)["round"] == 1
    assert torch.load(previous, weights_only=True)["round"] == 0
    _garble_tensor_data(ckpt, seed=1)
    with caplog.at_level(logging.WARNING):
        records, computed = _resume(data, ckpt)
    assert computed == [1, 2]  # round 0 came from the previous generation
    assert record_keys(records) == record_keys(reference)
    (warning,) = _warnings(caplog)
    assert str(ckpt) in warning and "checksum" in warning and "resumes after round 0" in warning
    # The finished arm keeps its newest checkpoint (the bench deletes it once committed), nothing else.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arm.pt"]


def test_a_field_changed_without_its_checksum_is_refused(tmp_path, data, reference, caplog):
    ckpt = tmp_path / "arm.pt"
    _stop_after(CONFIG, data, ARM, 0, ckpt, stop_after=1)
    state = torch.load(ckpt, weights_only=True)
    state["records"][0]["test_accuracy"] = 1.0  # a plausible, wrong number
    torch.save(state, ckpt)
    with caplog.at_level(logging.WARNING):
        records, computed = _resume(data, ckpt)
    assert computed == [1, 2]
    assert record_keys(records) == record_keys(reference)
    assert any("checksum" in w for w in _warnings(caplog))


@pytest.mark.parametrize(
    ("arm", "seed", "config", "what"),
    [
        (ARM, 1, CONFIG, "seed"),
        ("random", 0, CONFIG, "arm"),
        (ARM, 0, BenchConfig.build(**(TINY | {"lr": 2e-3})), "config"),
    ],
)
def test_a_checkpoint_of_another_cell_is_refused(tmp_path, data, reference, caplog, arm, seed, config, what):
    other = tmp_path / "other.pt"
    _stop_after(config, data, arm, seed, other, stop_after=1)
    ckpt = tmp_path / "arm.pt"
    shutil.copy(other, ckpt)
    if (tmp_path / "other.prev.pt").exists():  # its previous generation too
        shutil.copy(tmp_path / "other.prev.pt", tmp_path / "arm.prev.pt")
    with caplog.at_level(logging.WARNING):
        records, computed = _resume(data, ckpt)
    assert computed == [0, 1, 2]
    assert record_keys(records) == record_keys(reference)
    warnings = _warnings(caplog)
    assert len(warnings) == 2 and all(f"of another cell ({what}" in w for w in warnings)
    assert str(ckpt) in warnings[0] and str(tmp_path / "arm.prev.pt") in warnings[1]


def test_a_checkpoint_of_the_previous_format_is_refused(tmp_path, data, reference, caplog):
    ckpt = tmp_path / "arm.pt"
    _stop_after(CONFIG, data, ARM, 0, ckpt, stop_after=1)
    state = torch.load(ckpt, weights_only=True)
    legacy = {k: v for k, v in state.items() if k not in ("checksum", "strategy_name", "strategy_params")}
    torch.save(legacy | {"version": 1}, ckpt)
    (tmp_path / "arm.prev.pt").unlink(missing_ok=True)
    with caplog.at_level(logging.WARNING):
        records, computed = _resume(data, ckpt)
    assert computed == [0, 1, 2]
    assert record_keys(records) == record_keys(reference)
    assert any("another version" in w for w in _warnings(caplog))


def test_leftover_temporary_files_of_the_cell_are_removed_and_no_others(tmp_path, data):
    ours = tmp_path / ".arm.pt.4242.tmp"
    others = [tmp_path / ".arm2.pt.4242.tmp", tmp_path / ".other.pt.4242.tmp", tmp_path / "notes.tmp"]
    for path in [ours, *others]:
        path.write_bytes(b"partial")
    run_arm(CONFIG, data, ARM, 0, checkpoint=tmp_path / "arm.pt")
    assert not ours.exists()
    assert all(path.exists() for path in others)


# ------------------------------------------------------------------------------------ write failures
def test_a_full_store_is_one_line_error_and_the_store_stays_usable(tmp_path):
    store = RunStore(tmp_path, create=True)
    try:
        store.initialize({"experiments": []}, [("", {})], [(0, ARM, 0, ARM, {})])
        record = {"arm": ARM, "seed": 0, "round": 0, "test_accuracy": 0.5, "steps": 1, "seconds": 0.1}
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own 'database or disk is full'
        with pytest.raises(ActivewsError) as err:
            store.commit_round(0, record | {"padding": "x" * 100_000})
        message = str(err.value)
        assert "\n" not in message and str(tmp_path / "store.sqlite") in message
        assert "database or disk is full" in message and f"--resume {tmp_path}" in message
        assert not store.conn.in_transaction
        store.conn.execute(f"PRAGMA max_page_count = {pages * 1000}")
        store.commit_round(0, record)  # the failed commit left nothing half-done
        assert store.done_rounds(0, ARM, 0) == 1
    finally:
        store.close()


def test_a_failed_result_write_is_one_line_error_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "records.csv"
    with pytest.raises(ActivewsError) as err:
        atomic_write(target, "a,b\n")
    message = str(err.value)
    assert "\n" not in message and str(target) in message and "No space left on device" in message
    assert list(tmp_path.iterdir()) == []


def _tmp_files(folder: Path) -> list[str]:
    return [name for _, _, files in os.walk(folder) for name in files if name.endswith(".tmp")]


@pytest.mark.skipif(sys.platform == "win32", reason="needs bash and ulimit")
def test_a_file_size_limit_stops_the_bench_with_one_line_and_it_resumes_after(tmp_path):
    folder = tmp_path / "run"
    flags = [*TINY_FLAGS, "--no-plot", "--quiet", "--output", str(folder)]
    # 200 KiB (bash counts -f in 1024-byte blocks): the store is created, a checkpoint (~300 KB) is not.
    # CPython ignores SIGXFSZ, so the write fails with EFBIG instead of killing the process.
    script = 'ulimit -f 200; exec "$0" -m activews "$@"'
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    done = subprocess.run(
        ["bash", "-c", script, sys.executable, "bench", *flags],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("activews: error: cannot write checkpoint ")
    assert str(folder / "checkpoints") in lines[0] and "File too large" in lines[0]
    assert f"--resume {folder}" in lines[0]
    assert (folder / "store.sqlite").is_file()
    assert _tmp_files(folder) == []

    resumed = cli("bench", *flags)
    assert resumed.returncode == 0, resumed.stderr
    uninterrupted = run_bench(CONFIG).records
    assert record_keys(read_json(folder / "records.json")) == record_keys(uninterrupted)
    assert _tmp_files(folder) == [] and list((folder / "checkpoints").iterdir()) == []
    with sqlite3.connect(folder / "store.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
