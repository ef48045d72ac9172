"""The run store: every finished round of every arm, committed to SQLite in the run folder.

One file, ``store.sqlite``, per run folder, opened in write-ahead-log mode with ``synchronous=FULL``:
a process killed at any moment (``kill -9``) loses at most the round in flight and never leaves the
store half-written. The schema is documented in ``docs/store.md``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from activews.errors import ActivewsError
from activews.files import write_failure
from activews.version import __version__

__all__ = ["RunStore", "StoreError", "STORE_FILE", "SCHEMA_VERSION", "is_run_folder"]

STORE_FILE = "store.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS experiments (
    experiment INTEGER PRIMARY KEY,
    label      TEXT NOT NULL,
    config     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cells (
    experiment  INTEGER NOT NULL REFERENCES experiments(experiment),
    arm         TEXT NOT NULL,
    seed        INTEGER NOT NULL,
    strategy    TEXT NOT NULL,
    params      TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done')),
    rounds_done INTEGER NOT NULL DEFAULT 0,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (experiment, arm, seed)
);
CREATE TABLE IF NOT EXISTS records (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment    INTEGER NOT NULL,
    arm           TEXT NOT NULL,
    seed          INTEGER NOT NULL,
    round         INTEGER NOT NULL,
    test_accuracy REAL NOT NULL,
    steps         INTEGER NOT NULL,
    seconds       REAL NOT NULL,
    data          TEXT NOT NULL,
    committed_at  REAL NOT NULL,
    UNIQUE (experiment, arm, seed, round)
);
"""


_DAMAGED_FIX = (
    "restore store.sqlite from a backup, or delete the folder {folder!r} (or choose another --output) "
    "and run again"
)


class StoreError(ActivewsError):
    """A run store that cannot be read (empty, damaged, locked); ``reason`` says why in a few words."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_run_folder(folder: str | Path) -> bool:
    return (Path(folder) / STORE_FILE).is_file()


class RunStore:
    """Access to one run folder's SQLite store (one connection per process)."""

    def __init__(self, folder: str | Path, *, create: bool = False) -> None:
        self.folder = Path(folder)
        self.path = self.folder / STORE_FILE
        if not create and not self.path.is_file():
            raise ActivewsError(f"{str(self.folder)!r} is not an activews run folder (no {STORE_FILE})")
        try:
            self.conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        except sqlite3.DatabaseError as exc:
            if create:
                raise
            raise ActivewsError(f"cannot open run store {str(self.path)!r}: {exc}") from None
        try:
            if not create:
                # Before the WAL pragma, which would write to the file: an empty (0-byte) or foreign
                # SQLite file opens as a database without our tables, and reading it must say so.
                self.conn.execute("PRAGMA busy_timeout=60000")
                tables = {
                    r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                }
                missing = [t for t in ("meta", "experiments", "cells", "records") if t not in tables]
                if missing:
                    reason = "empty store" if not tables else f"no {', '.join(missing)} table"
                    raise StoreError(
                        f"run store {str(self.path)!r} is "
                        + ("empty" if not tables else f"damaged ({reason})")
                        + f" and holds no run; {_DAMAGED_FIX.format(folder=str(self.folder))}",
                        reason,
                    )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA busy_timeout=60000")
            if create:
                self.conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            if create:
                raise  # the caller names what it was creating (see bench._create_store)
            raise self._read_failure(exc) from None
        except BaseException:
            self.conn.close()
            raise

    # ---------------------------------------------------------------------------------------- helpers
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE ... COMMIT`` (rolled back on any error, a failed ``COMMIT`` included)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (e.g. on a full disk); a second ROLLBACK would then
            # raise and hide the error that matters.
            if self.conn.in_transaction:
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise

    @contextmanager
    def _writing(self, then: str | None = None) -> Iterator[sqlite3.Connection]:
        """A :meth:`transaction` whose disk failures (full, I/O error, read-only) become one-line errors."""
        try:
            with self.transaction() as c:
                yield c
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
            raise  # a bug, not the disk
        except sqlite3.DatabaseError as exc:
            then = then or f"then resume with 'activews bench --resume {self.folder}'"
            raise ActivewsError(write_failure("run store", self.path, exc, then)) from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------- writing
    def initialize(
        self,
        run_config: dict[str, Any],
        experiments: list[tuple[str, dict[str, Any]]],
        cells: list[tuple[int, str, int, str, dict[str, Any]]],
        extra_meta: dict[str, str] | None = None,
    ) -> None:
        """Write the run's config, its experiments and its cells (all pending), once.

        Configs keep their key order (a sweep's parameter order names its arms); ``extra_meta`` adds
        keys to the ``meta`` table (e.g. ``protocol`` for runs of ``activews reproduce``).
        """
        now = time.time()
        # If this fails nothing is stored (the transaction rolls back): the run starts over.
        fresh = "then run again (or choose another --output)"
        with self._writing(fresh) as c:
            c.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("activews_version", __version__),
                    ("created_at", str(now)),
                    ("config", json.dumps(run_config)),
                    *sorted((extra_meta or {}).items()),
                ],
            )
            c.executemany(
                "INSERT INTO experiments (experiment, label, config) VALUES (?, ?, ?)",
                [(i, label, json.dumps(cfg)) for i, (label, cfg) in enumerate(experiments)],
            )
            c.executemany(
                "INSERT INTO cells (experiment, arm, seed, strategy, params, status, updated_at) "
                "VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                [
                    (e, arm, seed, strat, json.dumps(params, sort_keys=True), now)
                    for e, arm, seed, strat, params in cells
                ],
            )

    def commit_round(self, experiment: int, record: dict[str, Any]) -> None:
        """Commit one finished round (idempotent: a re-run round replaces its earlier row)."""
        with self._writing() as c:
            c.execute(
                "INSERT OR REPLACE INTO records (experiment, arm, seed, round, test_accuracy, steps, seconds, data, "
                "committed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    experiment,
                    record["arm"],
                    record["seed"],
                    record["round"],
                    record["test_accuracy"],
                    record["steps"],
                    record["seconds"],
                    json.dumps(record),
                    time.time(),
                ),
            )
            c.execute(
                "UPDATE cells SET status = 'running', rounds_done = MAX(rounds_done, ?), updated_at = ? "
                "WHERE experiment = ? AND arm = ? AND seed = ? AND status != 'done'",
                (record["round"] + 1, time.time(), experiment, record["arm"], record["seed"]),
            )

    def mark_done(self, experiment: int, arm: str, seed: int) -> None:
        with self._writing() as c:
            c.execute(
                "UPDATE cells SET status = 'done', updated_at = ? WHERE experiment = ? AND arm = ? AND seed = ?",
                (time.time(), experiment, arm, seed),
            )

    # ---------------------------------------------------------------------------------------- reading
    def _read_failure(self, exc: sqlite3.DatabaseError) -> StoreError:
        """One line for a store that cannot be read: locked by another process, or damaged."""
        if "locked" in str(exc) or "busy" in str(exc):
            return StoreError(
                f"run store {str(self.path)!r} is locked by another process ({exc}); wait for it to finish "
                f"and try again",
                str(exc),
            )
        return StoreError(
            f"cannot read run store {str(self.path)!r} ({exc}): the file is damaged or not an activews "
            f"store; {_DAMAGED_FIX.format(folder=str(self.folder))}",
            str(exc),
        )

    def _rows(self, sql: str, args: Any = ()) -> list[Any]:
        """``SELECT`` rows; a damaged or unreadable store is a one-line :class:`StoreError`."""
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._read_failure(exc) from None

    def _damaged(self, what: str) -> StoreError:
        return StoreError(
            f"run store {str(self.path)!r} holds a damaged {what}; {_DAMAGED_FIX.format(folder=str(self.folder))}",
            f"damaged {what}",
        )

    def _json(self, text: str, what: str) -> Any:
        try:
            return json.loads(text)
        except (TypeError, ValueError):
            raise self._damaged(f"{what} (not JSON)") from None

    def meta(self) -> dict[str, str]:
        return dict(self._rows("SELECT key, value FROM meta"))

    def run_config(self) -> dict[str, Any]:
        value = self.meta().get("config")
        if value is None:
            raise ActivewsError(f"run store {str(self.path)!r} has no config; the run was never started")
        config = self._json(value, "run config")
        if not isinstance(config, dict) or not isinstance(config.get("experiments"), list):
            raise self._damaged("run config")
        return config

    def experiments(self) -> list[tuple[int, str, dict[str, Any]]]:
        rows = self._rows("SELECT experiment, label, config FROM experiments ORDER BY experiment")
        return [(e, label, self._json(cfg, "experiment config")) for e, label, cfg in rows]

    def cells(self) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT experiment, arm, seed, strategy, params, status, rounds_done FROM cells "
            "ORDER BY experiment, seed, rowid"
        )
        return [
            {
                "experiment": e,
                "arm": a,
                "seed": s,
                "strategy": st,
                "params": self._json(p, "cell"),
                "status": status,
                "rounds_done": done,
            }
            for e, a, s, st, p, status, done in rows
        ]

    def records(self, experiment: int | None = None, since_seq: int = 0) -> list[dict[str, Any]]:
        """Committed rounds (optionally of one experiment, or newer than ``since_seq``), in commit order.

        Each dict is the record as the trainer produced it, plus ``experiment`` and ``seq``.
        """
        query = "SELECT seq, experiment, data FROM records WHERE seq > ?"
        args: list[Any] = [since_seq]
        if experiment is not None:
            query += " AND experiment = ?"
            args.append(experiment)
        rows = self._rows(query + " ORDER BY seq", args)
        return [self._json(data, "record") | {"experiment": e, "seq": seq} for seq, e, data in rows]

    def done_rounds(self, experiment: int, arm: str, seed: int) -> int:
        (row,) = self._rows(
            "SELECT COUNT(*) FROM records WHERE experiment = ? AND arm = ? AND seed = ?",
            (experiment, arm, seed),
        )
        return int(row[0])

    def progress(self) -> tuple[int, int]:
        """``(cells done, cells total)``."""
        ((done, total),) = self._rows("SELECT SUM(status = 'done'), COUNT(*) FROM cells")
        return int(done or 0), int(total or 0)

    def integrity_check(self) -> str:
        return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])
