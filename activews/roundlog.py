"""Rounds of a training loop of one's own, recorded so that activews measures them like a bench.

A user who trains in their own loop adds one row per round (arm, seed, test accuracy, optimizer steps,
optionally training seconds and the labeled count); :class:`RoundLog` keeps the round index and the
cumulative compute, and hands the rows to :func:`~activews.engine.summary.summarize` (the statistics),
:mod:`activews.report` (the tables, figures and result files) as the bench's own records::

    log = RoundLog()
    log.add("random", seed=0, accuracy=0.84, steps=400)
    log.add("warm", seed=0, accuracy=0.81, steps=120)
    print(log.table())
"""

from __future__ import annotations

import io
import json
import math
import numbers
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from activews.engine.bench import BenchResult
from activews.engine.store import STORE_FILE
from activews.engine.summary import summarize
from activews.errors import ActivewsError
from activews.report.folder import write_run_folder
from activews.report.tables import result_tables

__all__ = ["RECORDED_WITH", "RoundLog", "is_roundlog_folder"]

RECORDED_WITH = "activews.RoundLog"
"""The ``recorded_with`` value of the ``summary.json`` that :meth:`RoundLog.save` writes."""


@dataclass
class _LoopResult(BenchResult):
    """A :class:`BenchResult` without a bench config (``config`` is None): what the report renders."""

    reference: str = "random"

    def to_dict(self) -> dict[str, Any]:
        return {"recorded_with": RECORDED_WITH, "reference": self.reference, "arms": self.summary}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _number(value: Any, name: str, fix: str) -> float:
    """``value`` as a finite float (a Python or NumPy number, or a one-element tensor)."""
    if isinstance(value, bool) or not hasattr(value, "__float__"):
        raise ActivewsError(f"{name} {value!r} is not a number; {fix}")
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):  # e.g. a tensor of several elements
        raise ActivewsError(f"{name} {value!r} is not one number; {fix}") from None
    if not math.isfinite(number):
        raise ActivewsError(f"{name} {number} is not a finite number; {fix}")
    return number


def _fraction(value: Any, name: str, what: str) -> float:
    """``value`` as a float in [0, 1]; a percentage (in (1, 100]) is refused with its fraction named."""
    number = _number(value, name, f"pass {what} as a fraction in [0, 1]")
    if not 0.0 <= number <= 1.0:
        fix = (
            f"pass a fraction ({number / 100:g}), not a percentage"
            if 1.0 < number <= 100.0
            else f"pass {what} as a fraction in [0, 1]"
        )
        raise ActivewsError(f"{name} {number!r} is not in [0, 1]: {fix}")
    return number


def _accuracies(value: Any) -> list[float]:
    """``task_accuracies`` as a non-empty list of fractions (a list, tuple, array or 1-D tensor)."""
    fix = "pass the accuracy on every task's evaluation set as a list, e.g. task_accuracies=[0.9, 0.4, 0.1]"
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise ActivewsError(f"task_accuracies {value!r} is not a list of numbers; {fix}")
    try:
        items = list(value)
    except TypeError:  # e.g. a 0-d tensor or array
        raise ActivewsError(f"task_accuracies {value!r} is not a list of numbers; {fix}") from None
    if not items:
        raise ActivewsError(f"task_accuracies is empty; {fix}")
    return [_fraction(a, f"task_accuracies[{j}]", f"the accuracy on task {j}") for j, a in enumerate(items)]


def _count(value: Any, name: str, what: str) -> int:
    """``value`` as an int >= 0."""
    if not _is_int(value):
        raise ActivewsError(f"{name} {value!r} is not a whole number; pass the number of {what} as an int")
    if value < 0:
        raise ActivewsError(f"{name} {value} is negative; pass the number of {what} (0 or more)")
    return int(value)


def is_roundlog_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds the files of :meth:`RoundLog.save` (its ``summary.json`` says so)."""
    try:
        saved = json.loads((Path(folder) / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and saved.get("recorded_with") == RECORDED_WITH


class RoundLog:
    """Rounds of a training loop of one's own, measured like the bench's arms.

    Add one row per round with :meth:`add`; :meth:`summary` gives the bench's per-arm summary (accuracy,
    paired penalty against the ``reference`` arm, step and time ratios, 95% CIs over seeds), :meth:`table`
    the tables ``activews bench`` prints, and :meth:`save` a run folder like the bench's.

    Args:
        reference: the arm penalties and compute ratios are measured against (the one that starts each
            round from fresh weights, as the bench's ``random``).

    Example::

        log = activews.RoundLog()
        for seed in range(3):
            for arm in ("random", "warm"):
                for rnd in my_rounds(seed):
                    ...  # train, counting optimizer steps; evaluate
                    log.add(arm, seed=seed, accuracy=test_accuracy, steps=steps)
        print(log.table())
    """

    def __init__(self, reference: str = "random") -> None:
        if not isinstance(reference, str) or not reference:
            raise ActivewsError(
                f"reference {reference!r} is not an arm name; pass a non-empty str such as 'random'"
            )
        self.reference = reference
        self._rows: list[dict[str, Any]] = []
        self._cells: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self._timed: bool | None = None  # whether the rows carry seconds (all of them, or none)
        self._tasks: int | None = None  # the number of tasks of a continual log (0: a stationary one)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"RoundLog(reference={self.reference!r}, arms={self.arms}, rounds={len(self._rows)})"

    @property
    def arms(self) -> list[str]:
        """The arms recorded so far: the reference first (if recorded), then the others in order of their
        first row."""
        seen = list(dict.fromkeys(row["arm"] for row in self._rows))
        return sorted(seen, key=lambda arm: arm != self.reference)

    def add(
        self,
        arm: str,
        *,
        seed: int,
        accuracy: float,
        steps: int,
        seconds: float | None = None,
        n_labeled: int | None = None,
        round: int | None = None,
        strategy: str | None = None,
        stop_reason: str | None = None,
        task: int | None = None,
        task_accuracies: Sequence[float] | None = None,
        online_accuracy: float | None = None,
    ) -> dict[str, Any]:
        """Record one round of ``arm`` for ``seed``.

        Args:
            arm: the arm's name (e.g. ``"random"``, ``"warm"``); penalties pair its rows with the
                reference arm's of the same seed, round by round.
            seed: the seed (an int); arms are paired by seed number.
            accuracy: test accuracy after the round, a fraction in [0, 1].
            steps: optimizer steps taken in this round (the cumulative count is kept here).
            seconds: training seconds of this round; give it on every row or on none (without it the
                summary's ``time_ratio`` and ``seconds`` are None).
            n_labeled: the labeled examples trained on in this round (None: figures plot by round).
            round: the round's index, to check: rounds of an (arm, seed) count up from 0, one per call;
                left out, the next index is used.
            strategy: the ``strategy`` field of the row (default: ``arm``).
            stop_reason: why training stopped (``"target"`` counts for the summary's ``reached_target``;
                without it on every row, ``reached_target`` is None).
            task: the round's task (a continual stream's; with ``task_accuracies``): an index into
                ``task_accuracies``, counting from 0 in each (arm, seed) and going up by at most 1 a round.
            task_accuracies: the accuracy after the round on every task's evaluation set (fractions;
                unseen tasks too, the same number on every row). Given on every row or on none: with
                them the summary holds the continual metrics (``newest_task_accuracy``, ``forgetting``,
                ``bwt``, ...) and the row ``task_accuracy`` and ``seen_accuracy``, as the bench's
                shifting streams record them.
            online_accuracy: the previous round's model's accuracy on this round's new examples, before
                training on them (a fraction; with ``task_accuracies``); the summary's
                ``online_accuracy`` averages it over rounds 1, 2, ... (round 0's is not counted).

        Returns:
            The row as recorded (a copy), in the bench's record form.

        Raises:
            ActivewsError: if a value is of the wrong type or out of range, the round is not the next
                one of its arm and seed, its task goes back or skips one, or the row gives seconds or
                task accuracies (or their number) unlike the rows before it.
        """
        if not isinstance(arm, str) or not arm:
            raise ActivewsError(f"arm {arm!r} is not an arm name; pass a non-empty str such as 'warm'")
        if not _is_int(seed):
            raise ActivewsError(f"seed {seed!r} is not an int; pass the seed as a whole number, e.g. seed=0")
        seed = int(seed)
        acc = _fraction(accuracy, "accuracy", "the test accuracy")
        n_steps = _count(steps, "steps", "optimizer steps taken in the round")
        if seconds is not None:
            seconds = _number(seconds, "seconds", "pass the round's training time in seconds")
            if seconds < 0:
                raise ActivewsError(
                    f"seconds {seconds:g} is negative; pass the round's training time (0 or more)"
                )
        if n_labeled is not None:
            n_labeled = _count(n_labeled, "n_labeled", "labeled examples trained on")
        if strategy is None:
            strategy = arm
        elif not isinstance(strategy, str) or not strategy:
            raise ActivewsError(f"strategy {strategy!r} is not a name; pass a non-empty str or leave it out")
        if stop_reason is not None and not isinstance(stop_reason, str):
            raise ActivewsError(
                f"stop_reason {stop_reason!r} is not a str; pass e.g. 'target' (trained to the target accuracy)"
            )
        rows = self._cells.get((arm, seed), [])
        where = f"of arm {arm!r} seed {seed}"
        if round is not None:
            index = _count(round, "round", "rounds before this one")
            if index < len(rows):
                raise ActivewsError(
                    f"round {index} {where} is already recorded (rounds 0-{len(rows) - 1}); add each round once"
                )
            if index > len(rows):
                raise ActivewsError(
                    f"round {index} {where} given, but round {len(rows)} comes next: add rounds in order, "
                    "counting from 0 (or leave round= out)"
                )
        timed = seconds is not None
        if self._timed is not None and timed != self._timed:
            raise ActivewsError(
                f"round {len(rows)} {where} {'has' if timed else 'has no'} seconds, but the rows before it "
                f"{'have none' if timed else 'have them'}: pass seconds= on every add or on none"
            )
        prev = rows[-1] if rows else None
        continual = self._continual_fields(
            task, task_accuracies, online_accuracy, prev, f"round {len(rows)} {where}"
        )
        self._timed = timed
        self._tasks = len(continual["task_accuracies"]) if continual else 0
        row = {
            "arm": arm,
            "strategy": strategy,
            "seed": seed,
            "round": len(rows),
            "n_labeled": n_labeled,
            "test_accuracy": acc,
            "stop_reason": stop_reason,
            "steps": n_steps,
            "seconds": seconds,
            "cumulative_steps": n_steps + (prev["cumulative_steps"] if prev else 0),
            "cumulative_seconds": (
                None if seconds is None else seconds + (prev["cumulative_seconds"] if prev else 0.0)
            ),
            **continual,
        }
        self._cells.setdefault((arm, seed), []).append(row)
        self._rows.append(row)
        return dict(row)

    def _continual_fields(
        self,
        task: Any,
        task_accuracies: Any,
        online_accuracy: Any,
        prev: dict[str, Any] | None,
        which: str,
    ) -> dict[str, Any]:
        """The continual fields of a row (empty for a stationary one), as the bench's shifting streams
        record them; checks them against the row before of the same arm and seed and the log's rows."""
        both = "pass task= and task_accuracies= on every add or on none"
        if task_accuracies is None:
            if task is not None:
                raise ActivewsError(
                    f"task {task!r} given without task_accuracies; pass task_accuracies= too (the accuracy "
                    "on every task's evaluation set)"
                )
            if online_accuracy is not None:
                raise ActivewsError(
                    "online_accuracy given without task_accuracies; pass task= and task_accuracies= too "
                    "(online accuracy is a continual metric)"
                )
            if self._tasks:
                raise ActivewsError(
                    f"{which} has no task_accuracies, but the rows before it have them: {both}"
                )
            return {}
        accuracies = _accuracies(task_accuracies)
        if task is None:
            raise ActivewsError(
                "task_accuracies given without task; pass task= too (the index of the round's task in "
                "task_accuracies, from 0)"
            )
        if not _is_int(task):
            raise ActivewsError(
                f"task {task!r} is not an int; pass the index of the round's task in task_accuracies, "
                "e.g. task=0"
            )
        task = int(task)
        if not 0 <= task < len(accuracies):
            raise ActivewsError(
                f"task {task} is out of range for {len(accuracies)} task accuracies (tasks 0-"
                f"{len(accuracies) - 1}); pass the round's task as an index into task_accuracies"
            )
        if self._tasks == 0:
            raise ActivewsError(f"{which} has task_accuracies, but the rows before it have none: {both}")
        if self._tasks is not None and len(accuracies) != self._tasks:
            raise ActivewsError(
                f"task_accuracies of {which} has {len(accuracies)} entries, but the rows before it have "
                f"{self._tasks}: pass the accuracy on every task ({self._tasks}) on every add"
            )
        if prev is None and task != 0:
            raise ActivewsError(
                f"{which} has task {task}, but the first round of an arm and seed is task 0: pass task=0"
            )
        if prev is not None and task < prev["task"]:
            raise ActivewsError(
                f"{which} has task {task}, but round {prev['round']} had task {prev['task']}: tasks never go "
                "back within an arm and seed; add its rounds in the order of their tasks"
            )
        if prev is not None and task > prev["task"] + 1:
            raise ActivewsError(
                f"{which} has task {task}, but round {prev['round']} had task {prev['task']}: tasks count up "
                f"one at a time; pass task={prev['task']} or task={prev['task'] + 1}"
            )
        online = (
            None
            if online_accuracy is None
            else _fraction(online_accuracy, "online_accuracy", "the accuracy on the round's new examples")
        )
        return {
            "task": task,
            "task_accuracy": accuracies[task],
            "seen_accuracy": sum(accuracies[: task + 1]) / (task + 1),
            "task_accuracies": accuracies,
            "online_accuracy": online,
        }

    def records(self) -> list[dict[str, Any]]:
        """The rows in the bench's record form, in the order they were added (copies).

        Each has ``arm``, ``strategy``, ``seed``, ``round``, ``n_labeled``, ``test_accuracy``,
        ``stop_reason``, ``steps``, ``seconds``, ``cumulative_steps`` and ``cumulative_seconds`` (None
        where :meth:`add` was not given the field); with task accuracies also ``task``,
        ``task_accuracy``, ``seen_accuracy``, ``task_accuracies`` and ``online_accuracy``.
        """
        return [dict(row) for row in self._rows]

    def summary(self) -> list[dict[str, Any]]:
        """The bench's per-arm summary: ``summarize(self.records(), self.arms, reference=self.reference)``.

        One dict per arm with ``final_accuracy``, ``penalty`` and ``penalty_ci`` (paired by seed against
        the reference arm; None when the reference has no seed with as many rounds), ``compute_ratio``,
        ``time_ratio`` (None without seconds), ``per_round``, ... (see ``docs/concepts.md``); with task
        accuracies also the continual metrics (``newest_task_accuracy``, ``forgetting``, ``bwt``,
        ``online_accuracy``, ..., each with its CI and ``_vs_ref``) and ``per_task``.
        """
        return summarize(self._rows, self.arms, reference=self.reference)

    def result(self) -> BenchResult:
        """The log as a :class:`~activews.engine.bench.BenchResult` with no config (``config`` is None),
        for :mod:`activews.report`'s functions (``figures(log.result(), reference=log.reference)``)."""
        return _LoopResult(None, self.records(), self.summary(), reference=self.reference)  # type: ignore[arg-type]

    def table(self, width: int | None = None) -> str:
        """The penalty and compute tables ``activews bench`` prints, as plain text (and the continual
        tables when the rows carry task accuracies).

        Args:
            width: characters per line (default: the terminal's width).
        """
        summary = self.summary()
        if not summary:
            return "no rounds recorded yet (add them with RoundLog.add)\n"
        buf = io.StringIO()
        console = Console(file=buf, width=width or shutil.get_terminal_size().columns, color_system=None)
        for table in result_tables(summary, reference=self.reference):
            console.print(table)
        return buf.getvalue()

    def save(self, folder: str | Path, *, plot: bool = True) -> list[Path]:
        """Write a run folder like the bench's: ``records.csv``, ``records.json``, ``summary.json``, the
        figures (``accuracy.png``, ``penalty.png``, ...) and ``report.html``.

        ``activews report FOLDER`` prints its tables and writes the figures again; :meth:`load` reads it
        back. Saving again into the same folder replaces the files.

        Args:
            folder: the folder (created if missing); it must be empty or hold an earlier save.
            plot: also draw the figures and ``report.html`` (matplotlib).

        Returns:
            The paths written.

        Raises:
            ActivewsError: if nothing was recorded, or ``folder`` is a file, a bench run or a folder
                holding other files.
        """
        if not self._rows:
            raise ActivewsError("nothing to save: no rounds recorded yet; add them with RoundLog.add first")
        path = Path(folder)
        fix = "choose another folder (an empty or new one, or one an earlier RoundLog.save wrote)"
        if path.exists() and not path.is_dir():
            raise ActivewsError(f"{str(path)!r} is a file, not a folder; {fix}")
        if (path / STORE_FILE).exists():
            raise ActivewsError(f"folder {str(path)!r} holds an activews bench run; {fix}")
        if path.is_dir() and any(path.iterdir()) and not is_roundlog_folder(path):
            raise ActivewsError(f"folder {str(path)!r} is not empty and holds no saved RoundLog; {fix}")
        then = "then call RoundLog.save again"
        return write_run_folder([self.result()], path, plot=plot, reference=self.reference, then=then)

    @classmethod
    def load(cls, folder: str | Path) -> RoundLog:
        """Read back a folder written by :meth:`save` (its ``records.json`` and reference arm).

        Raises:
            ActivewsError: if ``folder`` holds no saved RoundLog or its records do not load.
        """
        path = Path(folder)
        if not is_roundlog_folder(path):
            raise ActivewsError(
                f"no saved RoundLog in {str(path)!r} (no summary.json written by RoundLog.save); "
                "pass the folder given to RoundLog.save"
            )
        try:
            reference = json.loads((path / "summary.json").read_text()).get("reference", "random")
            rows = json.loads((path / "records.json").read_text())
        except (OSError, ValueError) as exc:
            raise ActivewsError(
                f"cannot read the RoundLog in {str(path)!r} ({exc}); save it again with RoundLog.save"
            ) from None
        log = cls(reference=reference)
        try:
            for row in rows:
                log.add(
                    row["arm"],
                    seed=row["seed"],
                    accuracy=row["test_accuracy"],
                    steps=row["steps"],
                    seconds=row.get("seconds"),
                    n_labeled=row.get("n_labeled"),
                    round=row["round"],
                    strategy=row.get("strategy"),
                    stop_reason=row.get("stop_reason"),
                    task=row.get("task"),
                    task_accuracies=row.get("task_accuracies"),
                    online_accuracy=row.get("online_accuracy"),
                )
        except (KeyError, TypeError, AttributeError, ActivewsError) as exc:
            raise ActivewsError(
                f"records.json in {str(path)!r} is not a RoundLog's ({type(exc).__name__}: {exc}); "
                "save it again with RoundLog.save"
            ) from None
        return log
