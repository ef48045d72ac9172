"""``activews bench`` and ``activews reproduce``: run experiments into a run folder with a progress
display, then print their tables."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from activews.cli.base import interrupt_code
from activews.cli.flags import add_settings, flag_name, parse_grid, settings_from_args
from activews.cli.output import add_format_option, emit, print_result, result_sections, results_json
from activews.cli.progress import display_for
from activews.cli.runs import RUNS_ROOT, resolve_run
from activews.engine.bench import BenchResult, run_experiments
from activews.engine.config import BenchConfig
from activews.engine.resources import check_threads, parse_workers
from activews.engine.store import RunStore
from activews.engine.sweep import check_grid_flags, expand, load_sweep
from activews.engine.workers import Terminated
from activews.errors import ActivewsError
from activews.files import atomic_write, check_writable_file, to_jsonable
from activews.report import write_run_folder
from activews.report.formats import Section
from activews.report.tables import protocol_title
from activews.reproduce import (
    PROTOCOLS,
    describe_protocols,
    get_protocol,
    protocol_values,
    write_protocol_report,
)

__all__ = [
    "add_commands",
    "add_run_options",
    "cmd_bench",
    "cmd_reproduce",
    "default_run_dir",
    "experiments_from_args",
]

Experiments = list[tuple[str, BenchConfig]]


def add_commands(sub: Any) -> None:
    """The ``bench`` and ``reproduce`` subcommands."""
    b = sub.add_parser(
        "bench",
        help="compare strategies with the random and warm reference arms",
        description="Run each strategy, plus the reference arms random (accuracy) and warm (compute), "
        "through a stream of rounds for several seeds; print penalty and compute tables and write a run "
        "folder. Every finished round is committed to the run's store: re-running into the same --output "
        "(or --resume RUN) continues where a run stopped. Defaults: active margin sampling on built-in "
        "MNIST-1D with an MLP (40-256-256-10), 1000 initial + 1000 per round, 7 rounds, 4 seeds, Adam lr "
        "1e-3, batch 128, each round trained to 99% running training accuracy.",
    )
    add_settings(b)
    add_run_options(b, resume=True)
    add_format_option(b, "what --json PATH writes: the config and every arm's summary, unrounded")
    b.set_defaults(handler=cmd_bench)

    rp = sub.add_parser(
        "reproduce",
        help="run an experiment of Ash & Adams (2020) by name (two-phase, online, ...)",
        description="Run one of the paper's protocols as a preset (see 'activews reproduce --list' and "
        "docs/reproduction.md): its settings and grid of experiments, overridable with the bench flags "
        "and --grid; prints the paper-shaped tables and writes them, with figures, to the run folder. "
        "Re-running with the same --output resumes.",
    )
    rp.add_argument("protocol", nargs="?", metavar="PROTOCOL", help=" | ".join(PROTOCOLS.names()))
    rp.add_argument("--list", action="store_true", help="list the protocols with their settings and grids")
    add_settings(rp, defaults=False)
    add_run_options(rp, resume=False)
    add_format_option(rp, "what protocol.json holds: the protocol's numbers, unrounded")
    rp.set_defaults(handler=cmd_reproduce)


def add_run_options(parser: argparse.ArgumentParser, *, resume: bool, sweeps: bool = True) -> None:
    """Where and how a run executes (not part of its config); ``sweeps``: also ``--grid`` and ``--config``."""
    g = parser.add_argument_group("run")
    if sweeps:
        _add_sweep_options(g)
    g.add_argument(
        "--output",
        metavar="DIR",
        help="run folder (default: runs/<time>-<name>); an existing run folder with the same config is resumed",
    )
    _add_execution_options(g, resume)


def _add_sweep_options(g: Any) -> None:
    g.add_argument(
        "--grid",
        action="append",
        metavar="FIELD=V1,V2",
        help="one experiment per value of a bench setting, e.g. model=mlp,logreg (repeatable: every combination)",
    )
    g.add_argument(
        "--config",
        metavar="FILE.toml",
        help="sweep file: settings, [grid] and [param_grid] tables; flags override it",
    )


def _add_execution_options(g: Any, resume: bool) -> None:
    if resume:
        g.add_argument(
            "--resume", metavar="RUN", help="continue the run in folder RUN (or runs/RUN) with its own config"
        )
    g.add_argument(
        "--workers",
        default="auto",
        metavar="N|auto",
        help="cells (arm x seed) run at once, in processes of --threads threads each; auto = as many as "
        "the usable cores hold (affinity and cgroup limits), one per GPU on CUDA (default: auto)",
    )
    g.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch threads per cell; numbers depend on it, so it is recorded with the run "
        "(default: 1, or the run's own when resuming)",
    )
    g.add_argument(
        "--gpus-per-cell",
        type=float,
        metavar="F",
        help="on CUDA: the fraction of a GPU one cell takes, e.g. 0.25 runs 4 cells per GPU "
        "(Ray tasks ask for it; with --workers auto, 1/F cells share the device) (default: 1)",
    )
    g.add_argument(
        "--executor",
        default="local",
        choices=("local", "ray"),
        help="local processes, or Ray tasks (pip install 'activews[ray]') (default: local)",
    )
    g.add_argument("--address", help="Ray cluster address for --executor ray (default: start a local Ray)")
    g.add_argument("--json", metavar="PATH", help="also write the results to this JSON file")
    g.add_argument("--no-plot", action="store_true", help="skip figures and the HTML report")
    g.add_argument(
        "--progress",
        choices=("auto", "bar", "plain", "none"),
        default="auto",
        help="progress display: rich bars, one plain line per round, or none "
        "(default: auto = bars on a terminal, plain lines otherwise)",
    )
    g.add_argument("--quiet", action="store_true", help="same as --progress none")


def experiments_from_args(args: argparse.Namespace) -> tuple[Experiments, Path | None]:
    """The experiments to run and the run folder (None: pick a default name)."""
    flags = settings_from_args(args)
    grid = parse_grid(args.grid)
    if args.resume:
        if args.config or flags or grid:
            given = ["--config"] * bool(args.config) + ["--grid"] * bool(grid)
            given += [flag_name(k) for k in flags]
            raise ActivewsError(f"--resume uses the run's own config; drop {', '.join(given)}")
        folder = resolve_run(args.resume)
        with RunStore(folder) as store:
            stored = store.run_config()["experiments"]
        return [(e["label"], BenchConfig.from_stored(e["config"])) for e in stored], folder
    values = load_sweep(args.config) if args.config else {}
    if "param_grid" in flags and "param_grid" in values:
        values["param_grid"] = {**values["param_grid"], **flags.pop("param_grid")}
    if "grid" in values:
        values["grid"] = {k: v for k, v in values["grid"].items() if k not in flags}  # a flag fixes that axis
    check_grid_flags(grid, flags)
    if grid:
        values["grid"] = {**values.get("grid", {}), **grid}
    values.update(flags)
    return expand(values), Path(args.output) if args.output else None


def default_run_dir(config: BenchConfig, name: str | None = None) -> Path:
    """``runs/<time>-<name or stream>-<dataset>``, with ``-2``, ``-3``, ... if that folder exists."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data = Path(config.dataset).stem if config.dataset.endswith(".npz") else config.dataset
    base = RUNS_ROOT / f"{stamp}-{name or config.stream}-{data}"
    folder, k = base, 1
    while folder.exists():
        k += 1
        folder = base.with_name(f"{base.name}-{k}")
    return folder


def cmd_bench(args: argparse.Namespace) -> int:
    experiments, folder = experiments_from_args(args)
    folder = folder or default_run_dir(experiments[0][1])
    first = experiments[0][1]
    what = protocol_title(first) if len(experiments) == 1 else f"{len(experiments)} experiments"
    results = _execute(args, experiments, folder, f"[bold]activews bench[/] · {escape(what)}")
    if results is None:
        return int(args.exit_code)
    _write_json(args, results)
    out = _stdout(args)
    if args.format == "table":
        for result in results:
            print_result(out, result, after_run=True)
    else:
        emit(args.format, result_sections(results), results_json(results))
    _closing_line(out, args, results, folder)
    return 0


def _stdout(args: argparse.Namespace) -> Console:
    """Where the closing lines go: standard output with the tables, or standard error when standard output
    carries only ``--format markdown|csv|json``."""
    return Console(stderr=args.format != "table")


def cmd_reproduce(args: argparse.Namespace) -> int:
    if args.list or args.protocol is None:
        if args.protocol is None and not args.list:
            raise ActivewsError(
                f"name a protocol: {', '.join(PROTOCOLS.names())} (see 'activews reproduce --list')"
            )
        _list_protocols(Console())
        return 0
    protocol = get_protocol(args.protocol)
    flags = settings_from_args(args)
    if args.config:  # a sweep file's settings sit between the protocol's and the flags
        file_values = load_sweep(args.config)
        flags = {k: v for k, v in file_values.items() if k != "grid"} | flags
        extra_grid = file_values.get("grid") or {}
    else:
        extra_grid = {}
    grid = {**extra_grid, **parse_grid(args.grid)}
    experiments = expand(protocol_values(protocol, flags, grid))
    folder = Path(args.output) if args.output else default_run_dir(experiments[0][1], protocol.name)
    first = experiments[0][1]
    what = f"{protocol.name}: {protocol.title}"
    title = f"[bold]activews reproduce[/] · {escape(what)}\n{escape(protocol_title(first))}" + (
        f" · {len(experiments)} experiments" if len(experiments) > 1 else ""
    )
    results = _execute(args, experiments, folder, title, meta={"protocol": protocol.name})
    if results is None:
        return int(args.exit_code)
    report = write_protocol_report(protocol, results, folder, plot=not args.no_plot)
    out = _stdout(args)
    if args.format == "table":
        for table in report.tables:
            out.print(table)
    else:
        emit(
            args.format,
            [Section(f"{protocol.name}: {protocol.title}", report.tables)],
            json.loads((folder / "protocol.json").read_text()),  # the file just written, byte for byte
        )
    _write_json(args, results)
    figs = ", ".join(report.figures)
    _closing_line(
        out, args, results, folder, extra=f"protocol.md, protocol.json, {figs + ', ' if figs else ''}"
    )
    return 0


def _list_protocols(out: Console) -> None:
    out.print(
        "[bold]Protocols of Ash & Adams (2020)[/]: "
        + escape("activews reproduce NAME [bench flags] [--grid FIELD=V1,V2]"),
        highlight=False,
    )
    for row in describe_protocols():
        out.print(f"\n[bold]{row['name']}[/]  {escape(row['title'])}  ({escape(row['reference'])})")
        for key, label in (("settings", "settings"), ("grid", "experiments"), ("sweep", "arms")):
            if row[key]:
                out.print(f"  {label}: {escape(row[key])}", highlight=False)


def _execute(
    args: argparse.Namespace,
    experiments: Experiments,
    folder: Path,
    title: str,
    meta: dict[str, str] | None = None,
) -> list[BenchResult] | None:
    """Run (or resume) ``experiments`` into ``folder`` with a progress display; None if interrupted
    (``args.exit_code`` then holds the exit code)."""
    err = Console(stderr=True)
    workers = parse_workers(args.workers)
    if args.threads is not None:
        check_threads(args.threads)
    if args.address and args.executor != "ray":
        raise ActivewsError("--address applies to --executor ray; add --executor ray or drop --address")
    args.json_path = check_writable_file(args.json) if args.json else None
    first = experiments[0][1]
    header = [title, f"arms: {escape(', '.join(first.arms))} · run folder {escape(str(folder))}"]
    display = display_for("none" if args.quiet else args.progress, err, header)
    try:
        with display:
            results = run_experiments(
                experiments,
                output=folder,
                progress=display.on_event,
                workers=workers,
                executor=args.executor,
                address=args.address,
                meta=meta,
                threads=args.threads,
                gpus_per_cell=args.gpus_per_cell,
            )
    except KeyboardInterrupt as exc:
        again = "activews bench --resume" if args.command == "bench" else "the same command with --output"
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        err.print(
            f"{what}; finished rounds are stored. Continue with: {again} {folder}",
            highlight=False,
            markup=False,
            soft_wrap=True,  # one line, so the command can be copied whole
        )
        args.exit_code = interrupt_code(exc)
        return None
    write_run_folder(results, folder, plot=not args.no_plot)
    return results


def _write_json(args: argparse.Namespace, results: list[BenchResult]) -> None:
    """``--json PATH``: see :func:`~activews.cli.output.results_json`."""
    if args.json_path is not None:
        atomic_write(args.json_path, json.dumps(to_jsonable(results_json(results)), indent=2))


def _closing_line(
    out: Console, args: argparse.Namespace, results: list[BenchResult], folder: Path, extra: str = ""
) -> None:
    """Say where the results are (``extra``: the protocol's files)."""
    out.print(
        f"{results[0].seconds:.0f} s · results in {escape(str(folder))}/ ("
        + extra
        + ("report.html, " if not args.no_plot else "")
        + "summary.json, records.csv)"
        + (f" · JSON: {escape(str(args.json_path))}" if args.json_path else ""),
        highlight=False,
    )
