"""The continual metrics of a shifting stream, pinned on a hand-computed case, and how they are shown: the
console tables, the HTML page, the figure and the protocol renderer. Hand-made records; nothing trains."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from activews.engine.bench import BenchResult
from activews.engine.summary import summarize
from activews.report.folder import records_csv
from activews.report.html import html_report
from activews.report.plots import continual_figure, figures
from activews.report.tables import continual_rows, continual_tables, result_tables
from activews.reproduce.base import Protocol
from activews.reproduce.render import _render_continual

PNG = b"\x89PNG\r\n\x1a\n"
T_975_1 = 12.706204736174698
"""Student-t 97.5% quantile with 1 degree of freedom: two seeds' 95% CI is mean +- T * sd / sqrt(2)."""

# End-of-task accuracy matrices A[l][j]: accuracy on task j after the last round of task l (3 tasks).
END = {
    ("warm", 0): [[0.80, 0.10, 0.10], [0.90, 0.70, 0.10], [0.50, 0.55, 0.60]],
    ("warm", 1): [[0.70, 0.20, 0.20], [0.65, 0.60, 0.20], [0.60, 0.50, 0.40]],
    ("random", 0): [[0.80, 0.10, 0.10], [0.70, 0.80, 0.10], [0.60, 0.70, 0.80]],
    ("random", 1): [[0.70, 0.20, 0.20], [0.60, 0.75, 0.20], [0.50, 0.65, 0.70]],
}
# Each task has two rounds: a first one (these accuracies, on every task) and its last one (END). The first
# rounds must not count: forgetting's max runs over end-of-task accuracies only (warm seed 0's 0.95 on
# task 0 during task 1 is not its best end-of-task accuracy on task 0).
FIRST = {
    ("warm", 0): [[0.40, 0.10, 0.10], [0.95, 0.30, 0.10], [0.45, 0.35, 0.20]],
    ("warm", 1): [[0.30, 0.20, 0.20], [0.60, 0.30, 0.20], [0.55, 0.40, 0.20]],
    ("random", 0): [[0.40, 0.10, 0.10], [0.60, 0.40, 0.10], [0.55, 0.60, 0.50]],
    ("random", 1): [[0.30, 0.20, 0.20], [0.55, 0.40, 0.20], [0.45, 0.60, 0.50]],
}
# The previous round's model on each round's new examples (None in round 0: there is no previous model).
ONLINE = {
    ("warm", 0): [None, 0.3, 0.2, 0.5, 0.2, 0.4],
    ("warm", 1): [None, 0.2, 0.2, 0.4, 0.1, 0.3],
    ("random", 0): [None, 0.1, 0.1, 0.3, 0.1, 0.4],
    ("random", 1): [None, 0.2, 0.1, 0.3, 0.1, 0.3],
}


def continual_records() -> list[dict[str, Any]]:
    """Records of a 3-task shifting stream, 2 rounds per task, arms random and warm, seeds 0 and 1."""
    records = []
    for (arm, seed), end in END.items():
        steps = 0
        for r in range(6):
            task = r // 2
            accs = (end if r % 2 else FIRST[(arm, seed)])[task]
            steps += 10
            records.append(
                {
                    "arm": arm,
                    "strategy": arm,
                    "seed": seed,
                    "round": r,
                    "n_labeled": 100 * (r + 1),
                    "task": task,
                    "task_accuracies": list(accs),
                    "task_accuracy": accs[task],
                    "seen_accuracy": sum(accs[: task + 1]) / (task + 1),
                    "online_accuracy": ONLINE[(arm, seed)][r],
                    "test_accuracy": sum(accs[: task + 1]) / (task + 1),
                    "steps": 10,
                    "cumulative_steps": steps,
                    "seconds": 0.5,
                    "cumulative_seconds": 0.5 * (r + 1),
                    "stop_reason": "target",
                }
            )
    return records


def stationary_records() -> list[dict[str, Any]]:
    keep = ("task", "task_accuracies", "task_accuracy", "seen_accuracy", "online_accuracy")
    return [{k: v for k, v in row.items() if k not in keep} for row in continual_records()]


def two_seed_ci(a: float, b: float) -> list[float]:
    mean, half = (a + b) / 2, T_975_1 * abs(a - b) / 2  # sd / sqrt(2) of two values = |a - b| / 2
    return [mean - half, mean + half]


@pytest.fixture(scope="module")
def summary() -> list[dict[str, Any]]:
    return summarize(continual_records(), ["random", "warm"])


def _arm(summary: list[dict[str, Any]], arm: str) -> dict[str, Any]:
    return next(row for row in summary if row["arm"] == arm)


# ------------------------------------------------------------------------------------- the metrics


def test_metrics_match_the_hand_computed_case(summary) -> None:
    warm, random = _arm(summary, "warm"), _arm(summary, "random")
    # newest_task_accuracy = A[2][2]: warm 0.60 and 0.40 -> 0.50; random 0.80 and 0.70 -> 0.75.
    assert warm["newest_task_accuracy"] == pytest.approx(0.50)
    assert random["newest_task_accuracy"] == pytest.approx(0.75)
    # vs random, paired by seed: 0.60 - 0.80 = -0.20, 0.40 - 0.70 = -0.30 -> -0.25.
    assert warm["newest_task_accuracy_vs_ref"] == pytest.approx(-0.25)
    assert warm["newest_task_accuracy_vs_ref_ci"] == pytest.approx(two_seed_ci(-0.20, -0.30))
    assert warm["newest_task_accuracy_ci"] == pytest.approx(two_seed_ci(0.60, 0.40))
    # task_end_accuracy = mean_t A[t][t]: warm seed 0 (0.80 + 0.70 + 0.60) / 3 = 0.70, seed 1
    # (0.70 + 0.60 + 0.40) / 3 = 0.5667 -> 0.6333; random (0.80 + 0.80 + 0.80) / 3 = 0.80 and
    # (0.70 + 0.75 + 0.70) / 3 = 0.7167; vs random: -0.10 and -0.15 -> -0.125.
    assert warm["task_end_accuracy"] == pytest.approx((0.70 + 1.70 / 3) / 2)
    assert warm["task_end_accuracy_vs_ref"] == pytest.approx(-0.125)
    # plasticity_change = A[2][2] - A[0][0]: warm 0.60 - 0.80 = -0.20, 0.40 - 0.70 = -0.30 -> -0.25;
    # random 0.80 - 0.80 = 0 and 0.70 - 0.70 = 0; vs random -0.25.
    assert warm["plasticity_change"] == pytest.approx(-0.25)
    assert random["plasticity_change"] == pytest.approx(0.0)
    assert warm["plasticity_change_vs_ref"] == pytest.approx(-0.25)
    # average_accuracy = mean_j A[2][j]: warm (0.50 + 0.55 + 0.60) / 3 = 0.55 and (0.60 + 0.50 + 0.40) / 3
    # = 0.50 -> 0.525; random 0.70 and 0.6167 -> 0.6583; vs random -0.15 and -0.1167 -> -0.1333.
    assert warm["average_accuracy"] == pytest.approx(0.525)
    assert random["average_accuracy"] == pytest.approx((0.70 + 1.85 / 3) / 2)
    assert warm["average_accuracy_vs_ref"] == pytest.approx((-0.15 + 0.50 - 1.85 / 3) / 2)
    # forgetting = mean_{j<2} (max_{j<=l<2} A[l][j] - A[2][j]): warm seed 0: task 0 max(0.80, 0.90) - 0.50
    # = 0.40, task 1 0.70 - 0.55 = 0.15 -> 0.275 (the first round's 0.95 does not count); seed 1:
    # max(0.70, 0.65) - 0.60 = 0.10, 0.60 - 0.50 = 0.10 -> 0.10; mean 0.1875. Random: (0.20 + 0.10) / 2
    # = 0.15 both seeds; vs random 0.125 and -0.05 -> 0.0375.
    assert warm["forgetting"] == pytest.approx(0.1875)
    assert warm["forgetting_ci"] == pytest.approx(two_seed_ci(0.275, 0.10))
    assert random["forgetting"] == pytest.approx(0.15)
    assert warm["forgetting_vs_ref"] == pytest.approx(0.0375)
    # bwt = mean_{j<2} (A[2][j] - A[j][j]): warm seed 0 (0.50 - 0.80 + 0.55 - 0.70) / 2 = -0.225, seed 1
    # (0.60 - 0.70 + 0.50 - 0.60) / 2 = -0.10 -> -0.1625; random -0.15 both; vs random -0.075 and 0.05
    # -> -0.0125.
    assert warm["bwt"] == pytest.approx(-0.1625)
    assert random["bwt"] == pytest.approx(-0.15)
    assert warm["bwt_vs_ref"] == pytest.approx(-0.0125)
    # online_accuracy = mean over rounds 1-5: warm (0.3 + 0.2 + 0.5 + 0.2 + 0.4) / 5 = 0.32 and 1.2 / 5
    # = 0.24 -> 0.28; random 1.0 / 5 = 0.20 both; vs random 0.12 and 0.04 -> 0.08.
    assert warm["online_accuracy"] == pytest.approx(0.28)
    assert random["online_accuracy"] == pytest.approx(0.20)
    assert warm["online_accuracy_vs_ref"] == pytest.approx(0.08)


def test_per_task_entries(summary) -> None:
    per_task = _arm(summary, "warm")["per_task"]
    assert [p["task"] for p in per_task] == [0, 1, 2]
    # A[t][t] over seeds: (0.80 + 0.70) / 2, (0.70 + 0.60) / 2, (0.60 + 0.40) / 2.
    assert [p["accuracy"] for p in per_task] == pytest.approx([0.75, 0.65, 0.50])
    # vs random: (0 + 0) / 2; (0.70 - 0.80 + 0.60 - 0.75) / 2 = -0.125; -0.25.
    assert [p["vs_ref"] for p in per_task] == pytest.approx([0.0, -0.125, -0.25])
    assert per_task[1]["vs_ref_ci"] == pytest.approx(two_seed_ci(-0.10, -0.15))
    # Tasks seen at task t's end: mean(A[t][:t+1]): 0.75; ((0.90 + 0.70) / 2 + (0.65 + 0.60) / 2) / 2 =
    # 0.7125; 0.525 (the average accuracy).
    assert [p["average_accuracy"] for p in per_task] == pytest.approx([0.75, 0.7125, 0.525])


def test_per_round_fields(summary) -> None:
    per_round = _arm(summary, "warm")["per_round"]
    assert [p["task"] for p in per_round] == [0, 0, 1, 1, 2, 2]
    assert per_round[0]["online_accuracy"] is None
    assert per_round[1]["online_accuracy"] == pytest.approx(0.25)  # (0.3 + 0.2) / 2
    assert per_round[3]["seen_accuracy"] == pytest.approx(0.7125)
    assert per_round[3]["task_accuracy"] == pytest.approx(0.65)


# ------------------------------------------------------------------------------------------ tables


def test_continual_rows_hand_computed(summary) -> None:
    accuracy, stability = continual_rows(summary)
    # warm vs random on the newest task: -25.00, CI -0.25 +- T * 0.05 = [-88.53, +38.53] (points).
    assert accuracy == [
        (["random", "75.0", "ref", "", "65.8", "20.0"], None),
        (["warm", "50.0", "-25.00", "[-88.53, +38.53]", "52.5", "28.0"], None),
    ]
    # warm forgetting 0.1875 +- T * 0.0875 = [-92.43, +129.93]; BWT -0.1625 +- T * 0.0625.
    assert stability == [
        ["random", "+15.00", "[+15.00, +15.00]", "-15.00", "[-15.00, -15.00]"],
        ["warm", "+18.75", "[-92.43, +129.93]", "-16.25", "[-95.66, +63.16]"],
    ]


def _text(tables) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=100, color_system=None)
    for table in tables:
        console.print(table)
    return buf.getvalue()


def test_result_tables_add_the_continual_tables(summary) -> None:
    tables = result_tables(summary)
    assert len(tables) == 4  # penalty, compute, and the two continual tables
    text = _text(tables[2:])
    assert "Continual metrics (3 tasks): accuracy % at the end" in text
    assert "Continual metrics (3 tasks): forgetting and backward transfer" in text
    assert "│ warm   │     50.0 │    -25.00 │ [-88.53, +38.53] │  52.5 │     28.0 │" in text
    assert "│ random │     75.0 │       ref │" in text


def test_continual_tables_fit_80_columns(summary) -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=80, color_system=None)
    for table in continual_tables(summary):
        console.print(table)
    assert "…" not in buf.getvalue()


def test_style_marks_a_clear_difference() -> None:
    rows = [
        {"arm": "random", "newest_task_accuracy": 0.8},
        {"arm": "a", "newest_task_accuracy": 0.5, "newest_task_accuracy_vs_ref": -0.3,
         "newest_task_accuracy_vs_ref_ci": [-0.4, -0.2]},
        {"arm": "b", "newest_task_accuracy": 0.9, "newest_task_accuracy_vs_ref": 0.1,
         "newest_task_accuracy_vs_ref_ci": [0.05, 0.15]},
    ]  # fmt: skip
    accuracy, stability = continual_rows(rows)
    assert [style for _, style in accuracy] == [None, "red", "green"]
    # Metrics not recorded (one task: no forgetting or BWT) show as "-".
    assert accuracy[0][0] == ["random", "80.0", "ref", "", "-", "-"]
    assert stability[0] == ["random", "-", "-", "-", "-"]


def test_stationary_summary_has_no_continual_table() -> None:
    stationary = summarize(stationary_records(), ["random", "warm"])
    assert not any("newest_task_accuracy" in row for row in stationary)
    assert continual_tables(stationary) == []
    tables = result_tables(stationary)
    assert len(tables) == 2
    assert "Continual" not in _text(tables)


# ----------------------------------------------------------------------------- figures, page, csv


def test_figures_of_a_shifting_stream(summary) -> None:
    png = continual_figure(summary)
    assert png is not None and png[:8] == PNG
    figs = figures(BenchResult(None, continual_records(), summary))  # type: ignore[arg-type]
    assert figs["continual.png"][:8] == PNG
    page = html_report([BenchResult(None, continual_records(), summary)], [figs])  # type: ignore[arg-type]
    assert "Continual metrics (3 tasks)" in page and "alt='continual.png'" in page
    assert '<td class="n">[-88.53, +38.53]</td>' in page


def test_stationary_figures_and_page_unchanged() -> None:
    records = stationary_records()
    stationary = summarize(records, ["random", "warm"])
    assert continual_figure(stationary) is None
    figs = figures(BenchResult(None, records, stationary))  # type: ignore[arg-type]
    assert set(figs) == {"accuracy.png", "penalty.png", "compute.png", "frontier.png"}
    page = html_report([BenchResult(None, records, stationary)], [figs])  # type: ignore[arg-type]
    assert "Continual" not in page and "continual.png" not in page


def test_records_csv_keeps_task_accuracies_as_text() -> None:
    text = records_csv(continual_records())
    header, first = text.splitlines()[:2]
    assert header.split(",")[-5:] == [
        "task",
        "task_accuracies",
        "task_accuracy",
        "seen_accuracy",
        "online_accuracy",
    ]
    assert '"[0.4, 0.1, 0.1]"' in first


# ------------------------------------------------------------------------------------- the protocol


def test_render_continual(summary) -> None:
    protocol = Protocol("continual-test", "test", "test", {}, {}, _render_continual)
    result = BenchResult(None, continual_records(), summary)  # type: ignore[arg-type]
    report = _render_continual(protocol, [result], True)
    accuracy, stability, per_task = report.tables
    # The same cells as the console's tables.
    assert accuracy.rows == [cells for cells, _ in continual_rows(summary)[0]]
    assert stability.rows == continual_rows(summary)[1]
    assert accuracy.headers == ["arm", "newest %", "vs random", "95% CI", "avg %", "online %"]
    # Per task: A[t][t] per arm and warm - random, points (task 1: -12.5 +- T * 0.025 = [-44.3, +19.3]).
    assert per_task.headers == ["task", "random %", "warm %", "warm vs random"]
    assert per_task.rows == [
        ["0", "75.0", "75.0", "+0.0 [+0.0, +0.0]"],
        ["1", "77.5", "65.0", "-12.5 [-44.3, +19.3]"],
        ["2", "75.0", "50.0", "-25.0 [-88.5, +38.5]"],
    ]
    assert list(report.figures) == ["continual.png"]
    assert report.figures["continual.png"][:8] == PNG
    (data,) = report.data
    warm = next(arm for arm in data["arms"] if arm["arm"] == "warm")
    assert warm["forgetting"] == pytest.approx(0.1875)
    assert warm["bwt_vs_ref"] == pytest.approx(-0.0125)
    assert warm["online_accuracy_ci"] is not None
    assert [p["task"] for p in warm["per_task"]] == [0, 1, 2]
    assert "**Continual metrics (3 tasks)" in report.markdown()
    assert _render_continual(protocol, [result], False).figures == {}


def test_render_continual_needs_a_shifting_stream() -> None:
    from activews.errors import ActivewsError

    protocol = Protocol("continual-test", "test", "test", {}, {}, _render_continual)
    records = stationary_records()
    result = BenchResult(None, records, summarize(records, ["random", "warm"]))  # type: ignore[arg-type]
    with pytest.raises(ActivewsError, match="--shift"):
        _render_continual(protocol, [result], True)


def test_summary_csv_writes_per_task_as_json(summary) -> None:
    import csv
    import json

    rows = [{k: v for k, v in row.items() if k != "per_round"} for row in summary]
    parsed = list(csv.DictReader(io.StringIO(records_csv(rows))))
    per_task = json.loads(parsed[1]["per_task"])
    assert [p["task"] for p in per_task] == [0, 1, 2]
    assert per_task[2]["accuracy"] == pytest.approx(0.50)
