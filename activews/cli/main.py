"""The ``activews`` command line.

Every error caused by the user's input is one line on stderr and exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.markup import escape

from activews.engine.workers import Terminated, sigterm_as_exception
from activews.errors import ActivewsError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM
RUNS_ROOT = Path("runs")


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, naming the fix, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"activews: error: {message} (see '{self.prog} --help')\n")


# ----------------------------------------------------------------------------------------- value parsing


def parse_value(text: str) -> Any:
    """Parse a parameter value: JSON when it parses (``0.4``, ``true``, ``[1,2]``), a comma list, or a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if "," in text:
        return [parse_value(part) for part in text.split(",") if part]
    return text


def parse_assignments(
    items: Sequence[str], flag: str, dotted: bool, example: str | None = None
) -> dict[str, Any]:
    """``["shrink_perturb.shrink=0.6"]`` -> ``{"shrink_perturb": {"shrink": 0.6}}`` (or flat if not dotted)."""
    out: dict[str, Any] = {}
    example = example or (
        "STRATEGY.KEY=VALUE, e.g. shrink_perturb.shrink=0.6" if dotted else "KEY=VALUE, e.g. hidden=128,128"
    )
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ActivewsError(f"{flag} {item!r}: expected {example}")
        if dotted:
            owner, dot, name = key.partition(".")
            if not dot or not owner or not name:
                raise ActivewsError(f"{flag} {item!r}: expected {example}")
            out.setdefault(owner, {})[name] = parse_value(value)
        else:
            out[key] = parse_value(value)
    return out


def parse_seeds(text: str) -> int | list[int]:
    try:
        if "," in text:
            return [int(s) for s in text.split(",") if s.strip()]
        return int(text)
    except ValueError:
        raise ActivewsError(f"--seeds {text!r}: give a count (4) or a list (0,1,2)") from None


def parse_grid(items: Sequence[str] | None) -> dict[str, list[Any]]:
    """``["model=mlp,logreg"]`` -> ``{"model": ["mlp", "logreg"]}`` (one experiment per value)."""
    out: dict[str, list[Any]] = {}
    example = "FIELD=V1,V2 with a bench setting as FIELD, e.g. model=mlp,logreg"
    for key, value in parse_assignments(items or [], "--grid", dotted=False, example=example).items():
        out[key] = value if isinstance(value, list) else [value]
    return out


def parse_schedule(text: str) -> list[float]:
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ActivewsError(f"--schedule {text!r}: give increasing fractions, e.g. 0.5,1.0") from None


# ------------------------------------------------------------------------------------------------ parser

# (flag, field, help); every bench setting defaults to None here so that flags the user typed can
# override a --config file or be compared with a resumed run; the real defaults live in BenchConfig.
# One line per flag, so the table reads like the help it produces.
# fmt: off
_GROUPS: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "what to compare": [
        ("--strategy", "strategies", {"action": "append", "metavar": "NAME", "help": "strategy to compare (repeatable; see 'activews strategies')"}),
        ("--param", "params", {"action": "append", "metavar": "STRATEGY.KEY=VALUE", "help": "strategy parameter, e.g. shrink_perturb.shrink=0.6"}),
        ("--sweep", "param_grid", {"action": "append", "metavar": "STRATEGY.KEY=V1,V2", "help": "one arm per value, e.g. shrink_perturb.shrink=0.2,0.4,0.6"}),
        ("--seeds", "seeds", {"help": "number of seeds, or a list such as 0,1,2"}),
    ],
    "data and model": [
        ("--dataset", "dataset", {"help": "mnist1d | digits | cifar10 | cifar100 | svhn | mnist | fashion_mnist | PATH.npz (arrays X, y)"}),
        ("--data-dir", "data_dir", {"metavar": "DIR", "help": "folder with the files of a torchvision dataset (see docs/datasets.md)"}),
        ("--download", "download", {"action": "store_const", "const": True, "help": "let torchvision download the dataset into --data-dir"}),
        ("--val-split", "val_split", {"action": "store_const", "const": True, "help": "evaluate on a seeded 1/3 of the official training set (the paper's validation split)"}),
        ("--n-examples", "n_examples", {"type": int, "help": "examples to use"}),
        ("--test-fraction", "test_fraction", {"type": float, "help": "held-out test fraction"}),
        ("--split-seed", "split_seed", {"type": int, "help": "seed of the train/test split"}),
        ("--model", "model", {"help": "mlp | paper_mlp | logreg | cnn | resnet18 | resnet18_wide"}),
        ("--model-param", "model_params", {"action": "append", "metavar": "KEY=VALUE", "help": "model parameter, e.g. hidden=128,128"}),
    ],
    "stream": [
        ("--stream", "stream", {"help": "passive | active | selective"}),
        ("--rounds", "rounds", {"type": int, "help": "number of rounds; 0 = until the pool is used up"}),
        ("--initial", "initial", {"type": int, "help": "examples labeled in round 0"}),
        ("--query-size", "query_size", {"type": int, "help": "examples added per round"}),
        ("--schedule", "schedule", {"help": "passive: labeled fractions per round, e.g. 0.5,1.0"}),
        ("--acquisition", "acquisition", {"help": "least_confidence | margin | entropy | random | bald | badge | coreset (see 'activews acquisitions')"}),
        ("--acquisition-param", "acquisition_params", {"action": "append", "metavar": "KEY=VALUE", "help": "acquisition parameter, e.g. samples=20 (bald)"}),
        ("--pool-subsample", "pool_subsample", {"type": int, "metavar": "N", "help": "active: choose among a seeded random N of the unlabeled pool each round"}),
        ("--label-fraction", "label_fraction", {"type": float, "metavar": "F", "help": "selective: label this top fraction of each arriving chunk"}),
        ("--label-threshold", "label_threshold", {"type": float, "metavar": "T", "help": "selective: label arrivals whose acquisition score is at least T"}),
        ("--label-budget", "label_budget", {"type": int, "metavar": "N", "help": "selective: at most N labels after round 0, over the whole stream"}),
        ("--score-batch", "score_batch", {"type": int, "help": "pool examples scored per forward pass"}),
    ],
    "training (each round trains to the target accuracy)": [
        ("--optimizer", "optimizer", {"help": "adam | sgd"}),
        ("--lr", "lr", {"type": float, "help": "learning rate"}),
        ("--momentum", "momentum", {"type": float, "help": "SGD momentum"}),
        ("--weight-decay", "weight_decay", {"type": float, "help": "L2 weight decay"}),
        ("--batch-size", "batch_size", {"type": int, "help": "minibatch size"}),
        ("--target-accuracy", "target_accuracy", {"type": float, "help": "running training accuracy to stop at"}),
        ("--patience", "patience", {"type": int, "help": "plateau rule: epochs without improvement"}),
        ("--min-delta", "min_delta", {"type": float, "help": "plateau rule: running-accuracy gain that resets patience"}),
        ("--max-epochs", "max_epochs", {"type": int, "help": "epoch cap per round"}),
        ("--keep-optimizer-state", "keep_optimizer_state", {"action": "store_const", "const": True, "help": "carry optimizer state across rounds"}),
        ("--augment", "augment", {"action": "store_const", "const": True, "help": "random crop (pad 4) + horizontal flip of image minibatches"}),
        ("--first-round-epochs", "first_round_epochs", {"type": int, "metavar": "N", "help": "train round 0 for exactly N epochs, not to the target"}),
        ("--eval-batch-size", "eval_batch_size", {"type": int, "help": "examples per forward pass when evaluating"}),
    ],
    "device": [
        ("--device", "device", {"help": "cpu | cuda | cuda:N | mps | auto (CUDA when present)"}),
        ("--precision", "precision", {"choices": ("fp32", "bf16", "fp16"), "help": "autocast arithmetic of forward passes; fp16 (CUDA only) adds a gradient scaler; reduced precision changes the numbers"}),
        ("--channels-last", "channels_last", {"action": argparse.BooleanOptionalAction, "help": "channels-last memory format for image models (default: on for image models on CUDA)"}),
        ("--compile", "compile", {"action": "store_const", "const": True, "help": "train through torch.compile (opt-in; falls back to eager with a warning)"}),
    ],
    "diagnostics": [
        ("--counterfactual", "counterfactual", {"action": "store_const", "const": True, "help": "active/selective: also train a fresh model on each round's labeled set, splitting the gap into init and selection effects"}),
        ("--diagnostics", "diagnostics", {"metavar": "NAME,...", "help": "record per round: grad_norms, weight_change, dormant_units, feature_rank, weights, plasticity (= dormant_units,feature_rank,weights,grad_norms), or all (docs/concepts.md)"}),
    ],
}
# fmt: on
_SETTINGS = [(group, flag, dest, kw) for group, items in _GROUPS.items() for flag, dest, kw in items]


def _default_text(field: str) -> str:
    from activews.engine.config import BenchConfig

    default = BenchConfig.model_fields[field].get_default(call_default_factory=True)
    if field == "strategies":
        return ",".join(default)
    if field == "seeds":
        return str(len(default))
    if default in (None, {}, False, ()):
        return ""
    return str(default)


def _add_settings(parser: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    """The bench settings (the fields of ``BenchConfig``), grouped as in the help.

    ``defaults=False`` leaves the defaults out of the help (a protocol sets its own; see ``--list``).
    """
    groups: dict[str, Any] = {}
    for group, flag, dest, spec in _SETTINGS:
        g = groups.setdefault(group, parser.add_argument_group(group))
        kw = dict(spec)
        default = _default_text(dest) if defaults else ""
        help_text = kw.pop("help", "") + (f" (default: {default})" if default else "")
        g.add_argument(flag, dest=dest, default=None, help=help_text.strip(), **kw)


def _add_run_options(parser: argparse.ArgumentParser, *, resume: bool) -> None:
    """Where and how a run executes (not part of its config)."""
    g = parser.add_argument_group("run")
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
    g.add_argument(
        "--output",
        metavar="DIR",
        help="run folder (default: runs/<time>-<name>); an existing run folder with the same config is resumed",
    )
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="activews",
        description="Measure the warm-start penalty in continual and active learning, and compare ways "
        "to initialize each round on accuracy and compute.",
    )
    parser.add_argument("--version", action="version", version=f"activews {_version()}")
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE|FILE.py",
        help="import a module or .py file that registers strategies, models, datasets or "
        "acquisition functions (repeatable)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parser.commands = sub.choices  # type: ignore[attr-defined]  (for errors that name the subcommand)

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
    _add_settings(b)
    _add_run_options(b, resume=True)

    rp = sub.add_parser(
        "reproduce",
        help="run an experiment of Ash & Adams (2020) by name (two-phase, online, ...)",
        description="Run one of the paper's protocols as a preset (see 'activews reproduce --list' and "
        "docs/reproduction.md): its settings and grid of experiments, overridable with the bench flags "
        "and --grid; prints the paper-shaped tables and writes them, with figures, to the run folder. "
        "Re-running with the same --output resumes.",
    )
    rp.add_argument(
        "protocol",
        nargs="?",
        metavar="PROTOCOL",
        help="two-phase | online | shrink-perturb-grid | early-damage | regularized",
    )
    rp.add_argument("--list", action="store_true", help="list the protocols with their settings and grids")
    _add_settings(rp, defaults=False)
    _add_run_options(rp, resume=False)

    s = sub.add_parser("strategies", help="list registered strategies with their parameters and references")
    s.add_argument("--json", action="store_true", help="print as JSON")
    a = sub.add_parser(
        "acquisitions", help="list registered acquisition functions with their parameters and references"
    )
    a.add_argument("--json", action="store_true", help="print as JSON")

    r = sub.add_parser("runs", help="list, show and export stored runs")
    rsub = r.add_subparsers(dest="runs_command", metavar="ACTION", parser_class=_Parser)
    rl = rsub.add_parser("list", help="list the run folders under a root folder")
    rl.add_argument("--root", default=str(RUNS_ROOT), help="folder holding run folders (default: runs)")
    rs = rsub.add_parser("show", help="protocol, progress and summary tables of one run")
    rs.add_argument("run", metavar="RUN", help="run folder, or its name under runs/")
    re_ = rsub.add_parser("export", help="write a run's records or summary as CSV or JSON")
    re_.add_argument("run", metavar="RUN")
    re_.add_argument("--what", choices=("records", "summary"), default="records", help="(default: records)")
    re_.add_argument("--format", choices=("csv", "json"), default="csv", help="(default: csv)")
    re_.add_argument("--output", metavar="PATH", help="file to write (default: standard output)")

    p = sub.add_parser("report", help="print a run's tables and write its figures and HTML page")
    p.add_argument("run", metavar="RUN", help="run folder, or its name under runs/")
    p.add_argument(
        "--output", metavar="DIR", help="where to write figures and report.html (default: the run folder)"
    )
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("activews")
    except Exception:
        return "unknown"


def _interrupt_code(exc: BaseException) -> int:
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The bench settings the user typed (flags left out are absent, not defaults)."""
    converters = {
        "strategies": tuple,
        "params": lambda v: parse_assignments(v, "--param", dotted=True),
        "param_grid": lambda v: {
            s: {k: (x if isinstance(x, list) else [x]) for k, x in kv.items()}
            for s, kv in parse_assignments(v, "--sweep", dotted=True).items()
        },
        "seeds": parse_seeds,
        "schedule": parse_schedule,
        "model_params": lambda v: parse_assignments(v, "--model-param", dotted=False),
        "acquisition_params": lambda v: parse_assignments(
            v, "--acquisition-param", dotted=False, example="KEY=VALUE, e.g. samples=20"
        ),
        "diagnostics": lambda v: [d for d in v.split(",") if d],
    }
    out = {}
    for _, _, dest, _ in _SETTINGS:
        value = getattr(args, dest, None)
        if value is not None:
            out[dest] = converters.get(dest, lambda v: v)(value)
    return out


def resolve_run(run: str) -> Path:
    """A run folder given as a path, or as a name under ``runs/``."""
    from activews.engine.store import is_run_folder

    for candidate in (Path(run), RUNS_ROOT / run):
        try:
            if is_run_folder(candidate):
                return candidate
        except OSError:  # a name too long, or a folder we may not read: not a run we can use
            continue
    raise ActivewsError(f"no activews run at {run!r}; pass a run folder (see 'activews runs list')")


# ---------------------------------------------------------------------------------------------- commands


def experiments_from_args(args: argparse.Namespace) -> tuple[list[tuple[str, Any]], Path | None]:
    """The experiments to run and the run folder (None: pick a default name)."""
    from activews.engine.config import BenchConfig
    from activews.engine.store import RunStore
    from activews.engine.sweep import check_grid_flags, expand, load_sweep

    flags = settings_from_args(args)
    grid = parse_grid(args.grid)
    if args.resume:
        if args.config or flags or grid:
            given = ["--config"] * bool(args.config) + ["--grid"] * bool(grid)
            given += [f"--{k.replace('_', '-')}" for k in flags]
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


def cmd_bench(args: argparse.Namespace) -> int:
    from activews.report.tables import protocol_title

    experiments, folder = experiments_from_args(args)
    folder = folder or default_run_dir(experiments[0][1])
    first = experiments[0][1]
    what = protocol_title(first) if len(experiments) == 1 else f"{len(experiments)} experiments"
    results = _execute(args, experiments, folder, f"[bold]activews bench[/] · {escape(what)}")
    if results is None:
        return int(args.exit_code)
    _print_results(args, results, folder)
    return 0


def _execute(
    args: argparse.Namespace,
    experiments: list[tuple[str, Any]],
    folder: Path,
    title: str,
    meta: dict[str, str] | None = None,
) -> list[Any] | None:
    """Run (or resume) ``experiments`` into ``folder`` with a progress display; None if interrupted."""
    from rich.console import Console

    from activews.engine.bench import run_experiments
    from activews.engine.resources import check_threads, parse_workers
    from activews.files import check_writable_file
    from activews.report import write_run_folder

    err = Console(stderr=True)
    workers = parse_workers(args.workers)
    if args.threads is not None:
        check_threads(args.threads)
    if args.address and args.executor != "ray":
        raise ActivewsError("--address applies to --executor ray; add --executor ray or drop --address")
    args.json_path = check_writable_file(args.json) if args.json else None
    mode = "none" if args.quiet else args.progress
    if mode == "auto":
        mode = "bar" if err.is_terminal else "plain"
    first = experiments[0][1]
    header = [title, f"arms: {escape(', '.join(first.arms))} · run folder {escape(str(folder))}"]
    display = {"bar": _BarProgress, "plain": _PlainProgress}.get(mode, _NoProgress)(err, header)
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
        args.exit_code = _interrupt_code(exc)
        return None
    write_run_folder(results, folder, plot=not args.no_plot)
    return results


def _print_results(args: argparse.Namespace, results: list[Any], folder: Path, extra: str = "") -> None:
    from rich.console import Console

    from activews.files import atomic_write, to_jsonable
    from activews.report.tables import compute_table, penalty_table, protocol_title, selection_table

    out = Console()
    if args.json_path is not None:
        payload = results[0].to_dict() if len(results) == 1 else [r.to_dict() for r in results]
        atomic_write(args.json_path, json.dumps(to_jsonable(payload), indent=2))
    if not extra:
        for result in results:
            label = f" \\[{escape(result.label)}]" if result.label else ""
            out.print(
                penalty_table(
                    result.summary,
                    title=f"Warm-start penalty vs random{label} (accuracy points, final round)",
                )
            )
            out.print(compute_table(result.summary))
            split = selection_table(result.summary)
            if split is not None:
                out.print(split)
            out.print(escape(protocol_title(result.config)), highlight=False)
    out.print(
        f"{results[0].seconds:.0f} s · results in {escape(str(folder))}/ ("
        + extra
        + ("report.html, " if not args.no_plot else "")
        + "summary.json, records.csv)"
        + (f" · JSON: {escape(str(args.json_path))}" if args.json_path else ""),
        highlight=False,
    )


def cmd_reproduce(args: argparse.Namespace) -> int:
    from rich.console import Console

    from activews.engine.sweep import expand, load_sweep
    from activews.report.tables import protocol_title
    from activews.reproduce import (
        PROTOCOLS,
        describe_protocols,
        get_protocol,
        protocol_values,
        write_protocol_report,
    )

    out = Console()
    if args.list or args.protocol is None:
        if args.protocol is None and not args.list:
            raise ActivewsError(
                f"name a protocol: {', '.join(PROTOCOLS.names())} (see 'activews reproduce --list')"
            )
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
    for table in report.tables:
        out.print(table.rich())
    figs = ", ".join(report.figures)
    _print_results(args, results, folder, extra=f"protocol.md, protocol.json, {figs + ', ' if figs else ''}")
    return 0


def default_run_dir(config: Any, name: str | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data = Path(config.dataset).stem if config.dataset.endswith(".npz") else config.dataset
    base = RUNS_ROOT / f"{stamp}-{name or config.stream}-{data}"
    folder, k = base, 1
    while folder.exists():
        k += 1
        folder = base.with_name(f"{base.name}-{k}")
    return folder


class _NoProgress:
    """Progress display base: shows nothing. ``header`` is printed once the run has been validated."""

    def __init__(self, console: Any, header: Sequence[str] = ()) -> None:
        self.console, self.header = console, list(header)

    def print_header(self, plan: dict[str, Any] | None = None) -> None:
        for line in self.header:
            self.console.print(line, highlight=False)
        if plan:
            self.console.print(escape(_plan_line(plan)), highlight=False)
        self.print_warning(plan)

    def print_warning(self, plan: dict[str, Any] | None) -> None:
        if plan and plan.get("warning"):
            self.console.print(f"warning: {escape(plan['warning'])}", highlight=False, soft_wrap=True)

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def on_event(self, event: Any) -> None:
        if event.kind == "start":
            self.print_warning(event.record)


def _plan_line(plan: dict[str, Any]) -> str:
    """``2 workers x 1 thread on cpu`` (+ the memory of a cell on an accelerator)."""
    workers, threads = plan["workers"], plan["threads"]
    line = (
        f"{workers} worker{'s' if workers != 1 else ''} x {threads} thread{'s' if threads != 1 else ''} "
        f"on {', '.join(plan['devices'])}"
    )
    return line + (f" · {plan['memory']}" if plan.get("memory") else "")


class _PlainProgress(_NoProgress):
    """One line per finished round, for logs (CI, nohup)."""

    def __init__(self, console: Any, header: Sequence[str] = ()) -> None:
        super().__init__(console, header)
        self.done = self.total = 0
        self.start = time.monotonic()

    def on_event(self, event: Any) -> None:
        if event.kind == "start":
            self.print_header(event.record)
            self.done, self.total = event.round, event.num_rounds
            if self.done:
                self.console.print(
                    f"resuming: {self.done}/{self.total} rounds already stored", highlight=False
                )
        elif event.kind == "round_end":
            # A cell whose checkpoint was unusable restarts from round 0 and recomputes rounds already
            # counted as stored: never show more rounds done than the run has.
            self.done = min(self.done + 1, self.total) if self.total else self.done + 1
            r = event.record
            self.console.print(
                f"\\[{self.done}/{self.total}] {escape(event.strategy)} seed {event.seed} round {event.round}: "
                f"acc {r['test_accuracy']:.4f}, {r['steps']} steps, {r['seconds']:.1f} s "
                f"(elapsed {time.monotonic() - self.start:.0f} s)",
                highlight=False,
                soft_wrap=True,
            )


class _BarProgress(_NoProgress):
    """Rich bars: one overall (with ETA), one per running cell."""

    def __enter__(self) -> _BarProgress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.overall = self.progress.add_task("all rounds", total=None)
        self.cells: dict[tuple[str, int], Any] = {}
        self.started = False
        self.done = self.total = 0
        return self

    def on_event(self, event: Any) -> None:
        p, key = self.progress, (event.strategy, event.seed)
        if event.kind == "start":  # the run is validated: show the header, then the bars
            self.print_header(event.record)
            p.start()
            self.started = True
            self.done, self.total = event.round, event.num_rounds
            p.update(self.overall, total=event.num_rounds, completed=event.round)
        elif event.kind == "arm_start":
            self.cells[key] = p.add_task(
                f"{escape(event.strategy)} · seed {event.seed}", total=event.num_rounds, completed=event.round
            )
        elif event.kind == "round_end":
            r = event.record
            if key in self.cells:
                p.update(
                    self.cells[key],
                    completed=event.round + 1,
                    description=f"{escape(event.strategy)} · seed {event.seed} · acc {r['test_accuracy']:.3f}",
                )
            # Recomputed rounds of a restarted cell were already counted as stored (see _PlainProgress).
            self.done = min(self.done + 1, self.total) if self.total else self.done + 1
            p.update(self.overall, completed=self.done)
        elif event.kind == "arm_end" and key in self.cells:
            p.remove_task(self.cells.pop(key))

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.progress.stop()


def _bound(meta: Any) -> str:
    """``Ge(ge=0.0)`` -> ``>= 0.0`` (annotated-types constraints as people write them)."""
    for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if hasattr(meta, attr):
            return f"{sym} {getattr(meta, attr)}"
    return ""


def _param_rows(params_cls: Any) -> tuple[list[str], dict[str, Any]]:
    """A Params class as table lines (``key=default (bounds)``) and as a JSON-ready dict."""
    fields, params = [], {}
    for key, f in params_cls.model_fields.items():
        bounds = [_bound(m) for m in f.metadata if _bound(m)]
        fields.append(f"{key}={f.default!r}" + (f" ({', '.join(bounds)})" if bounds else ""))
        params[key] = {"default": f.default, "description": f.description, "constraints": bounds}
    return fields, params


def _doc_parts(obj: Any) -> tuple[str, str]:
    """The first docstring line, and the text of its ``References:`` section (joined into one line)."""
    lines = [line.strip() for line in (getattr(obj, "__doc__", None) or "").strip().splitlines()]
    refs = []
    if "References:" in lines:
        for line in lines[lines.index("References:") + 1 :]:
            if not line:
                break
            refs.append(line)
    return (lines[0].replace("``", "") if lines else ""), " ".join(refs)


def _registry_rows(registry: Any, describe: Any, blank: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per name of ``registry``: ``describe(entry)`` and the plugin package it comes from (None
    if built in or loaded in-process); a plugin that fails to load is a row saying why (``blank`` fills
    the other columns), not a crash."""
    rows = []
    for name, obj, error in registry.entries():
        source = registry.plugin_source(name)
        origin = f"\nfrom plugin package {source}" if source else ""
        if error is not None:
            rows.append(
                {"name": name, **blank, "summary": f"failed to load: {error}"}
                | {"plugin": source, "error": str(error)}
            )
            continue
        row = describe(obj)
        row["summary"] += origin
        rows.append({"name": name, **row, "plugin": source})
    return rows


def _print_rows(rows: list[dict[str, Any]], as_json: bool, table: Any) -> None:
    if as_json:
        print(
            json.dumps([{k: v for k, v in r.items() if k != "params"} for r in rows], indent=2, default=str)
        )
    else:
        from rich.console import Console

        Console().print(table(rows))


def cmd_strategies(args: argparse.Namespace) -> int:
    from activews.report.tables import strategies_table
    from activews.strategies import STRATEGIES

    def describe(cls: Any) -> dict[str, Any]:
        fields, params = _param_rows(cls.Params)
        summary = _doc_parts(cls)[0] + (f"\nBatchNorm: {cls.batchnorm}" if cls.batchnorm else "")
        return {
            "params": "\n".join(fields) or "-",
            "parameters": params,
            "summary": summary,
            "reference": cls.reference,
        }

    rows = _registry_rows(STRATEGIES, describe, {"params": "-", "parameters": {}, "reference": ""})
    _print_rows(rows, args.json, strategies_table)
    return 0


def _acquisitions_table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="Registered acquisition functions", title_justify="left", show_lines=True)
    # Names are what users type: never wrapped or cut, however narrow the terminal.
    width = max((len(r["name"]) for r in rows), default=4)
    table.add_column("name", style="bold", no_wrap=True, min_width=width)
    table.add_column("kind", no_wrap=True)
    table.add_column("parameters (default)")
    table.add_column("what it does")
    table.add_column("reference")
    for r in rows:
        table.add_row(*(escape(str(r[k])) for k in ("name", "kind", "params", "summary", "reference")))
    return table


def cmd_acquisitions(args: argparse.Namespace) -> int:
    import inspect

    from activews.streams import ACQUISITIONS
    from activews.streams.acquisition import BatchSelector

    def describe(entry: Any) -> dict[str, Any]:
        summary, reference = _doc_parts(entry)
        if inspect.isclass(entry) and issubclass(entry, BatchSelector):
            fields, params = _param_rows(entry.Params)
            return {
                "kind": "selector",
                "params": "\n".join(fields) or "-",
                "parameters": params,
                "summary": summary + f"\nneeds: {', '.join(sorted(entry.needs))}",
                "reference": entry.reference or reference,
            }
        return {
            "kind": "function",
            "params": "-",
            "parameters": {},
            "summary": summary,
            "reference": reference,
        }

    blank = {"kind": "-", "params": "-", "parameters": {}, "reference": ""}
    rows = _registry_rows(ACQUISITIONS, describe, blank)
    _print_rows(rows, args.json, _acquisitions_table)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from activews.engine.bench import load_results
    from activews.engine.store import RunStore, is_run_folder
    from activews.files import to_jsonable
    from activews.report import records_csv
    from activews.report.tables import compute_table, penalty_table, protocol_title

    console = Console()
    if args.runs_command == "list":
        root = Path(args.root)
        if not root.is_dir():
            raise ActivewsError(f"no folder {str(root)!r}; pass --root DIR holding run folders")
        try:
            folders = sorted(p for p in root.iterdir() if _is_run_folder_safe(p, is_run_folder))
        except OSError as exc:
            raise ActivewsError(
                f"cannot list {str(root)!r} ({exc.strerror or exc}); pass --root DIR"
            ) from None
        table = Table(title=f"Runs in {escape(str(root))}", title_justify="left")
        # Run names are what users type next ('runs show NAME'): never wrapped or cut.
        table.add_column("run", no_wrap=True, min_width=max((len(p.name) for p in folders), default=3))
        for col in ("created", "experiments", "arms", "seeds", "cells done", "rounds stored"):
            table.add_column(col)
        rows = [_run_row(folder, RunStore) for folder in folders]
        for folder, row in zip(folders, rows, strict=True):  # a damaged folder is a row, not the end
            table.add_row(escape(folder.name), *row, style="red" if row[0].startswith("damaged") else None)
        console.print(table)
        if any(row[0].startswith("damaged") for row in rows):
            console.print(
                "damaged runs cannot be shown or resumed; 'activews runs show RUN' says what to do",
                highlight=False,
                soft_wrap=True,
            )
        return 0
    if args.runs_command is None:
        raise ActivewsError(
            "say what to do with runs: list, show RUN or export RUN (see 'activews runs --help')"
        )
    folder = resolve_run(args.run)
    results = _load_run(folder, load_results)
    if args.runs_command == "show":
        with RunStore(folder) as store:
            done, total = store.progress()
            n_rec = len(store.records())
        console.print(
            f"[bold]{escape(str(folder))}[/] · cells done {done}/{total} · {n_rec} rounds stored",
            highlight=False,
        )
        for r in results:
            console.print(
                escape(protocol_title(r.config) + (f" [{r.label}]" if r.label else "")), highlight=False
            )
            if r.summary:
                console.print(penalty_table(r.summary))
                console.print(compute_table(r.summary))
        return 0
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
        from activews.files import atomic_write, check_writable_file

        atomic_write(check_writable_file(args.output, "--output"), text)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _load_run(folder: Path, load_results: Any) -> list[Any]:
    """A run's results; a one-line error for a store whose set-up never finished (no experiments)."""
    results = load_results(folder)
    if not results:
        raise ActivewsError(
            f"run folder {str(folder)!r} holds no run: its set-up never finished; start it again with "
            f"'activews bench --output {folder} ...' or delete the folder"
        )
    return list(results)


def _is_run_folder_safe(path: Path, is_run_folder: Any) -> bool:
    try:
        return bool(is_run_folder(path))
    except OSError:  # unreadable entry: not ours to list
        return False


def _run_row(folder: Path, store_cls: Any) -> list[str]:
    """The ``runs list`` cells (after the name) of one run folder; ``damaged: why`` or ``not started``
    in the second column when it cannot be read."""
    import sqlite3

    from activews.engine.store import StoreError

    def flagged(text: str) -> list[str]:
        return [escape(text)] + ["-"] * 5

    try:
        with store_cls(folder) as store:
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
    from activews.files import probe_writable

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
    from rich.console import Console

    from activews.engine.bench import load_results
    from activews.report import write_run_folder
    from activews.report.tables import compute_table, penalty_table, protocol_title, selection_table
    from activews.reproduce import protocol_of_run, write_protocol_report

    folder = resolve_run(args.run)
    results = _load_run(folder, load_results)
    if not any(r.records for r in results):
        raise ActivewsError(f"run {str(folder)!r} has no finished round yet; nothing to report")
    target = Path(args.output) if args.output else folder
    _check_report_target(target, bool(args.output))
    written = write_run_folder(results, target)
    console = Console()
    for r in results:
        console.print(
            escape(protocol_title(r.config) + (f" [{r.label}]" if r.label else "")), highlight=False
        )
        console.print(penalty_table(r.summary))
        console.print(compute_table(r.summary))
        split = selection_table(r.summary)
        if split is not None:
            console.print(split)
    protocol = protocol_of_run(folder)
    if protocol is not None:  # a run of 'activews reproduce': its paper-shaped tables and figures too
        report = write_protocol_report(protocol, results, target)
        for table in report.tables:
            console.print(table.rich())
        written += [target / "protocol.md", target / "protocol.json", *(target / f for f in report.figures)]
    console.print(f"wrote {len(written)} files to {escape(str(target))}/ (open report.html)", highlight=False)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # report unknown flags against the subcommand's own help, not the top level's
        owner = parser.commands.get(args.command, parser) if args.command else parser  # type: ignore[attr-defined]
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        from activews.plugins import load_plugin

        for spec in args.plugin:
            load_plugin(spec)
        commands = {
            "bench": cmd_bench,
            "reproduce": cmd_reproduce,
            "strategies": cmd_strategies,
            "acquisitions": cmd_acquisitions,
            "runs": cmd_runs,
            "report": cmd_report,
        }
        with sigterm_as_exception():  # 'kill PID' or a container stop: the same clean stop as Ctrl-C
            return commands[args.command](args)
    except ActivewsError as exc:
        sys.stderr.write(f"activews: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        sys.stderr.write(f"activews: {what}; results already stored are intact\n")
        return _interrupt_code(exc)


if __name__ == "__main__":
    sys.exit(main())
