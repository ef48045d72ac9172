"""Rendering results for people: rich tables, matplotlib figures and a self-contained HTML page.

Nothing here prints: functions return rich renderables, PNG bytes or HTML text, and the CLI decides
where they go.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from rich.markup import escape
from rich.table import Table

__all__ = [
    "penalty_table",
    "compute_table",
    "strategies_table",
    "figures",
    "plot_accuracy",
    "html_report",
    "protocol_title",
    "fmt_ci",
    "FIGURES",
]

REFERENCE_STYLE = {"random": dict(ls="--", marker="s"), "warm": dict(ls=":", marker="^")}
FIGURES = ("accuracy.png", "penalty.png", "compute.png", "frontier.png")


def fmt_ci(ci: list[float] | None, scale: float = 100.0, digits: int = 1) -> str:
    if ci is None:
        return "n/a"
    return f"[{ci[0] * scale:+.{digits}f}, {ci[1] * scale:+.{digits}f}]"


def protocol_title(config: Any) -> str:
    """One line naming the protocol, e.g. ``active (margin), 1000+1000/round · mnist1d · mlp · ...``."""
    acquisition = config.acquisition + "".join(
        f", {k}={v}" for k, v in getattr(config, "acquisition_params", {}).items()
    )
    if getattr(config, "pool_subsample", None):
        acquisition += f", {config.pool_subsample} candidates"
    if config.stream == "active":
        stream = f"active ({acquisition}), {config.initial}+{config.query_size}/round"
    elif config.stream == "selective":
        budget = [f"top {config.label_fraction:g} of each chunk"] if config.label_fraction is not None else []
        budget += [f"score >= {config.label_threshold:g}"] if config.label_threshold is not None else []
        budget += [f"at most {config.label_budget} labels"] if config.label_budget is not None else []
        stream = (
            f"selective ({acquisition}; {', '.join(budget)}), "
            f"{config.initial} + chunks of {config.query_size}"
        )
    elif config.schedule:
        stream = "passive, schedule " + ",".join(f"{f:g}" for f in config.schedule)
    else:
        stream = f"{config.stream}, {config.initial}+{config.query_size}/round"
    first = "" if config.first_round_epochs is None else f" (round 0: {config.first_round_epochs} epochs)"
    return (
        f"{stream} · {config.dataset} · {config.model} · {config.optimizer} lr {config.lr:g} · "
        f"train to {config.target_accuracy:.0%}{first} · "
        f"{len(config.seeds)} seed{'s' if len(config.seeds) != 1 else ''}"
    )


def penalty_table(
    summary: list[dict[str, Any]], title: str = "Warm-start penalty vs random (accuracy points, final round)"
) -> Table:
    """Accuracy and penalty per arm (points = percentage points; CIs are 95%, paired by seed)."""
    table = Table(title=title, title_justify="left")
    table.add_column("arm", style="bold", no_wrap=True)
    table.add_column("acc %", justify="right")
    table.add_column("penalty", justify="right")
    table.add_column("95% CI", justify="right", no_wrap=True)
    table.add_column("area pen.", justify="right")
    table.add_column("hit target", justify="right")
    for row in summary:
        is_ref = row["arm"] == "random"
        pen, ci = row.get("penalty"), row.get("penalty_ci")
        style = "red" if ci and ci[0] > 0 else ("green" if ci and ci[1] < 0 else None)
        table.add_row(
            escape(row["arm"]),
            f"{row['final_accuracy'] * 100:.1f}",
            "ref" if is_ref else ("n/a" if pen is None else f"{pen * 100:+.2f}"),
            "" if is_ref else fmt_ci(ci, digits=2),
            "" if is_ref or row.get("auc_penalty") is None else f"{row['auc_penalty'] * 100:+.2f}",
            f"{row['reached_target']:.0%}",
            style=None if is_ref else style,
        )
    return table


def compute_table(
    summary: list[dict[str, Any]], title: str = "Compute vs random (cumulative over rounds)"
) -> Table:
    """Optimizer steps and training seconds per arm, and their ratios to the random arm."""
    table = Table(title=title, title_justify="left")
    table.add_column("arm", style="bold", no_wrap=True)
    table.add_column("steps", justify="right")
    table.add_column("step ratio", justify="right")
    table.add_column("95% CI", justify="right", no_wrap=True)
    table.add_column("train s", justify="right")
    table.add_column("time ratio", justify="right")
    for row in summary:
        ratio = row.get("compute_ratio")
        table.add_row(
            escape(row["arm"]),
            f"{row['steps']:,.0f}",
            "n/a" if ratio is None else f"{ratio:.2f}",
            "" if row["arm"] == "random" else fmt_ci(row.get("compute_ratio_ci"), scale=1, digits=2),
            f"{row['seconds']:.1f}",
            "n/a" if row.get("time_ratio") is None else f"{row['time_ratio']:.2f}",
        )
    return table


def selection_table(summary: list[dict[str, Any]]) -> Table | None:
    """Where each arm's gap to random comes from (``--counterfactual``) and how much its labeled sets
    overlap random's; None when the run recorded neither (passive streams)."""
    if not any(k in row for row in summary for k in ("init_effect", "overlap_with_random")):
        return None
    split = any("init_effect" in row for row in summary)
    overlap = "overlap with random (Jaccard of the labeled sets, mean over rounds 1+)"
    title = (
        f"Gap to random, split: initialization vs selection (points, final round); {overlap}"
        if split
        else f"Labeled sets: {overlap}; --counterfactual also splits the gap"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("arm", style="bold", no_wrap=True)
    columns = (
        ["penalty"] + (["init effect [95% CI]", "selection effect [95% CI]"] if split else []) + ["overlap"]
    )
    for col in columns:
        table.add_column(col, justify="right")

    def pts(row: dict[str, Any], key: str) -> str:
        value = row.get(key)
        return "n/a" if value is None else f"{100 * value:+.2f}"

    for row in summary:
        if row["arm"] == "random":
            continue
        cells = [escape(row["arm"]), pts(row, "penalty")]
        if split:
            cells.append(pts(row, "init_effect") + f" {fmt_ci(row.get('init_effect_ci'))}")
            cells.append(pts(row, "selection_effect") + f" {fmt_ci(row.get('selection_effect_ci'))}")
        share = row.get("overlap_with_random")
        table.add_row(*cells, "n/a" if share is None else f"{share:.2f}")
    return table


def strategies_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Registered strategies", title_justify="left", show_lines=True)
    # Names are what users type: never wrapped or cut, however narrow the terminal.
    width = max((len(r["name"]) for r in rows), default=4)
    table.add_column("name", style="bold", no_wrap=True, min_width=width)
    table.add_column("parameters (default)")
    table.add_column("what it does")
    table.add_column("reference")
    for row in rows:
        table.add_row(
            escape(row["name"]), escape(row["params"]), escape(row["summary"]), escape(row["reference"])
        )
    return table


# -------------------------------------------------------------------------------------------- figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    _plt().close(fig)
    return buf.getvalue()


def _style(arm: str, i: int) -> dict[str, Any]:
    return {"color": f"C{i}", "ms": 4, **REFERENCE_STYLE.get(arm, dict(ls="-", marker="o"))}


def _legend(ax, empty: str = "", **kw: Any) -> None:
    """A legend when the axes hold labeled artists; else (an unfinished run: nothing to pair yet) the
    note ``empty``, and no matplotlib warning."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)
    elif empty:
        ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes, fontsize=9, color="0.4")


def _band(ax, x, ci_rows, scale, color) -> None:
    if ci_rows and all(ci is not None for ci in ci_rows):
        ax.fill_between(
            x, [c[0] * scale for c in ci_rows], [c[1] * scale for c in ci_rows], color=color, alpha=0.15, lw=0
        )


def _per_round_figure(result: Any, key: str, ylabel: str, title: str, skip_random: bool = False) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.6), constrained_layout=True)
    for i, row in enumerate(result.summary):
        if skip_random and row["arm"] == "random":
            continue
        pr = [p for p in row["per_round"] if p[key] is not None]  # unpaired rounds of an unfinished run
        if not pr:
            continue
        x = [p["n_labeled"] for p in pr]
        st = _style(row["arm"], i)
        ax.plot(x, [p[key] * 100 for p in pr], label=row["arm"], **st)
        _band(ax, x, [p[f"{key}_ci"] for p in pr], 100, st["color"])
    if skip_random:
        ax.axhline(0, color="black", lw=0.8)
    ax.set(xlabel="labeled examples", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    _legend(ax, "no rounds to show yet" + (" (none paired with random)" if skip_random else ""), fontsize=8)
    fig.suptitle(protocol_title(result.config), fontsize=8)
    return _png(fig)


def _compute_figure(result: Any) -> bytes:
    plt = _plt()
    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
    for i, row in enumerate(result.summary):
        pr = row["per_round"]
        x = [p["n_labeled"] for p in pr]
        st = _style(row["arm"], i)
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
        _legend(ax, "no rounds to show yet", fontsize=8)
    fig.suptitle(protocol_title(result.config) + " (means over seeds)", fontsize=8)
    return _png(fig)


def _frontier_figure(result: Any) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), constrained_layout=True)
    for i, row in enumerate(result.summary):
        st = _style(row["arm"], i)
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
    _legend(ax, "no rounds to show yet", fontsize=8)
    fig.suptitle(protocol_title(result.config), fontsize=8)
    return _png(fig)


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


def _diagnostics_figure(result: Any) -> bytes | None:
    """Per-round diagnostics (``--diagnostics``) of each arm, one panel per measurement recorded, in
    rows of up to three panels."""
    rows = result.summary
    panels = [p for p in _DIAGNOSTIC_PANELS if any(p[0] in pr for row in rows for pr in row["per_round"])]
    if not panels:
        return None
    plt = _plt()
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
                    **_style(row["arm"], i),
                )
        if log:
            ax.set_yscale("log")
            ax.axhline(1.0, color="black", lw=0.8)
        ax.set(xlabel="labeled examples", ylabel=ylabel)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    # One legend, on the first panel that drew a line (an arm may lack a measurement in early rounds).
    _legend(next((ax for ax in axes if ax.get_legend_handles_labels()[0]), axes[0]), fontsize=7)
    fig.suptitle(protocol_title(result.config) + " · mean over seeds", fontsize=8)
    return _png(fig)


def figures(result: Any) -> dict[str, bytes]:
    """The report's PNG figures of one :class:`~activews.bench.BenchResult`, by file name."""
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


def plot_accuracy(result: Any) -> bytes:
    """PNG of test accuracy per round with 95% CI bands per arm."""
    return figures(result)["accuracy.png"]


# ----------------------------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1150px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{padding:.3em .7em;border-bottom:1px solid #eee}
th{text-align:left;background:#f6f6f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b00}.good{color:#070}img{max-width:100%;margin:.5em 0}.meta{color:#666;font-size:.85em}
"""


def _td(text: str, cls: str = "n") -> str:
    return f'<td class="{cls}">{html.escape(text)}</td>'


def _summary_html(summary: list[dict[str, Any]]) -> str:
    head = (
        "<tr><th>arm</th><th>final acc %</th><th>penalty (pts)</th><th>95% CI</th><th>area penalty</th>"
        "<th>step ratio</th><th>time ratio</th><th>steps</th><th>train s</th><th>hit target</th></tr>"
    )
    rows = []
    for r in summary:
        ref = r["arm"] == "random"
        ci = r.get("penalty_ci")
        cls = "bad" if ci and ci[0] > 0 and not ref else ("good" if ci and ci[1] < 0 and not ref else "")
        rows.append(
            f'<tr class="{cls}"><td><b>{html.escape(r["arm"])}</b></td>'
            + _td(f"{r['final_accuracy'] * 100:.2f}")
            + _td("ref" if ref else ("n/a" if r.get("penalty") is None else f"{r['penalty'] * 100:+.2f}"))
            + _td("" if ref else fmt_ci(ci, digits=2))
            + _td("" if ref or r.get("auc_penalty") is None else f"{r['auc_penalty'] * 100:+.2f}")
            + _td("n/a" if r.get("compute_ratio") is None else f"{r['compute_ratio']:.2f}")
            + _td("n/a" if r.get("time_ratio") is None else f"{r['time_ratio']:.2f}")
            + _td(f"{r['steps']:,.0f}")
            + _td(f"{r['seconds']:.1f}")
            + _td(f"{r['reached_target']:.0%}")
            + "</tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def html_report(results: list[Any], figs: list[dict[str, bytes]], title: str = "activews run") -> str:
    """One self-contained HTML page (figures embedded as data URIs) for one or more experiments."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        "<p class='meta'>Penalty = accuracy of the <code>random</code> arm minus the arm's, paired by seed; "
        "ratios are cumulative optimizer steps (and training seconds) divided by <code>random</code>'s. "
        "CIs are 95% Student-t over seeds.</p>",
    ]
    for result, fig in zip(results, figs, strict=True):
        name = f"Experiment {result.label}" if result.label else "Results"
        parts.append(
            f"<h2>{html.escape(name)}</h2><p class='meta'>{html.escape(protocol_title(result.config))}</p>"
        )
        parts.append(_summary_html(result.summary))
        for fname, png in fig.items():
            data = base64.b64encode(png).decode()
            if fname == "diagnostics.png":
                parts.append(
                    "<p class='meta'>Diagnostics (<code>--diagnostics</code>), means over seeds per round: "
                    "gradient norms and weight change at the round's start; dormant units, feature rank "
                    "and weights at the round's end (definitions in docs/concepts.md, Diagnostics).</p>"
                )
            parts.append(f"<img alt='{html.escape(fname)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
