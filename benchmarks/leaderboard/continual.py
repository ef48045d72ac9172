"""The continual leaderboard: every registered strategy on two shifting protocols, paired by seed.

    python benchmarks/leaderboard/continual.py --update-docs      # the recorded run (see docs/strategies.md)
    python benchmarks/leaderboard/continual.py --from-json --update-docs   # re-render it, no bench run

The protocols are the presets of ``activews reproduce`` (their settings come from there, one source):
``permuted-inputs`` (an input shift: 10 tasks, each a fixed permutation of MNIST-1D's inputs, 400
examples per task) and ``permuted-labels`` (a label shift: 20 tasks, each a permutation of the labels,
300 examples per task). Each round is a new task and trains on that task's examples only (``--replay
none``), to the same 99% training-accuracy criterion as the stationary leaderboard, MLP 40-256-256-10,
Adam lr 1e-3, batch 128. Every strategy runs at its default parameters next to ``random`` and ``warm``.

Per arm it reports the accuracy on the newest task at the end (plasticity) and its paired difference to
``random`` with a 95% CI, how the newest-task accuracy moved from the first task to the last, the average
accuracy over every task at the end, forgetting, average online accuracy, the step and time ratios vs
``random``, whether the arm is on the newest-task-accuracy-vs-steps frontier, and the plasticity
diagnostics after the last round (dormant units, feature rank). Accuracy and steps are
reproducible on CPU (same command, same numbers); times depend on the machine and on what else runs.

It writes ``results/continual/leaderboard.md`` / ``leaderboard.json`` and each protocol's run folder files
under ``results/continual/<protocol>/``; with ``--update-docs`` it replaces the continual-leaderboard block
of ``docs/strategies.md``. Run folders go to ``--work`` (default ``runs/continual``): re-running resumes.
``--from-json`` runs no bench: it re-renders ``leaderboard.md`` (and, with ``--update-docs``, the docs block)
from the ``leaderboard.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # run.py beside this file: the stationary leaderboard's helpers

from run import (  # noqa: E402
    DOCS,
    _ci,
    _num,
    _pct,
    _pts,
    _verdict,
    add_from_json,
    defaults_lines,
    frontier,
    header_lines,
    pick_strategies,
    rerender,
    run_header,
    run_recorded,
    target_note,
    total_time_ratio,
    update_docs,
    write_results,
)

BEGIN, END = "<!-- continual-leaderboard:begin -->", "<!-- continual-leaderboard:end -->"
PROTOCOLS = ("permuted-inputs", "permuted-labels")

TINY = {"n_examples": 1000, "rounds": 2, "initial": 100}
"""Settings of ``--tiny`` (a smoke run for tests; its numbers mean nothing)."""


def table(result: Any) -> list[dict[str, Any]]:
    """One row per arm (fractions, not percent), best newest-task accuracy first."""
    rows = []
    for s in result.summary:
        rows.append(
            {
                "arm": s["arm"],
                "newest_task_accuracy": s["newest_task_accuracy"],
                "vs_random": s.get("newest_task_accuracy_vs_ref"),
                "vs_random_ci": s.get("newest_task_accuracy_vs_ref_ci"),
                "plasticity_change": s.get("plasticity_change"),
                "plasticity_change_ci": s.get("plasticity_change_ci"),
                "average_accuracy": s.get("average_accuracy"),
                "forgetting": s.get("forgetting"),
                "online_accuracy": s.get("online_accuracy"),
                "step_ratio": s.get("compute_ratio"),
                "time_ratio": total_time_ratio(result.records, s["arm"]),
                "reached_target": s.get("reached_target"),
                "per_task": [t["accuracy"] for t in s.get("per_task", [])],
                # last round, mean over seeds: where each method leaves the network
                "dormant_fraction": s["per_round"][-1].get("dormant_fraction"),
                "feature_rank": s["per_round"][-1].get("feature_rank"),
            }
        )
    points = {
        r["arm"]: (r["newest_task_accuracy"], r["step_ratio"]) for r in rows if r["step_ratio"] is not None
    }
    front = frontier(points)
    for r in rows:
        r["frontier_steps"] = r["arm"] in front
        r["verdict"] = "reference" if r["arm"] == "random" else _verdict(r["vs_random_ci"], "better", "worse")
    rows.sort(key=lambda r: -r["newest_task_accuracy"])
    return rows


LABEL_COLUMNS = frozenset({3, 10})
"""The columns of :func:`markdown` that hold words (the verdict vs random, the frontier's yes/-): aligned
left like the arm column; the others hold numbers and align right."""


def markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The continual table of one protocol (``rows`` from :func:`table`) as Markdown lines, rendered by
    :meth:`activews.report.tables.TextTable.markdown` (the one Markdown table renderer)."""
    from activews.report.tables import TextTable

    headers = [
        "arm", "newest task", "vs random [95% CI]", "vs random", "first → last task [95% CI]", "all tasks",
        "forgetting", "online", "step ratio", "time ratio", "frontier", "dormant units", "feature rank",
    ]  # fmt: skip
    cells = []
    for r in rows:
        diff = "-" if r["arm"] == "random" else f"{_pts(r['vs_random'])} {_ci(r['vs_random_ci'])}"
        cells.append(
            [
                f"`{r['arm']}`{target_note(r)}",
                _pct(r["newest_task_accuracy"]),
                diff,
                r["verdict"],
                f"{_pts(r['plasticity_change'])} {_ci(r['plasticity_change_ci'])}",
                _pct(r["average_accuracy"]),
                _pts(r["forgetting"], signed=False),
                _pct(r["online_accuracy"]),
                f"{r['step_ratio']:.2f}",
                f"{r['time_ratio']:.2f}",
                "yes" if r["frontier_steps"] else "-",
                _pct(r["dormant_fraction"]),
                _num(r["feature_rank"]),
            ]
        )
    return TextTable("", headers, cells, label_columns=LABEL_COLUMNS).markdown().split("\n")


def render(data: dict[str, Any]) -> list[str]:
    """The lines of ``leaderboard.md`` (and of the docs block) from ``data``, what ``leaderboard.json``
    holds: the header, each protocol's table, the strategies' defaults."""
    from activews.reproduce import get_protocol

    protocols = data["protocols"]
    lines = header_lines(data, {name: entry["seconds"] for name, entry in protocols.items()})
    for name, entry in protocols.items():
        cfg = entry["config"]
        lines += [
            f"**{name}** ({get_protocol(name).title}; `activews reproduce {name}`: --shift {cfg['shift']}, "
            f"{cfg['rounds']} tasks, --replay {cfg['replay']}):",
            "",
        ]
        lines += markdown(entry["rows"]) + [""]
    return lines + defaults_lines(data["strategies"])


def run_protocol(name: str, args: argparse.Namespace, strategies: list[str]) -> tuple[Any, float]:
    from activews import BenchConfig
    from activews.reproduce import get_protocol

    settings = dict(get_protocol(name).values) | {
        "strategies": strategies,
        "seeds": args.seeds,
        "diagnostics": ["plasticity"],  # dormant units, feature rank, weight norm: one eval pass per round
    }
    if args.tiny:
        settings |= TINY
    return run_recorded(name, BenchConfig.build(**settings), args, every=50)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per arm (default: 5)")
    parser.add_argument("--workers", type=int, default=2, help="arms run in parallel (default: 2)")
    parser.add_argument(
        "--protocols", default=",".join(PROTOCOLS), help=f"comma-separated (default: {','.join(PROTOCOLS)})"
    )
    parser.add_argument(
        "--strategies", default="", help="comma-separated subset (default: every registered strategy)"
    )
    parser.add_argument("--work", default="runs/continual", help="run folders (resumable)")
    parser.add_argument("--out", default=str(HERE / "results" / "continual"), help="tables, figures, JSON")
    parser.add_argument(
        "--update-docs", action="store_true", help="rewrite the continual block of docs/strategies.md"
    )
    parser.add_argument("--docs", default=str(DOCS), help="the page --update-docs rewrites")
    parser.add_argument(
        "--tiny", action="store_true", help="tiny settings (a smoke test; numbers mean nothing)"
    )
    add_from_json(parser)
    args = parser.parse_args(argv)
    if args.from_json:
        return rerender(parser, args, render, BEGIN, END)

    from activews.reproduce import get_protocol
    from activews.strategies import get_strategy

    strategies = pick_strategies(args.strategies)
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    for name in protocols:
        get_protocol(name)
    started = time.time()
    results = {p: run_protocol(p, args, strategies) for p in protocols}
    data = run_header("continual.py", parser, args, "protocols", started, time.time() - started)
    data["protocols"] = {
        name: {"seconds": seconds, "config": result.config.model_dump(mode="json"), "rows": table(result)}
        for name, (result, seconds) in results.items()
    }
    data["strategies"] = {s: get_strategy(s)().describe() for s in strategies}
    lines = render(data)
    write_results(Path(args.out), lines, data)
    return update_docs(Path(args.docs), BEGIN, END, lines) if args.update_docs else 0


if __name__ == "__main__":
    from activews.errors import ActivewsError

    try:
        sys.exit(main())
    except ActivewsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
