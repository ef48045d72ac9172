"""The counterfactual split of the gap to random (init vs selection) and the labeled-set overlap."""

from __future__ import annotations

import pytest

from activews.data import load_dataset
from activews.engine.arm import run_arm
from activews.engine.config import BenchConfig
from activews.engine.summary import jaccard, summarize
from activews.report import records_csv, selection_table

TINY = dict(n_examples=600, rounds=3, initial=100, query_size=60, seeds=1)


def record(arm: str, seed: int, r: int, acc: float, new: list[int], cf: float | None = None) -> dict:
    return {
        "arm": arm,
        "strategy": arm,
        "seed": seed,
        "round": r,
        "n_labeled": 0,
        "test_accuracy": acc,
        "steps": 10,
        "seconds": 0.1,
        "cumulative_steps": 10 * (r + 1),
        "cumulative_seconds": 0.1 * (r + 1),
        "stop_reason": "target",
        "new_indices": new,
        "counterfactual_accuracy": cf,
    }


def test_the_split_adds_up_to_the_penalty_and_the_overlap_is_a_jaccard_index():
    records = []
    for seed, (ra, wa, cf) in enumerate([(0.80, 0.70, 0.78), (0.82, 0.75, 0.77)]):
        records += [
            record("random", seed, 0, 0.5, [0, 1]),
            record("random", seed, 1, ra, [2, 3]),
            record("warm", seed, 0, 0.5, [0, 1]),
            record("warm", seed, 1, wa, [3, 4], cf),
        ]
    warm = next(row for row in summarize(records, ["random", "warm"]) if row["arm"] == "warm")
    # seed 0: penalty 0.10 = init 0.08 (0.78 - 0.70) + selection 0.02 (0.80 - 0.78); seed 1: 0.07 = 0.02 + 0.05
    assert warm["init_effect"] == pytest.approx((0.08 + 0.02) / 2)
    assert warm["selection_effect"] == pytest.approx((0.02 + 0.05) / 2)
    assert warm["init_effect"] + warm["selection_effect"] == pytest.approx(warm["penalty"])
    # final labeled sets {0,1,2,3} and {0,1,3,4}: 3 shared of 5
    assert warm["overlap_with_random"] == pytest.approx(3 / 5)
    assert jaccard({0, 1, 2, 3}, {0, 1, 3, 4}) == pytest.approx(0.6) and jaccard(set(), set()) == 1.0
    assert selection_table(summarize(records, ["random", "warm"])) is not None


def test_passive_records_carry_neither_and_the_table_is_skipped():
    records = [
        {
            k: v
            for k, v in record(a, 0, r, 0.6, []).items()
            if k not in ("new_indices", "counterfactual_accuracy")
        }
        for a in ("random", "warm")
        for r in (0, 1)
    ]
    rows = summarize(records, ["random", "warm"])
    assert all("init_effect" not in row and "overlap_with_random" not in row for row in rows)
    assert selection_table(rows) is None


@pytest.mark.parametrize("stream", ["active", "selective"])
def test_the_counterfactual_leaves_the_arm_unchanged(stream):
    extra = {"label_fraction": 0.5} if stream == "selective" else {}
    base = BenchConfig(stream=stream, **TINY, **extra)
    dataset = load_dataset("mnist1d", n_examples=600)
    plain = run_arm(base, dataset, "warm", 0)
    with_cf = run_arm(base.model_copy(update={"counterfactual": True}), dataset, "warm", 0)
    added = {"counterfactual_accuracy", "counterfactual_steps"}
    for a, b in zip(plain, with_cf, strict=True):
        assert set(b) - set(a) == added
        for key in a:
            if key not in ("seconds", "cumulative_seconds", "init_seconds", "select_seconds"):
                assert a[key] == b[key], key
    assert with_cf[0]["counterfactual_accuracy"] is None  # round 0: every arm starts fresh on the same data
    assert all(0 < r["counterfactual_accuracy"] <= 1 and r["counterfactual_steps"] > 0 for r in with_cf[1:])
    labeled = [i for r in with_cf for i in r["new_indices"]]
    assert (
        len(labeled) == len(set(labeled)) == with_cf[-1]["n_labeled"]
    )  # new_indices rebuild the labeled set
    csv_header = records_csv(with_cf).splitlines()[0]
    assert "new_indices" not in csv_header and "counterfactual_accuracy" in csv_header


def test_csv_keeps_summary_lists_and_drops_only_the_labeled_indices():
    rows = [{"arm": "warm", "seeds": [0, 1], "penalty_ci": [0.1, 0.2], "new_indices": [3, 4]}]
    header, line = records_csv(rows).splitlines()
    assert header == "arm,seeds,penalty_ci" and line == 'warm,"[0, 1]","[0.1, 0.2]"'
