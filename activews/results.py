"""Writing a bench's results to a run folder, safely.

Files are written to a temporary name and renamed into place, so an interrupted write never leaves a
half-written file, and a folder that already holds a run is never overwritten.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from activews.errors import ActivewsError

__all__ = ["prepare_output_dir", "check_writable_file", "atomic_write", "write_run_folder", "to_jsonable",
           "RUN_MARKER"]

RUN_MARKER = "config.json"
"""A folder holding this file holds a run."""

RECORD_FIELDS = [
    "strategy", "seed", "round", "n_labeled", "n_new", "test_accuracy", "test_loss", "train_accuracy",
    "train_loss", "stop_reason", "steps", "epochs", "seconds", "init_seconds", "select_seconds",
    "cumulative_steps", "cumulative_seconds",
]


def to_jsonable(value: Any) -> Any:
    """Replace NaN/inf by None so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _probe_writable(folder: Path, what: str, fix: str) -> None:
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".activews-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ActivewsError(f"cannot write to {what} {str(folder)!r} ({exc.strerror or exc}); {fix}") from None


def prepare_output_dir(folder: str | Path) -> Path:
    """Create ``folder`` (or accept an empty existing one) and check it can be written, before any work.

    Raises:
        ActivewsError: if it is a file, already holds a run, or cannot be written.
    """
    folder = Path(folder)
    fix = "choose another --output folder"
    if folder.exists() and not folder.is_dir():
        raise ActivewsError(f"output {str(folder)!r} is a file, not a folder; {fix}")
    if (folder / RUN_MARKER).exists():
        raise ActivewsError(f"output folder {str(folder)!r} already holds a run; {fix} or remove it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ActivewsError(f"cannot create output folder {str(folder)!r} ({exc.strerror or exc}); {fix}") from None
    _probe_writable(folder, "output folder", fix)
    return folder


def check_writable_file(path: str | Path, flag: str = "--json") -> Path:
    """Check that ``path`` can be written (its folder exists and is writable; it is not a folder)."""
    path = Path(path)
    if path.is_dir():
        raise ActivewsError(f"{flag} {str(path)!r} is a folder; give a file path such as {path / 'result.json'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ActivewsError(f"{flag} {str(path)!r}: folder {str(parent)!r} does not exist; create it first")
    _probe_writable(parent, f"{flag} folder", f"give {flag} a path in a writable folder")
    return path


def records_csv(records: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    extra = sorted({k for r in records for k in r} - set(RECORD_FIELDS))
    writer = csv.DictWriter(buf, fieldnames=RECORD_FIELDS + extra, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def write_run_folder(result: Any, folder: str | Path, *, plot: bool = True) -> dict[str, Path]:
    """Write config, records (CSV and JSON), summary and the accuracy plot of ``result`` into ``folder``.

    ``config.json`` is written last: a folder holding it holds a complete run.
    """
    folder = Path(folder)
    written: dict[str, Path] = {}
    summary = to_jsonable(result.to_dict())
    for name, data in (
        ("records.csv", records_csv(result.records)),
        ("records.json", json.dumps(to_jsonable(result.records), indent=1)),
        ("summary.json", json.dumps(summary, indent=2)),
    ):
        atomic_write(folder / name, data)
        written[name] = folder / name
    if plot:
        from activews.report import plot_accuracy

        png = folder / "accuracy.png"
        atomic_write(png, plot_accuracy(result))
        written["accuracy.png"] = png
    atomic_write(folder / RUN_MARKER, json.dumps(result.config.model_dump(mode="json"), indent=2))
    written[RUN_MARKER] = folder / RUN_MARKER
    return written
