"""The strategy leaderboard: every registered strategy on the default active and passive MNIST-1D benches.

    python benchmarks/leaderboard/run.py --update-docs      # the recorded run (see docs/strategies.md)
    python benchmarks/leaderboard/run.py --from-json --update-docs   # re-render it, no bench run

For each stream (``active``: margin sampling; ``passive``: random arrival order) this runs one bench with
every registered strategy at its default parameters next to the ``random`` and ``warm`` reference arms,
on the default settings of ``activews bench`` (MNIST-1D generated locally, MLP 40-256-256-10, 1,000
initial labels + 1,000 per round for 7 rounds, Adam lr 1e-3, batch 128, every round trained to 99%
running training accuracy), over ``--seeds`` seeds. Arms with the same seed share the split, the
round-0 model and the round-0 labels, so every comparison is paired by seed.

It writes ``results/leaderboard.md`` / ``leaderboard.json`` and each stream's run folder files (summary,
records, figures) under ``results/<stream>/``; with ``--update-docs`` it also replaces the leaderboard
block of ``docs/strategies.md``. Run folders (store, checkpoints) go to ``--work`` (default
``runs/leaderboard``): re-running resumes an interrupted run. ``--from-json`` runs no bench: it re-renders
``leaderboard.md`` (and, with ``--update-docs``, the docs block) from the ``leaderboard.json`` in ``--out``,
so the recorded tables follow this script's rendering.

Per arm it reports final accuracy, the penalty vs ``random`` (positive = worse), the gain over ``warm``,
the step and time ratios vs ``random``, and whether the arm is on the accuracy-vs-compute frontier (no
other arm is at least as accurate for at most the compute, and better in one of the two). Accuracy,
penalty and steps are reproducible on CPU (same command, same numbers); times depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DOCS = ROOT / "docs" / "strategies.md"
BEGIN, END = "<!-- leaderboard:begin -->", "<!-- leaderboard:end -->"

TINY = {"n_examples": 1000, "rounds": 3, "initial": 100, "query_size": 100}
"""Settings of ``--tiny`` (a smoke run for tests; its numbers mean nothing)."""


def _pts(value: float | None, signed: bool = True) -> str:
    if value is None:
        return ""
    return f"{value * 100:+.2f}" if signed else f"{value * 100:.1f}"


def _ci(ci: Sequence[float] | None, scale: float = 100.0, fmt: str = "{:+.2f}") -> str:
    if not ci:
        return ""
    return "[" + ", ".join(fmt.format(c * scale) for c in ci) + "]"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f} %"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def _verdict(ci: Sequence[float] | None, better: str, worse: str, same: str = "no difference") -> str:
    """What a paired difference's 95% CI says (``better`` when it lies above 0)."""
    if not ci:
        return "n/a"
    if ci[0] > 0:
        return better
    if ci[1] < 0:
        return worse
    return same


def frontier(points: dict[str, tuple[float, float]]) -> set[str]:
    """Arms no other arm dominates: ``points[arm] = (accuracy, compute)``, higher accuracy and lower compute
    are better; an arm is dominated by one at least as good in both and strictly better in one."""
    out = set()
    for arm, (acc, cost) in points.items():
        dominated = any(
            (a >= acc and c <= cost) and (a > acc or c < cost)
            for other, (a, c) in points.items()
            if other != arm
        )
        if not dominated:
            out.add(arm)
    return out


def gain_over_warm(records: list[dict[str, Any]], arm: str) -> tuple[float | None, list[float] | None]:
    """Mean and 95% CI of ``arm``'s final accuracy minus ``warm``'s, paired by seed."""
    from activews.engine.summary import mean_ci

    last: dict[tuple[str, int], tuple[int, float]] = {}
    for r in records:
        key = (r["arm"], r["seed"])
        if key not in last or r["round"] > last[key][0]:
            last[key] = (r["round"], r["test_accuracy"])
    diffs = [
        last[(arm, seed)][1] - last[("warm", seed)][1]
        for (a, seed) in sorted(last)
        if a == arm and ("warm", seed) in last
    ]
    if not diffs:
        return None, None
    return mean_ci(diffs)


def total_time_ratio(records: list[dict[str, Any]], arm: str) -> float | None:
    """Mean over seeds of the arm's training plus round-start seconds over ``random``'s (paired by seed).

    The bench's ``time_ratio`` counts training time only; a strategy's round-start work (``dash``'s
    gradient pass, ``redo``'s optional round-start recycling) is in ``init_seconds``, so it is added here.
    """
    totals: dict[tuple[str, int], float] = {}
    for r in records:
        key = (r["arm"], r["seed"])
        totals[key] = totals.get(key, 0.0) + r["seconds"] + (r.get("init_seconds") or 0.0)
    ratios = [
        t / totals[("random", seed)]
        for (a, seed), t in totals.items()
        if a == arm and totals.get(("random", seed))
    ]
    return sum(ratios) / len(ratios) if ratios else None


def table(result: Any) -> list[dict[str, Any]]:
    """One row per arm with the leaderboard's columns (fractions, not percent)."""
    rows = []
    for s in result.summary:
        gain, gain_ci = gain_over_warm(result.records, s["arm"])
        rows.append(
            {
                "arm": s["arm"],
                "final_accuracy": s["final_accuracy"],
                "final_accuracy_ci": s.get("final_accuracy_ci"),
                "penalty": s.get("penalty"),
                "penalty_ci": s.get("penalty_ci"),
                "gain_over_warm": gain,
                "gain_over_warm_ci": gain_ci,
                "step_ratio": s.get("compute_ratio"),
                "step_ratio_ci": s.get("compute_ratio_ci"),
                "time_ratio": total_time_ratio(result.records, s["arm"]),
                "reached_target": s.get("reached_target"),
                # last round, mean over seeds
                "dormant_fraction": s["per_round"][-1].get("dormant_fraction"),
                "feature_rank": s["per_round"][-1].get("feature_rank"),
            }
        )
    acc = {r["arm"]: r["final_accuracy"] for r in rows}
    by_steps = frontier(
        {r["arm"]: (acc[r["arm"]], r["step_ratio"]) for r in rows if r["step_ratio"] is not None}
    )
    by_time = frontier(
        {r["arm"]: (acc[r["arm"]], r["time_ratio"]) for r in rows if r["time_ratio"] is not None}
    )
    for r in rows:
        r["frontier_steps"] = r["arm"] in by_steps
        r["frontier_time"] = r["arm"] in by_time
        if r["arm"] == "random":
            r["vs_random"] = "reference"
        else:
            # penalty = random - arm, so a CI above zero means worse than random
            r["vs_random"] = _verdict(r["penalty_ci"], "worse", "better")
        r["vs_warm"] = (
            "reference" if r["arm"] == "warm" else _verdict(r["gain_over_warm_ci"], "better", "worse")
        )
    rows.sort(key=lambda r: -r["final_accuracy"])
    return rows


LABEL_COLUMNS = frozenset({3, 5, 8})
"""The columns of :func:`markdown` that hold words (the verdicts vs random and vs warm, the frontier's
yes/-): aligned left like the arm column; the others hold numbers and align right."""


def markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The leaderboard table of one stream (``rows`` from :func:`table`) as Markdown lines, rendered by
    :meth:`activews.report.tables.TextTable.markdown` (the one Markdown table renderer)."""
    from activews.report.tables import TextTable

    headers = [
        "arm", "final accuracy", "penalty vs random [95% CI]", "vs random", "gain over warm [95% CI]",
        "vs warm", "step ratio", "time ratio", "frontier (steps / time)", "dormant units", "feature rank",
    ]  # fmt: skip
    cells = []
    for r in rows:
        front = " / ".join("yes" if r[k] else "-" for k in ("frontier_steps", "frontier_time"))
        penalty = "-" if r["arm"] == "random" else f"{_pts(r['penalty'])} {_ci(r['penalty_ci'])}"
        gain = "-" if r["arm"] == "warm" else f"{_pts(r['gain_over_warm'])} {_ci(r['gain_over_warm_ci'])}"
        cells.append(
            [
                f"`{r['arm']}`{target_note(r)}",
                f"{_pts(r['final_accuracy'], signed=False)} %",
                penalty,
                r["vs_random"],
                gain,
                r["vs_warm"],
                f"{r['step_ratio']:.2f}",
                f"{r['time_ratio']:.2f}",
                front,
                _pct(r["dormant_fraction"]),
                _num(r["feature_rank"]),
            ]
        )
    return TextTable("", headers, cells, label_columns=LABEL_COLUMNS).markdown().split("\n")


def render(data: dict[str, Any]) -> list[str]:
    """The lines of ``leaderboard.md`` (and of the docs block) from ``data``, what ``leaderboard.json``
    holds: the header, each stream's table, the strategies' defaults."""
    streams = data["streams"]
    lines = header_lines(data, {stream: entry["seconds"] for stream, entry in streams.items()})
    for stream, entry in streams.items():
        cfg = entry["config"]
        what = (
            "margin sampling, each arm selects its own examples"
            if stream == "active"
            else "random arrival order, the same for every arm"
        )
        lines += [
            f"**{stream}** ({what}; {cfg['rounds']} rounds of {cfg['query_size']} after {cfg['initial']} initial labels):",
            "",
        ]
        lines += markdown(entry["rows"]) + [""]
    return lines + defaults_lines(data["strategies"])


def defaults_lines(strategies: dict[str, str]) -> list[str]:
    """The line naming each strategy's default parameters (``strategies``: name -> ``describe()``)."""
    return ["Defaults used: " + "; ".join(f"`{d}`" for d in strategies.values()), ""]


def run_stream(stream: str, args: argparse.Namespace, strategies: list[str]) -> Any:
    from activews import BenchConfig

    settings: dict[str, Any] = {
        "stream": stream,
        "strategies": strategies,
        "seeds": args.seeds,
        # Cheap on this MLP (one extra eval pass per round; the grad-norm probe is left out of the times):
        # where each method leaves the network, next to what it scores.
        "diagnostics": ["plasticity"],
    }
    if args.tiny:
        settings |= TINY
    return run_recorded(stream, BenchConfig.build(**settings), args, every=20)


def run_recorded(label: str, config: Any, args: argparse.Namespace, *, every: int) -> tuple[Any, float]:
    """Run ``config`` into ``--work``/``label`` (resumable), printing progress every ``every`` rounds,
    and write its result files (summary, records.csv, figures) into ``--out``/``label``."""
    from activews import run_bench
    from activews.report import write_run_folder

    start = time.perf_counter()
    done = [0]

    def progress(event: Any) -> None:
        if event.kind == "start":
            done[0] = event.round
            print(f"[{label}] {event.num_rounds} rounds to run ({event.round} already stored)", flush=True)
        elif event.kind == "round_end":
            done[0] += 1
            if done[0] % every == 0:
                print(f"[{label}] {done[0]} rounds, {time.perf_counter() - start:.0f} s", flush=True)

    result = run_bench(config, output=Path(args.work) / label, progress=progress, workers=args.workers)
    seconds = time.perf_counter() - start
    out = Path(args.out) / label
    write_run_folder([result], out, plot=not args.tiny)
    # records.csv holds every record (records.json repeats them with the active stream's selected indices,
    # megabytes), and report.html repeats the figures: the store in --work keeps everything.
    for name in ("records.json", "report.html"):
        (out / name).unlink(missing_ok=True)
    print(f"[{label}] {seconds:.0f} s", flush=True)
    return result, seconds


def target_note(row: dict[str, Any]) -> str:
    """`` (N% at target)`` after an arm whose rounds did not all reach the training target."""
    reached = row["reached_target"]
    return "" if reached in (None, 1.0) else f" ({reached * 100:.0f}% at target)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per arm (default: 5)")
    parser.add_argument("--workers", type=int, default=2, help="arms run in parallel (default: 2)")
    parser.add_argument(
        "--streams", default="active,passive", help="comma-separated (default: active,passive)"
    )
    parser.add_argument(
        "--strategies", default="", help="comma-separated subset (default: every registered strategy)"
    )
    parser.add_argument("--work", default="runs/leaderboard", help="run folders (resumable)")
    parser.add_argument("--out", default=str(HERE / "results"), help="tables, figures, JSON")
    parser.add_argument(
        "--update-docs", action="store_true", help="rewrite the leaderboard block of docs/strategies.md"
    )
    parser.add_argument(
        "--docs", default=str(DOCS), help="the page --update-docs rewrites (default: docs/strategies.md)"
    )
    parser.add_argument(
        "--tiny", action="store_true", help="tiny settings (a smoke test; numbers mean nothing)"
    )
    add_from_json(parser)
    args = parser.parse_args(argv)
    if args.from_json:
        return rerender(parser, args, render, BEGIN, END)

    from activews.strategies import get_strategy

    strategies = pick_strategies(args.strategies)
    started = time.time()
    streams = [s.strip() for s in args.streams.split(",") if s.strip()]
    results = {s: run_stream(s, args, strategies) for s in streams}
    data = run_header("run.py", parser, args, "streams", started, time.time() - started)
    data["streams"] = {
        stream: {"seconds": seconds, "config": result.config.model_dump(mode="json"), "rows": table(result)}
        for stream, (result, seconds) in results.items()
    }
    data["strategies"] = {s: get_strategy(s)().describe() for s in strategies}
    lines = render(data)
    write_results(Path(args.out), lines, data)
    return update_docs(Path(args.docs), BEGIN, END, lines) if args.update_docs else 0


def add_from_json(parser: argparse.ArgumentParser) -> None:
    """The ``--from-json`` option (shared by both leaderboard scripts)."""
    parser.add_argument(
        "--from-json",
        action="store_true",
        help="run no bench: re-render leaderboard.md (and, with --update-docs, the docs block) from the "
        "leaderboard.json stored in --out",
    )


def rerender(
    parser: argparse.ArgumentParser, args: argparse.Namespace, render: Any, begin: str, end: str
) -> int:
    """``--from-json``: rewrite ``leaderboard.md`` in ``--out`` (and the ``begin``...``end`` block of
    ``--docs`` with ``--update-docs``) from the ``leaderboard.json`` beside it; no bench runs."""
    path = Path(args.out) / "leaderboard.json"
    if not path.is_file():
        print(f"error: {path} not found (--from-json re-renders a recorded run)", file=sys.stderr)
        return 2
    data = recorded_options(parser, json.loads(path.read_text()))
    lines = render(data)
    write_results(Path(args.out), lines)
    return update_docs(Path(args.docs), begin, end, lines) if args.update_docs else 0


def recorded_options(parser: argparse.ArgumentParser, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with ``seeds`` and ``workers`` filled in where a JSON written before they were stored lacks
    them: read from its ``command``, which names every option that differed from its default."""
    if "seeds" in data and "workers" in data:
        return data
    recorded, _ = parser.parse_known_args(shlex.split(data["command"])[2:])
    return {
        **data,
        "seeds": data.get("seeds", recorded.seeds),
        "workers": data.get("workers", recorded.workers),
    }


def pick_strategies(spec: str) -> list[str]:
    """The strategies to rank besides the reference arms: every registered one, or the comma-separated
    ``spec`` (an unknown name fails with a close-match suggestion)."""
    from activews.engine.config import REFERENCE_ARMS
    from activews.strategies import get_strategy, list_strategies

    if not spec:
        return [s for s in list_strategies() if s not in REFERENCE_ARMS]
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    for name in wanted:
        get_strategy(name)
    return [s for s in wanted if s not in REFERENCE_ARMS]


def run_header(
    script: str,
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    axis: str,
    started: float,
    total: float,
) -> dict[str, Any]:
    """The recorded run's header fields (the JSON's; :func:`header_lines` renders them): the command that
    reproduces it (the options that differ from their defaults, ``axis`` naming the streams/protocols
    option), date, machine, wall time, seeds and worker processes."""
    changed = [
        f"--{name} {value}"
        for name, value in (("seeds", args.seeds), ("workers", args.workers), (axis, getattr(args, axis)))
        if value != parser.get_default(name)
    ]
    if args.strategies:
        changed.append(f"--strategies {args.strategies}")
    if args.tiny:
        changed.append("--tiny")
    return {
        "date": time.strftime("%Y-%m-%d", time.localtime(started)),
        "machine": machine_line(),
        "command": " ".join([f"python benchmarks/leaderboard/{script}", *changed]),
        "wall_seconds": total,
        "seeds": args.seeds,
        "workers": args.workers,
    }


def header_lines(data: dict[str, Any], seconds: dict[str, float]) -> list[str]:
    """The header of ``leaderboard.md`` from :func:`run_header`'s fields and the wall ``seconds`` of each
    stream or protocol."""
    return [
        f"Command: `{data['command']} --update-docs`  ",
        f"Date: {data['date']} · machine: {data['machine']} · wall time {data['wall_seconds'] / 60:.1f} min ("
        + ", ".join(f"{name} {secs:.0f} s" for name, secs in seconds.items())
        + f") · {data['seeds']} seeds, {data['workers']} worker processes",
        "",
    ]


def machine_line() -> str:
    """Processor, torch threads per process, Python and torch versions (the header of a recorded run)."""
    import torch

    return (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads per process, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def write_results(out: Path, lines: list[str], data: dict[str, Any] | None = None) -> None:
    """``leaderboard.md`` (``lines``) and ``leaderboard.json`` (``data``, unless None) into ``out``; the
    table printed."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.md").write_text("\n".join(lines))
    if data is not None:
        (out / "leaderboard.json").write_text(json.dumps(data, indent=2, default=str))
    print("\n".join(lines), flush=True)


def update_docs(docs: Path, begin: str, end: str, lines: list[str]) -> int:
    """Replace the block between ``begin`` and ``end`` of ``docs`` with ``lines``; 2 if there is none."""
    text = docs.read_text()
    if begin not in text or end not in text:
        print(
            f"error: {docs} has no {begin} ... {end} block; add one where the table belongs", file=sys.stderr
        )
        return 2
    block = "\n".join([begin, *lines, end])
    docs.write_text(re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S))
    print(f"updated {docs}", flush=True)
    return 0


if __name__ == "__main__":
    from activews.errors import ActivewsError

    try:
        sys.exit(main())
    except ActivewsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
