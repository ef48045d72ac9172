"""Result tables for people: rich renderables built from summaries (no statistics, no printing: the
numbers come from :mod:`activews.engine.summary`, and the CLI decides where the tables go)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from activews.engine.config import BenchConfig

__all__ = [
    "OWN_LOOP",
    "penalty_table",
    "compute_table",
    "selection_table",
    "result_tables",
    "strategies_table",
    "protocol_title",
    "fmt_ci",
    "fmt_time_ratio",
]

OWN_LOOP = "rounds of your own training loop (activews.RoundLog)"
"""What :func:`protocol_title` says for a result with no bench config (a :class:`~activews.roundlog.RoundLog`)."""


def fmt_ci(ci: list[float] | None, scale: float = 100.0, digits: int = 1) -> str:
    if ci is None:
        return "n/a"
    return f"[{ci[0] * scale:+.{digits}f}, {ci[1] * scale:+.{digits}f}]"


def protocol_title(config: BenchConfig | None) -> str:
    """One line naming the protocol, e.g. ``active (margin), 1000+1000/round · mnist1d · mlp · ...``;
    :data:`OWN_LOOP` for ``None`` (rounds recorded from a loop of one's own)."""
    if config is None:
        return OWN_LOOP
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
    train_fn = getattr(config, "train_fn", None)
    stop = f"trained by {train_fn}" if train_fn else f"train to {config.target_accuracy:.0%}{first}"
    training = f"{config.optimizer} lr {config.lr:g} · {stop}"
    return (
        f"{stream} · {config.dataset} · {config.model} · {training} · "
        f"{len(config.seeds)} seed{'s' if len(config.seeds) != 1 else ''}"
    )


def _num(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``; ``-`` for a field that was not recorded (None)."""
    return "-" if value is None else format(value, spec)


def penalty_table(
    summary: list[dict[str, Any]], title: str | None = None, *, reference: str = "random"
) -> Table:
    """Accuracy and penalty per arm (points = percentage points; CIs are 95%, paired by seed).

    Args:
        summary: per-arm rows of :func:`~activews.engine.summary.summarize`.
        title: the table's title (default: ``Warm-start penalty vs REFERENCE (accuracy points, final
            round)``).
        reference: the arm the penalties are measured against (shown as ``ref``).
    """
    if title is None:
        title = f"Warm-start penalty vs {escape(reference)} (accuracy points, final round)"
    table = Table(title=title, title_justify="left")
    table.add_column("arm", style="bold", no_wrap=True)
    table.add_column("acc %", justify="right")
    table.add_column("penalty", justify="right")
    table.add_column("95% CI", justify="right", no_wrap=True)
    table.add_column("area pen.", justify="right")
    table.add_column("hit target", justify="right")
    for row in summary:
        is_ref = row["arm"] == reference
        pen, ci = row.get("penalty"), row.get("penalty_ci")
        style = "red" if ci and ci[0] > 0 else ("green" if ci and ci[1] < 0 else None)
        table.add_row(
            escape(row["arm"]),
            f"{row['final_accuracy'] * 100:.1f}",
            "ref" if is_ref else ("n/a" if pen is None else f"{pen * 100:+.2f}"),
            "" if is_ref else fmt_ci(ci, digits=2),
            "" if is_ref or row.get("auc_penalty") is None else f"{row['auc_penalty'] * 100:+.2f}",
            _num(row.get("reached_target"), ".0%"),
            style=None if is_ref else style,
        )
    return table


def fmt_time_ratio(row: dict[str, Any]) -> str:
    """``-`` when the arm's training seconds were not recorded; ``n/a`` when no seed pairs with the
    reference's."""
    if row.get("seconds") is None:
        return "-"
    return "n/a" if row.get("time_ratio") is None else f"{row['time_ratio']:.2f}"


def compute_table(
    summary: list[dict[str, Any]], title: str | None = None, *, reference: str = "random"
) -> Table:
    """Optimizer steps and training seconds per arm, and their ratios to the reference arm's.

    Args:
        summary: per-arm rows of :func:`~activews.engine.summary.summarize`.
        title: the table's title (default: ``Compute vs REFERENCE (cumulative over rounds)``).
        reference: the arm the ratios divide by.
    """
    if title is None:
        title = f"Compute vs {escape(reference)} (cumulative over rounds)"
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
            "" if row["arm"] == reference else fmt_ci(row.get("compute_ratio_ci"), scale=1, digits=2),
            _num(row.get("seconds"), ".1f"),
            fmt_time_ratio(row),
        )
    return table


def selection_table(summary: list[dict[str, Any]], *, reference: str = "random") -> Table | None:
    """Where each arm's gap to random comes from (``--counterfactual``) and how much its labeled sets
    overlap random's; None when the run recorded neither (passive streams). The ``reference`` arm's
    row is left out."""
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
        if row["arm"] == reference:
            continue
        cells = [escape(row["arm"]), pts(row, "penalty")]
        if split:
            cells.append(pts(row, "init_effect") + f" {fmt_ci(row.get('init_effect_ci'))}")
            cells.append(pts(row, "selection_effect") + f" {fmt_ci(row.get('selection_effect_ci'))}")
        share = row.get("overlap_with_random")
        table.add_row(*cells, "n/a" if share is None else f"{share:.2f}")
    return table


def result_tables(
    summary: list[dict[str, Any]], *, title: str | None = None, reference: str = "random"
) -> list[Table]:
    """The tables of one experiment, as every command and :meth:`activews.RoundLog.table` show them: the
    penalty table (titled ``title``), the compute table, and the selection split when it was recorded.

    Args:
        summary: per-arm rows of :func:`~activews.engine.summary.summarize`.
        title: the penalty table's title (default: see :func:`penalty_table`).
        reference: the arm penalties and ratios are measured against.
    """
    tables = [
        penalty_table(summary, title, reference=reference),
        compute_table(summary, reference=reference),
    ]
    split = selection_table(summary, reference=reference)
    return tables if split is None else [*tables, split]


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
