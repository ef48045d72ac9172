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

__all__ = [
    "prepare_output_dir",
    "check_writable_file",
    "atomic_write",
    "write_run_folder",
    "to_jsonable",
    "records_csv",
]

RECORD_FIELDS = [
    "experiment",
    "arm",
    "strategy",
    "seed",
    "round",
    "n_labeled",
    "n_new",
    "test_accuracy",
    "test_loss",
    "train_accuracy",
    "train_loss",
    "stop_reason",
    "steps",
    "epochs",
    "seconds",
    "init_seconds",
    "select_seconds",
    "cumulative_steps",
    "cumulative_seconds",
]


_UMASK = os.umask(0)
os.umask(_UMASK)


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
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are for sharing
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
        raise ActivewsError(
            f"cannot write to {what} {str(folder)!r} ({exc.strerror or exc}); {fix}"
        ) from None


def prepare_output_dir(folder: str | Path) -> Path:
    """Create ``folder`` (or accept an empty existing one) and check it can be written, before any work.

    Raises:
        ActivewsError: if it is a file, is a non-empty folder, or cannot be written.
    """
    folder = Path(folder)
    fix = "choose another --output folder"
    if folder.exists() and not folder.is_dir():
        raise ActivewsError(f"output {str(folder)!r} is a file, not a folder; {fix}")
    if folder.is_dir() and any(folder.iterdir()):
        raise ActivewsError(f"output folder {str(folder)!r} is not empty and holds no activews run; {fix}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ActivewsError(
            f"cannot create output folder {str(folder)!r} ({exc.strerror or exc}); {fix}"
        ) from None
    _probe_writable(folder, "output folder", fix)
    return folder


def check_writable_file(path: str | Path, flag: str = "--json") -> Path:
    """Check that ``path`` can be written (its folder exists and is writable; it is not a folder)."""
    path = Path(path)
    if path.is_dir():
        raise ActivewsError(
            f"{flag} {str(path)!r} is a folder; give a file path such as {path / 'result.json'}"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ActivewsError(f"{flag} {str(path)!r}: folder {str(parent)!r} does not exist; create it first")
    _probe_writable(parent, f"{flag} folder", f"give {flag} a path in a writable folder")
    return path


def records_csv(records: list[dict[str, Any]]) -> str:
    """Rows as CSV (lists such as CIs as text); ``new_indices`` (a round's labeled pool indices) stays in
    ``records.json`` and the store."""
    buf = io.StringIO()
    records = [{k: v for k, v in r.items() if k != "new_indices"} for r in records]
    present = list(dict.fromkeys(k for r in records for k in r))  # first-seen order
    fields = [f for f in RECORD_FIELDS if f in present] + [f for f in present if f not in RECORD_FIELDS]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def write_run_folder(results: list[Any], folder: str | Path, *, plot: bool = True) -> list[Path]:
    """Write records (CSV, JSON), the summary, figures and ``report.html`` of a run into ``folder``.

    A single experiment's figures go into the folder itself; a sweep's into ``e<i>/`` per experiment.
    Everything here can be regenerated from the store with ``activews report``.
    """
    from activews.report import figures, html_report

    folder = Path(folder)
    written: list[Path] = []

    def put(path: Path, data: str | bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
        written.append(path)

    sweep = len(results) > 1
    records = [({"experiment": r.label} if sweep else {}) | rec for r in results for rec in r.records]
    put(folder / "records.csv", records_csv(records))
    put(folder / "records.json", json.dumps(to_jsonable(records), indent=1))
    summary = [r.to_dict() for r in results] if sweep else results[0].to_dict()
    put(folder / "summary.json", json.dumps(to_jsonable(summary), indent=2))
    if plot:
        all_figs = []
        for i, result in enumerate(results):
            figs = figures(result)
            all_figs.append(figs)
            for name, png in figs.items():
                put(folder / (f"e{i}" if sweep else "") / name, png)
        put(folder / "report.html", html_report(results, all_figs, title=f"activews run {folder.name}"))
    return written
