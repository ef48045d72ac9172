"""Result tables for people: :class:`TextTable` s of strings built from summaries, which render for a
terminal at any width (:mod:`.layout`), as Markdown, CSV or HTML (no statistics, no printing: the
numbers come from :mod:`activews.engine.summary`, and the CLI decides where the tables go)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from activews.engine.config import BenchConfig
from activews.report.layout import fit

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
    "acquisitions_table",
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
) -> TextTable:
    """Accuracy and penalty per arm (points = percentage points; CIs are 95%, paired by seed).

    Args:
        summary: per-arm rows of :func:`~activews.engine.summary.summarize`.
        title: the table's title (default: ``Warm-start penalty vs REFERENCE (accuracy points, final
            round)``).
        reference: the arm the penalties are measured against (shown as ``ref``).
    """
    if title is None:
        title = f"Warm-start penalty vs {reference} (accuracy points, final round)"
    rows, styles = [], []
    for row in summary:
        is_ref = row["arm"] == reference
        pen, ci = row.get("penalty"), row.get("penalty_ci")
        style = "red" if ci and ci[0] > 0 else ("green" if ci and ci[1] < 0 else None)
        rows.append(
            [
                row["arm"],
                f"{row['final_accuracy'] * 100:.1f}",
                "ref" if is_ref else ("n/a" if pen is None else f"{pen * 100:+.2f}"),
                "" if is_ref else fmt_ci(ci, digits=2),
                "" if is_ref or row.get("auc_penalty") is None else f"{row['auc_penalty'] * 100:+.2f}",
                _num(row.get("reached_target"), ".0%"),
            ]
        )
        styles.append(None if is_ref else style)
    headers = ["arm", "acc %", "penalty", "95% CI", "area pen.", "hit target"]
    return TextTable(title, headers, rows, styles=styles)


def fmt_time_ratio(row: dict[str, Any]) -> str:
    """``-`` when the arm's training seconds were not recorded; ``n/a`` when no seed pairs with the
    reference's."""
    if row.get("seconds") is None:
        return "-"
    return "n/a" if row.get("time_ratio") is None else f"{row['time_ratio']:.2f}"


def compute_table(
    summary: list[dict[str, Any]], title: str | None = None, *, reference: str = "random"
) -> TextTable:
    """Optimizer steps and training seconds per arm, and their ratios to the reference arm's.

    Args:
        summary: per-arm rows of :func:`~activews.engine.summary.summarize`.
        title: the table's title (default: ``Compute vs REFERENCE (cumulative over rounds)``).
        reference: the arm the ratios divide by.
    """
    if title is None:
        title = f"Compute vs {reference} (cumulative over rounds)"
    rows = []
    for row in summary:
        ratio = row.get("compute_ratio")
        rows.append(
            [
                row["arm"],
                f"{row['steps']:,.0f}",
                "n/a" if ratio is None else f"{ratio:.2f}",
                "" if row["arm"] == reference else fmt_ci(row.get("compute_ratio_ci"), scale=1, digits=2),
                _num(row.get("seconds"), ".1f"),
                fmt_time_ratio(row),
            ]
        )
    return TextTable(title, ["arm", "steps", "step ratio", "95% CI", "train s", "time ratio"], rows)


def selection_table(summary: list[dict[str, Any]], *, reference: str = "random") -> TextTable | None:
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
    headers = (
        ["arm", "penalty"]
        + (["init effect [95% CI]", "selection effect [95% CI]"] if split else [])
        + ["overlap"]
    )

    def pts(row: dict[str, Any], key: str) -> str:
        value = row.get(key)
        return "n/a" if value is None else f"{100 * value:+.2f}"

    rows = []
    for row in summary:
        if row["arm"] == reference:
            continue
        cells = [row["arm"], pts(row, "penalty")]
        if split:
            cells.append(pts(row, "init_effect") + f" {fmt_ci(row.get('init_effect_ci'))}")
            cells.append(pts(row, "selection_effect") + f" {fmt_ci(row.get('selection_effect_ci'))}")
        share = row.get("overlap_with_random")
        rows.append([*cells, "n/a" if share is None else f"{share:.2f}"])
    return TextTable(title, headers, rows)


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


def continual_tables(summary: list[dict[str, Any]], *, reference: str = "random") -> list[TextTable]:
    """The continual metrics of a shifting stream, per arm (see :func:`continual_rows`); empty for a
    stationary stream's summary (no continual metrics)."""
    if not is_continual_summary(summary):
        return []
    accuracy, stability = continual_rows(summary, reference=reference)
    first, second = continual_titles(summary, reference=reference)
    headers = continual_headers(reference)
    return [
        TextTable(first, headers[0], [c for c, _ in accuracy], styles=[s for _, s in accuracy]),
        TextTable(second, headers[1], stability),
    ]


def result_tables(
    summary: list[dict[str, Any]], *, title: str | None = None, reference: str = "random"
) -> list[TextTable]:
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


def strategies_table(rows: list[dict[str, Any]]) -> TextTable:
    """The registered strategies (``activews strategies``): name, parameters with defaults and bounds,
    search space (what ``activews advise`` tunes; ``-``: nothing declared), what it does, reference."""
    return TextTable(
        "Registered strategies",
        ["name", "parameters (default)", "search space", "what it does", "reference"],
        [[r["name"], r["params"], r.get("space", "-"), r["summary"], r["reference"]] for r in rows],
        text_columns=frozenset({3, 4}),
        label_columns=frozenset({1, 2}),
        dividers=True,
    )


def acquisitions_table(rows: list[dict[str, Any]]) -> TextTable:
    """The registered acquisition functions (``activews acquisitions``): name, kind (row-wise function or
    batch selector), parameters with defaults, what it does, reference."""
    return TextTable(
        "Registered acquisition functions",
        ["name", "kind", "parameters (default)", "what it does", "reference"],
        [[str(r[k]) for k in ("name", "kind", "params", "summary", "reference")] for r in rows],
        text_columns=frozenset({3, 4}),
        label_columns=frozenset({1, 2}),
        dividers=True,
    )


_MARKDOWN_ESCAPES = str.maketrans({"|": "\\|", "\n": "<br>"})


@dataclass(frozen=True)
class TextTable:
    """A table of strings: a title, column headers, rows, notes under it. Every command's tables are
    these, so one table renders the same cells every way: for a terminal (:meth:`__rich_console__`:
    laid out by :func:`activews.report.layout.fit`, which never cuts a cell), as Markdown
    (:meth:`markdown`), as HTML for ``report.html`` (:meth:`html`) and as CSV rows (:meth:`csv_rows`).

    Attributes:
        title: one line above the table ("" for none).
        headers: column headers.
        rows: one list of cells per row (a cell may hold several lines, joined with newlines).
        notes: sentences shown under the table.
        styles: a rich style per row (``red``/``green``: worse/better than the reference, CI excluding
            0), or None; colour is dropped where the console has none (``NO_COLOR``, a pipe, a file).
        text_columns: indices of prose columns (descriptions, references): they wrap between words. Every
            other column (labels, numbers, CIs) is shown whole on one line per cell line.
        label_columns: indices of columns of names or settings (aligned left like the key columns; the
            others, numbers, align right).
        key_columns: how many leading columns name the row (repeated in each part of a split table).
        dividers: a rule between rows (listings whose cells span several lines).
    """

    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    styles: list[str | None] | None = None
    text_columns: frozenset[int] = frozenset()
    label_columns: frozenset[int] = frozenset()
    key_columns: int = 1
    dividers: bool = False

    def row_style(self, index: int) -> str | None:
        return None if self.styles is None else self.styles[index]

    def left(self, column: int) -> bool:
        """Whether ``column`` aligns left (a key, label or prose column) rather than right (numbers)."""
        return column < self.key_columns or column in self.text_columns or column in self.label_columns

    def markdown(self) -> str:
        """The table as GitHub-flavoured Markdown: the title in bold (none when ""), the header row, a
        ``|---|`` rule (no alignment marks, so recorded tables stay byte-stable), the rows with ``|``
        escaped and line breaks as ``<br>``, then the notes."""
        lines = [f"**{self.title}**", ""] if self.title else []
        cells = [[cell.translate(_MARKDOWN_ESCAPES) for cell in row] for row in self.rows]
        lines.append("| " + " | ".join(h.translate(_MARKDOWN_ESCAPES) for h in self.headers) + " |")
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        lines += ["", *self.notes] if self.notes else []
        return "\n".join(lines)

    def html(self) -> str:
        """The table as an HTML fragment for ``report.html``: the title as a paragraph, key cells in bold,
        number cells right-aligned (class ``n``), rows styled red/green as classes ``bad``/``good``."""
        esc = html.escape
        classes = {"red": "bad", "green": "good"}
        head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in self.headers) + "</tr>"
        body = []
        for r, row in enumerate(self.rows):
            cells = []
            for i, cell in enumerate(row):
                text = esc(cell).replace("\n", "<br>")
                if i < self.key_columns:
                    cells.append(f"<td><b>{text}</b></td>")
                else:
                    cells.append(f'<td class="{"t" if self.left(i) else "n"}">{text}</td>')
            body.append(f'<tr class="{classes.get(self.row_style(r) or "", "")}">{"".join(cells)}</tr>')
        title = f"<p class='meta'>{esc(self.title)}</p>" if self.title else ""
        notes = f"<p class='meta'>{esc(' '.join(self.notes))}</p>" if self.notes else ""
        return f"{title}<table>{head}{''.join(body)}</table>{notes}"

    def csv_rows(self) -> list[list[str]]:
        """The header row, then the rows (cells as shown)."""
        return [list(self.headers), *(list(row) for row in self.rows)]

    def __rich_console__(self, console: Any, options: Any) -> Any:
        yield from fit(self, options.max_width)
