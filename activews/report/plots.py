"""Figures of a bench result as PNG bytes, and the plotting helpers every figure of activews uses
(:func:`pyplot`, :func:`png`, :func:`arm_style`, :func:`legend`, :func:`ci_band`); the paper's protocols
(:mod:`activews.reproduce`) draw theirs with the same helpers."""

from __future__ import annotations

import io
from typing import Any

from activews.engine.bench import BenchResult
from activews.report.tables import protocol_title

__all__ = [
    "FIGURES",
    "REFERENCE_STYLE",
    "accuracy_yerr",
    "arm_style",
    "ci_band",
    "continual_figure",
    "figures",
    "legend",
    "plot_accuracy",
    "png",
    "pyplot",
]

REFERENCE_STYLE = {"random": dict(ls="--", marker="s"), "warm": dict(ls=":", marker="^")}
FIGURES = ("accuracy.png", "penalty.png", "compute.png", "frontier.png")


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (imported on first use: matplotlib costs ~0.5 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig: Any) -> bytes:
    """The figure as PNG bytes (110 dpi); closes it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    pyplot().close(fig)
    return buf.getvalue()


def arm_style(arm: str, i: int) -> dict[str, Any]:
    return {"color": f"C{i}", "ms": 4, **REFERENCE_STYLE.get(arm, dict(ls="-", marker="o"))}


def legend(ax, empty: str = "", **kw: Any) -> None:
    """A legend when the axes hold labeled artists; else (an unfinished run: nothing to pair yet) the
    note ``empty``, and no matplotlib warning."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)
    elif empty:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="0.4")


def ci_band(ax, x, ci_rows, scale, color) -> None:
    if ci_rows and all(ci is not None for ci in ci_rows):
        ax.fill_between(
            x, [c[0] * scale for c in ci_rows], [c[1] * scale for c in ci_rows], color=color, alpha=0.15, lw=0
        )


def _x_axis(summary: list[dict[str, Any]]) -> tuple[str, str]:
    """``(per-round key, axis label)`` of the x axis: labeled examples, or the round when some arm did
    not record them (a :class:`~activews.roundlog.RoundLog` given no ``n_labeled``)."""
    if all(p["n_labeled"] is not None for row in summary for p in row["per_round"]):
        return "n_labeled", "labeled examples"
    return "round", "round"


def _whole_rounds(x_key: str, *axes: Any) -> None:
    """Integer ticks on x axes that count rounds."""
    if x_key == "round":
        from matplotlib.ticker import MaxNLocator

        for ax in axes:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def accuracy_yerr(row: dict[str, Any]) -> list[list[float]] | None:
    """A summary row's final-accuracy 95% CI as matplotlib's ``yerr`` in points (None without a CI)."""
    ci = row.get("final_accuracy_ci")
    if ci is None:
        return None
    return [[(row["final_accuracy"] - ci[0]) * 100], [(ci[1] - row["final_accuracy"]) * 100]]


def _per_round_figure(
    result: BenchResult, key: str, ylabel: str, title: str, skip: str | None = None
) -> bytes:
    """One curve per arm of the per-round ``key`` (the arm ``skip`` left out), with its 95% CI band."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6), constrained_layout=True)
    x_key, xlabel = _x_axis(result.summary)
    for i, row in enumerate(result.summary):
        if row["arm"] == skip:
            continue
        pr = [p for p in row["per_round"] if p[key] is not None]  # unpaired rounds of an unfinished run
        if not pr:
            continue
        x = [p[x_key] for p in pr]
        st = arm_style(row["arm"], i)
        ax.plot(x, [p[key] * 100 for p in pr], label=row["arm"], **st)
        ci_band(ax, x, [p[f"{key}_ci"] for p in pr], 100, st["color"])
    if skip is not None:
        ax.axhline(0, color="black", lw=0.8)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    _whole_rounds(x_key, ax)
    ax.grid(alpha=0.3)
    legend(
        ax, "no rounds to show yet" + (f" (none paired with {skip})" if skip is not None else ""), fontsize=8
    )
    fig.suptitle(protocol_title(result.config), fontsize=8)
    return png(fig)


def _compute_figure(result: BenchResult) -> bytes:
    plt = pyplot()
    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
    x_key, xlabel = _x_axis(result.summary)
    for i, row in enumerate(result.summary):
        pr = row["per_round"]
        x = [p[x_key] for p in pr]
        st = arm_style(row["arm"], i)
        if all(p["steps"] is not None for p in pr):
            ax_s.plot(x, [p["steps"] for p in pr], label=row["arm"], **st)
        if all(p["seconds"] is not None for p in pr):
            ax_t.plot(x, [p["seconds"] for p in pr], label=row["arm"], **st)
    ax_s.set(xlabel=xlabel, ylabel="optimizer steps in the round", title="Training steps per round")
    ax_t.set(
        xlabel=xlabel,
        ylabel="training wall time in the round (s)",
        title="Training time per round",
    )
    _whole_rounds(x_key, ax_s, ax_t)
    untimed = any(row["per_round"] for row in result.summary) and not ax_t.get_legend_handles_labels()[0]
    for ax in (ax_s, ax_t):
        ax.grid(alpha=0.3)
        empty = "training seconds not recorded" if ax is ax_t and untimed else "no rounds to show yet"
        legend(ax, empty, fontsize=8)
    fig.suptitle(protocol_title(result.config) + " (means over seeds)", fontsize=8)
    return png(fig)


def _frontier_figure(result: BenchResult) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), constrained_layout=True)
    for i, row in enumerate(result.summary):
        st = arm_style(row["arm"], i)
        ax.errorbar(
            [row["steps"]],
            [row["final_accuracy"] * 100],
            yerr=accuracy_yerr(row),
            fmt=st["marker"],
            color=st["color"],
            ms=8 if row["arm"] in REFERENCE_STYLE else 6,
            capsize=3,
            label=row["arm"] + (" (reference)" if row["arm"] in REFERENCE_STYLE else ""),
        )
        ax.annotate(
            row["arm"],
            (row["steps"], row["final_accuracy"] * 100),
            fontsize=7,
            xytext=(5, 4),
            textcoords="offset points",
        )
    ax.set(
        xlabel="cumulative optimizer steps over all rounds (mean per seed)",
        ylabel="final test accuracy (%)",
        title="Accuracy vs compute (up and left is better; bars: 95% CI)",
    )
    ax.grid(alpha=0.3)
    legend(ax, "no rounds to show yet", fontsize=8)
    fig.suptitle(protocol_title(result.config), fontsize=8)
    return png(fig)


_DIAGNOSTIC_PANELS = (
    ("grad_norm_ratio", "grad norm ratio new / old", "Gradient norm, new vs old examples (1st epoch)", True),
    ("init_correlation", "correlation", "Start weights vs last round's final weights", False),
    ("init_relative_distance", "distance / norm", "Distance of start weights from last round's", False),
    ("dormant_fraction", "fraction of hidden units", "Dormant units (score <= 0.025), round's end", False),
    ("dead_fraction", "fraction of hidden units", "Dead units (never active), round's end", False),
    ("feature_rank", "srank (delta 0.01)", "Effective rank of penultimate features", False),
    ("weight_norm", "L2 norm", "Parameter norm, round's end", False),
    ("distance_from_start", "L2 distance", "Distance trained this round (end vs start)", False),
    ("distance_from_init", "L2 distance", "Distance from the run's initial weights", False),
)
"""``(record field, y label, title, log scale)`` of each panel of ``diagnostics.png``, in drawing order."""

_PANEL_COLUMNS = 3


def _diagnostics_figure(result: BenchResult) -> bytes | None:
    """Per-round diagnostics (``--diagnostics``) of each arm, one panel per measurement recorded, in
    rows of up to three panels."""
    rows = result.summary
    panels = [p for p in _DIAGNOSTIC_PANELS if any(p[0] in pr for row in rows for pr in row["per_round"])]
    if not panels:
        return None
    plt = pyplot()
    ncols = min(_PANEL_COLUMNS, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, grid = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), constrained_layout=True, squeeze=False
    )
    x_key, xlabel = _x_axis(rows)
    axes = [ax for line in grid for ax in line]
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, (key, ylabel, title, log) in zip(axes, panels, strict=False):
        for i, row in enumerate(rows):
            pr = [p for p in row["per_round"] if p.get(key) is not None]
            if pr:
                ax.plot(
                    [p[x_key] for p in pr],
                    [p[key] for p in pr],
                    label=row["arm"],
                    **arm_style(row["arm"], i),
                )
        if log:
            ax.set_yscale("log")
            ax.axhline(1.0, color="black", lw=0.8)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        _whole_rounds(x_key, ax)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    # One legend, on the first panel that drew a line (an arm may lack a measurement in early rounds).
    legend(next((ax for ax in axes if ax.get_legend_handles_labels()[0]), axes[0]), fontsize=7)
    fig.suptitle(protocol_title(result.config) + " · mean over seeds", fontsize=8)
    return png(fig)


def _task_starts(summary: list[dict[str, Any]]) -> list[int]:
    """Rounds at which a new task starts (after round 0), from the per-round ``task`` of the first arm
    that recorded it."""
    for row in summary:
        tasks = [p.get("task") for p in row["per_round"]]
        if tasks and all(t is not None for t in tasks):
            return [
                p["round"]
                for prev, p in zip(row["per_round"], row["per_round"][1:], strict=False)
                if p["task"] != prev["task"]
            ]
    return []


def continual_figure(summary: list[dict[str, Any]], title: str = "") -> bytes | None:
    """A shifting stream's two panels: the accuracy on each task at its own end (``per_task``: mean over
    seeds with its 95% CI band, per arm), and per round the accuracy averaged over the tasks seen so far
    (bold) and on the current task (thin), means over seeds, with dotted lines where tasks start.
    None for a stationary stream's summary (no ``per_task``). ``title`` goes above the panels."""
    rows = [row for row in summary if row.get("per_task") is not None]
    if not rows:
        return None
    plt = pyplot()
    fig, (ax_t, ax_r) = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
    for i, row in enumerate(summary):
        if row.get("per_task") is None:
            continue
        st = arm_style(row["arm"], i)
        pt = [p for p in row["per_task"] if p["accuracy"] is not None]
        if pt:
            x = [p["task"] for p in pt]
            ax_t.plot(x, [p["accuracy"] * 100 for p in pt], label=row["arm"], **st)
            ci_band(ax_t, x, [p["accuracy_ci"] for p in pt], 100, st["color"])
        pr = [p for p in row["per_round"] if p.get("seen_accuracy") is not None]
        if pr:
            x = [p["round"] for p in pr]
            ax_r.plot(x, [p["seen_accuracy"] * 100 for p in pr], label=row["arm"], **st)
            cur = [p for p in pr if p.get("task_accuracy") is not None]
            ax_r.plot(
                [p["round"] for p in cur],
                [p["task_accuracy"] * 100 for p in cur],
                color=st["color"],
                ls="-",
                lw=0.8,
                alpha=0.45,
            )
    for start in _task_starts(summary):
        ax_r.axvline(start - 0.5, color="0.5", ls=":", lw=0.8)
    ax_t.set(
        xlabel="task",
        ylabel="accuracy on the task at its end (%)",
        title="Accuracy on each task at its end (mean, 95% CI band)",
    )
    ax_r.set(
        xlabel="round",
        ylabel="accuracy (%)",
        title="Per round: tasks seen, averaged (bold); current task (thin)",
    )
    _whole_rounds("round", ax_t, ax_r)
    for ax in (ax_t, ax_r):
        ax.grid(alpha=0.3)
        legend(ax, "no rounds to show yet", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=8)
    return png(fig)


def figures(result: BenchResult, *, reference: str = "random") -> dict[str, bytes]:
    """The report's PNG figures of one :class:`~activews.engine.bench.BenchResult`, by file name
    (penalties measured against the arm ``reference``): :data:`FIGURES`, ``diagnostics.png`` when the
    run recorded diagnostics and ``continual.png`` (:func:`continual_figure`) for a shifting stream."""
    figs = {
        "accuracy.png": _per_round_figure(
            result, "accuracy", "test accuracy (%)", "Test accuracy per round (mean, 95% CI band)"
        ),
        "penalty.png": _per_round_figure(
            result,
            "penalty",
            f"penalty vs {reference} (accuracy points)",
            f"Warm-start penalty per round (> 0: worse than {reference}; 95% CI)",
            skip=reference,
        ),
        "compute.png": _compute_figure(result),
        "frontier.png": _frontier_figure(result),
    }
    diagnostics = _diagnostics_figure(result)
    if diagnostics is not None:
        figs["diagnostics.png"] = diagnostics
    continual = continual_figure(result.summary, protocol_title(result.config) + " · mean over seeds")
    if continual is not None:  # a shifting stream
        figs["continual.png"] = continual
    return figs


def plot_accuracy(result: BenchResult) -> bytes:
    """PNG of test accuracy per round with 95% CI bands per arm."""
    return figures(result)["accuracy.png"]
