"""``activews advise``: search the strategies' declared spaces for the best setting within a compute
budget on the bench the flags describe, confirm it on fresh seeds, and print the recommendation."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from activews.cli.base import interrupt_code
from activews.cli.bench import add_run_options, default_run_dir
from activews.cli.flags import add_settings, parse_seeds, settings_from_args
from activews.engine.advise import DEFAULT_CONFIRM_SEEDS, DEFAULT_TRIALS, Advice, AdviseEvent, advise
from activews.engine.config import BenchConfig
from activews.engine.resources import check_threads, parse_workers
from activews.engine.workers import Terminated
from activews.errors import ActivewsError
from activews.files import atomic_write, check_writable_file, to_jsonable
from activews.report.advise import advice_tables, write_advice
from activews.report.tables import protocol_title

__all__ = ["add_commands", "cmd_advise"]


def add_commands(sub: Any) -> None:
    """The ``advise`` subcommand."""
    a = sub.add_parser(
        "advise",
        help="find the best strategy and parameters within a compute budget, confirmed on fresh seeds",
        description="Search the strategies' declared parameter spaces (see 'activews strategies') with "
        "Optuna on the bench the flags describe (the same flags as 'activews bench'; --seeds are the search "
        "seeds, --strategy the strategies to search). Each trial runs one setting on the search seeds and is "
        "paired with random and warm, which run once; trials over the budget or below the median of earlier "
        "trials stop early. The best setting within --budget and a runner-up are then re-run on fresh seeds "
        "next to random and warm, and those confirmed numbers, with 95%% CIs, are the recommendation. "
        "Re-running with the same --output resumes (finished trials are kept; --trials may grow). See "
        "docs/advise.md.",
    )
    add_settings(a)
    g = a.add_argument_group("advise")
    g.add_argument(
        "--budget",
        type=float,
        default=0.5,
        metavar="R",
        help="the largest ratio of training steps to random's (a from-scratch retrain each round) a "
        "recommendation may cost (default: 0.5)",
    )
    g.add_argument(
        "--time-budget",
        type=float,
        metavar="R",
        help="also the largest ratio of training seconds to random's (timings vary, so a search with it "
        "may differ between runs)",
    )
    g.add_argument(
        "--trials",
        type=int,
        default=DEFAULT_TRIALS,
        metavar="N",
        help=f"settings to try (default: {DEFAULT_TRIALS})",
    )
    g.add_argument(
        "--confirm-seeds",
        metavar="N|LIST",
        help=f"seeds of the confirmation: a count of seeds after the largest search seed, or a list; never "
        f"the search seeds (default: {DEFAULT_CONFIRM_SEEDS})",
    )
    g.add_argument(
        "--strategies",
        dest="strategy_list",
        metavar="NAME,NAME",
        help="the strategies to search, as one list (the same as repeating --strategy) (default: every "
        "strategy that declares a search space, see 'activews strategies')",
    )
    g.add_argument(
        "--sampler-seed", type=int, default=0, metavar="N", help="seed of the search's sampler (default: 0)"
    )
    add_run_options(a, resume=False, sweeps=False)
    a.set_defaults(handler=cmd_advise)


class _Display:
    """Progress of a search: a line per phase and per finished trial, with bars on a terminal."""

    def __init__(self, console: Console, mode: str, header: list[str]) -> None:
        if mode == "auto":
            mode = "bar" if console.is_terminal else "plain"
        self.console, self.mode, self.header = console, mode, header
        self.progress: Progress | None = None
        self.start = time.monotonic()

    def __enter__(self) -> _Display:
        if self.mode == "bar":
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
            )
            self.trials = self.progress.add_task("trials", total=None)
            self.rounds = self.progress.add_task("", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def line(self, text: str) -> None:
        if self.mode != "none":
            self.console.print(text, highlight=False, soft_wrap=True)

    def on_event(self, ev: AdviseEvent) -> None:
        p = self.progress
        if ev.kind == "start":
            for text in self.header:
                self.line(text)
            d = ev.detail or {}
            self.line(
                escape(
                    f"searching {', '.join(d.get('strategies', []))} on seeds "
                    f"{','.join(map(str, d.get('search_seeds', [])))}; confirming on seeds "
                    f"{','.join(map(str, d.get('confirm_seeds', [])))}"
                )
            )
            if p is not None:
                p.start()
                p.update(self.trials, total=ev.trials)
        elif ev.kind == "references":
            self._phase("references: random, warm")
        elif ev.kind == "trial_start":
            self._phase(f"[{ev.trial + 1}/{ev.trials}] trial {ev.trial} {ev.label}")
        elif ev.kind == "trial_end" and ev.result is not None:
            t = ev.result
            if t.state == "complete":
                gain = "n/a" if t.gain is None else f"{t.gain * 100:+.2f} points vs random"
                ratio = "n/a" if t.compute_ratio is None else f"step ratio {t.compute_ratio:.2f}"
                what = f"{gain}, {ratio}" + (" (in budget)" if t.within_budget else "")
            else:
                what = f"{t.state}: {t.note}"
            elapsed = time.monotonic() - self.start
            self.line(
                escape(
                    f"[{t.number + 1}/{ev.trials}] trial {t.number} {t.label}: {what} (elapsed {elapsed:.0f} s)"
                )
            )
            if p is not None:
                p.update(self.trials, completed=t.number + 1)
        elif ev.kind == "confirm":
            self._phase(f"confirming on fresh seeds: {ev.label}")
        elif ev.kind == "round" and ev.event is not None and p is not None:
            inner = ev.event
            if inner.kind == "start":
                p.update(self.rounds, total=inner.num_rounds, completed=inner.round)
            elif inner.kind == "round_end":
                p.advance(self.rounds)

    def _phase(self, text: str) -> None:
        if self.progress is not None:
            self.progress.update(self.rounds, description=escape(text) + " · rounds", completed=0, total=None)
        elif self.mode == "plain" and not text.startswith("["):
            self.line(escape(text))


def cmd_advise(args: argparse.Namespace) -> int:
    values = settings_from_args(args)
    listed = [name.strip() for name in (args.strategy_list or "").split(",") if name.strip()]
    if args.strategy_list is not None and not listed:
        raise ActivewsError(
            "--strategies is empty; name strategies, e.g. --strategies shrink_perturb,later_reset"
        )
    strategies = [*values.pop("strategies", ()), *listed] or None
    config = BenchConfig.build(**values)
    workers = parse_workers(args.workers)
    if args.threads is not None:
        check_threads(args.threads)
    if args.address and args.executor != "ray":
        raise ActivewsError("--address applies to --executor ray; add --executor ray or drop --address")
    confirm = parse_seeds(args.confirm_seeds) if args.confirm_seeds is not None else None
    json_path = check_writable_file(args.json) if args.json else None
    folder = args.output or str(default_run_dir(config, "advise"))
    err = Console(stderr=True)
    header = [
        f"[bold]activews advise[/] · {escape(protocol_title(config))} · budget: step ratio <= {args.budget:g}"
        + (f", time ratio <= {args.time_budget:g}" if args.time_budget is not None else ""),
        f"{args.trials} trials · advise folder {escape(folder)}",
    ]
    display = _Display(err, "none" if args.quiet else args.progress, header)
    try:
        with display:
            result = advise(
                config,
                budget=args.budget,
                time_budget=args.time_budget,
                trials=args.trials,
                strategies=strategies,
                confirm_seeds=confirm,
                sampler_seed=args.sampler_seed,
                output=folder,
                progress=display.on_event,
                workers=workers,
                executor=args.executor,
                address=args.address,
                threads=args.threads,
                gpus_per_cell=args.gpus_per_cell,
            )
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        err.print(
            f"{what}; finished trials and rounds are stored. Continue with the same command and --output {folder}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        return interrupt_code(exc)
    write_advice(result, plot=not args.no_plot)
    if json_path is not None:
        atomic_write(json_path, json.dumps(to_jsonable(result.to_dict()), indent=2))
    _print_advice(Console(), result, folder, args)
    return 0


def _print_advice(out: Console, result: Advice, folder: str, args: argparse.Namespace) -> None:
    for table in advice_tables(result, trials=False):  # every trial is in advice.md and trials.csv
        out.print(table)
    out.print(f"[bold]Verdict:[/] {escape(result.verdict)}", highlight=False, soft_wrap=True)
    for role, pick in (("recommended", result.recommendation), ("runner-up", result.runner_up)):
        if pick:
            out.print(f"{role} ({escape(pick['label'])}), reproduce with:", highlight=False)
            out.print(escape(pick["command"]), highlight=False, soft_wrap=True)
    files = "advice.md, advice.json, trials.csv, frontier.csv" + ("" if args.no_plot else ", frontier.png")
    out.print(
        f"{result.seconds:.0f} s · results in {escape(folder)}/ ({files})"
        + (f" · JSON: {escape(args.json)}" if args.json else ""),
        highlight=False,
    )
