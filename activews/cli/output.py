"""Printing results: the tables of one experiment, as ``bench``, ``reproduce``, ``report`` and ``runs show``
print them. The numbers come from :mod:`activews.engine.summary`; this module only lays them out."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from activews.report.tables import protocol_title, result_tables

__all__ = ["print_result"]


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
        where = f" \\[{escape(label)}]" if label else ""
        title = f"Warm-start penalty vs {escape(reference)}{where} (accuracy points, final round)"
    for table in result_tables(result.summary, title=title, reference=reference):
        console.print(table)
    if after_run:
        console.print(escape(protocol_title(result.config)), highlight=False)
