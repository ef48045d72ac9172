"""Printing results: the tables of one experiment, as ``bench``, ``reproduce``, ``report`` and ``runs show``
print them, and ``--format`` (table, Markdown, CSV, JSON) for every command that prints tables. The
numbers come from :mod:`activews.engine.summary`; this module only lays them out."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape

from activews.files import to_jsonable
from activews.report.formats import FORMATS, Section, csv_document, markdown_document
from activews.report.tables import protocol_title, result_tables

__all__ = ["add_format_option", "emit", "print_result", "result_sections", "results_json"]


def add_format_option(parser: argparse.ArgumentParser, json_means: str) -> None:
    """``--format table|markdown|csv|json`` (``json_means``: what this command's JSON holds)."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (for a terminal or a log; never cuts a number), markdown (to paste), csv (the tables' "
        f"cells) or json ({json_means}); with any but table, only that goes to standard output "
        "(default: table)",
    )


def result_sections(results: Sequence[Any], *, reference: str = "random") -> list[Section]:
    """One section per experiment: its protocol line (and its label in a grid), then its tables."""
    return [
        Section(
            protocol_title(r.config) + (f" [{r.label}]" if r.label else ""),
            result_tables(r.summary, reference=reference) if r.summary else [],
        )
        for r in results
    ]


def results_json(results: Sequence[Any]) -> Any:
    """The results of one experiment (``{"config": ..., "arms": [...]}``), or a list of them for a grid:
    what ``--json PATH`` writes and ``--format json`` prints."""
    return results[0].to_dict() if len(results) == 1 else [r.to_dict() for r in results]


def emit(fmt: str, sections: Sequence[Section], data: Any) -> None:
    """Write ``sections`` as Markdown or CSV, or ``data`` as JSON, to standard output (not ``table``:
    each command prints its own tables)."""
    if fmt == "markdown":
        text = markdown_document(sections)
    elif fmt == "csv":
        text = csv_document(sections)
    else:
        text = json.dumps(to_jsonable(data), indent=2) + "\n"
    sys.stdout.write(text)
    sys.stdout.flush()


def print_result(
    console: Console, result: Any, *, after_run: bool = False, reference: str = "random"
) -> None:
    """The penalty and compute tables of one experiment, its selection split when it recorded one, and
    the continual metrics of a shifting stream.

    Read back from a store (``after_run=False``), a line naming the protocol (and the experiment of a
    grid) comes first. After a run, whose header already named the protocol, the experiment's label goes
    in the penalty table's title and the protocol line follows the tables, as a caption. ``reference`` is
    the arm penalties are measured against (a :class:`~activews.roundlog.RoundLog` may name another).
    """
    label = result.label
    if not after_run:
        console.print(
            escape(protocol_title(result.config) + (f" [{label}]" if label else "")), highlight=False
        )
    if not result.summary:  # no finished round yet
        return
    title = None
    if after_run:
        where = f" [{label}]" if label else ""
        title = f"Warm-start penalty vs {reference}{where} (accuracy points, final round)"
    for table in result_tables(result.summary, title=title, reference=reference):
        console.print(table)
    if after_run:
        console.print(escape(protocol_title(result.config)), highlight=False)
