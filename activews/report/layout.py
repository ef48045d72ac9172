"""Laying a :class:`~activews.report.tables.TextTable` out at a given width without ever cutting a cell.

rich shrinks every column evenly, as a last resort, when a table is wider than the terminal; a number
then ends in ``…`` and reads as another number. Here the widths are chosen before rich sees the table,
in this order, and the first that fits the width wins:

1. one table, full headers: label and number columns exactly as wide as their widest cell; prose columns
   (descriptions, references) share what is left and wrap between words;
2. the same with the documented short headers (:data:`SHORT_HEADERS`);
3. the table split into two parts (:data:`MAX_PARTS`) that fit, with full headers, else short ones: each
   part repeats the key columns (the arm) and takes as many of the other columns, in order, as fit;
   titled ``TITLE (part 1 of 2)`` and ``TITLE (part 2 of 2)``;
4. one block per row, ``header: value`` per line (a key wider than the whole width continues on the
   next line: the terminal is narrower than the text, and nothing is dropped).

Nothing here computes or formats numbers; cells arrive as strings.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.cells import cell_len
from rich.markup import escape
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from activews.report.tables import TextTable

__all__ = ["MAX_PARTS", "SHORT_HEADERS", "fit", "short_header", "table_width"]

SHORT_HEADERS: dict[str, str] = {
    "acc %": "acc",
    "penalty": "pen.",
    "area pen.": "area",
    "hit target": "target",
    "step ratio": "steps x",
    "time ratio": "time x",
    "train s": "s",
    "95% CI": "CI",
    "overlap": "ovl.",
    "newest %": "new %",
    "online %": "onl. %",
    "forgetting": "forget",
    "init effect [95% CI]": "init [CI]",
    "selection effect [95% CI]": "selection [CI]",
    "parameters (default)": "parameters",
    "search space": "space",
    "what it does": "what",
    "reference": "ref.",
}
"""The only abbreviations a narrow table may use for its headers (full header -> short header); the
table in ``docs/cli.md`` (Output formats) lists them with their meaning. ``vs REF`` (the reference arm's
name) is never shortened."""

MAX_PARTS = 2
"""A table split into more parts than this is shown one block per row instead."""

_PAD = 3  # per column: one space of padding on each side and one border
_EDGE = 1  # the table's right border
_MIN_PROSE = 12  # a prose column is given at least this much room when there is any to spare


def short_header(header: str) -> str:
    """The documented short name of ``header`` (itself when it has none)."""
    return SHORT_HEADERS.get(header, header)


def _lines_width(text: str) -> int:
    return max((cell_len(line) for line in text.split("\n")), default=0)


def _token_width(text: str) -> int:
    return max((cell_len(tok) for tok in text.split()), default=0)


def table_width(widths: Sequence[int]) -> int:
    """Characters a table with these column content widths takes (borders and padding included)."""
    return sum(widths) + _PAD * len(widths) + _EDGE


class _Plan:
    """What each column needs: ``need`` (the least it may be given: the widest cell line of a label or
    number column, the longest word of a prose column) and ``want`` (its widest line)."""

    def __init__(self, table: TextTable, headers: Sequence[str], columns: Sequence[int]) -> None:
        self.table, self.headers, self.columns = table, list(headers), list(columns)
        self.need, self.want = [], []
        for i in self.columns:
            cells = [row[i] for row in table.rows] + [headers[i]]
            if i in table.text_columns:
                self.need.append(max(_token_width(c) for c in cells))
                self.want.append(max(_lines_width(c) for c in cells))
            else:
                self.need.append(max(_lines_width(c) for c in cells))
                self.want.append(self.need[-1])

    def widths(self, width: int) -> list[int] | None:
        """Column widths within ``width``, or None when the columns cannot fit whole."""
        room = width - table_width([0] * len(self.columns))
        if sum(self.need) > room:
            return None
        widths = list(self.need)
        spare = room - sum(widths)
        prose = [k for k, i in enumerate(self.columns) if i in self.table.text_columns]
        # Fill prose columns towards their widest line, a character at a time to the one furthest from it.
        while spare > 0:
            short = [k for k in prose if widths[k] < self.want[k]]
            if not short:
                break
            k = max(short, key=lambda k: (self.want[k] - widths[k], -k))
            widths[k] += 1
            spare -= 1
        if any(widths[k] < min(_MIN_PROSE, self.want[k]) for k in prose):
            return None  # prose would read one word per line: split the table instead
        return widths

    def render(self, widths: Sequence[int], title: str) -> Table:
        t = self.table
        table = Table(
            title=escape(title) if title else None,
            title_justify="left",
            show_lines=t.dividers,
            box=box.HEAVY_HEAD,
        )
        for k, i in enumerate(self.columns):
            prose = i in t.text_columns
            table.add_column(
                escape(self.headers[i]),
                justify="left" if t.left(i) else "right",
                style="bold" if i < t.key_columns else None,
                width=widths[k],
                no_wrap=not prose,
                overflow="fold",
            )
        for r, row in enumerate(t.rows):
            table.add_row(*(escape(row[i]) for i in self.columns), style=t.row_style(r))
        if t.notes:
            table.caption = escape(" ".join(t.notes))
            table.caption_justify = "left"
        return table


def fit(table: TextTable, width: int) -> list[Any]:
    """rich renderables showing every cell of ``table`` whole within ``width`` columns (see the module
    docstring for the order of layouts tried)."""
    n = len(table.headers)
    everything = list(range(n))
    shorts = [short_header(h) for h in table.headers]
    for headers in (table.headers, shorts):
        plan = _Plan(table, headers, everything)
        widths = plan.widths(width)
        if widths is not None:
            return [plan.render(widths, table.title)]
    for headers in (table.headers, shorts):
        parts = _split(table, width, headers)
        if parts is not None:
            total = len(parts)
            return [
                plan.render(
                    widths,
                    f"{table.title} (part {k} of {total})" if table.title and total > 1 else table.title,
                )
                for k, (plan, widths) in enumerate(parts, 1)
            ]
    return _stacked(table, width)  # more parts than MAX_PARTS read worse than one block per row


def _split(table: TextTable, width: int, headers: Sequence[str]) -> list[tuple[_Plan, list[int]]] | None:
    """The table as at most :data:`MAX_PARTS` parts within ``width``, each repeating the key columns and
    taking as many of the other columns, in order, as fit; None when that cannot be done."""
    n = len(headers)
    keys = list(range(min(table.key_columns, n)))
    groups: list[list[int]] = []
    group: list[int] = []
    for i in range(len(keys), n):
        if _Plan(table, headers, keys + group + [i]).widths(width) is not None:
            group.append(i)
            continue
        if not group:
            return None  # the keys and this one column alone do not fit
        groups.append(group)
        group = [i]
    if group:
        groups.append(group)
    if len(groups) > MAX_PARTS:
        return None
    parts = []
    for g in groups or [[]]:
        plan = _Plan(table, headers, keys + g)
        widths = plan.widths(width)
        if widths is None:
            return None
        parts.append((plan, widths))
    return parts


def _stacked(table: TextTable, width: int) -> list[Any]:
    """One block per row (blank lines between): its key cells on a line, then ``header: value`` lines; a value of several lines
    continues indented under its header, and prose wraps between words within ``width``. A line wider
    than ``width`` (one word longer than the terminal is wide) continues on the next line."""
    out: list[Any] = []
    if table.title:
        out.append(Text(table.title, style="italic"))
    keys = min(table.key_columns, len(table.headers))
    for r, row in enumerate(table.rows):
        if r:
            out.append(Text(""))  # a blank line between rows: each block reads as one arm
        head = Text(" · ".join(row[:keys]), style="bold", overflow="fold")
        style = table.row_style(r)
        if style:
            head.stylize(style)
        out.append(head)
        for i in range(keys, len(table.headers)):
            if row[i]:
                out.append(Text("\n".join(_field_lines(table, i, row[i], width)), overflow="fold"))
    if table.notes:
        out.append(Text(" ".join(table.notes)))
    return out


def _field_lines(table: TextTable, column: int, cell: str, width: int) -> list[str]:
    """``  header: value`` of one cell. A value line that does not fit beside its header goes under it,
    indented; a prose cell wraps between words within ``width``; nothing else is ever broken."""
    header = f"  {table.headers[column]}:"
    lines = cell.split("\n")
    if column not in table.text_columns:
        if cell_len(f"{header} {lines[0]}") <= width:
            return [f"{header} {lines[0]}"] + [f"    {line}" for line in lines[1:]]
        # under the header, indented unless the indent is what would push the line past the width
        return [header] + [f"    {line}" if cell_len(line) + 4 <= width else line for line in lines]
    out: list[str] = []
    for k, line in enumerate(lines):
        lead = f"{header} " if k == 0 else "    "
        wrapped = textwrap.wrap(
            line, width=max(1, width - len(lead)), break_long_words=False, break_on_hyphens=False
        ) or [""]
        out.append(lead + wrapped[0])
        rest = " ".join(wrapped[1:])
        if rest:
            more = textwrap.wrap(
                rest, width=max(1, width - 4), break_long_words=False, break_on_hyphens=False
            )
            out += [f"    {piece}" for piece in more]
    return out
