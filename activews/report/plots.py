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
    "arm_style",
    "ci_band",
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


def _per_round_figure(
    result: BenchResult, key: str, ylabel: str, title: str, skip_random: bool = False
) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6), constrained_layout=True)
    for i, row in enumerate(result.summary):
        if skip_random and row["arm"] == "random":
            continue
        pr = [p for p in row["per_round"] if p[key] is not None]  # unpaired rounds of an unfinished run
        if not pr:
            continue
        x = [p["n_labeled"] for p in pr]
        st = arm_style(row["arm"], i)
        ax.plot(x, [p[key] * 100 for p in pr], label=row["arm"], **st)
        ci_band(ax, x, [p[f"{key}_ci"] for p in pr], 100, st["color"])
    if skip_random:
        ax.axhline(0, color="black", lw=0.8)
    ax.set(xlabel="labeled examples", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    legend(ax, "no rounds to show yet" + (" (none paired with random)" if skip_random else ""), fontsize=8)
    fig.suptitle(protocol_title(result.config), fontsize=8)
    return png(fig)


def _compute_figure(result: BenchResult) -> bytes:
    plt = pyplot()
    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
    for i, row in enumerate(result.summary):
        pr = row["per_round"]
        x = [p["n_labeled"] for p in pr]
        st = arm_style(row["arm"], i)
        if all(p["steps"] is not None for p in pr):
            ax_s.plot(x, [p["steps"] for p in pr], label=row["arm"], **st)
        if all(p["seconds"] is not None for p in pr):
            ax_t.plot(x, [p["seconds"] for p in pr], label=row["arm"], **st)
    ax_s.set(
        xlabel="labeled examples", ylabel="optimizer steps in the round", title="Training steps per round"
    )
    ax_t.set(
        xlabel="labeled examples",
        ylabel="training wall time in the round (s)",
        title="Training time per round",
    )
    for ax in (ax_s, ax_t):
        ax.grid(alpha=0.3)
        legend(ax, "no rounds to show yet", fontsize=8)
    fig.suptitle(protocol_title(result.config) + " (means over seeds)", fontsize=8)
    return png(fig)


def _frontier_figure(result: BenchResult) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), constrained_layout=True)
    for i, row in enumerate(result.summary):
        st = arm_style(row["arm"], i)
        ci = row.get("final_accuracy_ci")
        yerr = (
            None
            if ci is None
            else [[(row["final_accuracy"] - ci[0]) * 100], [(ci[1] - row["final_accuracy"]) * 100]]
        )
        ax.errorbar(
            [row["steps"]],
            [row["final_accuracy"] * 100],
            yerr=yerr,
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
    axes = [ax for line in grid for ax in line]
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax, (key, ylabel, title, log) in zip(axes, panels, strict=False):
        for i, row in enumerate(rows):
            pr = [p for p in row["per_round"] if p.get(key) is not None]
            if pr:
                ax.plot(
                    [p["n_labeled"] for p in pr],
                    [p[key] for p in pr],
                    label=row["arm"],
                    **arm_style(row["arm"], i),
                )
        if log:
            ax.set_yscale("log")
            ax.axhline(1.0, color="black", lw=0.8)
        ax.set(xlabel="labeled examples", ylabel=ylabel)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    # One legend, on the first panel that drew a line (an arm may lack a measurement in early rounds).
    legend(next((ax for ax in axes if ax.get_legend_handles_labels()[0]), axes[0]), fontsize=7)
    fig.suptitle(protocol_title(result.config) + " · mean over seeds", fontsize=8)
    return png(fig)


def figures(result: BenchResult) -> dict[str, bytes]:
    """The report's PNG figures of one :class:`~activews.engine.bench.BenchResult`, by file name."""
    figs = {
        "accuracy.png": _per_round_figure(
            result, "accuracy", "test accuracy (%)", "Test accuracy per round (mean, 95% CI band)"
        ),
        "penalty.png": _per_round_figure(
            result,
            "penalty",
            "penalty vs random (accuracy points)",
            "Warm-start penalty per round (> 0: worse than random; 95% CI)",
            skip_random=True,
        ),
        "compute.png": _compute_figure(result),
        "frontier.png": _frontier_figure(result),
    }
    diagnostics = _diagnostics_figure(result)
    if diagnostics is not None:
        figs["diagnostics.png"] = diagnostics
    return figs


def plot_accuracy(result: BenchResult) -> bytes:
    """PNG of test accuracy per round with 95% CI bands per arm."""
    return figures(result)["accuracy.png"]
