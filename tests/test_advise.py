"""``activews advise``: the search over declared spaces, its pruning, resume and worker-count invariance,
the frontier, the confirmation on fresh seeds, the reproducing command, and its one-line errors."""

from __future__ import annotations

import shlex

import pytest

from activews.cli.flags import settings_from_args
from activews.cli.main import build_parser, main
from activews.engine import advise as advise_module
from activews.engine.advise import _Pruned, _Settings, _Watcher, advise, pareto_front, tunable_strategies
from activews.engine.arm import ProgressEvent
from activews.engine.bench import run_bench, run_experiments
from activews.engine.config import BenchConfig
from activews.engine.store import RunStore
from activews.errors import ActivewsError
from activews.params import Tune
from activews.report.advise import advice_markdown, write_advice
from tests.helpers import assert_one_line
from tests.run_helpers import TINY, TINY_FLAGS, record_keys

SEARCHED = ["shrink_perturb", "later_reset"]
SETTINGS = dict(budget=0.9, trials=5, strategies=SEARCHED, confirm_seeds=2)


def _tiny() -> BenchConfig:
    return BenchConfig.build(**TINY)


def _key(advice) -> list[tuple]:
    """What must not depend on workers or interruptions: each trial's setting, state and numbers."""
    return [(t.number, t.label, t.state, t.gain, t.accuracy, t.compute_ratio, t.note) for t in advice.trials]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    folder = tmp_path_factory.mktemp("advise") / "run"
    events = []
    result = advise(_tiny(), output=folder, progress=events.append, **SETTINGS)
    return result, folder, events


# ------------------------------------------------------------------------------------------ the search


def test_each_trial_runs_its_arm_alone_and_the_references_run_once(searched):
    result, folder, events = searched
    assert [t.number for t in result.trials] == list(range(5))
    assert {t.strategy for t in result.trials} <= set(SEARCHED)
    with RunStore(folder / "references") as store:
        assert {c["arm"] for c in store.cells()} == {"random", "warm"}
    for t in result.trials:
        with RunStore(folder / "trials" / f"{t.number:04d}") as store:
            assert {c["arm"] for c in store.cells()} == {t.strategy}  # no reference arm re-run
    assert sum(e.kind == "references" for e in events) == 1
    assert [e.trial for e in events if e.kind == "trial_end"] == list(range(5))


def test_trial_labels_name_the_tuned_values_within_their_spaces(searched):
    result, _, _ = searched
    for t in result.trials:
        space = advise_module.search_space(advise_module.get_strategy(t.strategy).Params)
        assert t.label == f"{t.strategy}[{','.join(f'{k}={t.params[k]}' for k in space)}]"
        for key, tune in space.items():
            assert tune.low <= t.params[key] <= tune.high
            assert t.params[key] == advise_module._rounded(t.params[key], tune)  # already short


def test_the_frontier_holds_no_dominated_point_and_covers_the_references(searched):
    result, _, _ = searched
    front = result.frontier
    for a in front:
        for b in front:
            assert not (b["compute_ratio"] < a["compute_ratio"] and b["accuracy"] > a["accuracy"])
    points = [(r["compute_ratio"], r["final_accuracy"]) for r in result.references]
    points += [(t.compute_ratio, t.accuracy) for t in result.trials if t.state == "complete"]
    for ratio, accuracy in points:  # every point is on the frontier or beaten by a point of it
        assert any(p["compute_ratio"] <= ratio and p["accuracy"] >= accuracy for p in front)


def test_the_recommendation_is_the_best_trial_within_budget_confirmed_on_fresh_seeds(searched):
    result, folder, _ = searched
    within = [t for t in result.trials if t.state == "complete" and t.within_budget]
    assert within, "the tiny search should find a setting within a 0.9 budget"
    best = max(within, key=lambda t: (t.gain, -t.number))
    rec = result.recommendation
    assert rec["trial"] == best.number and rec["label"] == best.label
    assert set(result.confirm_seeds).isdisjoint(result.search_seeds)
    assert result.confirm_seeds == [2, 3]
    arms = {row["arm"] for row in result.confirmation}
    assert {"random", "warm", best.label} <= arms
    assert rec["confirmed"]["seeds"] == [2, 3]
    assert rec["beats_random"] == bool(rec["confirmed"]["penalty_ci"][1] < 0)
    assert result.verdict.startswith(best.label)


def test_the_printed_command_reproduces_the_confirmed_numbers(searched, tmp_path):
    result, folder, _ = searched
    rec = result.recommendation
    args = build_parser().parse_args(shlex.split(rec["command"])[1:])
    assert args.command == "bench"
    config = BenchConfig.build(**settings_from_args(args))
    again = run_bench(config, output=tmp_path / "again")
    with RunStore(next(folder.glob("confirm-*"))) as store:
        confirmed = [r for r in store.records() if r["arm"] == rec["label"]]
    mine = [r | {"arm": rec["label"]} for r in again.records if r["arm"] == rec["strategy"]]
    assert record_keys(mine) == record_keys(confirmed)


def test_the_report_files(searched, tmp_path):
    result, _, _ = searched
    written = {p.name for p in write_advice(result, tmp_path)}
    assert written == {"advice.json", "advice.md", "trials.csv", "frontier.csv", "frontier.png"}
    md = advice_markdown(result)
    assert result.recommendation["command"] in md and "Frontier" in md and "Confirmation" in md
    assert (tmp_path / "frontier.png").read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------------------------------ resume, workers


def test_an_interrupted_search_resumes_without_rerunning_finished_trials_and_workers_do_not_change_it(
    searched, tmp_path
):
    """Stopped in the middle of trial 2, resumed with 2 workers: the same trials as the serial search."""
    rounds = {"n": 0}

    def stop(event):
        if event.kind == "round" and event.trial == 2 and event.event.kind == "round_end":
            rounds["n"] += 1
            if rounds["n"] == 2:
                raise KeyboardInterrupt

    folder = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        advise(_tiny(), output=folder, progress=stop, **SETTINGS)
    started = []
    resumed = advise(
        _tiny(),
        output=folder,
        workers=2,
        progress=lambda e: started.append(e.trial) if e.kind == "trial_start" else None,
        **SETTINGS,
    )
    assert started == [2, 3, 4]  # trials 0 and 1 were finished and are not run again
    assert _key(resumed) == _key(searched[0])
    assert resumed.recommendation["label"] == searched[0].recommendation["label"]


def test_more_trials_continue_the_search_and_other_settings_are_refused(searched, tmp_path):
    folder = tmp_path / "run"
    short = advise(_tiny(), output=folder, **(SETTINGS | {"trials": 2}))
    started = []
    longer = advise(
        _tiny(),
        output=folder,
        progress=lambda e: started.append(e.trial) if e.kind == "trial_start" else None,
        **(SETTINGS | {"trials": 3}),
    )
    assert started == [2]
    assert _key(longer)[:2] == _key(short) == _key(searched[0])[:2]
    with pytest.raises(ActivewsError, match="other settings") as err:
        advise(_tiny(), output=folder, **(SETTINGS | {"budget": 0.7}))
    assert_one_line(str(err.value))


def test_no_setting_within_a_tiny_budget_recommends_nothing(tmp_path):
    result = advise(_tiny(), output=tmp_path / "run", **(SETTINGS | {"budget": 0.01, "trials": 2}))
    assert [t.state for t in result.trials] == ["pruned", "pruned"]
    assert all(t.note.startswith("over budget") for t in result.trials)
    assert result.recommendation is None and result.confirmation == []
    assert "no setting met the budget" in result.verdict
    assert not list((tmp_path / "run").glob("confirm-*"))


# ------------------------------------------------------------------------------------------ pruning


class _FakeTrial:
    """Records reports; ``should_prune`` says yes from the ``prune_at``-th step judged on (0-based)."""

    def __init__(self, prune_at: int | None = None) -> None:
        self.reports: list[tuple[int, float]] = []
        self.prune_at = prune_at
        self.judged = 0

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        self.judged += 1
        return self.prune_at is not None and self.judged - 1 >= self.prune_at


def _settings(budget: float = 0.9) -> _Settings:
    return _Settings(_tiny(), {"x": {"a": Tune(0.0, 1.0)}}, budget, None, 3, [0, 1], [2, 3], 0)


def _ref() -> dict[int, list[dict]]:
    return {s: [{"test_accuracy": 0.5, "cumulative_steps": 100 * (r + 1)} for r in range(3)] for s in (0, 1)}


def _rec(seed: int, r: int, acc: float, steps: int) -> dict:
    return {"seed": seed, "round": r, "test_accuracy": acc, "cumulative_steps": steps}


def test_steps_are_judged_in_seed_then_round_order_whatever_order_rounds_arrive():
    rows = [_rec(s, r, 0.5 + 0.1 * s + 0.01 * r, 10 * (r + 1)) for s in (0, 1) for r in range(3)]
    in_order, shuffled = _FakeTrial(), _FakeTrial()
    w = _Watcher(in_order, _settings(), 3, _ref(), None, set())
    for row in rows:
        w.feed(row)
    w = _Watcher(shuffled, _settings(), 3, _ref(), None, set())
    for row in rows[3:] + rows[:3]:  # seed 1 finishes first (two workers)
        w.feed(row)
    assert in_order.reports == shuffled.reports
    assert [s for s, _ in in_order.reports] == list(range(6))
    # step 4 (seed 1, round 1): mean of seed 0's final gain (+0.02) and seed 1's gain now (+0.11)
    assert in_order.reports[4][1] == pytest.approx((0.02 + 0.11) / 2)


def test_a_trial_whose_steps_already_exceed_the_budget_is_pruned():
    trial = _FakeTrial()
    w = _Watcher(trial, _settings(budget=0.5), 3, _ref(), None, set())
    w.feed(_rec(0, 0, 0.5, 100))
    w.feed(_rec(0, 1, 0.5, 200))
    with pytest.raises(_Pruned, match="over budget: step ratio already 0.50"):
        w.feed(_rec(0, 2, 0.5, 301))  # 301 / 300 over 2 seeds: at least 0.50 (just over 0.5)


def test_the_median_pruner_stops_a_trial_and_resumed_steps_are_not_reported_twice():
    trial = _FakeTrial(prune_at=2)
    w = _Watcher(trial, _settings(), 3, _ref(), None, {0, 1})
    w.feed(_rec(0, 0, 0.5, 10))
    w.feed(_rec(0, 1, 0.5, 20))
    with pytest.raises(_Pruned, match="below the median"):
        w.feed(_rec(0, 2, 0.5, 30))
    assert [s for s, _ in trial.reports] == [2]


def test_suggestions_are_shortened_to_the_resolution_of_their_space():
    rounded = advise_module._rounded
    assert rounded(0.53123, Tune(0.0, 1.0)) == 0.53
    assert rounded(0.9995311, Tune(0.999, 1.0)) == 0.99953  # not 1.0: a narrow space keeps its digits
    assert rounded(0.0123456, Tune(1e-3, 1.0, log=True)) == 0.012
    assert rounded(0.999999, Tune(0.99, 0.9999)) == 0.9999  # kept within the space
    assert rounded(7, Tune(1, 10)) == 7


def test_a_trial_whose_finished_seeds_project_over_budget_is_pruned_after_its_first_seed():
    trial = _FakeTrial()
    w = _Watcher(trial, _settings(budget=0.5), 3, _ref(), None, set())
    w.feed(_rec(0, 0, 0.5, 100))
    w.feed(_rec(0, 1, 0.5, 150))
    with pytest.raises(_Pruned, match="projected over budget: step ratio 0.63 on 1 of 2 seeds"):
        w.feed(_rec(0, 2, 0.5, 190))  # 190 / 300 = 0.63 > 1.2 x 0.5 (the bound is only 0.32)


def test_a_trial_that_ran_every_round_is_complete_even_over_budget():
    trial = _FakeTrial(prune_at=0)
    w = _Watcher(
        trial, _settings(budget=0.1), 1, {0: [{"test_accuracy": 0.5, "cumulative_steps": 100}]}, None, set()
    )
    w.settings.search_seeds = [0]
    w.feed(_rec(0, 0, 0.6, 90))  # no _Pruned: the last step is never judged
    assert trial.reports == [(0, pytest.approx(0.1))]


def test_a_setting_drawn_again_is_not_run_again(tmp_path):
    """On 3 rounds, scheduled[every=3..8] never resets after round 0: the few distinct settings repeat."""
    ran = []
    result = advise(
        _tiny(),
        output=tmp_path / "run",
        budget=0.9,
        trials=6,
        strategies=["scheduled"],
        confirm_seeds=2,
        progress=lambda e: ran.append(e.trial) if e.kind == "round" and e.event.kind == "round_end" else None,
    )
    repeats = [t for t in result.trials if t.note.startswith("same setting as trial")]
    assert repeats, [t.label for t in result.trials]
    for t in repeats:
        first = result.trials[int(t.note.split()[4].rstrip(":"))]
        assert (t.label, t.state, t.gain, t.compute_ratio) == (
            first.label,
            first.state,
            first.gain,
            first.compute_ratio,
        )
        assert t.number not in ran  # no round of it ran
        assert not (tmp_path / "run" / "trials" / f"{t.number:04d}").exists()


def test_pareto_front():
    pts = [
        {"label": "a", "compute_ratio": 1.0, "accuracy": 0.70},
        {"label": "b", "compute_ratio": 0.5, "accuracy": 0.72},
        {"label": "c", "compute_ratio": 0.3, "accuracy": 0.60},
        {"label": "d", "compute_ratio": 0.6, "accuracy": 0.71},
        {"label": "e", "compute_ratio": None, "accuracy": 0.9},
    ]
    assert [p["label"] for p in pareto_front(pts)] == ["c", "b"]


# ------------------------------------------------------------------------------------------ arms=


def test_run_experiments_runs_only_the_named_arms_and_a_resume_must_name_them(tmp_path):
    config = _tiny().replace(seeds=(0,), rounds=2)
    result = run_experiments([("", config)], output=tmp_path / "r", arms=["random"])[0]
    assert {r["arm"] for r in result.records} == {"random"}
    with RunStore(tmp_path / "r") as store:
        assert [c["arm"] for c in store.cells()] == ["random"]
    with pytest.raises(ActivewsError, match="arms run") as err:
        run_experiments([("", config)], output=tmp_path / "r", arms=["random", "warm"])
    assert_one_line(str(err.value))
    with pytest.raises(ActivewsError, match="no experiment has"):
        run_experiments([("", config)], arms=["nope"])


# ------------------------------------------------------------------------------------------ CLI


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--budget", "0"], "--budget must be a number > 0"),
        (["--budget", "-0.5"], "--budget must be a number > 0"),
        (["--time-budget", "0"], "--time-budget must be a number > 0"),
        (["--strategy", "warm"], "strategy 'warm' declares no search space"),
        (["--strategy", "shrink_perturbb"], "did you mean 'shrink_perturb'"),
        (["--confirm-seeds", "1,2,5"], "--confirm-seeds 1,2,5 overlap the search seeds"),
        (["--confirm-seeds", "1"], "at least 2 seeds"),
        (["--trials", "0"], "--trials must be a whole number >= 1"),
        (["--sweep", "shrink_perturb.shrink=0.1,0.2"], "drop --sweep"),
        (["--counterfactual"], "drop --counterfactual"),
        (["--strategies", "shrink_perturb,warm"], "strategy 'warm' declares no search space"),
        (["--strategies", ","], "--strategies is empty"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_data_loads(
    flags, message, tmp_path, capsys, monkeypatch
):
    def no_data(*a, **k):
        raise AssertionError("data loaded before the input was checked")

    monkeypatch.setattr(advise_module, "load_bench_dataset", no_data)
    out = tmp_path / "out"
    assert main(["advise", *TINY_FLAGS, *flags, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert_one_line(err.strip())
    assert not out.exists()


def test_no_tunable_strategy_is_one_line(monkeypatch):
    monkeypatch.setattr(advise_module, "tunable_strategies", lambda: [])
    with pytest.raises(ActivewsError, match="no tunable strategy") as err:
        advise(_tiny())
    assert_one_line(str(err.value))


def test_every_builtin_with_a_space_is_searched_by_default():
    assert {"shrink_perturb", "later_reset", "l2_init", "scheduled"} <= set(tunable_strategies())
    assert not {"warm", "random", "reset_to_init", "head_reset"} & set(tunable_strategies())


def test_the_cli_prints_the_recommendation_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--trials", "2", "--strategies", "later_reset", "--confirm-seeds", "2", "--budget", "0.95"]
    code = main(
        ["advise", *TINY_FLAGS, *flags, "--output", str(out), "--workers", "1", "--progress", "plain"]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "Frontier" in captured.out and "Verdict:" in captured.out
    assert "[1/2] trial 0 later_reset[fraction=" in captured.err
    for name in ("advice.md", "advice.json", "trials.csv", "frontier.csv", "frontier.png", "search.json"):
        assert (out / name).is_file(), name
    if "reproduce with:" in captured.out:
        command = captured.out.split("reproduce with:\n", 1)[1].splitlines()[0]
        assert command.startswith("activews bench --strategy later_reset --param later_reset.fraction=")
        assert "--seeds 2,3" in command  # the confirmation's seeds, not a count


def test_bench_command_round_trips_through_the_parser():
    configs = [
        BenchConfig(),
        BenchConfig.build(
            stream="passive",
            seeds=[4, 5, 6],
            strategies=("shrink_perturb", "later_reset"),
            params={"shrink_perturb": {"shrink": 0.53, "noise": "gaussian"}},
            param_grid={"later_reset": {"fraction": [0.2, 0.3]}},
            model_params={"hidden": [128, 64]},
            channels_last=False,
            lr=3e-4,
            diagnostics=("dormant_units",),
        ),
        BenchConfig.build(counterfactual=True, seeds=3, dataset="digits", initial=100, query_size=50),
    ]
    for config in configs:
        args = build_parser().parse_args(shlex.split(config.command())[1:])
        assert BenchConfig.build(**settings_from_args(args)) == config, config.command()
    assert BenchConfig().command() == "activews bench --strategy shrink_perturb"
    assert "--seeds 4,5,6" in configs[1].command() and "--seeds 3" in configs[2].command()


def test_the_advise_folder_refuses_a_bench_run_folder(tmp_path):
    run_bench(_tiny().replace(seeds=(0,), rounds=1), output=tmp_path / "bench")
    with pytest.raises(ActivewsError, match="bench run folder, not an advise folder"):
        advise(_tiny(), output=tmp_path / "bench", **SETTINGS)


def test_a_progress_event_carries_each_round(searched):
    _, _, events = searched
    rounds = [e for e in events if e.kind == "round" and e.trial == 0]
    assert rounds and all(isinstance(e.event, ProgressEvent) for e in rounds)


def test_advise_runs_on_a_users_npz_file(tmp_path):
    """The .npz path of docs/advise.md: arrays X and y, the bench's own split, a tiny search."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = tmp_path / "digits.npz"
    np.savez(path, X=(digits.data[:600] / 16).astype("float32"), y=digits.target[:600])
    config = BenchConfig.build(dataset=str(path), initial=50, query_size=50, rounds=3, seeds=2)
    result = advise(config, output=tmp_path / "run", trials=2, strategies=["later_reset"], confirm_seeds=2)
    assert [t.strategy for t in result.trials] == ["later_reset", "later_reset"]
    assert result.config.dataset == str(path)
    if result.recommendation is not None:
        assert f"--dataset {path}" in result.recommendation["command"]
