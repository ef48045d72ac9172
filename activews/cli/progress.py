"""The progress displays of a run: rich bars, one plain line per round (for logs), or nothing.

Each takes the engine's ``ProgressEvent`` s through :meth:`NoProgress.on_event`; the header (what runs,
where) is printed once the run has been validated, so a run refused before it starts prints only its error.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["BarProgress", "NoProgress", "PlainProgress", "display_for", "plan_line"]


class NoProgress:
    """Progress display base: shows nothing. ``header`` is printed once the run has been validated."""

    def __init__(self, console: Console, header: Sequence[str] = ()) -> None:
        self.console, self.header = console, list(header)

    def print_header(self, plan: dict[str, Any] | None = None) -> None:
        for line in self.header:
            self.console.print(line, highlight=False)
        if plan:
            self.console.print(escape(plan_line(plan)), highlight=False)
        self.print_warning(plan)

    def print_warning(self, plan: dict[str, Any] | None) -> None:
        if plan and plan.get("warning"):
            self.console.print(f"warning: {escape(plan['warning'])}", highlight=False, soft_wrap=True)

    def __enter__(self) -> NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def on_event(self, event: Any) -> None:
        if event.kind == "start":
            self.print_warning(event.record)


def plan_line(plan: dict[str, Any]) -> str:
    """``2 workers x 1 thread on cpu`` (+ the memory of a cell on an accelerator)."""
    workers, threads = plan["workers"], plan["threads"]
    line = (
        f"{workers} worker{'s' if workers != 1 else ''} x {threads} thread{'s' if threads != 1 else ''} "
        f"on {', '.join(plan['devices'])}"
    )
    return line + (f" · {plan['memory']}" if plan.get("memory") else "")


class PlainProgress(NoProgress):
    """One line per finished round, for logs (CI, nohup)."""

    def __init__(self, console: Console, header: Sequence[str] = ()) -> None:
        super().__init__(console, header)
        self.done = self.total = 0
        self.start = time.monotonic()

    def on_event(self, event: Any) -> None:
        if event.kind == "start":
            self.print_header(event.record)
            self.done, self.total = event.round, event.num_rounds
            if self.done:
                self.console.print(
                    f"resuming: {self.done}/{self.total} rounds already stored", highlight=False
                )
        elif event.kind == "round_end":
            # A cell whose checkpoint was unusable restarts from round 0 and recomputes rounds already
            # counted as stored: never show more rounds done than the run has.
            self.done = min(self.done + 1, self.total) if self.total else self.done + 1
            r = event.record
            self.console.print(
                f"\\[{self.done}/{self.total}] {escape(event.strategy)} seed {event.seed} round {event.round}: "
                f"acc {r['test_accuracy']:.4f}, {r['steps']} steps, {r['seconds']:.1f} s "
                f"(elapsed {time.monotonic() - self.start:.0f} s)",
                highlight=False,
                soft_wrap=True,
            )


class BarProgress(NoProgress):
    """Rich bars: one overall (with ETA), one per running cell."""

    def __enter__(self) -> BarProgress:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.overall = self.progress.add_task("all rounds", total=None)
        self.cells: dict[tuple[str, int], Any] = {}
        self.started = False
        self.done = self.total = 0
        return self

    def on_event(self, event: Any) -> None:
        p, key = self.progress, (event.strategy, event.seed)
        if event.kind == "start":  # the run is validated: show the header, then the bars
            self.print_header(event.record)
            p.start()
            self.started = True
            self.done, self.total = event.round, event.num_rounds
            p.update(self.overall, total=event.num_rounds, completed=event.round)
        elif event.kind == "arm_start":
            self.cells[key] = p.add_task(
                f"{escape(event.strategy)} · seed {event.seed}", total=event.num_rounds, completed=event.round
            )
        elif event.kind == "round_end":
            r = event.record
            if key in self.cells:
                p.update(
                    self.cells[key],
                    completed=event.round + 1,
                    description=f"{escape(event.strategy)} · seed {event.seed} · acc {r['test_accuracy']:.3f}",
                )
            # Recomputed rounds of a restarted cell were already counted as stored (see PlainProgress).
            self.done = min(self.done + 1, self.total) if self.total else self.done + 1
            p.update(self.overall, completed=self.done)
        elif event.kind == "arm_end" and key in self.cells:
            p.remove_task(self.cells.pop(key))

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.progress.stop()


def display_for(mode: str, console: Console, header: Sequence[str]) -> NoProgress:
    """The display of a ``--progress`` mode (``auto``: bars on a terminal, plain lines otherwise)."""
    if mode == "auto":
        mode = "bar" if console.is_terminal else "plain"
    return {"bar": BarProgress, "plain": PlainProgress}.get(mode, NoProgress)(console, header)
