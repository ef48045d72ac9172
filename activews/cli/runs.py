"""``activews runs`` (list, show, export) and ``activews report``: what a run folder's store holds."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from activews.cli.output import add_format_option, emit, print_result, result_sections, results_json
from activews.engine.bench import BenchResult, load_results
from activews.engine.store import RunStore, StoreError, is_run_folder
from activews.errors import ActivewsError
from activews.files import atomic_write, check_writable_file, probe_writable, to_jsonable
from activews.report import records_csv, write_run_folder
from activews.report.tables import TextTable
from activews.reproduce import protocol_of_run, write_protocol_report
from activews.roundlog import RoundLog, is_roundlog_folder

__all__ = ["RUNS_ROOT", "add_commands", "cmd_report", "cmd_runs", "load_run", "resolve_run"]

RUNS_ROOT = Path("runs")
"""Where run folders go by default, and where a run named without a path is looked up."""


def add_commands(sub: Any) -> None:
    """The ``runs`` (with its actions) and ``report`` subcommands."""
    r = sub.add_parser("runs", help="list, show and export stored runs")
    r.set_defaults(handler=cmd_runs)
    rsub = r.add_subparsers(dest="runs_command", metavar="ACTION", parser_class=type(r))
    rl = rsub.add_parser("list", help="list the run folders under a root folder")
    rl.add_argument("--root", default=str(RUNS_ROOT), help="folder holding run folders (default: runs)")
    rs = rsub.add_parser("show", help="protocol, progress and summary tables of one run")
    rs.add_argument("run", metavar="RUN", help="run folder, or its name under runs/")
    add_format_option(rs, "the config and every arm's summary, unrounded, as --json PATH and summary.json")
    re_ = rsub.add_parser("export", help="write a run's records or summary as CSV or JSON")
    re_.add_argument("run", metavar="RUN")
    re_.add_argument("--what", choices=("records", "summary"), default="records", help="(default: records)")
    re_.add_argument("--format", choices=("csv", "json"), default="csv", help="(default: csv)")
    re_.add_argument("--output", metavar="PATH", help="file to write (default: standard output)")

    p = sub.add_parser("report", help="print a run's tables and write its figures and HTML page")
    p.add_argument(
        "run", metavar="RUN", help="run folder, or its name under runs/ (or a folder RoundLog.save wrote)"
    )
    p.add_argument(
        "--output", metavar="DIR", help="where to write figures and report.html (default: the run folder)"
    )
    p.set_defaults(handler=cmd_report)


def resolve_run(run: str) -> Path:
    """A run folder given as a path, or as a name under ``runs/``."""
    for candidate in (Path(run), RUNS_ROOT / run):
        try:
            if is_run_folder(candidate):
                return candidate
        except OSError:  # a name too long, or a folder we may not read: not a run we can use
            continue
    raise ActivewsError(f"no activews run at {run!r}; pass a run folder (see 'activews runs list')")


def load_run(folder: Path) -> list[BenchResult]:
    """A run's results; a one-line error for a store whose set-up never finished (no experiments)."""
    results = load_results(folder)
    if not results:
        raise ActivewsError(
            f"run folder {str(folder)!r} holds no run: its set-up never finished; start it again with "
            f"'activews bench --output {folder} ...' or delete the folder"
        )
    return list(results)


def cmd_runs(args: argparse.Namespace) -> int:
    if args.runs_command == "list":
        return _list_runs(Path(args.root))
    if args.runs_command is None:
        raise ActivewsError(
            "say what to do with runs: list, show RUN or export RUN (see 'activews runs --help')"
        )
    folder = resolve_run(args.run)
    results = load_run(folder)
    if args.runs_command == "show":
        # with --format markdown|csv|json, standard output carries only that; the status line goes to stderr
        console = Console(stderr=args.format != "table")
        with RunStore(folder) as store:
            done, total = store.progress()
            n_rec = len(store.records())
        console.print(
            f"[bold]{escape(str(folder))}[/] · cells done {done}/{total} · {n_rec} rounds stored",
            highlight=False,
        )
        if args.format != "table":
            emit(args.format, result_sections(results), results_json(results))
            return 0
        for r in results:
            print_result(console, r)
        return 0
    _export(results, args)
    return 0


def _list_runs(root: Path) -> int:
    if not root.is_dir():
        raise ActivewsError(f"no folder {str(root)!r}; pass --root DIR holding run folders")
    try:
        folders = sorted(p for p in root.iterdir() if _is_run_folder_safe(p))
    except OSError as exc:
        raise ActivewsError(f"cannot list {str(root)!r} ({exc.strerror or exc}); pass --root DIR") from None
    rows = [_run_row(folder) for folder in folders]  # a damaged folder is a row, not the end
    table = TextTable(
        f"Runs in {root}",
        ["run", "created", "experiments", "arms", "seeds", "cells done", "rounds stored"],
        [[folder.name, *row] for folder, row in zip(folders, rows, strict=True)],
        styles=["red" if row[0].startswith("damaged") else None for row in rows],
        text_columns=frozenset({1}),  # a date, or why the folder cannot be read
    )
    console = Console()
    console.print(table)
    if any(row[0].startswith("damaged") for row in rows):
        console.print(
            "damaged runs cannot be shown or resumed; 'activews runs show RUN' says what to do",
            highlight=False,
            soft_wrap=True,
        )
    return 0


def _export(results: list[BenchResult], args: argparse.Namespace) -> None:
    sweep = len(results) > 1
    if args.what == "records":
        rows = [({"experiment": r.label} if sweep else {}) | rec for r in results for rec in r.records]
        text = records_csv(rows) if args.format == "csv" else json.dumps(to_jsonable(rows), indent=1)
    else:
        rows = [
            ({"experiment": r.label} if sweep else {}) | {k: v for k, v in a.items() if k != "per_round"}
            for r in results
            for a in r.summary
        ]
        text = records_csv(rows) if args.format == "csv" else json.dumps(to_jsonable(rows), indent=2)
    if args.output:
        atomic_write(check_writable_file(args.output, "--output"), text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _is_run_folder_safe(path: Path) -> bool:
    try:
        return bool(is_run_folder(path))
    except OSError:  # unreadable entry: not ours to list
        return False


def _run_row(folder: Path) -> list[str]:
    """The ``runs list`` cells (after the name) of one run folder; ``damaged: why`` or ``not started``
    in the second column when it cannot be read."""

    def flagged(text: str) -> list[str]:
        return [text] + ["-"] * 5

    try:
        with RunStore(folder) as store:
            meta, exps = store.meta(), store.experiments()
            if "config" not in meta or not exps:
                return flagged("not started")
            done, total = store.progress()
            cfg = exps[0][2] if isinstance(exps[0][2], dict) else {}
            seeds = cfg.get("seeds") or [1]
            created = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(meta["created_at"])))
            return [
                created,
                str(len(exps)),
                str(len(store.cells()) // max(1, len(seeds)) // max(1, len(exps))),
                str(len(cfg.get("seeds", []))),
                f"{done}/{total}",
                str(len(store.records())),
            ]
    except StoreError as exc:
        return flagged(f"damaged: {exc.reason}")
    except ActivewsError as exc:
        return flagged(f"damaged: {str(exc).split('; ')[0]}")
    except (KeyError, TypeError, ValueError, OverflowError, OSError, sqlite3.Error) as exc:
        return flagged(f"damaged: {type(exc).__name__}: {exc}")


def _check_report_target(target: Path, given: bool) -> None:
    """Fail before any figure is drawn if the report cannot be written to ``target``."""
    what = "--output" if given else "run folder"
    fix = "give --output a folder you can write to"
    if target.exists() and not target.is_dir():
        raise ActivewsError(
            f"{what} {str(target)!r} is a file, not a folder; {fix} (it is created if missing)"
        )
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ActivewsError(
            f"cannot write to {what} {str(target)!r} ({exc.strerror or exc}); {fix}"
        ) from None
    probe_writable(target, what, fix)


def cmd_report(args: argparse.Namespace) -> int:
    for candidate in (Path(args.run), RUNS_ROOT / args.run):
        if is_roundlog_folder(candidate):  # saved by activews.RoundLog: no store; records.json holds the rows
            return _report_roundlog(candidate, args)
        if candidate.exists():
            break
    folder = resolve_run(args.run)
    results = load_run(folder)
    if not any(r.records for r in results):
        raise ActivewsError(f"run {str(folder)!r} has no finished round yet; nothing to report")
    target = Path(args.output) if args.output else folder
    _check_report_target(target, bool(args.output))
    written = write_run_folder(results, target)
    console = Console()
    for r in results:
        print_result(console, r)
    protocol = protocol_of_run(folder)
    if protocol is not None:  # a run of 'activews reproduce': its paper-shaped tables and figures too
        report = write_protocol_report(protocol, results, target)
        for table in report.tables:
            console.print(table)
        written += [target / "protocol.md", target / "protocol.json", *(target / f for f in report.figures)]
    console.print(f"wrote {len(written)} files to {escape(str(target))}/ (open report.html)", highlight=False)
    return 0


def _report_roundlog(folder: Path, args: argparse.Namespace) -> int:
    """``activews report`` of a folder written by :meth:`activews.RoundLog.save`: its tables, and its
    files written again (into ``--output`` if given)."""
    log = RoundLog.load(folder)
    target = Path(args.output) if args.output else folder
    _check_report_target(target, bool(args.output))
    written = log.save(target)
    console = Console()
    print_result(console, log.result(), reference=log.reference)
    console.print(f"wrote {len(written)} files to {escape(str(target))}/ (open report.html)", highlight=False)
    return 0
