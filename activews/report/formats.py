"""One set of tables, four output formats: a terminal table, Markdown, CSV, JSON.

Commands build their output as :class:`Section` s (a heading line and its
:class:`~activews.report.tables.TextTable` s); this module writes them as a Markdown or CSV document.
The terminal layout is :func:`activews.report.layout.fit`; JSON is the data behind the tables
(unrounded), which each command already has (``summary.json``, ``protocol.json``, a registry listing).
Every format shows the same cells: the Markdown and CSV are made from the tables the terminal shows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from activews.report.tables import TextTable

__all__ = ["FORMATS", "Section", "csv_document", "markdown_document"]

FORMATS = ("table", "markdown", "csv", "json")
"""What ``--format`` takes: ``table`` (for a terminal or a log: never cuts a number), ``markdown`` (to
paste into a paper or a README), ``csv`` (the tables' cells, for a spreadsheet), ``json`` (the numbers
behind the tables, unrounded, for a program)."""


@dataclass(frozen=True)
class Section:
    """A heading line (e.g. the protocol of an experiment; "" for none) and the tables under it."""

    heading: str
    tables: list[TextTable] = field(default_factory=list)


def markdown_document(sections: Sequence[Section]) -> str:
    """Each section's heading as a paragraph, then its tables (:meth:`TextTable.markdown`), separated by
    blank lines; ends with a newline."""
    blocks = []
    for section in sections:
        if section.heading:
            blocks.append(section.heading)
        blocks += [table.markdown() for table in section.tables]
    return "\n\n".join(blocks) + "\n"


def csv_document(sections: Sequence[Section]) -> str:
    """One CSV block per table: a ``# heading`` line (a section's first table), a ``# title`` line, the
    header row and the rows as shown; blocks separated by a blank line (``pandas.read_csv(...,
    comment="#")`` reads a block)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    first = True
    for section in sections:
        for k, table in enumerate(section.tables):
            if not first:
                buf.write("\n")
            first = False
            if k == 0 and section.heading:
                buf.write(f"# {section.heading}\n")
            if table.title:
                buf.write(f"# {table.title}\n")
            writer.writerows(table.csv_rows())
            if table.notes:
                buf.write(f"# {' '.join(table.notes)}\n")
    return buf.getvalue()
