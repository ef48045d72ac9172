"""The ``activews`` command line.

Every error caused by the user's input is one line on stderr and exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from activews.errors import ActivewsError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, naming the fix, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"activews: error: {message} (see '{self.prog} --help')\n")


def parse_value(text: str) -> Any:
    """Parse a parameter value: JSON when it parses (``0.4``, ``true``, ``[1,2]``), a comma list, or a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if "," in text:
        return [parse_value(part) for part in text.split(",") if part]
    return text


def parse_assignments(items: Sequence[str], flag: str, dotted: bool) -> dict[str, Any]:
    """``["shrink_perturb.shrink=0.6"]`` -> ``{"shrink_perturb": {"shrink": 0.6}}`` (or flat if not dotted)."""
    out: dict[str, Any] = {}
    example = "STRATEGY.KEY=VALUE, e.g. shrink_perturb.shrink=0.6" if dotted else "KEY=VALUE, e.g. hidden=128,128"
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


def parse_schedule(text: str) -> list[float]:
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ActivewsError(f"--schedule {text!r}: give increasing fractions, e.g. 0.5,1.0") from None


def load_plugin(spec: str) -> None:
    """Import a module by name, or a ``.py`` file by path, so that its registrations take effect."""
    try:
        if spec.endswith(".py"):
            path = Path(spec)
            if not path.is_file():
                raise ActivewsError(f"--plugin {spec!r}: no such file")
            module_spec = importlib.util.spec_from_file_location(f"activews_plugin_{path.stem}", path)
            module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
            sys.modules[module_spec.name] = module  # type: ignore[union-attr]
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            importlib.import_module(spec)
    except ActivewsError:
        raise
    except ModuleNotFoundError as exc:
        raise ActivewsError(f"--plugin {spec!r}: module not found ({exc.name}); install it or pass a .py path") from None
    except Exception as exc:
        raise ActivewsError(f"--plugin {spec!r} failed to import: {type(exc).__name__}: {exc}") from None


# ------------------------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="activews",
        description="Measure the warm-start penalty in continual and active learning, and compare ways "
        "to initialize each round on accuracy and compute.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"activews {_version()}")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE|FILE.py",
                        help="import a module or .py file that registers strategies (repeatable)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    b = sub.add_parser(
        "bench",
        help="compare strategies with the random and warm reference arms",
        description="Run each strategy, plus the reference arms random (accuracy) and warm (compute), "
        "through a stream of rounds for several seeds; print penalty and compute tables and write a run "
        "folder. Defaults: active margin sampling on built-in MNIST-1D with an MLP, 1000 initial + 1000 "
        "per round, 7 rounds, 4 seeds, Adam lr 1e-3, each round trained to 99%% training accuracy.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = b.add_argument_group("what to compare")
    g.add_argument("--strategy", action="append", dest="strategies", metavar="NAME",
                   help="strategy to compare (repeatable; see 'activews strategies'); default shrink_perturb")
    g.add_argument("--param", action="append", default=[], metavar="STRATEGY.KEY=VALUE",
                   help="strategy parameter, e.g. shrink_perturb.shrink=0.6 (repeatable)")
    g.add_argument("--seeds", default="4", help="number of seeds (4) or a list (0,1,2)")
    g = b.add_argument_group("data and model")
    g.add_argument("--dataset", default="mnist1d", help="mnist1d | digits | PATH.npz (arrays X, y)")
    g.add_argument("--n-examples", type=int, default=None, help="examples to use (dataset default if omitted)")
    g.add_argument("--test-fraction", type=float, default=0.3, help="held-out test fraction")
    g.add_argument("--split-seed", type=int, default=0, help="seed of the train/test split")
    g.add_argument("--model", default="mlp", help="mlp | logreg | cnn")
    g.add_argument("--model-param", action="append", default=[], metavar="KEY=VALUE",
                   help="model parameter, e.g. hidden=128,128 (repeatable)")
    g = b.add_argument_group("stream")
    g.add_argument("--stream", default="active", help="passive | active")
    g.add_argument("--rounds", type=int, default=7, help="number of rounds")
    g.add_argument("--initial", type=int, default=1000, help="examples labeled in round 0")
    g.add_argument("--query-size", type=int, default=1000, help="examples added per round")
    g.add_argument("--schedule", default=None, help="passive: labeled fractions per round, e.g. 0.5,1.0")
    g.add_argument("--acquisition", default="margin", help="least_confidence | margin | entropy | random")
    g = b.add_argument_group("training (each round trains to the target accuracy)")
    g.add_argument("--optimizer", default="adam", help="adam | sgd")
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--target-accuracy", type=float, default=0.99, help="running training accuracy to stop at")
    g.add_argument("--patience", type=int, default=25, help="plateau rule: epochs without improvement")
    g.add_argument("--max-epochs", type=int, default=500, help="epoch cap per round")
    g.add_argument("--keep-optimizer-state", action="store_true", help="carry optimizer state across rounds")
    g.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    g = b.add_argument_group("output")
    g.add_argument("--output", default=None, metavar="DIR",
                   help="run folder (default: runs/<time>-<stream>-<dataset>)")
    g.add_argument("--json", default=None, metavar="PATH", help="also write {config, arms} to this JSON file")
    g.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    g.add_argument("--quiet", action="store_true", help="no progress bars; print only the tables")

    s = sub.add_parser("strategies", help="list registered strategies with their parameters and references")
    s.add_argument("--json", action="store_true", help="print as JSON")
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("activews")
    except Exception:
        return "unknown"


def config_from_args(args: argparse.Namespace):
    from activews.config import BenchConfig

    return BenchConfig.build(
        stream=args.stream,
        strategies=tuple(args.strategies or ("shrink_perturb",)),
        params=parse_assignments(args.param, "--param", dotted=True),
        seeds=parse_seeds(args.seeds),
        dataset=args.dataset,
        n_examples=args.n_examples,
        test_fraction=args.test_fraction,
        split_seed=args.split_seed,
        model=args.model,
        model_params=parse_assignments(args.model_param, "--model-param", dotted=False),
        rounds=args.rounds,
        initial=args.initial,
        query_size=args.query_size,
        schedule=parse_schedule(args.schedule) if args.schedule else None,
        acquisition=args.acquisition,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        batch_size=args.batch_size,
        target_accuracy=args.target_accuracy,
        patience=args.patience,
        max_epochs=args.max_epochs,
        keep_optimizer_state=args.keep_optimizer_state,
        device=args.device,
    )


# ---------------------------------------------------------------------------------------------- commands


def cmd_bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    from activews.bench import check_fits, load_bench_dataset, run_bench
    from activews.report import compute_table, penalty_table, protocol_title
    from activews.results import check_writable_file, prepare_output_dir, write_run_folder

    out, err = Console(), Console(stderr=True)
    config = config_from_args(args)
    folder = Path(args.output) if args.output else default_run_dir(config)
    json_path = check_writable_file(args.json) if args.json else None
    dataset = load_bench_dataset(config)
    check_fits(config, dataset)
    from activews.bench import resolve_device

    resolve_device(config.device)
    prepare_output_dir(folder)  # last check, so a bad flag never leaves an empty folder behind

    if not args.quiet:
        err.print(f"[bold]activews bench[/] · {protocol_title(config)}")
        err.print(f"arms: {', '.join(config.arms)} · {dataset!r} · run folder {folder}")
    with _progress(err, config, enabled=not args.quiet) as on_event:
        result = run_bench(config, dataset=dataset, progress=on_event)
    written = write_run_folder(result, folder, plot=not args.no_plot)
    if json_path is not None:
        from activews.results import atomic_write, to_jsonable

        atomic_write(json_path, json.dumps(to_jsonable(result.to_dict()), indent=2))
    out.print(penalty_table(result.summary))
    out.print(compute_table(result.summary))
    out.print(f"{protocol_title(config)} · {result.seconds:.0f} s")
    out.print(f"results: {folder}/ ({', '.join(written)})" + (f"; JSON: {json_path}" if json_path else ""))
    return 0


def default_run_dir(config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = Path(config.dataset).stem if config.dataset.endswith(".npz") else config.dataset
    base = Path("runs") / f"{stamp}-{config.stream}-{name}"
    folder, k = base, 1
    while folder.exists():
        k += 1
        folder = base.with_name(f"{base.name}-{k}")
    return folder


class _progress:
    """Rich progress bars (overall and per arm) driven by bench progress events."""

    def __init__(self, console, config, enabled: bool) -> None:
        self.console, self.config, self.enabled = console, config, enabled

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), console=self.console, transient=False,
        )
        total = len(self.config.arms) * len(self.config.seeds) * self.config.num_rounds
        self.progress.start()
        self.overall = self.progress.add_task("all rounds", total=total)
        self.arm = self.progress.add_task("", total=self.config.num_rounds)
        return self.on_event

    def on_event(self, event) -> None:
        p = self.progress
        if event.kind == "arm_start":
            p.reset(self.arm, total=event.num_rounds, description=f"{event.strategy} · seed {event.seed}")
        elif event.kind == "round_end":
            r = event.record
            p.update(self.arm, advance=1,
                     description=f"{event.strategy} · seed {event.seed} · round {event.round}: "
                     f"acc {r['test_accuracy']:.3f}, {r['steps']} steps")
            p.advance(self.overall)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.progress.stop()


def _bound(meta: Any) -> str:
    """``Ge(ge=0.0)`` -> ``>= 0.0`` (annotated-types constraints as people write them)."""
    for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if hasattr(meta, attr):
            return f"{sym} {getattr(meta, attr)}"
    return ""


def cmd_strategies(args: argparse.Namespace) -> int:
    from rich.console import Console

    from activews.report import strategies_table
    from activews.strategies import STRATEGIES

    rows = []
    for name, cls in STRATEGIES.items():
        fields = []
        params = {}
        for key, f in cls.Params.model_fields.items():
            bounds = [_bound(m) for m in f.metadata if _bound(m)]
            fields.append(f"{key}={f.default!r}" + (f" ({', '.join(bounds)})" if bounds else ""))
            params[key] = {"default": f.default, "description": f.description, "constraints": bounds}
        doc = (cls.__doc__ or "").strip().splitlines()
        rows.append({
            "name": name,
            "params": "\n".join(fields) or "-",
            "parameters": params,
            "summary": (doc[0].replace("``", "") if doc else "") + (f"\nBatchNorm: {cls.batchnorm}" if cls.batchnorm else ""),
            "reference": cls.reference,
        })
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "params"} for r in rows], indent=2, default=str))
    else:
        Console().print(strategies_table(rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        for spec in args.plugin:
            load_plugin(spec)
        return {"bench": cmd_bench, "strategies": cmd_strategies}[args.command](args)
    except ActivewsError as exc:
        sys.stderr.write(f"activews: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("activews: interrupted; results already written are intact\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
