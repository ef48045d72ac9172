"""Continual-learning metrics of a shifting stream's records, per seed and paired against a reference arm.

A shifting stream's records carry, per round, its ``task``, the accuracy on every task's evaluation set
(``task_accuracies``) and the previous model's accuracy on the round's new examples
(``online_accuracy``). Let ``A[l][j]`` be the accuracy on task ``j`` after the last round of task ``l``
and ``T`` the number of tasks. Per seed:

- ``newest_task_accuracy`` = ``A[T-1][T-1]``: the newest task, at the end (plasticity);
- ``task_end_accuracy`` = mean over ``t`` of ``A[t][t]``: each task at its own end, averaged;
- ``plasticity_change`` = ``A[T-1][T-1] - A[0][0]``: how the newest task's accuracy moved from the first
  task to the last (negative: the network learns new tasks less well than it learned the first);
- ``average_accuracy`` = mean over ``j`` of ``A[T-1][j]``: every task, at the end (Lopez-Paz & Ranzato's
  ACC);
- ``forgetting`` = mean over ``j < T-1`` of ``max_{j <= l < T-1} A[l][j] - A[T-1][j]`` (Chaudhry et al.,
  2018); ``None`` with one task;
- ``bwt`` (backward transfer) = mean over ``j < T-1`` of ``A[T-1][j] - A[j][j]`` (Lopez-Paz & Ranzato,
  2017); ``None`` with one task;
- ``online_accuracy`` = mean over rounds 1, 2, ... of the previous round's model's accuracy on the round's
  new examples, before training on them (average online accuracy, Kumar et al., 2024).

The summary holds each metric's mean over seeds with its 95% CI, and ``<metric>_vs_ref``: the paired
difference arm minus reference (``random``) by seed, with its CI. Pure functions; nothing here runs.

References:
    Lopez-Paz & Ranzato, "Gradient episodic memory for continual learning", NeurIPS 2017; Chaudhry et
    al., "Riemannian walk for incremental learning", ECCV 2018; Kumar et al., "Maintaining plasticity in
    continual learning via regenerative regularization", CoLLAs 2024.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["CONTINUAL_METRICS", "continual_summary", "seed_metrics", "task_matrix"]

CONTINUAL_METRICS: dict[str, str] = {
    "newest_task_accuracy": "accuracy on the newest task at the end",
    "task_end_accuracy": "accuracy on each task at its end, averaged over tasks",
    "plasticity_change": "newest-task accuracy, last task minus first",
    "average_accuracy": "accuracy over every task at the end",
    "forgetting": "best earlier accuracy minus final accuracy, averaged over earlier tasks",
    "bwt": "backward transfer: final minus end-of-task accuracy, averaged over earlier tasks",
    "online_accuracy": "accuracy on each round's new examples before training on them",
}
"""Each continual metric and what it measures (definitions in the module docstring)."""


def is_continual(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether records come from a shifting stream (they carry per-task accuracies)."""
    return bool(rows) and all(row.get("task_accuracies") is not None for row in rows)


def task_matrix(rows: Sequence[dict[str, Any]]) -> list[list[float]]:
    """``A[l]``: the per-task accuracies after the last round of task ``l``, for each task reached
    (``rows`` of one arm and seed, in round order)."""
    last: dict[int, list[float]] = {}
    for row in rows:
        last[int(row["task"])] = [float(a) for a in row["task_accuracies"]]
    return [last[t] for t in sorted(last)]


def seed_metrics(rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """The continual metrics of one arm and seed (see the module docstring)."""
    a = task_matrix(rows)
    n = len(a)
    if not n:
        return dict.fromkeys(CONTINUAL_METRICS)
    last = n - 1
    earlier = range(last)
    online = [row["online_accuracy"] for row in rows[1:] if row.get("online_accuracy") is not None]
    return {
        "newest_task_accuracy": a[last][last],
        "task_end_accuracy": float(np.mean([a[t][t] for t in range(n)])),
        "plasticity_change": a[last][last] - a[0][0],
        "average_accuracy": float(np.mean(a[last][:n])),
        "forgetting": float(np.mean([max(a[k][j] for k in range(j, last)) - a[last][j] for j in earlier]))
        if last
        else None,
        "bwt": float(np.mean([a[last][j] - a[j][j] for j in earlier])) if last else None,
        "online_accuracy": float(np.mean(online)) if online else None,
    }


def continual_summary(
    seeds: dict[int, list[dict[str, Any]]],
    ref: dict[int, list[dict[str, Any]]],
    paired: Sequence[int],
    stat: Callable[[Sequence[float]], tuple[float | None, list[float] | None]],
) -> dict[str, Any]:
    """The continual fields of one arm's summary: each metric's mean and CI over seeds, its paired
    difference to the reference arm (``<metric>_vs_ref``, arm minus reference) and ``per_task``: per
    task, the end-of-task accuracy on it (``A[t][t]``), its paired difference to the reference, and the
    average over the tasks seen then."""
    mine = {s: seed_metrics(rows) for s, rows in seeds.items()}
    theirs = {s: seed_metrics(ref[s]) for s in paired}
    out: dict[str, Any] = {}
    for key in CONTINUAL_METRICS:
        values = [m[key] for m in mine.values() if m[key] is not None]
        out[key], out[f"{key}_ci"] = stat(values)
        diffs = [
            mine[s][key] - theirs[s][key]  # type: ignore[operator]
            for s in paired
            if mine[s][key] is not None and theirs[s][key] is not None
        ]
        out[f"{key}_vs_ref"], out[f"{key}_vs_ref_ci"] = stat(diffs)
    matrices = {s: task_matrix(rows) for s, rows in seeds.items()}
    ref_matrices = {s: task_matrix(ref[s]) for s in paired}
    n_tasks = min(len(m) for m in matrices.values())
    per_task = []
    for t in range(n_tasks):
        acc, acc_ci = stat([m[t][t] for m in matrices.values()])
        diff, diff_ci = stat(
            [matrices[s][t][t] - ref_matrices[s][t][t] for s in paired if len(ref_matrices[s]) > t]
        )
        seen, seen_ci = stat([float(np.mean(m[t][: t + 1])) for m in matrices.values()])
        per_task.append(
            {
                "task": t,
                "accuracy": acc,
                "accuracy_ci": acc_ci,
                "vs_ref": diff,
                "vs_ref_ci": diff_ci,
                "average_accuracy": seen,
                "average_accuracy_ci": seen_ci,
            }
        )
    out["per_task"] = per_task
    return out
