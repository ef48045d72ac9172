"""How each protocol lays out its results as the paper does: Table 1 for ``two-phase``, accuracy and time
per round for ``online``, heat maps for ``shrink-perturb-grid``, the gap against the varied setting for
``early-damage`` and ``regularized``, and the continual metrics of a shifting stream
(:func:`_render_continual`). Renderers read summaries (computed by the engine) and return
tables and PNG figures; nothing here runs, computes statistics or prints."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from activews.engine.bench import BenchResult
from activews.engine.continual import CONTINUAL_METRICS
from activews.errors import ActivewsError
from activews.report.plots import continual_figure, png, pyplot
from activews.report.tables import (
    continual_tables,
    is_continual_summary,
    protocol_title,
)
from activews.reproduce.base import Protocol, ProtocolReport, ProtocolTable, Renderer
from activews.strategies import make_strategy


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    return "" if ci is None else f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def _arm(result: BenchResult, label: str) -> dict[str, Any] | None:
    for row in result.summary:
        if row["arm"] == label:
            return row
    return None


def _axes(results: Sequence[BenchResult]) -> list[str]:
    """The config fields that differ between the experiments (the grid axes), in field order."""
    if len(results) < 2:
        return []
    dumps = [r.config.model_dump() for r in results]
    return [k for k in dumps[0] if any(d[k] != dumps[0][k] for d in dumps[1:])]


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_value_text(v) for v in value)
    return str(value)


def _describe(result: BenchResult, keys: Sequence[str]) -> str:
    return " · ".join(_value_text(getattr(result.config, k)) for k in keys) or "all"


def _gap_row(result: BenchResult) -> dict[str, Any]:
    """Random and warm final accuracy and the paired gap (random - warm) of one experiment."""
    random_row, warm_row = _arm(result, "random"), _arm(result, "warm")
    return {
        "random": random_row["final_accuracy"] if random_row else None,
        "random_ci": random_row["final_accuracy_ci"] if random_row else None,
        "warm": warm_row["final_accuracy"] if warm_row else None,
        "warm_ci": warm_row["final_accuracy_ci"] if warm_row else None,
        "gap": warm_row["penalty"] if warm_row else None,
        "gap_ci": warm_row["penalty_ci"] if warm_row else None,
        "warm_compute_ratio": warm_row["compute_ratio"] if warm_row else None,
        "reached_target": _reached(result),
        "seeds": len(result.config.seeds),
    }


_TARGET_NOTE = (
    "Cells marked *: some rounds stopped before the training-accuracy target (plateau rule or epoch cap); "
    "penalties compare models trained to different criteria there (see records.csv, stop_reason)"
)


def _reached(result: BenchResult) -> float | None:
    """Fraction of the random and warm arms' rounds that reached the target (fixed-epoch rounds left out)."""
    rows = [
        r
        for r in result.records
        if r["arm"] in ("random", "warm") and r["stop_reason"] not in ("epochs", "empty")
    ]
    return sum(r["stop_reason"] == "target" for r in rows) / len(rows) if rows else None


def _seeds_note(results: Sequence[BenchResult]) -> str:
    seeds = sorted({len(r.config.seeds) for r in results})
    return f"{'/'.join(map(str, seeds))} seed{'s' if seeds != [1] else ''}; 95% CIs paired by seed"


# ------------------------------------------------------------------------------------------- two-phase


def _render_two_phase(protocol: Protocol, results: Sequence[BenchResult], plot: bool) -> ProtocolReport:
    axes = _axes(results)
    row_keys = [k for k in axes if k == "dataset"]
    # Columns are the settings that vary (Table 1: model x optimizer); one experiment still names its own.
    col_keys = [k for k in axes if k != "dataset"] or ["model", "optimizer"]
    rows: dict[str, dict[str, str]] = {}
    columns: list[str] = []
    data = []
    for result in results:
        gap = _gap_row(result)
        row, col = _describe(result, row_keys), _describe(result, col_keys)
        if row_keys == []:
            row = result.config.dataset
        if col not in columns:
            columns.append(col)
        mark = "" if gap["reached_target"] in (None, 1.0) else " *"
        rows.setdefault(row, {})[col] = (
            f"{_pct(gap['random'])} / {_pct(gap['warm'])} (gap {_pct(gap['gap'])}{_ci(gap['gap_ci'])}){mark}"
        )
        data.append({"experiment": result.label, "dataset": row, "setting": col} | gap)
    schedule = ",".join(f"{f:g}" for f in (results[0].config.schedule or ()))
    table = ProtocolTable(
        f"Two-phase ({schedule or 'passive'}): final test accuracy %, random init / warm start "
        f"(gap = random - warm, points; {_seeds_note(results)})",
        ["dataset", *columns],
        [[row, *(cells.get(c, "-") for c in columns)] for row, cells in rows.items()],
    )
    report = ProtocolReport([table], data=data)
    if any(d["reached_target"] not in (None, 1.0) for d in data):
        table.notes.append(_TARGET_NOTE)
    if plot:
        report.figures["two_phase.png"] = _gap_bars(
            data, "setting", "Two-phase: warm-start gap (random - warm) per setting, 95% CI"
        )
    return report


def _gap_bars(data: list[dict[str, Any]], key: str, title: str) -> bytes:
    plt = pyplot()
    labels = [f"{d['dataset']} · {d[key]}" if "dataset" in d else str(d[key]) for d in data]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(data) + 2), 3.6))
    gaps = [100 * (d["gap"] or 0.0) for d in data]
    err = [
        [100 * ((d["gap"] or 0) - d["gap_ci"][0]) if d["gap_ci"] else 0 for d in data],
        [100 * (d["gap_ci"][1] - (d["gap"] or 0)) if d["gap_ci"] else 0 for d in data],
    ]
    ax.bar(range(len(data)), gaps, yerr=err, capsize=3, color="#c44e52")
    ax.axhline(0, color="#444", lw=0.8)
    ax.set_xticks(range(len(data)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("gap (accuracy points)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return png(fig)


# ---------------------------------------------------------------------------------------------- online


def _render_online(protocol: Protocol, results: Sequence[BenchResult], plot: bool) -> ProtocolReport:
    report = ProtocolReport()
    axes = _axes(results)
    for result in results:
        arms = [row for row in result.summary]
        headers = ["round", "labeled"]
        for row in arms:
            headers += [f"{row['arm']} acc %", f"{row['arm']} s/round"]
        n_rounds = min(len(row["per_round"]) for row in arms)
        table_rows = []
        for r in range(n_rounds):
            cells = [str(r), f"{arms[0]['per_round'][r]['n_labeled']:.0f}"]
            for row in arms:
                pr = row["per_round"][r]
                seconds = pr["seconds"]
                cells += [_pct(pr["accuracy"]), "n/a" if seconds is None else f"{seconds:.1f}"]
            table_rows.append(cells)
        suffix = f" [{_describe(result, axes)}]" if axes else ""
        report.tables.append(
            ProtocolTable(
                f"Online: test accuracy and training time per round, mean over seeds{suffix}",
                headers,
                table_rows,
            )
        )
        report.tables.append(_final_table(result, suffix))
        report.data.append(
            {
                "experiment": result.label,
                "arms": [
                    {k: row[k] for k in ("arm", "final_accuracy", "penalty", "penalty_ci", "compute_ratio")}
                    | {"per_round": row["per_round"]}
                    for row in arms
                ],
            }
        )
        if plot:
            name = f"online{'_' + str(results.index(result)) if len(results) > 1 else ''}.png"
            report.figures[name] = _online_figure(result, suffix)
    return report


def _final_table(result: BenchResult, suffix: str = "") -> ProtocolTable:
    rows = []
    for row in result.summary:
        rows.append(
            [
                row["arm"],
                _pct(row["final_accuracy"]) + _ci(row["final_accuracy_ci"]).replace("+", ""),
                "-" if row["arm"] == "random" else _pct(row["penalty"]) + _ci(row["penalty_ci"]),
                "n/a" if row["compute_ratio"] is None else f"{row['compute_ratio']:.2f}",
                "n/a" if row["time_ratio"] is None else f"{row['time_ratio']:.2f}",
            ]
        )
    return ProtocolTable(
        f"Final round: accuracy %, penalty vs random (points), compute vs random{suffix}",
        ["arm", "accuracy %", "penalty", "steps ratio", "time ratio"],
        rows,
    )


def _online_figure(result: BenchResult, suffix: str) -> bytes:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for row in result.summary:
        x = [p["n_labeled"] for p in row["per_round"]]
        left.plot(x, [100 * p["accuracy"] for p in row["per_round"]], marker="o", ms=3, label=row["arm"])
        secs = [p["seconds"] for p in row["per_round"]]
        if all(s is not None for s in secs):
            right.plot(x, secs, marker="o", ms=3, label=row["arm"])
    left.set_xlabel("labeled examples")
    left.set_ylabel("test accuracy (%)")
    left.set_title("Test accuracy per round" + suffix, fontsize=9)
    right.set_xlabel("labeled examples")
    right.set_ylabel("training seconds in the round")
    right.set_title("Training time per round (paper Fig. 2, right)", fontsize=9)
    left.legend(fontsize=7)
    fig.tight_layout()
    return png(fig)


# ---------------------------------------------------------------------------------- shrink-perturb grid


def _grid_arms(result: BenchResult) -> dict[tuple[float, float], dict[str, Any]]:
    """``(shrink, perturb) -> summary row`` for every shrink_perturb arm (and the reference arms)."""
    cells: dict[tuple[float, float], dict[str, Any]] = {}
    for spec in result.config.arm_specs:
        row = _arm(result, spec.label)
        if row is None:
            continue
        if spec.strategy == "shrink_perturb":
            params = make_strategy(spec.strategy, spec.params).params
            cells[(float(params.shrink), float(params.perturb))] = row
    return cells


def _render_grid(protocol: Protocol, results: Sequence[BenchResult], plot: bool) -> ProtocolReport:
    report = ProtocolReport()
    axes = _axes(results)
    for i, result in enumerate(results):
        cells = _grid_arms(result)
        if not cells:
            raise ActivewsError(
                "shrink-perturb-grid needs shrink_perturb arms; keep --strategy shrink_perturb and its --sweep"
            )
        shrinks = sorted({k[0] for k in cells})
        perturbs = sorted({k[1] for k in cells})
        suffix = f" [{_describe(result, axes)}]" if axes else ""
        ref = {label: _arm(result, label) for label in ("random", "warm")}
        note = ", ".join(
            f"{label} {_pct(row['final_accuracy'])}% ({row['compute_ratio']:.2f}x steps)"
            for label, row in ref.items()
            if row is not None and row["compute_ratio"] is not None
        )
        for key, title, fmt in (
            ("final_accuracy", "final test accuracy %", lambda v: _pct(v)),
            ("compute_ratio", "optimizer steps vs random (cumulative)", lambda v: f"{v:.2f}"),
            ("time_ratio", "training time vs random (cumulative)", lambda v: f"{v:.2f}"),
        ):
            rows = []
            for s in shrinks:
                row = [f"shrink {s:g}"]
                for p in perturbs:
                    arm = cells.get((s, p))
                    row.append("-" if arm is None or arm[key] is None else fmt(arm[key]))
                rows.append(row)
            report.tables.append(
                ProtocolTable(
                    f"Shrink x perturb: {title}{suffix} (reference: {note})",
                    ["", *(f"perturb {p:g}" for p in perturbs)],
                    rows,
                )
            )
        report.data.append(
            {
                "experiment": result.label,
                "reference": {
                    label: None if row is None else {k: row[k] for k in ("final_accuracy", "compute_ratio")}
                    for label, row in ref.items()
                },
                "cells": [
                    {"shrink": s, "perturb": p}
                    | {
                        k: row[k]
                        for k in (
                            "arm",
                            "final_accuracy",
                            "penalty",
                            "penalty_ci",
                            "compute_ratio",
                            "time_ratio",
                        )
                    }
                    for (s, p), row in sorted(cells.items())
                ],
            }
        )
        if plot:
            tag = f"_{i}" if len(results) > 1 else ""
            for key, name, label, cmap in (
                ("final_accuracy", "accuracy", "final test accuracy (%)", "viridis"),
                ("compute_ratio", "compute", "optimizer steps vs random", "magma"),
            ):
                report.figures[f"heatmap_{name}{tag}.png"] = _heatmap(
                    cells, shrinks, perturbs, key, label, cmap, note + suffix
                )
    return report


def _heatmap(
    cells: dict[tuple[float, float], dict[str, Any]],
    shrinks: list[float],
    perturbs: list[float],
    key: str,
    label: str,
    cmap: str,
    note: str,
) -> bytes:
    plt = pyplot()
    grid = np.full((len(shrinks), len(perturbs)), np.nan)
    for (s, p), row in cells.items():
        value = row[key]
        if value is not None:
            grid[shrinks.index(s), perturbs.index(p)] = 100 * value if key == "final_accuracy" else value
    fig, ax = plt.subplots(figsize=(1.1 * len(perturbs) + 2.5, 0.7 * len(shrinks) + 1.8))
    image = ax.imshow(grid, cmap=cmap, aspect="auto", origin="lower")
    for a in range(len(shrinks)):
        for b in range(len(perturbs)):
            if not np.isnan(grid[a, b]):
                ax.text(
                    b,
                    a,
                    f"{grid[a, b]:.1f}" if key == "final_accuracy" else f"{grid[a, b]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white",
                )
    ax.set_xticks(range(len(perturbs)), [f"{p:g}" for p in perturbs])
    ax.set_yticks(range(len(shrinks)), [f"{s:g}" for s in shrinks])
    ax.set_xlabel("perturb (noise scale)")
    ax.set_ylabel("shrink")
    fig.colorbar(image, ax=ax, label=label)
    ax.set_title(f"Shrink-perturb grid (paper Fig. 8): {label}\n{note}", fontsize=8)
    fig.tight_layout()
    return png(fig)


# ------------------------------------------------------------------------ early damage and regularized


def _render_curve(field_name: str, axis_label: str, figure_title: str, log_x: bool) -> Renderer:
    def render_curve(protocol: Protocol, results: Sequence[BenchResult], plot: bool) -> ProtocolReport:
        others = [k for k in _axes(results) if k != field_name]
        groups: dict[str, list[dict[str, Any]]] = {}
        for result in results:
            warm = [r for r in result.records if r["arm"] == "warm" and r["round"] == 0]
            accs = [r["train_accuracy"] for r in warm if r["train_accuracy"] is not None]
            phase1 = sum(accs) / len(accs) if accs else None
            groups.setdefault(_describe(result, others), []).append(
                {"experiment": result.label, field_name: getattr(result.config, field_name)}
                | _gap_row(result)
                | {"phase1_train_accuracy": phase1}
            )
        report = ProtocolReport()
        for group, rows in groups.items():
            rows.sort(key=lambda d: math.inf if d[field_name] is None else d[field_name])
            suffix = f" [{group}]" if others else ""
            report.tables.append(
                ProtocolTable(
                    f"{figure_title}: final test accuracy % and gap (random - warm, points; "
                    f"{_seeds_note(results)}){suffix}",
                    [
                        axis_label,
                        "random %",
                        "warm %",
                        "gap",
                        "warm steps vs random",
                        "phase-1 train acc %",
                        "rounds at target",
                    ],
                    [
                        [
                            _value_text(d[field_name]) if d[field_name] is not None else "to target",
                            _pct(d["random"]),
                            _pct(d["warm"]),
                            _pct(d["gap"]) + _ci(d["gap_ci"]),
                            "n/a" if d["warm_compute_ratio"] is None else f"{d['warm_compute_ratio']:.2f}",
                            _pct(d["phase1_train_accuracy"]),
                            "n/a" if d["reached_target"] is None else f"{100 * d['reached_target']:.0f}%",
                        ]
                        for d in rows
                    ],
                )
            )
            report.data += [d | ({"group": group} if others else {}) for d in rows]
        if plot:
            report.figures[f"{protocol.name.replace('-', '_')}.png"] = _curve_figure(
                groups, field_name, axis_label, figure_title, log_x
            )
        return report

    return render_curve


def _curve_figure(
    groups: dict[str, list[dict[str, Any]]], field_name: str, axis_label: str, title: str, log_x: bool
) -> bytes:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for i, (group, all_rows) in enumerate(groups.items()):
        rows = [d for d in all_rows if d[field_name] is not None and d["gap"] is not None]
        for d in all_rows:  # the run trained to the target (early-damage's reference): a level line
            if d[field_name] is None and d["gap"] is not None:
                ax.axhline(
                    100 * d["gap"], color=f"C{i}", ls="--", lw=1, label="phase 1 trained to the target"
                )
        x = [float(d[field_name]) for d in rows]
        y = [100 * d["gap"] for d in rows]
        lo = [100 * (d["gap"] - d["gap_ci"][0]) if d["gap_ci"] else 0 for d in rows]
        hi = [100 * (d["gap_ci"][1] - d["gap"]) if d["gap_ci"] else 0 for d in rows]
        ax.errorbar(
            x, y, yerr=[lo, hi], marker="o", ms=4, capsize=3, label=group if len(groups) > 1 else None
        )
    ax.axhline(0, color="#444", lw=0.8)
    if log_x:  # decay strengths span decades and include 0: a linear zone up to the smallest one
        values = sorted(
            {float(d[field_name]) for rows in groups.values() for d in rows if d[field_name] is not None}
        )
        positive = [v for v in values if v > 0]
        linthresh = min(positive) if positive else 1e-4
        ax.set_xscale("symlog", linthresh=linthresh)
        ax.set_xlim(
            -0.3 * linthresh if 0 in values else linthresh / 2, (max(positive) if positive else 1) * 2
        )
        ax.set_xticks(values, [_value_text(v) for v in values])
    ax.set_xlabel(axis_label)
    ax.set_ylabel("gap: random - warm (accuracy points)")
    ax.set_title(f"{title} (95% CI)", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return png(fig)


# ------------------------------------------------------------------------------------------- continual

_REFERENCE = "random"


def _render_continual(protocol: Protocol, results: Sequence[BenchResult], plot: bool) -> ProtocolReport:
    """Shifting streams: per experiment, the continual tables ``activews bench`` prints (the same cells,
    from :func:`activews.report.tables.continual_rows`), a per-task table (end-of-task accuracy per arm
    and its paired difference to ``random``) and, with ``plot``, the per-task figure
    (:func:`activews.report.plots.continual_figure`). ``data`` holds per experiment and arm every
    continual metric with its CI, its difference to ``random`` with its CI, and ``per_task``."""
    if not any(is_continual_summary(r.summary) for r in results):
        raise ActivewsError(
            f"protocol {protocol.name!r} lays out continual metrics, and no experiment recorded them; "
            "run it with a shift between tasks (--shift permuted_inputs --tasks 3, for example)"
        )
    report = ProtocolReport()
    axes = _axes(results)
    for i, result in enumerate(results):
        summary = result.summary
        if not is_continual_summary(summary):
            continue
        suffix = f" [{_describe(result, axes)}]" if axes else ""
        for table in continual_tables(summary, reference=_REFERENCE):
            report.tables.append(dataclasses.replace(table, title=table.title + suffix))
        report.tables.append(_per_task_table(summary, suffix))
        report.data.append(
            {
                "experiment": result.label,
                "arms": [
                    {"arm": row["arm"], "strategy": row["strategy"]}
                    | {
                        f"{key}{end}": row.get(f"{key}{end}")
                        for key in CONTINUAL_METRICS
                        for end in ("", "_ci", "_vs_ref", "_vs_ref_ci")
                    }
                    | {"per_task": row["per_task"]}
                    for row in summary
                    if "per_task" in row
                ],
            }
        )
        if plot:
            figure = continual_figure(summary, protocol_title(result.config) + suffix)
            if figure is not None:
                report.figures[f"continual{'_' + str(i) if len(results) > 1 else ''}.png"] = figure
    return report


def _per_task_table(summary: list[dict[str, Any]], suffix: str = "") -> ProtocolTable:
    """Rows: tasks; columns: per arm, the accuracy % on the task at its end and (but for ``random``) the
    paired difference arm - random (points, 95% CI)."""
    arms = [row for row in summary if "per_task" in row]
    headers = ["task"]
    for row in arms:
        headers.append(f"{row['arm']} %")
        if row["arm"] != _REFERENCE:
            headers.append(f"{row['arm']} vs {_REFERENCE}")
    n_tasks = max((len(row["per_task"]) for row in arms), default=0)
    rows = []
    for t in range(n_tasks):
        cells = [str(t)]
        for row in arms:
            entry = row["per_task"][t] if t < len(row["per_task"]) else None
            cells.append("-" if entry is None else _pct(entry["accuracy"]))
            if row["arm"] != _REFERENCE:
                diff = None if entry is None else entry["vs_ref"]
                cells.append("-" if diff is None else f"{100 * diff:+.1f}{_ci(entry['vs_ref_ci'])}")
        rows.append(cells)
    return ProtocolTable(
        f"Accuracy % on each task at its end, and vs {_REFERENCE} (arm - {_REFERENCE}, points, "
        f"95% CI paired by seed){suffix}",
        headers,
        rows,
    )
