"""Statistics of a bench's records: per-arm accuracy, area under the curve, the paired penalty against
``random``, compute ratios, the split of the gap (``--counterfactual``) and labeled-set overlap, each
with a 95% Student-t confidence interval over seeds. Pure functions of the records; nothing here runs,
reads files or prints."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from activews.diagnostics import RECORD_FIELDS
from activews.engine.continual import continual_summary, is_continual

__all__ = ["jaccard", "mean_ci", "summarize"]


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, list[float] | None]:
    """Mean and two-sided Student-t confidence interval (``None`` with fewer than 2 values)."""
    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean())
    if len(arr) < 2:
        return mean, None
    from scipy import stats  # imported on first use: scipy.stats takes ~0.4 s to import

    half = float(stats.t.ppf(0.5 + level / 2, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr)))
    return mean, [mean - half, mean + half]


def _area(accuracies: Sequence[float]) -> float:
    """Area under the accuracy-per-round curve, normalized by the number of intervals (in [0, 1])."""
    a = np.asarray(accuracies, dtype=float)
    return float(a[0]) if len(a) == 1 else float(np.trapezoid(a) / (len(a) - 1))


def _mean_field(rows: Sequence[dict[str, Any]], key: str) -> float | None:
    """Mean of ``key`` over ``rows``; None when a row lacks it or holds None (hand-made records, or a
    :class:`~activews.roundlog.RoundLog` that was not given the field)."""
    values = [row.get(key) for row in rows]
    return float(np.mean(values)) if values and all(v is not None for v in values) else None


def _reached_target(rows: Sequence[dict[str, Any]]) -> float | None:
    """Share of rounds that stopped at the target accuracy; None when a row records no stop reason."""
    if any(row.get("stop_reason") is None for row in rows):
        return None
    return float(np.mean([row["stop_reason"] == "target" for row in rows]))


def _field_means(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, float | None]:
    """Mean over seeds of each of ``keys`` the records hold (None where no seed has a value)."""
    out: dict[str, float | None] = {}
    for key in keys:
        if any(key in row for row in rows):
            values = [row[key] for row in rows if row.get(key) is not None]
            out[key] = float(np.mean(values)) if values else None
    return out


_DIAGNOSTIC_FIELDS = tuple(key for fields in RECORD_FIELDS.values() for key in fields)
_CONTINUAL_ROUND_FIELDS = ("task", "task_accuracy", "seen_accuracy", "online_accuracy", "n_train")
"""A shifting stream's per-round fields (and ``n_train`` of a replay setting) averaged in ``per_round``."""


def _labeled_sets(rows: Sequence[dict[str, Any]]) -> list[set[int]] | None:
    """The labeled set after each round, from the records' ``new_indices`` (None if not recorded)."""
    if not rows or any("new_indices" not in row for row in rows):
        return None
    out, current = [], set()
    for row in rows:
        current = current | set(row["new_indices"])
        out.append(current)
    return out


def jaccard(a: set[int], b: set[int]) -> float:
    """``|a & b| / |a | b|`` (1.0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def _gap_split(
    seeds: dict[int, list[dict[str, Any]]], ref: dict[int, list[dict[str, Any]]], paired: list[int]
) -> dict[str, Any]:
    """Final-round split of the gap to ``random`` and the overlap of the labeled sets, paired by seed.

    ``init_effect`` = counterfactual accuracy - the arm's (same data, fresh start vs the arm's start);
    ``selection_effect`` = random's accuracy - the counterfactual's (fresh starts, random's data vs the
    arm's); they add up to the penalty. ``overlap_with_random`` is the Jaccard index of the final labeled
    sets after each round from round 1 on, averaged over those rounds (the final sets alone say little
    when the stream ends with the whole pool labeled). Fields are present only when the records carry
    what they need.
    """
    out: dict[str, Any] = {}
    if paired and all(seeds[s][-1].get("counterfactual_accuracy") is not None for s in paired):
        init = [seeds[s][-1]["counterfactual_accuracy"] - seeds[s][-1]["test_accuracy"] for s in paired]
        select = [ref[s][-1]["test_accuracy"] - seeds[s][-1]["counterfactual_accuracy"] for s in paired]
        out["init_effect"], out["init_effect_ci"] = _stat(init)
        out["selection_effect"], out["selection_effect_ci"] = _stat(select)
    overlaps = []
    for s in paired:
        mine, theirs = _labeled_sets(seeds[s]), _labeled_sets(ref[s])
        if mine is None or theirs is None:
            return out
        per_round = [jaccard(a, b) for a, b in zip(mine[1:], theirs[1:], strict=True)]
        if per_round:
            overlaps.append(sum(per_round) / len(per_round))
    if overlaps:
        out["overlap_with_random"], out["overlap_with_random_ci"] = _stat(overlaps)
    return out


def _stat(values: Sequence[float]) -> tuple[float | None, list[float] | None]:
    return mean_ci(values) if values else (None, None)


def summarize(
    records: Sequence[dict[str, Any]], arms: Sequence[str], reference: str = "random"
) -> list[dict[str, Any]]:
    """Per-arm summary: accuracy, area, paired penalty vs ``reference`` and compute ratios, with 95% CIs.

    Records are grouped by ``arm`` (falling back to ``strategy``). Penalties and ratios are paired by
    seed (and by round for the per-round penalty); seeds missing from either arm, or with fewer
    finished rounds, are left out of the pairing. ``seconds``/``cumulative_seconds``, ``n_labeled`` and
    ``stop_reason`` may be absent or None (a loop of one's own, see :class:`~activews.roundlog.RoundLog`):
    then ``time_ratio`` and ``seconds``, the per-round ``n_labeled``, or ``reached_target`` are None.
    """
    by_arm: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for rec in records:
        by_arm.setdefault(rec.get("arm", rec["strategy"]), {}).setdefault(rec["seed"], []).append(rec)
    for seeds in by_arm.values():
        for rows in seeds.values():
            rows.sort(key=lambda r: r["round"])
    ref = by_arm.get(reference, {})
    summary = []
    for name in arms:
        seeds = by_arm.get(name)
        if not seeds:
            continue
        paired = [s for s in seeds if s in ref and len(ref[s]) == len(seeds[s])]
        final = [rows[-1]["test_accuracy"] for rows in seeds.values()]
        areas = [_area([r["test_accuracy"] for r in rows]) for rows in seeds.values()]
        pen = [ref[s][-1]["test_accuracy"] - seeds[s][-1]["test_accuracy"] for s in paired]
        pen_auc = [
            _area([r["test_accuracy"] for r in ref[s]]) - _area([r["test_accuracy"] for r in seeds[s]])
            for s in paired
        ]
        steps_ratio = [
            seeds[s][-1]["cumulative_steps"] / max(1, ref[s][-1]["cumulative_steps"]) for s in paired
        ]
        timed = all(
            rows[-1].get("cumulative_seconds") is not None for s in paired for rows in (seeds[s], ref[s])
        )
        time_ratio = (
            [
                seeds[s][-1]["cumulative_seconds"] / max(1e-12, ref[s][-1]["cumulative_seconds"])
                for s in paired
            ]
            if timed
            else []
        )
        n_rounds = min(len(rows) for rows in seeds.values())
        per_round = []
        for r in range(n_rounds):
            diffs = [ref[s][r]["test_accuracy"] - seeds[s][r]["test_accuracy"] for s in paired]
            a_mean, a_ci = mean_ci([rows[r]["test_accuracy"] for rows in seeds.values()])
            p_mean, p_ci = _stat(diffs)
            per_round.append(
                {
                    "round": r,
                    "n_labeled": _mean_field([rows[r] for rows in seeds.values()], "n_labeled"),
                    "accuracy": a_mean,
                    "accuracy_ci": a_ci,
                    "penalty": p_mean,
                    "penalty_ci": p_ci,
                    "steps": _mean_field([rows[r] for rows in seeds.values()], "steps"),
                    "seconds": _mean_field([rows[r] for rows in seeds.values()], "seconds"),
                }
                | _field_means([rows[r] for rows in seeds.values()], _DIAGNOSTIC_FIELDS)
                | _field_means([rows[r] for rows in seeds.values()], _CONTINUAL_ROUND_FIELDS)
            )
        all_rows = [row for rows in seeds.values() for row in rows]
        first = next(iter(seeds.values()))[0]
        split = _gap_split(seeds, ref, paired)
        if is_continual(all_rows):
            split |= continual_summary(seeds, ref, [s for s in paired if is_continual(ref[s])], _stat)
        acc, acc_ci = mean_ci(final)
        auc, auc_ci = mean_ci(areas)
        penalty, penalty_ci = _stat(pen)
        auc_penalty, auc_penalty_ci = _stat(pen_auc)
        compute_ratio, compute_ratio_ci = _stat(steps_ratio)
        t_ratio, t_ratio_ci = _stat(time_ratio)
        summary.append(
            {
                "strategy": first["strategy"],
                "arm": name,
                "seeds": sorted(seeds),
                "rounds": n_rounds,
                "final_accuracy": acc,
                "final_accuracy_ci": acc_ci,
                "auc": auc,
                "auc_ci": auc_ci,
                "penalty": penalty,
                "penalty_ci": penalty_ci,
                "auc_penalty": auc_penalty,
                "auc_penalty_ci": auc_penalty_ci,
                "compute_ratio": compute_ratio,
                "compute_ratio_ci": compute_ratio_ci,
                "time_ratio": t_ratio,
                "time_ratio_ci": t_ratio_ci,
                "steps": float(np.mean([rows[-1]["cumulative_steps"] for rows in seeds.values()])),
                "seconds": _mean_field([rows[-1] for rows in seeds.values()], "cumulative_seconds"),
                "reached_target": _reached_target(all_rows),
                **split,
                "per_round": per_round,
            }
        )
    return summary
