"""End-to-end benches on tiny configurations, and the summary statistics on hand-made records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from activews.data import from_arrays, load_dataset
from activews.engine.arm import ProgressEvent, run_arm
from activews.engine.bench import BenchResult, run_bench
from activews.engine.config import BenchConfig
from activews.engine.summary import summarize
from activews.errors import ActivewsError
from activews.report import RECORD_FIELDS

TINY = dict(
    dataset="mnist1d",
    n_examples=1500,
    rounds=3,
    initial=200,
    query_size=200,
    seeds=2,
    strategies=["shrink_perturb"],
)
ARMS = ["random", "warm", "shrink_perturb"]
SUMMARY_KEYS = set(
    "strategy final_accuracy penalty penalty_ci compute_ratio seconds steps auc auc_penalty time_ratio "
    "reached_target per_round seeds".split()
)
TIMING = {"seconds", "init_seconds", "select_seconds", "cumulative_seconds"}


def untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


@pytest.fixture(scope="module", params=["passive", "active"])
def bench(request) -> tuple[BenchResult, list[ProgressEvent]]:
    events: list[ProgressEvent] = []
    result = run_bench(BenchConfig.build(**TINY, stream=request.param), progress=events.append)
    return result, events


def test_summary_fields(bench):
    result, _ = bench
    assert [arm["strategy"] for arm in result.summary] == ARMS
    for arm in result.summary:
        assert SUMMARY_KEYS <= set(arm)
        assert 0.0 < arm["final_accuracy"] <= 1.0
        low, high = arm["penalty_ci"]
        assert low <= arm["penalty"] <= high
        assert arm["compute_ratio"] > 0 and arm["seconds"] > 0
        assert arm["seeds"] == [0, 1] and len(arm["per_round"]) == 3
    ref = result.arm("random")
    assert ref["penalty"] == 0.0 and ref["penalty_ci"] == [0.0, 0.0] and ref["compute_ratio"] == 1.0
    with pytest.raises(KeyError, match="no arm 'nope'"):
        result.arm("nope")
    assert result.to_dict() == {"config": result.config.model_dump(mode="json"), "arms": result.summary}


def test_records(bench):
    result, _ = bench
    assert len(result.records) == len(ARMS) * 2 * 3
    # streams that select their data also keep each round's new pool indices (for the labeled-set overlap)
    extra = {"new_indices"} if result.config.stream != "passive" else set()
    assert all(set(r) == set(RECORD_FIELDS) - {"experiment"} | extra for r in result.records)
    for r in result.records:
        if extra:
            assert len(r["new_indices"]) == r["n_new"]
    for arm in ARMS:
        for seed in (0, 1):
            rows = [r for r in result.records if (r["strategy"], r["seed"]) == (arm, seed)]
            assert [r["round"] for r in rows] == [0, 1, 2]
            assert [r["n_labeled"] for r in rows] == [200, 400, 600]
            assert [r["n_new"] for r in rows] == [200, 200, 200]
            assert [r["cumulative_steps"] for r in rows] == list(np.cumsum([r["steps"] for r in rows]))
            # batch 128 over 200, 400, 600 labeled examples: 2, 4 and 5 steps per epoch
            assert [r["steps"] for r in rows] == [
                r["epochs"] * math.ceil(n / 128) for r, n in zip(rows, (200, 400, 600), strict=True)
            ]


def test_arms_share_round_zero(bench):
    result, _ = bench
    by_seed = []
    for seed in (0, 1):
        rows = [
            {k: v for k, v in r.items() if k not in ("strategy", "arm")}
            for r in untimed(result.records)
            if r["seed"] == seed and r["round"] == 0
        ]
        assert len(rows) == len(ARMS) and all(row == rows[0] for row in rows)
        by_seed.append(rows[0]["test_accuracy"])
    assert by_seed[0] != by_seed[1]  # ... while the seed does matter


def test_same_config_same_numbers(bench):
    result, _ = bench
    dataset = load_dataset("mnist1d", n_examples=1500)
    for arm, seed in (("shrink_perturb", 1), ("random", 0)):
        again = run_arm(result.config, dataset, arm, seed)
        assert untimed(again) == untimed(
            [r for r in result.records if (r["strategy"], r["seed"]) == (arm, seed)]
        )


def test_summary_matches_records(bench):
    result, _ = bench
    final = {(r["strategy"], r["seed"]): r for r in result.records if r["round"] == 2}
    for arm in result.summary:
        name = arm["strategy"]
        accs = [final[name, s]["test_accuracy"] for s in (0, 1)]
        pens = [final["random", s]["test_accuracy"] - final[name, s]["test_accuracy"] for s in (0, 1)]
        ratios = [final[name, s]["cumulative_steps"] / final["random", s]["cumulative_steps"] for s in (0, 1)]
        assert arm["final_accuracy"] == pytest.approx(np.mean(accs))
        assert arm["penalty"] == pytest.approx(np.mean(pens))
        assert arm["compute_ratio"] == pytest.approx(np.mean(ratios))


def test_progress_events(bench):
    result, events = bench
    assert (events[0].kind, events[0].round, events[0].num_rounds) == ("start", 0, len(ARMS) * 2 * 3)
    events = events[1:]
    assert len(events) == len(ARMS) * 2 * (3 + 2)
    per_arm = [events[i : i + 5] for i in range(0, len(events), 5)]
    for group in per_arm:
        assert [e.kind for e in group] == ["arm_start", "round_end", "round_end", "round_end", "arm_end"]
        assert len({(e.strategy, e.seed) for e in group}) == 1
        assert all(e.num_rounds == 3 for e in group)
    assert [e.record for e in events if e.kind == "round_end"] == result.records


def test_query_size_larger_than_the_pool_fails_before_training():
    events: list[ProgressEvent] = []
    config = BenchConfig.build(**{**TINY, "query_size": 1000}, stream="passive")
    with pytest.raises(
        ActivewsError, match="the training pool has 1050; lower --initial, --query-size or --rounds"
    ):
        run_bench(config, progress=events.append)
    assert events == []


def test_user_arrays_with_kept_optimizer_state():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    X = rng.normal(size=(400, 5)) + y[:, None]
    config = BenchConfig.build(
        model="logreg",
        stream="passive",
        schedule=[0.5, 1.0],
        seeds=[3],
        strategies=["reset_to_init", "partial_reset"],
        keep_optimizer_state=True,
        lr=0.05,
        max_epochs=20,
    )
    result = run_bench(config, dataset=from_arrays(X, y))
    assert [a["strategy"] for a in result.summary] == ["random", "warm", "reset_to_init", "partial_reset"]
    assert [r["n_labeled"] for r in result.records if r["strategy"] == "warm"] == [140, 280]
    assert all(r["epochs"] <= 20 for r in result.records)
    assert result.arm("random")["penalty_ci"] is None  # one seed: no interval


# ------------------------------------------------------------------------------------------- summarize

T_975_2 = 4.302652729911275  # Student t quantile, 97.5%, 2 degrees of freedom


def record(strategy: str, seed: int, rnd: int, acc: float, steps: int) -> dict:
    return {
        "strategy": strategy,
        "seed": seed,
        "round": rnd,
        "n_labeled": 100 * (rnd + 1),
        "test_accuracy": acc,
        "steps": steps,
        "seconds": steps / 100,
        "cumulative_steps": steps,
        "cumulative_seconds": steps / 100,
        "stop_reason": "target",
    }


def hand_made() -> list[dict]:
    rows = []
    for seed, diff in enumerate((0.01, 0.02, 0.03)):
        rows += [
            record("random", seed, 0, 0.5, 100),
            record("random", seed, 1, 0.8, 300),
            record("warm", seed, 0, 0.5, 100),
            record("warm", seed, 1, 0.8 - diff, 100 + 50 * seed),
        ]
    return rows[::-1]  # order does not matter


def test_summarize_penalty_mean_and_t_interval():
    warm = summarize(hand_made(), ["random", "warm"])[1]
    assert warm["strategy"] == "warm" and warm["seeds"] == [0, 1, 2]
    assert warm["penalty"] == pytest.approx(0.02)
    half = T_975_2 * 0.01 / math.sqrt(3)  # the diffs' sample std (ddof=1) is 0.01
    assert warm["penalty_ci"] == pytest.approx([0.02 - half, 0.02 + half])
    assert warm["final_accuracy"] == pytest.approx(0.78)
    assert warm["compute_ratio"] == pytest.approx(np.mean([100 / 300, 150 / 300, 200 / 300]))
    assert warm["steps"] == pytest.approx(150)
    # area under the per-round accuracy (trapezoid over one interval) and its penalty: half the final one
    assert warm["auc"] == pytest.approx((0.5 + 0.78) / 2)
    assert warm["auc_penalty"] == pytest.approx(0.01)
    assert [p["penalty"] for p in warm["per_round"]] == pytest.approx([0.0, 0.02])
    assert [p["n_labeled"] for p in warm["per_round"]] == [100, 200]
    assert warm["reached_target"] == 1.0


def test_summarize_reference_and_unpaired_seeds():
    random_arm, warm = summarize(hand_made(), ["random", "warm", "absent"])
    assert (random_arm["penalty"], random_arm["compute_ratio"]) == (0.0, 1.0)
    # seed 3 has no reference run: it counts for accuracy but not for the paired penalty
    rows = hand_made() + [record("warm", 3, 0, 0.5, 100), record("warm", 3, 1, 0.1, 100)]
    warm = summarize(rows, ["random", "warm"])[1]
    assert warm["seeds"] == [0, 1, 2, 3]
    assert warm["penalty"] == pytest.approx(0.02)
    assert warm["final_accuracy"] == pytest.approx((0.79 + 0.78 + 0.77 + 0.1) / 4)
    # no reference arm at all: no penalty, no ratio
    alone = summarize([r for r in hand_made() if r["strategy"] == "warm"], ["warm"])[0]
    assert alone["penalty"] is None and alone["penalty_ci"] is None and alone["compute_ratio"] is None
