"""One process per run folder; a folder whose set-up failed is reusable; the thread count is part of a run."""

from __future__ import annotations

import errno
import json
import os
import sqlite3

import pytest

from activews import BenchConfig, run_bench
from activews.engine.runlock import LOCK_FILE, RunLock
from activews.engine.store import RunStore
from activews.errors import ActivewsError

from .run_helpers import TINY

TINY_ONE = TINY | {"rounds": 2, "seeds": 1}


def test_a_held_folder_is_refused_with_the_holder_and_the_fix(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(ActivewsError) as info:
            RunLock(tmp_path).acquire()
    message = str(info.value)
    assert "\n" not in message
    assert f"in use by another activews process (pid {os.getpid()}" in message
    assert f"kill {os.getpid()}" in message and "choose another --output" in message
    RunLock(tmp_path).acquire().release()  # free again once released


def test_a_lock_file_left_by_a_killed_run_is_taken_over(tmp_path):
    # What 'kill -9' leaves: the note of a process that no longer holds the lock.
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": 999999, "host": "elsewhere", "since": 0}))
    with RunLock(tmp_path):
        note = json.loads((tmp_path / LOCK_FILE).read_text())
        assert note["pid"] == os.getpid()


def test_a_run_holds_its_folder_while_it_runs(tmp_path):
    folder = tmp_path / "run"
    refusals = []

    def progress(event):
        if event.kind == "round_end" and not refusals:
            with pytest.raises(ActivewsError, match="in use by another activews process") as info:
                RunLock(folder).acquire()
            refusals.append(str(info.value))

    run_bench(BenchConfig.build(**TINY_ONE), output=folder, progress=progress)
    assert refusals
    RunLock(folder).acquire().release()  # released at the end


def test_a_failed_set_up_leaves_a_reusable_folder(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    config = BenchConfig.build(**TINY_ONE)

    def disk_full(self, *args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(RunStore, "initialize", disk_full)
    with pytest.raises(ActivewsError) as info:
        run_bench(config, output=folder)
    assert "\n" not in str(info.value) and "database or disk is full" in str(info.value)
    assert not (folder / "store.sqlite").exists()
    monkeypatch.undo()
    result = run_bench(config, output=folder)  # the same command again works
    assert len(result.records) == 3 * 2


def test_a_store_left_by_an_older_failed_set_up_is_replaced(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    with RunStore(folder, create=True) as store:  # schema, but set-up died before the config was written
        assert store.meta() == {}
    result = run_bench(BenchConfig.build(**TINY_ONE), output=folder)
    assert len(result.records) == 3 * 2


def test_set_up_write_errors_are_one_line_naming_the_folder(tmp_path, monkeypatch):
    folder = tmp_path / "run"

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(ActivewsError) as info:
        run_bench(BenchConfig.build(**TINY_ONE), output=folder)
    message = str(info.value)
    assert "\n" not in message and str(folder) in message and "No space left on device" in message
    assert {p.name for p in folder.iterdir()} <= {LOCK_FILE}  # no half-built store left behind


def test_the_thread_count_is_recorded_and_a_resume_with_another_is_refused(tmp_path):
    from activews.engine.bench import run_experiments

    folder = tmp_path / "run"
    config = BenchConfig.build(**TINY_ONE)
    run_experiments([("", config)], output=folder, threads=1)
    with RunStore(folder) as store:
        assert store.meta()["threads"] == "1"
    with pytest.raises(ActivewsError, match="was run with 1 torch thread"):
        run_experiments([("", config)], output=folder, threads=2)
    with pytest.raises(ActivewsError, match="threads must be a count >= 1"):
        run_experiments([("", config)], threads=0)
