"""activews.RoundLog: rounds of a user's own training loop, measured like the bench's arms (its summary is
summarize's on the equivalent rows; its tables, files and ``activews report`` are the bench's)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import activews
from activews.cli import main
from activews.engine.summary import summarize
from activews.errors import ActivewsError
from activews.report import FIGURES, records_csv
from activews.roundlog import RoundLog, is_roundlog_folder

# (seed, arm) -> test accuracy per round; warm trails random by 1, 3 and 2 points in the final round
ACCURACY = {
    (0, "random"): [0.60, 0.72, 0.80],
    (0, "warm"): [0.60, 0.70, 0.79],
    (1, "random"): [0.58, 0.70, 0.82],
    (1, "warm"): [0.58, 0.69, 0.79],
    (2, "random"): [0.61, 0.71, 0.81],
    (2, "warm"): [0.61, 0.70, 0.79],
}
STEPS = {"random": [100, 200, 300], "warm": [100, 50, 40]}


def filled(seconds: bool = True) -> RoundLog:
    log = RoundLog()
    for (seed, arm), accs in ACCURACY.items():
        for r, acc in enumerate(accs):
            extra = {"seconds": STEPS[arm][r] / 100, "n_labeled": 100 * (r + 1)} if seconds else {}
            log.add(arm, seed=seed, accuracy=acc, steps=STEPS[arm][r], **extra)
    return log


def hand_rows() -> list[dict]:
    """The same rounds, built by hand in the bench's record form."""
    rows = []
    for (seed, arm), accs in ACCURACY.items():
        cum_steps, cum_seconds = 0, 0.0
        for r, acc in enumerate(accs):
            steps = STEPS[arm][r]
            cum_steps += steps
            cum_seconds += steps / 100
            rows.append(
                {
                    "arm": arm,
                    "strategy": arm,
                    "seed": seed,
                    "round": r,
                    "n_labeled": 100 * (r + 1),
                    "test_accuracy": acc,
                    "steps": steps,
                    "seconds": steps / 100,
                    "cumulative_steps": cum_steps,
                    "cumulative_seconds": cum_seconds,
                    "stop_reason": None,
                }
            )
    return rows


def test_summary_is_summarize_of_the_equivalent_rows():
    log = filled()
    assert log.arms == ["random", "warm"]
    assert log.summary() == summarize(hand_rows(), ["random", "warm"], reference="random")
    records = log.records()
    assert [(r["arm"], r["seed"], r["round"]) for r in records] == [
        (r["arm"], r["seed"], r["round"]) for r in hand_rows()
    ]
    for mine, theirs in zip(records, hand_rows(), strict=True):
        assert mine == pytest.approx(theirs)


def test_penalty_and_its_interval_match_a_hand_computation():
    warm = filled().summary()[1]
    diffs = [0.80 - 0.79, 0.82 - 0.79, 0.81 - 0.79]  # random minus warm, final round, paired by seed
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    half = stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert warm["arm"] == "warm" and warm["seeds"] == [0, 1, 2] and warm["rounds"] == 3
    assert warm["penalty"] == pytest.approx(0.02)
    assert warm["penalty_ci"] == pytest.approx([mean - half, mean + half])
    assert warm["final_accuracy"] == pytest.approx(0.79)
    assert warm["compute_ratio"] == pytest.approx(190 / 600)
    assert warm["time_ratio"] == pytest.approx(190 / 600)
    assert warm["steps"] == pytest.approx(190) and warm["seconds"] == pytest.approx(1.9)
    assert [p["n_labeled"] for p in warm["per_round"]] == [100, 200, 300]
    assert [p["penalty"] for p in warm["per_round"]] == pytest.approx([0.0, 4 / 300, 0.02])
    assert warm["reached_target"] is None  # no stop_reason given
    random_arm = filled().summary()[0]
    assert random_arm["penalty"] == 0.0 and random_arm["compute_ratio"] == 1.0


def test_without_seconds_no_time_ratio_and_the_tables_render():
    log = filled(seconds=False)
    random_arm, warm = log.summary()
    assert warm["time_ratio"] is None and warm["time_ratio_ci"] is None and warm["seconds"] is None
    assert warm["compute_ratio"] == pytest.approx(190 / 600)
    assert [p["n_labeled"] for p in warm["per_round"]] == [None, None, None]
    assert [p["seconds"] for p in warm["per_round"]] == [None, None, None]
    assert all(r["seconds"] is None and r["cumulative_seconds"] is None for r in log.records())
    text = log.table(width=120)
    assert "Warm-start penalty vs random" in text and "Compute vs random" in text
    warm_lines = [line for line in text.splitlines() if "│ warm" in line]
    assert len(warm_lines) == 2
    assert "79.0" in warm_lines[0] and "+2.00" in warm_lines[0]
    assert "0.32" in warm_lines[1] and warm_lines[1].rstrip("│ ").endswith("-")  # time ratio: not recorded


def test_table_is_the_bench_tables():
    text = filled().table(width=120)
    assert text.index("Warm-start penalty vs random") < text.index("Compute vs random")
    assert "ref" in text and "0.32" in text and "1.9" in text  # step ratio, warm's training seconds
    assert RoundLog().table() == "no rounds recorded yet (add them with RoundLog.add)\n"


def test_stop_reason_gives_reached_target():
    log = RoundLog()
    log.add("random", seed=0, accuracy=0.5, steps=10, stop_reason="target")
    log.add("random", seed=0, accuracy=0.6, steps=10, stop_reason="max_epochs")
    assert log.summary()[0]["reached_target"] == 0.5


def test_arms_without_the_reference_still_get_accuracy():
    log = RoundLog()
    for seed in (0, 1):
        log.add("warm", seed=seed, accuracy=0.7 + 0.1 * seed, steps=5)
    (warm,) = log.summary()
    assert warm["final_accuracy"] == pytest.approx(0.75)
    assert warm["penalty"] is None and warm["penalty_ci"] is None and warm["compute_ratio"] is None
    assert "n/a" in log.table(width=120)


def test_seeds_pair_by_number_and_other_references():
    log = RoundLog(reference="fresh")
    log.add("warm", seed=7, accuracy=0.70, steps=5)
    log.add("fresh", seed=3, accuracy=0.99, steps=5)  # no warm seed 3: not paired
    log.add("fresh", seed=7, accuracy=0.75, steps=5)
    assert log.arms == ["fresh", "warm"]
    fresh, warm = log.summary()
    assert warm["penalty"] == pytest.approx(0.05) and warm["seeds"] == [7]
    assert fresh["final_accuracy"] == pytest.approx(0.87)
    text = log.table(width=120)
    assert "Warm-start penalty vs fresh" in text and "ref" in text


def test_rounds_count_per_arm_and_seed():
    log = RoundLog()
    assert log.add("warm", seed=0, accuracy=0.5, steps=3)["round"] == 0
    assert log.add("warm", seed=1, accuracy=0.5, steps=3)["round"] == 0
    assert log.add("random", seed=0, accuracy=0.5, steps=3)["round"] == 0
    row = log.add("warm", seed=0, accuracy=0.6, steps=4, round=1)
    assert (row["round"], row["cumulative_steps"]) == (1, 7)
    assert log.add("warm", seed=0, accuracy=0.7, steps=5)["round"] == 2
    assert [(r["arm"], r["seed"], r["round"]) for r in log.records()] == [
        ("warm", 0, 0),
        ("warm", 1, 0),
        ("random", 0, 0),
        ("warm", 0, 1),
        ("warm", 0, 2),
    ]
    assert len(log) == 5
    row = log.add("mine", seed=np.int64(2), accuracy=np.float32(0.5), steps=np.int64(3), strategy="warm")
    assert (row["seed"], row["strategy"], row["arm"]) == (2, "warm", "mine") and type(row["seed"]) is int
    assert log.add("t", seed=0, accuracy=torch.tensor(0.25), steps=1)["test_accuracy"] == 0.25


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(accuracy=81.0),
            "accuracy 81.0 is not in [0, 1]: pass a fraction (0.81), not a percentage",
        ),
        (
            dict(accuracy=-0.1),
            "accuracy -0.1 is not in [0, 1]: pass the test accuracy as a fraction in [0, 1]",
        ),
        (dict(accuracy=float("nan")), "accuracy nan is not a finite number; pass the test accuracy"),
        (dict(accuracy="0.8"), "accuracy '0.8' is not a number; pass the test accuracy as a fraction"),
        (dict(accuracy=True), "accuracy True is not a number"),
        (dict(accuracy=torch.tensor([0.5, 0.6])), "is not one number; pass the test accuracy"),
        (
            dict(steps=-5),
            "steps -5 is negative; pass the number of optimizer steps taken in the round (0 or more)",
        ),
        (dict(steps=12.5), "steps 12.5 is not a whole number; pass the number of optimizer steps"),
        (dict(seed=1.5), "seed 1.5 is not an int; pass the seed as a whole number, e.g. seed=0"),
        (dict(seed="0"), "seed '0' is not an int"),
        (dict(seed=True), "seed True is not an int"),
        (dict(arm=""), "arm '' is not an arm name; pass a non-empty str such as 'warm'"),
        (dict(arm=3), "arm 3 is not an arm name"),
        (dict(seconds=-1.0), "seconds -1 is negative; pass the round's training time (0 or more)"),
        (dict(n_labeled=-1), "n_labeled -1 is negative; pass the number of labeled examples trained on"),
        (dict(round=-1), "round -1 is negative"),
        (dict(strategy=""), "strategy '' is not a name; pass a non-empty str or leave it out"),
        (dict(stop_reason=1), "stop_reason 1 is not a str; pass e.g. 'target'"),
    ],
)
def test_add_refuses_bad_values_with_one_line(kwargs, message):
    log = RoundLog()
    args = dict(arm="warm", seed=0, accuracy=0.8, steps=10) | kwargs
    with pytest.raises(ActivewsError) as err:
        log.add(args.pop("arm"), **args)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert len(log) == 0  # nothing recorded


def test_add_refuses_rounds_out_of_order_or_twice_and_mixed_seconds():
    log = RoundLog()
    log.add("warm", seed=0, accuracy=0.5, steps=1, seconds=0.1)
    log.add("warm", seed=0, accuracy=0.5, steps=1, seconds=0.1)
    with pytest.raises(
        ActivewsError, match=r"round 1 of arm 'warm' seed 0 is already recorded \(rounds 0-1\)"
    ):
        log.add("warm", seed=0, accuracy=0.5, steps=1, seconds=0.1, round=1)
    with pytest.raises(ActivewsError, match=r"round 5 of arm 'warm' seed 0 given, but round 2 comes next"):
        log.add("warm", seed=0, accuracy=0.5, steps=1, seconds=0.1, round=5)
    with pytest.raises(
        ActivewsError, match=r"round 1 of arm 'warm' seed 0 given, but round 0 comes next: .*from 0"
    ):
        RoundLog().add("warm", seed=0, accuracy=0.5, steps=1, round=1)
    with pytest.raises(
        ActivewsError, match="has no seconds, but the rows before it have them: pass seconds="
    ):
        log.add("random", seed=0, accuracy=0.5, steps=1)
    assert len(log) == 2
    with pytest.raises(ActivewsError, match="reference 3 is not an arm name"):
        RoundLog(reference=3)  # type: ignore[arg-type]


def test_save_writes_a_run_folder_that_loads_back(tmp_path):
    log = filled()
    folder = tmp_path / "mine"
    written = log.save(folder)
    names = {p.name for p in written}
    assert {"records.csv", "records.json", "summary.json", "report.html", *FIGURES} <= names
    assert all((folder / n).stat().st_size > 0 for n in names)
    assert is_roundlog_folder(folder)
    assert json.loads((folder / "records.json").read_text()) == log.records()
    assert (folder / "records.csv").read_text() == records_csv(log.records())
    saved = json.loads((folder / "summary.json").read_text())
    assert saved["recorded_with"] == "activews.RoundLog" and saved["reference"] == "random"
    assert [a["arm"] for a in saved["arms"]] == ["random", "warm"]
    assert saved["arms"][1]["penalty"] == pytest.approx(0.02)
    back = RoundLog.load(folder)
    assert back.records() == log.records() and back.summary() == log.summary()
    assert back.table(width=120) == log.table(width=120)
    # saving again, with more rounds, replaces the files
    log.add("warm", seed=0, accuracy=0.9, steps=1, seconds=0.01)
    log.save(folder, plot=False)
    assert len(RoundLog.load(folder)) == len(log)


def test_save_and_load_refuse_other_folders(tmp_path):
    with pytest.raises(ActivewsError, match="nothing to save: no rounds recorded yet"):
        RoundLog().save(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(
        ActivewsError, match="is not empty and holds no saved RoundLog; choose another folder"
    ):
        filled().save(tmp_path / "other")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ActivewsError, match="is a file, not a folder"):
        filled().save(tmp_path / "file")
    with pytest.raises(ActivewsError, match="no saved RoundLog in .*pass the folder given to RoundLog.save"):
        RoundLog.load(tmp_path / "other")


def test_activews_report_renders_a_saved_roundlog(tmp_path, capsys):
    folder = tmp_path / "mine"
    filled(seconds=False).save(folder, plot=False)
    assert not (folder / "report.html").exists()
    assert main(["report", str(folder), "--output", str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert "rounds of your own training loop (activews.RoundLog)" in out
    assert "Warm-start penalty vs random" in out and "+2.00" in out
    assert (tmp_path / "again" / "report.html").exists() and (tmp_path / "again" / "accuracy.png").exists()
    assert main(["report", str(folder)]) == 0  # into the folder itself
    assert (folder / "penalty.png").exists()


def test_top_level_name():
    assert activews.RoundLog is RoundLog


def _rounds(seed: int):
    """Three rounds of a growing labeled set from one seeded two-class problem, and a test set."""
    gen = torch.Generator().manual_seed(1000 + seed)
    w = torch.randn(8, generator=gen)
    x = torch.randn(560, 8, generator=gen)
    y = (x @ w > 0).long()
    x_test, y_test = x[400:], y[400:]
    for n in (100, 200, 400):
        yield x[:n], y[:n], x_test, y_test


def _mlp(gen: torch.Generator) -> nn.Module:
    """A small MLP whose weights come from ``gen``."""
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    for layer in (model[0], model[2]):
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)
        nn.init.zeros_(layer.bias)
    return model


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> int:
    """SGD on minibatches of 50 (shuffled with ``gen``) until the training set is fit, checked after
    each epoch, or 60 epochs; the optimizer steps taken."""
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    steps = 0
    for _ in range(60):
        for idx in torch.randperm(len(x), generator=gen).split(50):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            steps += 1
        with torch.no_grad():
            if (model(x).argmax(1) == y).float().mean() >= 0.98:
                break
    return steps


def test_a_plain_pytorch_loop_measures_the_warm_start_penalty():
    """The docs' measurement: random (a new seeded model each round) vs warm (the same model kept)."""
    log = RoundLog()
    for seed in range(3):
        for arm in ("random", "warm"):
            gen = torch.Generator().manual_seed(seed)  # weights and batch order
            model = None
            for x, y, x_test, y_test in _rounds(seed):
                if model is None or arm == "random":
                    model = _mlp(gen)
                steps = _train(model, x, y, gen)
                with torch.no_grad():
                    acc = (model(x_test).argmax(1) == y_test).float().mean().item()
                log.add(arm, seed=seed, accuracy=acc, steps=steps, n_labeled=len(x))
    random_arm, warm = log.summary()
    assert random_arm["rounds"] == warm["rounds"] == 3 and warm["seeds"] == [0, 1, 2]
    rows = {(r["arm"], r["seed"]): r for r in log.records() if r["round"] == 2}
    diffs = [rows["random", s]["test_accuracy"] - rows["warm", s]["test_accuracy"] for s in range(3)]
    assert warm["penalty"] == pytest.approx(float(np.mean(diffs)))
    # warm starts from a model that already fits most of the new data: fewer steps than random
    assert 0 < warm["compute_ratio"] < 1
    assert warm["time_ratio"] is None
    assert 0.5 < warm["final_accuracy"] <= 1 and 0.5 < random_arm["final_accuracy"] <= 1
    assert [p["n_labeled"] for p in warm["per_round"]] == [100, 200, 400]
    assert "Warm-start penalty vs random" in log.table(width=120)


# Continual rounds: (arm, seed) -> per round (task, task_accuracies, online_accuracy); 3 tasks over 4
# rounds (task 1 has two), so A[l] (accuracies after the last round of task l) is rounds 0, 2 and 3.
CONTINUAL = {
    ("random", 0): [
        (0, [0.90, 0.10, 0.10], None),
        (1, [0.70, 0.60, 0.10], 0.10),
        (1, [0.60, 0.80, 0.10], 0.60),
        (2, [0.50, 0.60, 0.90], 0.20),
    ],
    ("random", 1): [
        (0, [0.80, 0.20, 0.10], None),
        (1, [0.70, 0.50, 0.20], 0.20),
        (1, [0.70, 0.90, 0.20], 0.50),
        (2, [0.50, 0.70, 0.80], 0.10),
    ],
    ("warm", 0): [
        (0, [0.90, 0.10, 0.10], None),
        (1, [0.80, 0.40, 0.10], 0.10),
        (1, [0.70, 0.60, 0.10], 0.40),
        (2, [0.60, 0.50, 0.70], 0.20),
    ],
    ("warm", 1): [
        (0, [0.80, 0.20, 0.10], None),
        (1, [0.75, 0.45, 0.20], 0.20),
        (1, [0.70, 0.70, 0.20], 0.45),
        (2, [0.70, 0.60, 0.60], 0.30),
    ],
}


def continual_log() -> RoundLog:
    log = RoundLog()
    for (arm, seed), rounds in CONTINUAL.items():
        for task, accs, online in rounds:
            seen = sum(accs[: task + 1]) / (task + 1)  # the overall accuracy is the user's; any fraction
            log.add(
                arm,
                seed=seed,
                accuracy=seen,
                steps=10,
                task=task,
                task_accuracies=accs,
                online_accuracy=online,
            )
    return log


def test_continual_rounds_give_the_continual_metrics_computed_by_hand():
    log = continual_log()
    row = log.records()[10]  # warm, seed 0, round 2: task 1
    assert (row["arm"], row["seed"], row["round"], row["task"]) == ("warm", 0, 2, 1)
    assert row["task_accuracies"] == [0.70, 0.60, 0.10] and row["online_accuracy"] == 0.40
    assert row["task_accuracy"] == 0.60 and row["seen_accuracy"] == pytest.approx((0.70 + 0.60) / 2)
    assert log.records()[0]["online_accuracy"] is None
    random_arm, warm = log.summary()
    # newest_task_accuracy = A[2][2]: random 0.90, 0.80 -> 0.85; warm 0.70, 0.60 -> 0.65
    assert random_arm["newest_task_accuracy"] == pytest.approx(0.85)
    assert warm["newest_task_accuracy"] == pytest.approx(0.65)
    # paired by seed: warm - random = 0.70 - 0.90, 0.60 - 0.80 -> -0.20
    assert warm["newest_task_accuracy_vs_ref"] == pytest.approx(-0.20)
    # forgetting = mean over j < 2 of max_{j <= l < 2} A[l][j] - A[2][j]
    #   random seed 0: (max(0.9, 0.6) - 0.5 = 0.4, 0.8 - 0.6 = 0.2) -> 0.30
    #   random seed 1: (max(0.8, 0.7) - 0.5 = 0.3, 0.9 - 0.7 = 0.2) -> 0.25   => 0.275
    #   warm seed 0:   (max(0.9, 0.7) - 0.6 = 0.3, 0.6 - 0.5 = 0.1) -> 0.20
    #   warm seed 1:   (max(0.8, 0.7) - 0.7 = 0.1, 0.7 - 0.6 = 0.1) -> 0.10   => 0.15
    assert random_arm["forgetting"] == pytest.approx(0.275)
    assert warm["forgetting"] == pytest.approx(0.15)
    assert warm["forgetting_vs_ref"] == pytest.approx(((0.20 - 0.30) + (0.10 - 0.25)) / 2)  # -0.125
    # bwt = mean over j < 2 of A[2][j] - A[j][j]
    #   random seed 0: (0.5 - 0.9, 0.6 - 0.8) -> -0.30; seed 1: (0.5 - 0.8, 0.7 - 0.9) -> -0.25  => -0.275
    #   warm seed 0:   (0.6 - 0.9, 0.5 - 0.6) -> -0.20; seed 1: (0.7 - 0.8, 0.6 - 0.7) -> -0.10  => -0.15
    assert random_arm["bwt"] == pytest.approx(-0.275)
    assert warm["bwt"] == pytest.approx(-0.15)
    # online_accuracy = mean over rounds 1-3 (round 0 has none), then over seeds
    #   random: (0.1 + 0.6 + 0.2) / 3 = 0.3, (0.2 + 0.5 + 0.1) / 3 = 0.8/3   => 0.85/3
    #   warm:   (0.1 + 0.4 + 0.2) / 3 = 0.7/3, (0.2 + 0.45 + 0.3) / 3 = 0.95/3 => 0.275
    assert random_arm["online_accuracy"] == pytest.approx(0.85 / 3)
    assert warm["online_accuracy"] == pytest.approx(0.275)
    # the 95% CI over the two seeds, Student-t with one degree of freedom
    half = stats.t.ppf(0.975, 1) * np.std([0.20, 0.10], ddof=1) / math.sqrt(2)
    assert warm["forgetting_ci"] == pytest.approx([0.15 - half, 0.15 + half])
    # per task: A[t][t] averaged over seeds (warm task 1: 0.60, 0.70)
    assert [t["accuracy"] for t in warm["per_task"]] == pytest.approx([0.85, 0.65, 0.65])
    assert [p["task"] for p in warm["per_round"]] == [0, 1, 1, 2]
    assert warm["per_round"][2]["seen_accuracy"] == pytest.approx(((0.70 + 0.60) / 2 + (0.70 + 0.70) / 2) / 2)


def test_continual_rounds_take_arrays_and_tensors():
    log = RoundLog()
    row = log.add(
        "warm", seed=0, accuracy=0.5, steps=1, task=np.int64(0), task_accuracies=np.array([0.5, 0.25])
    )
    assert row["task_accuracies"] == [0.5, 0.25] and type(row["task"]) is int
    row = log.add("warm", seed=0, accuracy=0.5, steps=1, task=1, task_accuracies=torch.tensor([0.5, 0.25]))
    assert row["task_accuracies"] == [0.5, 0.25] and row["seen_accuracy"] == 0.375
    assert all(type(a) is float for a in row["task_accuracies"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(task_accuracies=[0.5, 0.2]),
            "task_accuracies given without task; pass task= too (the index of the round's task",
        ),
        (dict(task=0), "task 0 given without task_accuracies; pass task_accuracies= too"),
        (
            dict(online_accuracy=0.5),
            "online_accuracy given without task_accuracies; pass task= and task_accuracies= too",
        ),
        (
            dict(task=0, task_accuracies=[0.5, 85.0]),
            "task_accuracies[1] 85.0 is not in [0, 1]: pass a fraction (0.85), not a percentage",
        ),
        (
            dict(task=0, task_accuracies=[-0.5]),
            "task_accuracies[0] -0.5 is not in [0, 1]: pass the accuracy on task 0 as a fraction in [0, 1]",
        ),
        (
            dict(task=0, task_accuracies=[0.5, float("nan")]),
            "task_accuracies[1] nan is not a finite number; pass the accuracy on task 1",
        ),
        (dict(task=0, task_accuracies="0.5"), "task_accuracies '0.5' is not a list of numbers; pass the"),
        (dict(task=0, task_accuracies=0.5), "task_accuracies 0.5 is not a list of numbers"),
        (dict(task=0, task_accuracies=[]), "task_accuracies is empty; pass the accuracy on every task's"),
        (
            dict(task=0, task_accuracies=[0.5], online_accuracy=70.0),
            "online_accuracy 70.0 is not in [0, 1]: pass a fraction (0.7), not a percentage",
        ),
        (
            dict(task=2, task_accuracies=[0.5, 0.2]),
            "task 2 is out of range for 2 task accuracies (tasks 0-1); pass the round's task as an index",
        ),
        (dict(task=-1, task_accuracies=[0.5, 0.2]), "task -1 is out of range for 2 task accuracies"),
        (dict(task=0.0, task_accuracies=[0.5, 0.2]), "task 0.0 is not an int; pass the index of the round's"),
        (
            dict(task=1, task_accuracies=[0.5, 0.2]),
            "round 0 of arm 'warm' seed 0 has task 1, but the first round of an arm and seed is task 0: "
            "pass task=0",
        ),
    ],
)
def test_add_refuses_bad_continual_values_with_one_line(kwargs, message):
    log = RoundLog()
    with pytest.raises(ActivewsError) as err:
        log.add("warm", seed=0, accuracy=0.8, steps=10, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert len(log) == 0


def test_add_refuses_tasks_going_back_or_skipping_and_mixed_logs():
    def add(log, arm="warm", seed=0, **kwargs):
        return log.add(arm, seed=seed, accuracy=0.5, steps=1, **kwargs)

    log = RoundLog()
    add(log, task=0, task_accuracies=[0.5, 0.1, 0.1])
    add(log, task=1, task_accuracies=[0.4, 0.6, 0.1])
    errors = [
        (
            dict(task=0, task_accuracies=[0.5, 0.6, 0.1]),
            "round 2 of arm 'warm' seed 0 has task 0, but round 1 had task 1: tasks never go back within "
            "an arm and seed; add its rounds in the order of their tasks",
        ),
        (
            dict(task=3, task_accuracies=[0.5, 0.6, 0.1, 0.1]),
            "task_accuracies of round 2 of arm 'warm' seed 0 has 4 entries, but the rows before it have "
            "3: pass the accuracy on every task (3) on every add",
        ),
        (
            dict(seed=1, task=0, task_accuracies=[0.5, 0.6]),
            "task_accuracies of round 0 of arm 'warm' seed 1 has 2 entries, but the rows before it have 3",
        ),
        (
            {},
            "round 2 of arm 'warm' seed 0 has no task_accuracies, but the rows before it have them: pass "
            "task= and task_accuracies= on every add or on none",
        ),
        (dict(arm="random"), "round 0 of arm 'random' seed 0 has no task_accuracies, but the rows"),
    ]
    for kwargs, message in errors:
        with pytest.raises(ActivewsError) as err:
            add(log, **kwargs)
        assert message in str(err.value) and "\n" not in str(err.value)
    # a task may be skipped by no round: from task 0, the next is 0 or 1
    other = RoundLog()
    add(other, task=0, task_accuracies=[0.5, 0.1, 0.1])
    with pytest.raises(
        ActivewsError,
        match=r"round 1 of arm 'warm' seed 0 has task 2, but round 0 had task 0: tasks count up one at a "
        r"time; pass task=0 or task=1",
    ):
        add(other, task=2, task_accuracies=[0.5, 0.1, 0.1])
    assert len(log) == 2 and len(other) == 1  # nothing recorded by the refused adds
    add(log, task=1, task_accuracies=[0.4, 0.7, 0.1])  # the same task again is fine
    add(log, task=2, task_accuracies=[0.3, 0.5, 0.9])
    stationary = RoundLog()
    add(stationary)
    with pytest.raises(ActivewsError) as err:
        add(stationary, arm="random", task=0, task_accuracies=[0.5])
    assert str(err.value) == (
        "round 0 of arm 'random' seed 0 has task_accuracies, but the rows before it have none: pass task= "
        "and task_accuracies= on every add or on none"
    )


def test_continual_log_saves_loads_and_reports_its_continual_tables(tmp_path, capsys):
    log = continual_log()
    table = log.table(width=120)
    assert "Continual metrics (3 tasks)" in table and "forgetting" in table
    assert "Warm-start penalty vs random" in table  # the penalty tables stay
    assert "Continual metrics" not in filled().table(width=120)
    folder = tmp_path / "mine"
    names = {p.name for p in log.save(folder)}
    assert "continual.png" in names and "report.html" in names
    assert "Continual metrics" in (folder / "report.html").read_text()
    saved = json.loads((folder / "records.json").read_text())
    assert saved == log.records() and saved[3]["task_accuracies"] == [0.50, 0.60, 0.90]
    back = RoundLog.load(folder)
    assert back.records() == log.records() and back.summary() == log.summary()
    assert back.table(width=120) == table
    with pytest.raises(ActivewsError, match="has no task_accuracies, but the rows before it have them"):
        back.add("warm", seed=0, accuracy=0.5, steps=1)  # the loaded log is still continual
    capsys.readouterr()
    assert main(["report", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "Continual metrics (3 tasks)" in out and "-27.50" in out  # random's BWT, points
