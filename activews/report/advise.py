"""The advice of ``activews advise`` as tables (rich and Markdown), a frontier figure and files.

:func:`advice_tables` lays out the search's frontier, its trials and the confirmation on fresh seeds;
:func:`frontier_figure` draws accuracy against step ratio with the budget line; :func:`write_advice`
writes ``advice.json``, ``advice.md``, ``trials.csv``, ``frontier.csv`` and ``frontier.png`` into the
advise folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from activews.engine.advise import Advice
from activews.errors import ActivewsError
from activews.files import atomic_write, to_jsonable, write_failure
from activews.report.folder import records_csv
from activews.report.plots import accuracy_yerr, png, pyplot
from activews.report.tables import TextTable, fmt_ci, fmt_points, protocol_title

__all__ = ["advice_markdown", "advice_tables", "frontier_figure", "write_advice"]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _budget_text(advice: Advice) -> str:
    text = f"step ratio <= {advice.budget:g}"
    return text + (f", time ratio <= {advice.time_budget:g}" if advice.time_budget is not None else "")


def frontier_table(advice: Advice) -> TextTable:
    """The accuracy-vs-compute frontier found by the search (reference arms included)."""
    rows = [
        [
            p["label"],
            "ref" if p["trial"] is None else str(p["trial"]),
            _pct(p["accuracy"]),
            "ref" if p["label"] == "random" else fmt_points(p["gain"]),
            _ratio(p["compute_ratio"]),
            _ratio(p["time_ratio"]),
            "yes" if p["within_budget"] else "-",
        ]
        for p in advice.frontier
    ]
    return TextTable(
        f"Frontier found on the search seeds {_seeds(advice.search_seeds)} (no setting is both cheaper and "
        "more accurate)",
        ["setting", "trial", "final accuracy", "vs random (points)", "step ratio", "time ratio", "in budget"],
        rows,
    )


def trials_table(advice: Advice) -> TextTable:
    """Every trial: its setting, state, gain and cost (or why it stopped)."""
    rows = [
        [
            str(t.number),
            t.label,
            t.state,
            fmt_points(t.gain),
            _ratio(t.compute_ratio),
            "yes" if t.within_budget else "-",
            t.note,
        ]
        for t in advice.trials
    ]
    return TextTable(
        f"Trials ({sum(t.state == 'complete' for t in advice.trials)} complete, "
        f"{sum(t.state == 'pruned' for t in advice.trials)} pruned, "
        f"{sum(t.state == 'failed' for t in advice.trials)} failed)",
        ["trial", "setting", "state", "vs random (points)", "step ratio", "in budget", "note"],
        rows,
    )


def confirmation_table(advice: Advice) -> TextTable | None:
    """The picks next to random and warm on the fresh seeds, with 95% CIs paired by seed."""
    if not advice.confirmation:
        return None
    picks = {
        p["label"]: role
        for role, p in (("recommended", advice.recommendation), ("runner-up", advice.runner_up))
        if p
    }
    rows = []
    for row in advice.confirmation:
        is_ref = row["arm"] == "random"
        rows.append(
            [
                row["arm"],
                picks.get(row["arm"], "reference"),
                _pct(row["final_accuracy"]) + _span(row.get("final_accuracy_ci"), 100, 1),
                "ref" if is_ref else _gain_ci(row),
                _ratio(row.get("compute_ratio"))
                + ("" if is_ref else _span(row.get("compute_ratio_ci"), 1, 2)),
                _ratio(row.get("time_ratio")),
            ]
        )
    return TextTable(
        f"Confirmation on fresh seeds {_seeds(advice.confirm_seeds)} (not used in the search)",
        ["arm", "role", "final accuracy [95% CI]", "vs random [95% CI]", "step ratio [95% CI]", "time ratio"],
        rows,
    )


def _gain_ci(row: dict[str, Any]) -> str:
    pen, ci = row.get("penalty"), row.get("penalty_ci")
    if pen is None:
        return "n/a"
    gain_ci = [-ci[1], -ci[0]] if ci else None
    return f"{-pen * 100:+.2f}" + (f" {fmt_ci(gain_ci, digits=2)}" if gain_ci else "")


def _span(ci: list[float] | None, scale: float, digits: int) -> str:
    """`` [lo, hi]`` of a CI of a level (an accuracy, a ratio), or nothing without one."""
    return "" if not ci else " " + fmt_ci(ci, scale, digits, signed=False)


def _seeds(seeds: list[int]) -> str:
    return ",".join(map(str, seeds))


def advice_tables(advice: Advice, *, trials: bool = True) -> list[TextTable]:
    """Frontier, trials (unless ``trials=False``) and, when a setting met the budget, the confirmation."""
    tables = [frontier_table(advice)] + ([trials_table(advice)] if trials else [])
    confirm = confirmation_table(advice)
    return tables + ([confirm] if confirm is not None else [])


def advice_markdown(advice: Advice) -> str:
    """``advice.md``: the question, the recommendation with its command, and the tables."""
    lines = [
        "# activews advise",
        "",
        f"Bench: {protocol_title(advice.config)}. Budget: {_budget_text(advice)} (ratios to `random`, "
        f"which retrains from scratch each round). {len(advice.trials)} trials on seeds "
        f"{_seeds(advice.search_seeds)}; confirmation on seeds {_seeds(advice.confirm_seeds)}.",
        "",
        f"**Verdict:** {advice.verdict}.",
        "",
    ]
    for role, pick in (("Recommended", advice.recommendation), ("Runner-up", advice.runner_up)):
        if pick:
            lines += [
                f"{role}: `{pick['label']}` (trial {pick['trial']}); reproduce its confirmed numbers with",
                "",
                f"    {pick['command']}",
                "",
            ]
    lines += ["\n\n".join(t.markdown() for t in advice_tables(advice)), ""]
    return "\n".join(lines)


def frontier_figure(advice: Advice) -> bytes:
    """Final accuracy against step ratio for every complete trial (by strategy), the frontier, the
    reference arms, the budget line and the confirmed picks with their 95% CIs."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), constrained_layout=True)
    complete = [t for t in advice.trials if t.state == "complete" and t.compute_ratio is not None]
    colors = plt.get_cmap("tab10")
    for i, strategy in enumerate(dict.fromkeys(t.strategy for t in complete)):
        mine = [t for t in complete if t.strategy == strategy]
        ax.scatter(
            [t.compute_ratio for t in mine],
            [t.accuracy * 100 for t in mine],  # type: ignore[operator]
            s=22,
            alpha=0.7,
            color=colors(i % 10),
            label=f"{strategy} trials",
        )
    front = [p for p in advice.frontier if p["compute_ratio"] is not None]
    if front:
        ax.step(
            [p["compute_ratio"] for p in front],
            [p["accuracy"] * 100 for p in front],
            where="post",
            color="black",
            lw=1,
            alpha=0.6,
            label="frontier (search seeds)",
        )
    for row, marker in zip(advice.references, ("s", "^"), strict=False):
        ax.scatter(
            [row["compute_ratio"]],
            [row["final_accuracy"] * 100],
            marker=marker,
            s=60,
            color="black",
            zorder=3,
        )
        ax.annotate(
            row["arm"],
            (row["compute_ratio"], row["final_accuracy"] * 100),
            fontsize=8,
            xytext=(5, 4),
            textcoords="offset points",
        )
    ax.axvline(advice.budget, color="red", ls="--", lw=1, label=f"budget (step ratio {advice.budget:g})")
    for role, pick, marker in (
        ("recommended", advice.recommendation, "*"),
        ("runner-up", advice.runner_up, "D"),
    ):
        row = (pick or {}).get("confirmed")
        if not row or row.get("compute_ratio") is None:
            continue
        ax.errorbar(
            [row["compute_ratio"]],
            [row["final_accuracy"] * 100],
            yerr=accuracy_yerr(row),
            fmt=marker,
            ms=11 if marker == "*" else 7,
            color="tab:red",
            capsize=3,
            label=f"{role}, confirmed on fresh seeds",
        )
    ax.set(
        xlabel="training steps / random's (mean over seeds)",
        ylabel="final test accuracy (%)",
        title="Accuracy vs compute of the searched settings (up and left is better)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(protocol_title(advice.config), fontsize=8)
    return png(fig)


def write_advice(advice: Advice, folder: str | Path | None = None, *, plot: bool = True) -> list[Path]:
    """Write ``advice.json``, ``advice.md``, ``trials.csv``, ``frontier.csv`` and (``plot``) ``frontier.png``
    into ``folder`` (default: the advice's own folder); returns the paths written."""
    target = Path(folder) if folder is not None else advice.folder
    if target is None:
        raise ActivewsError("the advice has no folder (advise ran without output=); pass folder=")
    then = "then run the same activews advise command again (finished trials are kept)"
    written: list[Path] = []

    def put(name: str, data: str | bytes) -> None:
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ActivewsError(write_failure("advise folder", target, exc, then)) from None
        atomic_write(target / name, data, what="results file", then=then)
        written.append(target / name)

    put("advice.json", json.dumps(to_jsonable(advice.to_dict()), indent=2))
    put("trials.csv", records_csv([t.to_dict() for t in advice.trials]))
    put("frontier.csv", records_csv(advice.frontier))
    put("advice.md", advice_markdown(advice))
    if plot:
        put("frontier.png", frontier_figure(advice))
    return written
