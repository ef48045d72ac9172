"""What a protocol of the paper is: its settings, its grid and how its results are laid out
(:class:`Protocol`), and what laying them out gives (:class:`ProtocolReport` of :class:`ProtocolTable` s)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape
from rich.table import Table

from activews.engine.bench import BenchResult

__all__ = ["Protocol", "ProtocolReport", "ProtocolTable", "Renderer"]


@dataclass(frozen=True)
class ProtocolTable:
    """A table with a title, column headers and rows of strings (rendered with rich or as Markdown)."""

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
            table.add_column(escape(header), justify="left" if i == 0 else "right")
        for row in self.rows:
            table.add_row(*(escape(cell) for cell in row))
        if self.notes:
            table.caption = escape(" ".join(self.notes))
            table.caption_justify = "left"
        return table


@dataclass
class ProtocolReport:
    """What a protocol's renderer returns: tables, PNG figures by file name, and the numbers as data."""

    tables: list[ProtocolTable] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)
    data: list[dict[str, Any]] = field(default_factory=list)

    def markdown(self) -> str:
        return "\n\n".join(t.markdown() for t in self.tables)


Renderer = Callable[["Protocol", Sequence[BenchResult], bool], ProtocolReport]


@dataclass(frozen=True)
class Protocol:
    """A named experiment of the paper.

    Attributes:
        name: the CLI name (``two-phase``).
        title: one line saying what it measures.
        reference: where in the paper it comes from.
        values: bench settings (``BenchConfig`` fields) the protocol sets.
        grid: experiments: every combination of these ``BenchConfig`` fields (``--grid`` replaces an axis).
        param_grid: strategy parameter lists, one arm per combination (``--sweep`` replaces them).
        render: lays the results out (tables, figures, data).
    """

    name: str
    title: str
    reference: str
    values: dict[str, Any]
    grid: dict[str, list[Any]]
    render: Renderer
    param_grid: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
