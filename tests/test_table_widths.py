"""Every table at 60, 80 and 200 columns, with the longest real arm labels: no number, CI or label is cut.

Each table is rendered as a terminal shows it (rich, no colour) and checked against numbers formatted
here, independently of the table builders: every number of the summary appears whole (no digit, ``.``,
``,``, ``+`` or ``-`` right before or after it, so ``10,5`` inside ``10,522`` does not count and a CI
split over two lines is missing), arm labels appear whole, ``…`` never appears, and every header shown
is its full text or its documented short name (:data:`activews.report.layout.SHORT_HEADERS`).

Summaries are the stored default bench (``benchmarks/results``), copies of its rows under the longest
labels a sweep, a param grid, a plugin and ``activews advise`` make, and hand-made records; nothing trains.
"""

from __future__ import annotations

import copy
import io
import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import Field
from rich.console import Console
from torch import nn

from activews.cli.listing import _describe_acquisition, _describe_strategy, _registry_rows
from activews.cli.runs import _list_runs
from activews.engine.advise import Advice, TrialResult
from activews.engine.bench import BenchResult
from activews.engine.config import BenchConfig
from activews.engine.store import RunStore
from activews.engine.summary import summarize
from activews.engine.sweep import expand
from activews.params import Tune
from activews.report.advise import advice_tables
from activews.report.layout import SHORT_HEADERS
from activews.report.tables import TextTable, acquisitions_table, result_tables, strategies_table
from activews.reproduce import get_protocol, protocol_values, render
from activews.strategies import STRATEGIES, InitContext, InitStrategy, register_strategy
from activews.streams import ACQUISITIONS

ROOT = Path(__file__).resolve().parents[1]
BENCH_SUMMARY = ROOT / "benchmarks/results/default-active-mnist1d/summary.json"
ADVICE = ROOT / "benchmarks/results/advise-default-active-mnist1d/advice.json"
WIDTHS = (60, 80, 200)
PLUGIN = "mylab_layerwise_shrink_perturb"
"""A plugin strategy's name, registered in-process for this module (as ``--plugin`` does)."""
ELLIPSIS = "…"
_NUMBER_CHARS = r"\d.,+\-"


# ------------------------------------------------------------------------------------------- helpers


def rendered(table: Any, width: int) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(table)
    return buf.getvalue()


def whole(token: str) -> re.Pattern[str]:
    """``token`` with no number character right before or after it."""
    return re.compile(rf"(?<![{_NUMBER_CHARS}]){re.escape(token)}(?![{_NUMBER_CHARS}])")


def missing_tokens(text: str, tokens: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Tokens shown whole fewer times than expected: token -> (expected, found)."""
    out = {}
    for token, n in Counter(tokens).items():
        found = len(whole(token).findall(text))
        if found < n:
            out[token] = (n, found)
    return out


def _header_groups(text: str) -> Iterator[list[str]]:
    """The header texts of each table part drawn (its ``┃`` rows; a wrapped header's lines joined)."""
    group: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("┃"):
            group.append([cell.strip() for cell in line.split("┃")[1:-1]])
        elif group:
            yield [" ".join(row[i] for row in group if row[i]) for i in range(len(group[0]))]
            group = []


def header_problems(text: str, headers: Sequence[str]) -> list[str]:
    """Headers shown that are neither one of ``headers`` nor its short name (tables), or not one of
    ``headers`` (the one-block-per-row layout's ``  header: value`` lines, which use full headers)."""
    allowed = set(headers) | {SHORT_HEADERS.get(h, h) for h in headers}
    bad = [h for group in _header_groups(text) for h in group if h not in allowed]
    found = any(True for _ in _header_groups(text))
    for line in text.splitlines():
        m = re.match(r"  (\S.*?): ", line + " ")
        if m and "┃" not in text:
            found = True
            if m.group(1) not in headers:
                bad.append(m.group(1))
    if not found:
        bad.append("<no header shown at all>")
    return bad


def check(table: Any, width: int, tokens: Iterable[str], labels: Iterable[str] = ()) -> str:
    """Render ``table`` at ``width`` and check it (see the module docstring); returns the text."""
    text = rendered(table, width)
    assert ELLIPSIS not in text, text
    missing = missing_tokens(text, tokens)
    assert not missing, f"not shown whole (expected, found): {missing}\n{text}"
    for label in labels:
        if len(label) <= width:
            assert label in text, f"{label!r} cut\n{text}"
        else:  # wider than the terminal: it continues on the next line, nothing dropped
            assert label in "".join(line.rstrip() for line in text.splitlines()), f"{label!r}\n{text}"
    headers = table.headers
    bad = header_problems(text, headers)
    assert not bad, f"headers neither full nor documented short names: {bad}\n{text}"
    return text


# Independent formatting of the numbers, as the tables document them.


def acc(x: float) -> str:
    return f"{x * 100:.1f}"


def pts(x: float) -> str:
    return f"{x * 100:+.2f}"


def ci_pts(ci: Sequence[float], digits: int = 2) -> str:
    return f"[{ci[0] * 100:+.{digits}f}, {ci[1] * 100:+.{digits}f}]"


def ratio(x: float) -> str:
    return f"{x:.2f}"


def ci_ratio(ci: Sequence[float]) -> str:
    return f"[{ci[0]:+.2f}, {ci[1]:+.2f}]"


def penalty_tokens(summary: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in summary:
        out += [row["arm"], acc(row["final_accuracy"]), f"{row['reached_target']:.0%}"]
        if row["arm"] != "random":
            out += [pts(row["penalty"]), ci_pts(row["penalty_ci"]), pts(row["auc_penalty"])]
    return out


def compute_tokens(summary: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in summary:
        out += [row["arm"], f"{row['steps']:,.0f}", ratio(row["compute_ratio"])]
        out += [f"{row['seconds']:.1f}", ratio(row["time_ratio"])]
        if row["arm"] != "random":
            out.append(ci_ratio(row["compute_ratio_ci"]))
    return out


def selection_tokens(summary: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in summary:
        if row["arm"] == "random":
            continue
        out += [row["arm"], pts(row["penalty"]), ratio(row["overlap_with_random"])]
        if "init_effect" in row:
            for key in ("init_effect", "selection_effect"):
                # one cell: the effect and its CI (one digit), on one line
                out.append(f"{pts(row[key])} {ci_pts(row[key + '_ci'], 1)}")
    return out


def continual_accuracy_tokens(summary: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in summary:
        out += [row["arm"], acc(row["newest_task_accuracy"])]
        out += [acc(row["average_accuracy"]), acc(row["online_accuracy"])]
        if row["arm"] != "random":
            out += [pts(row["newest_task_accuracy_vs_ref"]), ci_pts(row["newest_task_accuracy_vs_ref_ci"])]
    return out


def continual_stability_tokens(summary: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in summary:
        out.append(row["arm"])
        for key in ("forgetting", "bwt"):
            out += [pts(row[key]), ci_pts(row[key + "_ci"])]
    return out


def per_task_tokens(summary: list[dict[str, Any]]) -> list[str]:
    out = []
    for row in summary:
        for entry in row["per_task"]:
            out.append(acc(entry["accuracy"]))
            if row["arm"] != "random":
                lo, hi = entry["vs_ref_ci"]
                out.append(f"{entry['vs_ref'] * 100:+.1f} [{lo * 100:+.1f}, {hi * 100:+.1f}]")
    return out


def result_table_tokens(table: TextTable, summary: list[dict[str, Any]]) -> list[str]:
    """The numbers ``table`` (one of :func:`result_tables`) must show, by its title."""
    for start, tokens in (
        ("Warm-start penalty", penalty_tokens),
        ("Compute vs", compute_tokens),
        ("Gap to random", selection_tokens),
        ("Labeled sets", selection_tokens),
    ):
        if table.title.startswith(start):
            return tokens(summary)
    if "forgetting and backward transfer" in table.title:
        return continual_stability_tokens(summary)
    assert table.title.startswith("Continual metrics"), table.title
    return continual_accuracy_tokens(summary)


# ---------------------------------------------------------------------------------------- the labels


@pytest.fixture(scope="module")
def plugin() -> Iterator[str]:
    """A strategy registered in-process under a long plugin name, with three parameters."""
    assert PLUGIN not in STRATEGIES

    @register_strategy(PLUGIN)
    class LayerwiseShrinkPerturb(InitStrategy):
        """Layer-wise shrink and perturb: each layer shrunk by its own factor, then fresh noise added.

        References:
            Ash & Adams, NeurIPS 2020, arXiv:1910.08475 (per layer, as a lab's plugin does it)
        """

        class Params(InitStrategy.Params):
            shrink: Annotated[float, Tune(0.0, 1.0)] = Field(0.4, ge=0.0, le=1.0)
            perturb: Annotated[float, Tune(1e-4, 1.0, log=True)] = Field(0.01, ge=0.0)
            first_layer_scale: float = Field(0.25, gt=0.0, le=1.0)

        reference = "Ash & Adams, NeurIPS 2020, arXiv:1910.08475 (section 4), applied per layer"

        def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
            return model

    try:
        yield PLUGIN
    finally:
        STRATEGIES.unregister(PLUGIN)


def grid_labels(strategy: str, grid: dict[str, list[Any]]) -> list[str]:
    """The arm labels ``activews bench --sweep`` / a ``[param_grid]`` gives ``strategy``'s grid."""
    cfg = BenchConfig.build(strategies=[strategy], param_grid={strategy: grid})
    return cfg.arms[2:]  # after random and warm


@pytest.fixture(scope="module")
def labels(plugin: str) -> list[str]:
    """The longest real arm labels: a sweep's, a three-parameter grid's (59 characters), a plugin's and
    ``activews advise``'s (tuned values to five digits)."""
    out = grid_labels("shrink_perturb", {"shrink": [0.6, 0.8]})  # --sweep shrink_perturb.shrink=0.6,0.8
    out += grid_labels("soft_shrink_perturb", {"shrink": [0.6], "sigma": [0.01], "noise": ["fresh_init"]})
    out += grid_labels("later_reset", {"fraction": [0.75]})
    out += grid_labels(plugin, {"shrink": [0.6], "perturb": [0.01]})
    out += [t["label"] for t in json.loads(ADVICE.read_text())["trials"][:2]]
    assert "shrink_perturb[shrink=0.6]" in out
    assert "soft_shrink_perturb[shrink=0.6,sigma=0.01,noise=fresh_init]" in out
    assert f"{PLUGIN}[shrink=0.6,perturb=0.01]" in out
    assert "soft_shrink_perturb[shrink=0.99978,sigma=0.007]" in out  # advise's
    return out


# ------------------------------------------------------------------------------------------ summaries


def bench_summary() -> list[dict[str, Any]]:
    """The stored default bench's summary rows (random, warm, shrink_perturb)."""
    return json.loads(BENCH_SUMMARY.read_text())["arms"]


def long_label_summary(labels: list[str]) -> list[dict[str, Any]]:
    """The stored summary with its shrink_perturb row repeated under each long label, the numbers moved
    so that each row's differ (one row with a 7-digit step count and a CI of three-digit points)."""
    base = bench_summary()
    random, warm, sp = base
    rows = [random, warm]
    for k, label in enumerate(labels, 1):
        row = copy.deepcopy(sp) | {"arm": label}
        row["final_accuracy"] = sp["final_accuracy"] - 0.0137 * k
        row["penalty"] = random["final_accuracy"] - row["final_accuracy"]
        row["penalty_ci"] = [row["penalty"] - 0.0091 * k, row["penalty"] + 0.0077 * k]
        row["auc_penalty"] = sp["auc_penalty"] + 0.0043 * k
        row["reached_target"] = 1 - k / 16
        row["steps"] = sp["steps"] * (1 + 0.37 * k)
        row["compute_ratio"] = row["steps"] / random["steps"]
        row["compute_ratio_ci"] = [row["compute_ratio"] - 0.013 * k, row["compute_ratio"] + 0.021 * k]
        row["seconds"] = sp["seconds"] * (1 + 0.41 * k)
        row["time_ratio"] = row["seconds"] / random["seconds"]
        row["overlap_with_random"] = 0.9 - 0.031 * k
        rows.append(row)
    wide = rows[-1]
    wide["steps"] = 1_234_567.0
    wide["penalty"], wide["penalty_ci"] = -0.5012, [-1.3062, 1.4071]
    return rows


def with_selection_split(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``--counterfactual``'s split of each arm's gap to random, made up (init + selection = penalty)."""
    rows = copy.deepcopy(summary)
    for k, row in enumerate(rows):
        if row["arm"] == "random":
            continue
        init = row["penalty"] * (0.3 + 0.05 * k)
        row["init_effect"], row["init_effect_ci"] = init, [init - 0.0123, init + 0.0211]
        sel = row["penalty"] - init
        row["selection_effect"], row["selection_effect_ci"] = sel, [sel - 0.0315, sel + 0.0102]
    return rows


def _lcg(seed: int) -> Iterator[float]:
    x = seed
    while True:
        x = (x * 1103515245 + 12345) % 2**31
        yield x / 2**31


def continual_records(arms: Sequence[str], seeds: Sequence[int] = (0, 1, 2)) -> list[dict[str, Any]]:
    """A 3-task shifting stream, 2 rounds per task, accuracies drawn from a fixed generator."""
    draw = _lcg(7)
    records = []
    for arm in arms:
        for seed in seeds:
            cumulative = 0
            for r in range(6):
                task = r // 2
                accs = [0.05 + 0.9 * next(draw) for _ in range(3)]
                steps = 1000 + int(9000 * next(draw))
                cumulative += steps
                records.append(
                    {
                        "arm": arm,
                        "strategy": arm.split("[")[0],
                        "seed": seed,
                        "round": r,
                        "n_labeled": 500 * (r + 1),
                        "n_new": 500,
                        "task": task,
                        "task_accuracies": accs,
                        "task_accuracy": accs[task],
                        "seen_accuracy": sum(accs[: task + 1]) / (task + 1),
                        "online_accuracy": None if r == 0 else next(draw),
                        "test_accuracy": sum(accs[: task + 1]) / (task + 1),
                        "train_accuracy": 1.0,
                        "steps": steps,
                        "epochs": 1,
                        "cumulative_steps": cumulative,
                        "seconds": steps / 300,
                        "cumulative_seconds": cumulative / 300,
                        "stop_reason": "target",
                    }
                )
    return records


def continual_summary(labels: list[str]) -> list[dict[str, Any]]:
    arms = ["random", "warm", *labels]
    return summarize(continual_records(arms), arms)


# ------------------------------------------------------------------------------- the result tables


def _summaries(labels: list[str]) -> dict[str, list[dict[str, Any]]]:
    return {
        "default bench": bench_summary(),
        "long labels": long_label_summary(labels),
        "selection split": with_selection_split(long_label_summary(labels)),
        "continual": continual_summary(labels),
    }


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("case", ["default bench", "long labels", "selection split", "continual"])
def test_result_tables_show_every_number_whole(labels, case, width):
    summary = _summaries(labels)[case]
    tables = result_tables(summary)
    expected = 2 + (case != "continual") + 2 * (case == "continual")
    assert len(tables) == expected
    for table in tables:
        check(table, width, result_table_tokens(table, summary), [row["arm"] for row in summary])


def test_the_selection_split_cells_are_one_line_each(labels):
    # The widest cells of a result table: "+1.23 [-0.1, +2.4]"; the table still fits 80 columns split.
    summary = with_selection_split(long_label_summary(labels))
    (table,) = [t for t in result_tables(summary) if t.title.startswith("Gap to random")]
    text = check(table, 80, selection_tokens(summary))
    assert "init [CI]" in text or "init effect [95% CI]" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_a_custom_reference_is_never_shortened(labels, width):
    summary = continual_summary(labels)
    reference = labels[1]  # vs shrink_perturb[shrink=0.8]
    tables = result_tables(summary, reference=reference)
    cont = [t for t in tables if t.title.startswith("Continual metrics") and "vs " + reference in t.headers]
    assert len(cont) == 1
    text = rendered(cont[0], width)
    assert ELLIPSIS not in text
    assert not header_problems(text, cont[0].headers), text


# ------------------------------------------------------------------------------- reproduce protocols


def experiments(name: str, flags: dict[str, Any], grid: dict[str, list[Any]] | None = None):
    return expand(protocol_values(get_protocol(name), flags, grid))


def bench_result(
    cfg: BenchConfig, finals: dict[str, list[float]], label: str = "", phase1: float = 1.0, rounds: int = 3
) -> BenchResult:
    """Arm ``a`` ends at test accuracy ``finals[a][i]`` on seed i; each round costs ``100 + 37 i + 53 k``
    steps for the arm's k-th position (a step ratio per arm), seconds in proportion."""
    records = []
    for k, spec in enumerate(cfg.arm_specs):
        for i, seed in enumerate(cfg.seeds):
            per_round = 100 + 37 * i + 53 * k
            for r in range(rounds):
                records.append(
                    {
                        "arm": spec.label,
                        "strategy": spec.strategy,
                        "seed": seed,
                        "round": r,
                        "n_labeled": 1000 * (r + 1),
                        "n_new": 1000,
                        "test_accuracy": finals[spec.label][i]
                        if r == rounds - 1
                        else 0.4 + 0.03 * r + 0.01 * i,
                        "train_accuracy": phase1 if r == 0 else 1.0,
                        "stop_reason": "target",
                        "steps": per_round,
                        "epochs": 1,
                        "seconds": per_round / 97,
                        "cumulative_steps": per_round * (r + 1),
                        "cumulative_seconds": per_round / 97 * (r + 1),
                    }
                )
    return BenchResult(cfg, records, summarize(records, cfg.arms), 1.0, label)


def _arm(result: BenchResult, arm: str) -> dict[str, Any]:
    return next(row for row in result.summary if row["arm"] == arm)


def gap_cell(result: BenchResult) -> str:
    """A Table-1 cell: ``random / warm (gap G [lo, hi])`` in points, one decimal."""
    r, w = _arm(result, "random"), _arm(result, "warm")
    lo, hi = w["penalty_ci"]
    return (
        f"{acc(r['final_accuracy'])} / {acc(w['final_accuracy'])} "
        f"(gap {acc(w['penalty'])} [{lo * 100:+.1f}, {hi * 100:+.1f}])"
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_two_phase_table_one(width):
    exps = experiments("two-phase", {"seeds": 3}, {"dataset": ["mnist1d", "digits"]})
    results = [
        bench_result(
            cfg,
            {"random": [0.8137 + k / 97, 0.8291, 0.7968], "warm": [0.7412, 0.7803 + k / 131, 0.7755]},
            label,
        )
        for k, (label, cfg) in enumerate(exps)
    ]
    (table,) = render(get_protocol("two-phase"), results, plot=False).tables
    assert len(table.headers) == 5  # dataset, then model x optimizer
    check(table, width, [gap_cell(r) for r in results], ["mnist1d", "digits"])


def sp_results() -> list[BenchResult]:
    grid = {"shrink_perturb": {"shrink": [0.2, 0.4, 0.6, 0.8], "perturb": [0.0, 0.001, 0.01, 0.1]}}
    ((_, cfg),) = experiments("shrink-perturb-grid", {"seeds": 2, "param_grid": grid})
    finals = {
        spec.label: [0.55 + k / 61, 0.56 + k / 59]
        for k, spec in enumerate(cfg.arm_specs)  # random and warm first
    }
    return [bench_result(cfg, finals)]


@pytest.mark.parametrize("width", WIDTHS)
def test_shrink_perturb_grid_tables(width):
    (result,) = sp_results()
    tables = render(get_protocol("shrink-perturb-grid"), [result], plot=False).tables
    assert len(tables) == 3
    arms = [row for row in result.summary if row["arm"].startswith("shrink_perturb[")]
    assert len(arms) == 16
    keys = ("final_accuracy", "compute_ratio", "time_ratio")
    for table, key in zip(tables, keys, strict=True):
        tokens = [acc(row[key]) if key == "final_accuracy" else ratio(row[key]) for row in arms]
        tokens += [f"{acc(_arm(result, a)['final_accuracy'])}%" for a in ("random", "warm")]
        text = check(table, width, tokens, ["shrink 0.2", "shrink 0.8"])
        for header in table.headers[1:]:
            assert header in text  # "perturb 0.001": a setting, never shortened


@pytest.mark.parametrize("width", WIDTHS)
def test_early_damage_curve(width):
    exps = experiments("early-damage", {"seeds": 2}, {"first_round_epochs": [0, 1, 5, 20, 100]})
    results = [
        bench_result(
            cfg,
            {"random": [0.8123, 0.8311], "warm": [0.8 - cfg.first_round_epochs / 997, 0.7987]},
            label,
            phase1=0.4 + cfg.first_round_epochs / 211,
        )
        for label, cfg in exps
    ]
    (table,) = render(get_protocol("early-damage"), results, plot=False).tables
    tokens = []
    for result in results:
        r, w = _arm(result, "random"), _arm(result, "warm")
        lo, hi = w["penalty_ci"]
        tokens += [acc(r["final_accuracy"]), acc(w["final_accuracy"]), ratio(w["compute_ratio"])]
        tokens += [f"{acc(w['penalty'])} [{lo * 100:+.1f}, {hi * 100:+.1f}]", "100%"]
        tokens.append(acc(0.4 + result.config.first_round_epochs / 211))
    check(table, width, tokens)


@pytest.mark.parametrize("width", WIDTHS)
def test_online_tables_with_long_labels(labels, width):
    long = labels[2]  # the three-parameter soft_shrink_perturb grid label
    ((_, cfg),) = experiments(
        "online",
        {
            "seeds": 2,
            "strategies": ["soft_shrink_perturb"],
            "param_grid": {
                "soft_shrink_perturb": {"shrink": [0.6], "sigma": [0.01], "noise": ["fresh_init"]}
            },
        },
    )
    assert cfg.arms == ["random", "warm", long]
    result = bench_result(cfg, {"random": [0.8211, 0.8402], "warm": [0.7713, 0.7866], long: [0.8072, 0.8121]})
    per_round, final = render(get_protocol("online"), [result], plot=False).tables
    tokens = []
    for row in result.summary:
        for p in row["per_round"]:
            tokens += [acc(p["accuracy"]), f"{p['seconds']:.1f}"]
    check(per_round, width, tokens, [f"{long} acc %", f"{long} s/round"])
    tokens = []
    for row in result.summary:
        lo, hi = row["final_accuracy_ci"]
        tokens.append(f"{acc(row['final_accuracy'])} [{lo * 100:.1f}, {hi * 100:.1f}]")
        tokens += [ratio(row["compute_ratio"]), ratio(row["time_ratio"])]
        if row["arm"] != "random":
            lo, hi = row["penalty_ci"]
            tokens.append(f"{acc(row['penalty'])} [{lo * 100:+.1f}, {hi * 100:+.1f}]")
    check(final, width, tokens, ["random", long])


def continual_protocol_tables(arms_labels: list[str]) -> tuple[list[TextTable], list[dict[str, Any]]]:
    ((_, cfg),) = experiments("permuted-inputs", {"seeds": 3})
    arms = ["random", "warm", *arms_labels]
    records = continual_records(arms)
    summary = summarize(records, arms)
    report = render(get_protocol("permuted-inputs"), [BenchResult(cfg, records, summary)], plot=False)
    return report.tables, summary


@pytest.mark.parametrize("width", [60, 80, 200])
def test_continual_protocol_tables(labels, width):
    # The sweep's labels: "shrink_perturb[shrink=0.6] vs random" is a header of the per-task table,
    # which at 60 columns is one block per row; "  HEADER: -17.1 [-171.0, +136.8]" is 62 wide there.
    tables, summary = continual_protocol_tables(labels[:2])
    accuracy, stability, per_task = tables
    arms = [row["arm"] for row in summary]
    check(accuracy, width, continual_accuracy_tokens(summary), arms)
    check(stability, width, continual_stability_tokens(summary), arms)
    check(per_task, width, per_task_tokens(summary), [f"{a} vs random" for a in arms[1:]])


@pytest.mark.parametrize("width", [60, 80, 200])
def test_continual_protocol_tables_with_advise_labels(labels, width):
    # Advise's labels (47 characters): at 80 columns the per-task table is one block per row, and its
    # "  LABEL vs random: +5.0 [-130.6, +140.7]" lines are wider than that (at 60 the header alone is).
    tables, summary = continual_protocol_tables(labels[-2:])
    arms = [row["arm"] for row in summary]
    for table, tokens in zip(
        tables,
        (continual_accuracy_tokens, continual_stability_tokens, per_task_tokens),
        strict=True,
    ):
        check(table, width, tokens(summary), arms)


# ---------------------------------------------------------------------------------------------- advise


def stored_advice() -> Advice:
    d = json.loads(ADVICE.read_text())
    return Advice(
        config=BenchConfig.build(**d["config"]),
        budget=d["budget"],
        time_budget=d["time_budget"],
        search_seeds=d["search_seeds"],
        confirm_seeds=d["confirm_seeds"],
        trials=[TrialResult(**t) for t in d["trials"]],
        references=d["references"],
        frontier=d["frontier"],
        recommendation=d["recommendation"],
        runner_up=d["runner_up"],
        confirmation=d["confirmation"],
        verdict=d["verdict"],
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_advise_tables(width):
    advice = stored_advice()
    frontier, trials, confirmation = advice_tables(advice)
    tokens = []
    for p in advice.frontier:
        tokens += [p["label"], f"{acc(p['accuracy'])} %", ratio(p["compute_ratio"]), ratio(p["time_ratio"])]
        tokens += [] if p["label"] == "random" else [pts(p["gain"])]
    check(frontier, width, tokens, [p["label"] for p in advice.frontier])
    tokens = []
    for t in advice.trials:
        tokens.append(str(t.number))
        if t.state == "complete":
            tokens += [pts(t.gain), ratio(t.compute_ratio)]
    check(trials, width, tokens, [t.label for t in advice.trials])
    tokens = []
    for row in advice.confirmation:
        lo, hi = row["final_accuracy_ci"]
        tokens += [
            f"{acc(row['final_accuracy'])} % [{lo * 100:.1f}, {hi * 100:.1f}]",
            ratio(row["time_ratio"]),
        ]
        if row["arm"] != "random":
            lo, hi = row["penalty_ci"]
            tokens.append(f"{pts(-row['penalty'])} [{-hi * 100:+.2f}, {-lo * 100:+.2f}]")
            lo, hi = row["compute_ratio_ci"]
            tokens.append(f"{ratio(row['compute_ratio'])} [{lo:.2f}, {hi:.2f}]")
    check(confirmation, width, tokens, [row["arm"] for row in advice.confirmation])


# --------------------------------------------------------------------------------------------- listings


def strategy_rows() -> list[dict[str, Any]]:
    blank = {"params": "-", "parameters": {}, "space": "-", "search_space": {}, "reference": ""}
    return _registry_rows(STRATEGIES, _describe_strategy, blank)


def acquisition_rows() -> list[dict[str, Any]]:
    blank = {"kind": "-", "params": "-", "parameters": {}, "reference": ""}
    return _registry_rows(ACQUISITIONS, _describe_acquisition, blank)


def default_tokens(rows: list[dict[str, Any]]) -> list[str]:
    """``key=default`` of every parameter (``shrink=0.4``): the start of each parameters line."""
    return [line.split(" (")[0] for row in rows for line in row["params"].split("\n") if line != "-"]


@pytest.mark.parametrize("width", WIDTHS)
def test_strategies_listing(plugin, width):
    rows = strategy_rows()
    names = [row["name"] for row in rows]
    assert {"shrink_perturb", "soft_shrink_perturb", "continual_backprop", plugin} <= set(names)
    tokens = default_tokens(rows)
    assert "shrink=0.4" in tokens and "first_layer_scale=0.25" in tokens
    text = check(strategies_table(rows), width, tokens, names)
    for name in names:  # a name is shown whole at the start of its row or block
        assert re.search(rf"(^|[│ ]){re.escape(name)}( |$)", text, re.M), name


@pytest.mark.parametrize("width", WIDTHS)
def test_acquisitions_listing(width):
    rows = acquisition_rows()
    names = [row["name"] for row in rows]
    assert {"margin", "entropy", "badge", "bald"} <= set(names)
    tokens = default_tokens(rows)
    assert "samples=20" in tokens
    check(acquisitions_table(rows), width, tokens, names)


@pytest.mark.parametrize("width", [60, 80, 200])
def test_strategy_parameter_lines_stay_whole(plugin, width):
    # "replacement_rate=1e-05 (>= 0.0, <= 1.0)" is one line of a label column's cell: shown on one line.
    # At 60 columns the listing is one block per row, "  parameters (default): " before it: 64 wide.
    rows = strategy_rows()
    lines = [line for row in rows for line in row["params"].split("\n") + row["space"].split("\n")]
    check(strategies_table(rows), width, lines)


# -------------------------------------------------------------------------------------------- runs list


def make_run(folder: Path, labels: list[str], done_cells: int, rounds: int) -> dict[str, Any]:
    """A run folder written by hand (the store ``activews bench`` writes; nothing trained)."""
    cfg = BenchConfig.build(
        strategies=["shrink_perturb"], param_grid={"shrink_perturb": {"shrink": [0.6, 0.8]}}, seeds=3
    )
    assert cfg.arms[2:] == labels[:2]
    folder.mkdir(parents=True)
    cells = [(0, s.label, seed, s.strategy, s.params) for seed in cfg.seeds for s in cfg.arm_specs]
    with RunStore(folder, create=True) as store:
        store.initialize({"experiments": [{"label": ""}]}, [("", cfg.model_dump(mode="json"))], cells)
        for _, arm, seed, strategy, _ in cells[:done_cells]:
            for r in range(rounds):
                record = {"arm": arm, "strategy": strategy, "seed": seed, "round": r}
                store.commit_round(0, record | {"test_accuracy": 0.5, "steps": 10, "seconds": 0.1})
            store.mark_done(0, arm, seed)
        created = float(store.meta()["created_at"])
    return {"cells": len(cells), "arms": len(cfg.arms), "seeds": 3, "created": created}


@pytest.mark.parametrize("width", WIDTHS)
def test_runs_list(tmp_path, labels, monkeypatch, capsys, width):
    root = tmp_path / "runs"
    names = [
        "20250601-120000-active-mnist1d",
        "20250601-120000-active-mnist1d-shrink_perturb.shrink=0.6,0.8",  # 60 characters
    ]
    runs = [make_run(root / names[0], labels, 12, 7), make_run(root / names[1], labels, 4, 3)]
    (root / "z_garbage").mkdir()
    (root / "z_garbage" / "store.sqlite").write_bytes(b"not sqlite \xff" * 100)
    monkeypatch.setenv("COLUMNS", str(width))
    monkeypatch.setenv("NO_COLOR", "1")
    assert _list_runs(root) == 0
    text = capsys.readouterr().out
    assert ELLIPSIS not in text
    tokens = []
    for run, done, rounds in zip(runs, (12, 4), (7, 3), strict=True):
        tokens += [f"{done}/{run['cells']}", str(done * rounds), str(run["arms"])]
        tokens.append(time.strftime("%Y-%m-%d", time.localtime(run["created"])))
    assert not missing_tokens(text, tokens), (missing_tokens(text, tokens), text)
    for name in [*names, "z_garbage"]:
        assert name in text, text
    headers = ["run", "created", "experiments", "arms", "seeds", "cells done", "rounds stored"]
    assert not header_problems(text, headers), text


# ------------------------------------------------------------------------------------ the layout bug


def test_stacked_value_wider_than_the_line():
    # The continual per-task table of a sweep (tasks x "ARM vs random") at 60 columns: three parts would
    # be needed, so it is one block per row. Each value fits 60 columns, each "  header: value" line
    # does not, and rich wraps it between words: inside the CI.
    headers = ["task", *(f"shrink_perturb[shrink={s}] vs random" for s in (0.6, 0.8)), "warm vs random"]
    table = TextTable(
        "T", headers, [["0", "-17.1 [-171.0, +136.8]", "+1.0 [-74.2, +76.2]", "-4.2 [-9.9, +1.5]"]]
    )
    text = rendered(table, 60)
    assert "┃" not in text  # one block per row
    assert not missing_tokens(text, ["[-171.0, +136.8]"]), text
