"""Result tables for people: rich renderables built from summaries (no statistics, no printing: the
numbers come from :mod:`activews.engine.summary`, and the CLI decides where the tables go)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape
from rich.table import Table

from activews.engine.config import BenchConfig

__all__ = [
    "TextTable",
    "OWN_LOOP",
    "penalty_table",
    "compute_table",
    "selection_table",
    "continual_tables",
    "continual_rows",
    "continual_headers",
    "continual_titles",
    "is_continual_summary",
    "result_tables",
    "strategies_table",
    "protocol_title",
    "fmt_ci",
    "fmt_points",
    "fmt_time_ratio",
]

OWN_LOOP = "rounds of your own training loop (activews.RoundLog)"
"""What :func:`protocol_title` says for a result with no bench config (a :class:`~activews.roundlog.RoundLog`)."""


def fmt_ci(ci: list[float] | None, scale: float = 100.0, digits: int = 1, *, signed: bool = True) -> str:
    """``[-1.2, +0.4]`` (a difference's CI; ``signed=False`` for a level's: ``[70.8, 72.1]``)."""
    if ci is None:
        return "n/a"
    sign = "+" if signed else ""
    return f"[{ci[0] * scale:{sign}.{digits}f}, {ci[1] * scale:{sign}.{digits}f}]"


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
    shift = getattr(config, "shift", "none")
    if shift != "none":  # a shifting stream: name the shift (stationary titles stay as they were)
        tasks = getattr(config, "tasks", None)
        if tasks is None and not getattr(config, "classes_per_task", None) and shift != "class_incremental":
            tasks = config.rounds  # one task per round
        if tasks and config.rounds == tasks:  # one round per task: no per-round increment to name
            stream = stream.replace(
                f"{config.initial}+{config.query_size}/round", f"{config.initial} per task"
            )
        per = getattr(config, "classes_per_task", None)
        detail = ([f"{tasks} tasks"] if tasks else []) + ([f"{per} classes per task"] if per else [])
        detail += [f"replay {getattr(config, 'replay', 'all')}"]
        stream += f" · shift {shift} ({', '.join(detail)})"
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


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}"


def fmt_points(value: float | None) -> str:
    """A difference of accuracies in points, signed (``-`` for none)."""
    return "-" if value is None else f"{value * 100:+.2f}"


def _pts_ci(value: float | None, ci: list[float] | None) -> str:
    return "-" if value is None else fmt_ci(ci, digits=2)


def is_continual_summary(summary: list[dict[str, Any]]) -> bool:
    """Whether summary rows carry the continual metrics (a shifting stream's run)."""
    return any("newest_task_accuracy" in row for row in summary)


def _n_tasks(summary: list[dict[str, Any]]) -> str:
    n = max((len(row.get("per_task") or ()) for row in summary), default=0)
    return f"{n} task{'s' if n != 1 else ''}"


def continual_headers(reference: str = "random") -> tuple[list[str], list[str]]:
    """Column headers of the two continual tables (see :func:`continual_rows`)."""
    return (
        ["arm", "newest %", f"vs {reference}", "95% CI", "avg %", "online %"],
        ["arm", "forgetting", "95% CI", "BWT", "95% CI"],
    )


def continual_titles(summary: list[dict[str, Any]], *, reference: str = "random") -> tuple[str, str]:
    """Titles of the two continual tables, ``Continual metrics (N tasks): ...``; N is the number of tasks
    every seed of an arm reached."""
    n = _n_tasks(summary)
    return (
        f"Continual metrics ({n}): accuracy % at the end, newest task (vs {reference} = arm - "
        f"{reference}, points, 95% CI paired by seed) and all tasks (avg); online: new examples, before "
        "training",
        f"Continual metrics ({n}): forgetting and backward transfer (points, 95% CI over seeds; "
        "forgetting > 0, BWT < 0: earlier tasks lost accuracy)",
    )


def continual_rows(
    summary: list[dict[str, Any]], *, reference: str = "random"
) -> tuple[list[tuple[list[str], str | None]], list[list[str]]]:
    """Cells of the two continual tables, one row per arm that has continual metrics.

    The first table: newest-task accuracy %, its paired difference to ``reference`` (arm - reference,
    points; ``ref`` on the reference's row) and its 95% CI, average accuracy over every task % and
    online accuracy %, each row with its style (``red``: below the reference on the newest task, CI
    excluding 0; ``green``: above; None otherwise). The second: forgetting and backward transfer
    (points) with their 95% CIs over seeds (``-`` with one task). Plain text, not rich markup: the
    console tables, the HTML page and a protocol's Markdown lay out the same cells. Two tables rather
    than one so that each fits 80 columns.
    """
    accuracy, stability = [], []
    for row in summary:
        if "newest_task_accuracy" not in row:
            continue
        is_ref = row["arm"] == reference
        diff, ci = row.get("newest_task_accuracy_vs_ref"), row.get("newest_task_accuracy_vs_ref_ci")
        style = None if is_ref else ("red" if ci and ci[1] < 0 else ("green" if ci and ci[0] > 0 else None))
        cells = [
            row["arm"],
            _pct(row.get("newest_task_accuracy")),
            "ref" if is_ref else ("n/a" if diff is None else f"{diff * 100:+.2f}"),
            "" if is_ref else fmt_ci(ci, digits=2),
            _pct(row.get("average_accuracy")),
            _pct(row.get("online_accuracy")),
        ]
        accuracy.append((cells, style))
        forgetting, bwt = row.get("forgetting"), row.get("bwt")
        stability.append(
            [
                row["arm"],
                fmt_points(forgetting),
                _pts_ci(forgetting, row.get("forgetting_ci")),
                fmt_points(bwt),
                _pts_ci(bwt, row.get("bwt_ci")),
            ]
        )
    return accuracy, stability


def continual_tables(summary: list[dict[str, Any]], *, reference: str = "random") -> list[Table]:
    """The continual metrics of a shifting stream, per arm (see :func:`continual_rows`); empty for a
    stationary stream's summary (no continual metrics)."""
    if not is_continual_summary(summary):
        return []
    accuracy, stability = continual_rows(summary, reference=reference)
    tables = []
    for title, headers, rows in zip(
        continual_titles(summary, reference=reference),
        continual_headers(reference),
        (accuracy, [(cells, None) for cells in stability]),
        strict=True,
    ):
        table = Table(title=escape(title), title_justify="left")
        table.add_column(headers[0], style="bold", no_wrap=True)
        for header in headers[1:]:
            table.add_column(escape(header), justify="right", no_wrap=header == "95% CI")
        for cells, style in rows:
            table.add_row(escape(cells[0]), *cells[1:], style=style)
        tables.append(table)
    return tables


def result_tables(
    summary: list[dict[str, Any]], *, title: str | None = None, reference: str = "random"
) -> list[Table]:
    """The tables of one experiment, as every command and :meth:`activews.RoundLog.table` show them: the
    penalty table (titled ``title``), the compute table, the selection split when it was recorded, and
    the continual metrics of a shifting stream.

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
    if split is not None:
        tables.append(split)
    return tables + continual_tables(summary, reference=reference)


def strategies_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Registered strategies", title_justify="left", show_lines=True)
    # Names are what users type: never wrapped or cut, however narrow the terminal.
    width = max((len(r["name"]) for r in rows), default=4)
    table.add_column("name", style="bold", no_wrap=True, min_width=width)
    # fold: a value too wide for a narrow terminal continues on the next line instead of ending in "…"
    table.add_column("parameters (default)", overflow="fold")
    table.add_column("search space", overflow="fold")
    table.add_column("what it does", overflow="fold")
    table.add_column("reference", overflow="fold")
    for row in rows:
        table.add_row(
            escape(row["name"]),
            escape(row["params"]),
            escape(row.get("space", "-")),  # what `activews advise` tunes ("-": nothing declared)
            escape(row["summary"]),
            escape(row["reference"]),
        )
    return table


@dataclass(frozen=True)
class TextTable:
    """A table with a title, column headers and rows of strings, rendered with rich or as Markdown (the
    protocols of ``activews reproduce`` and the advice of ``activews advise`` lay their results out so)."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.headers) + " |"]
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines += ["", *self.notes] if self.notes else []
        return "\n".join(lines)

    def rich(self) -> Any:
        table = Table(title=escape(self.title), title_justify="left")
        for i, header in enumerate(self.headers):
            # fold: a cell too wide for the terminal continues on the next line, never cut with an ellipsis
            table.add_column(escape(header), justify="left" if i == 0 else "right", overflow="fold")
        for row in self.rows:
            table.add_row(*(escape(cell) for cell in row))
        if self.notes:
            table.caption = escape(" ".join(self.notes))
            table.caption_justify = "left"
        return table
