"""A run folder's result files: ``records.csv``, ``records.json``, ``summary.json``, figures and
``report.html``, each written atomically (see :mod:`activews.files`)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from activews.engine.bench import BenchResult
from activews.errors import ActivewsError
from activews.files import atomic_write, to_jsonable, write_failure
from activews.report.html import html_report
from activews.report.plots import figures

__all__ = ["RECORD_FIELDS", "records_csv", "write_run_folder"]

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


def _cell(value: Any) -> Any:
    """A list or dict (a CI, a shifting stream's ``task_accuracies``, a summary's ``per_task``) as JSON text:
    for a list of numbers the same text as Python's; a dict or a None inside parses back with ``json``."""
    return json.dumps(to_jsonable(value)) if isinstance(value, (list, tuple, dict)) else value


def records_csv(records: list[dict[str, Any]]) -> str:
    """Rows as CSV (lists such as CIs, and dicts, as JSON text); ``new_indices`` (a round's labeled pool
    indices) stays in ``records.json`` and the store."""
    buf = io.StringIO()
    records = [{k: _cell(v) for k, v in r.items() if k != "new_indices"} for r in records]
    present = list(dict.fromkeys(k for r in records for k in r))  # first-seen order
    fields = [f for f in RECORD_FIELDS if f in present] + [f for f in present if f not in RECORD_FIELDS]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def write_run_folder(
    results: list[BenchResult],
    folder: str | Path,
    *,
    plot: bool = True,
    reference: str = "random",
    then: str | None = None,
) -> list[Path]:
    """Write records (CSV, JSON), the summary, figures and ``report.html`` of a run into ``folder``.

    A single experiment's figures go into the folder itself; a sweep's into ``e<i>/`` per experiment.
    Everything here can be regenerated from the store with ``activews report``.

    Args:
        results: one result per experiment.
        folder: the run folder (created if missing).
        plot: also draw the figures and ``report.html``.
        reference: the arm penalties are measured against (figures and page).
        then: how to write the files again after a failed write (ends the error's message; default:
            with ``activews report FOLDER``, as the store holds every round).
    """
    folder = Path(folder)
    written: list[Path] = []
    if then is None:
        then = f"then write them again with 'activews report {folder}'"  # the store holds every round

    def put(path: Path, data: str | bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ActivewsError(write_failure("results folder", path.parent, exc, then)) from None
        atomic_write(path, data, what="results file", then=then)
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
            figs = figures(result, reference=reference)
            all_figs.append(figs)
            for name, png in figs.items():
                put(folder / (f"e{i}" if sweep else "") / name, png)
        page = html_report(results, all_figs, title=f"activews run {folder.name}", reference=reference)
        put(folder / "report.html", page)
    return written
