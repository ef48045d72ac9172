"""Rendering results for people: rich tables and matplotlib figures.

Nothing here prints: functions return rich renderables or PNG bytes, and the CLI decides where they go.
"""

from __future__ import annotations

import io
from typing import Any

from rich.table import Table

__all__ = ["penalty_table", "compute_table", "strategies_table", "plot_accuracy", "protocol_title", "fmt_ci"]


def fmt_ci(ci: list[float] | None, scale: float = 100.0, digits: int = 1) -> str:
    if ci is None:
        return "n/a"
    return f"[{ci[0] * scale:+.{digits}f}, {ci[1] * scale:+.{digits}f}]"


def protocol_title(config: Any) -> str:
    """One line naming the protocol, e.g. ``active (margin) · mnist1d · mlp · adam · 5 seeds``."""
    if config.stream == "active":
        stream = f"active ({config.acquisition}), {config.initial}+{config.query_size}/round"
    elif config.schedule:
        stream = "passive, schedule " + ",".join(f"{f:g}" for f in config.schedule)
    else:
        stream = f"{config.stream}, {config.initial}+{config.query_size}/round"
    return (
        f"{stream} · {config.dataset} · {config.model} · {config.optimizer} lr {config.lr:g} · "
        f"train to {config.target_accuracy:.0%} · {len(config.seeds)} seeds"
    )


def penalty_table(
    summary: list[dict[str, Any]], title: str = "Warm-start penalty vs random (accuracy points, final round)"
) -> Table:
    """Accuracy and penalty per arm (points = percentage points; CIs are 95%, paired by seed)."""
    table = Table(title=title, title_justify="left")
    table.add_column("strategy", style="bold", no_wrap=True)
    table.add_column("acc %", justify="right")
    table.add_column("penalty", justify="right")
    table.add_column("95% CI", justify="right", no_wrap=True)
    table.add_column("area pen.", justify="right")
    table.add_column("hit target", justify="right")
    for row in summary:
        pen = row.get("penalty")
        ci = row.get("penalty_ci")
        style = "red" if ci and ci[0] > 0 else ("green" if ci and ci[1] < 0 else None)
        table.add_row(
            row["strategy"],
            f"{row['final_accuracy'] * 100:.1f}",
            "ref" if row["strategy"] == "random" else ("n/a" if pen is None else f"{pen * 100:+.2f}"),
            "" if row["strategy"] == "random" else fmt_ci(ci, digits=2),
            "" if row["strategy"] == "random" or row.get("auc_penalty") is None else f"{row['auc_penalty'] * 100:+.2f}",
            f"{row['reached_target']:.0%}",
            style=style,
        )
    return table


def compute_table(summary: list[dict[str, Any]], title: str = "Compute vs random (cumulative over rounds)") -> Table:
    """Optimizer steps and training seconds per arm, and their ratios to the random arm."""
    table = Table(title=title, title_justify="left")
    table.add_column("strategy", style="bold", no_wrap=True)
    table.add_column("steps", justify="right")
    table.add_column("step ratio", justify="right")
    table.add_column("95% CI", justify="right", no_wrap=True)
    table.add_column("train s", justify="right")
    table.add_column("time ratio", justify="right")
    for row in summary:
        ratio = row.get("compute_ratio")
        table.add_row(
            row["strategy"],
            f"{row['steps']:,.0f}",
            "n/a" if ratio is None else f"{ratio:.2f}",
            "" if row["strategy"] == "random" else fmt_ci(row.get("compute_ratio_ci"), scale=1, digits=2),
            f"{row['seconds']:.1f}",
            "n/a" if row.get("time_ratio") is None else f"{row['time_ratio']:.2f}",
        )
    return table


def strategies_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Registered strategies", title_justify="left", show_lines=True)
    table.add_column("name", style="bold")
    table.add_column("parameters (default)")
    table.add_column("what it does")
    table.add_column("reference")
    for row in rows:
        table.add_row(row["name"], row["params"], row["summary"], row["reference"])
    return table


def plot_accuracy(result: Any) -> bytes:
    """PNG: test accuracy per round with 95% CI bands (left) and penalty vs random per round (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_pen) = plt.subplots(1, 2, figsize=(12, 4.6), constrained_layout=True)
    for i, row in enumerate(result.summary):
        color = f"C{i}"
        pr = row["per_round"]
        x = [p["n_labeled"] for p in pr]
        acc = [p["accuracy"] * 100 for p in pr]
        style = "--" if row["strategy"] in ("random", "warm") else "-"
        ax_acc.plot(x, acc, style, marker="o", ms=3, color=color, label=row["strategy"])
        if all(p["accuracy_ci"] for p in pr):
            ax_acc.fill_between(x, [p["accuracy_ci"][0] * 100 for p in pr], [p["accuracy_ci"][1] * 100 for p in pr],
                                color=color, alpha=0.15, lw=0)
        if row["strategy"] != "random":
            pen = [p["penalty"] * 100 for p in pr]
            ax_pen.plot(x, pen, style, marker="o", ms=3, color=color, label=row["strategy"])
            if all(p["penalty_ci"] for p in pr):
                ax_pen.fill_between(x, [p["penalty_ci"][0] * 100 for p in pr],
                                    [p["penalty_ci"][1] * 100 for p in pr], color=color, alpha=0.15, lw=0)
    ax_pen.axhline(0, color="black", lw=0.8)
    ax_acc.set(xlabel="labeled examples", ylabel="test accuracy (%)", title="Accuracy per round (95% CI)")
    ax_pen.set(xlabel="labeled examples", ylabel="penalty vs random (accuracy points)",
               title="Warm-start penalty per round (95% CI; > 0 is worse than random)")
    for ax in (ax_acc, ax_pen):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(protocol_title(result.config), fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()
