"""What a protocol of the paper is: its settings, its grid and how its results are laid out
(:class:`Protocol`), and what laying them out gives (:class:`ProtocolReport` of :class:`ProtocolTable` s)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from activews.engine.bench import BenchResult
from activews.report.tables import TextTable as ProtocolTable

__all__ = ["Protocol", "ProtocolReport", "ProtocolTable", "Renderer"]


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
