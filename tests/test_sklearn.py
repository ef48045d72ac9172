"""activews.sklearn.WarmStartClassifier: scikit-learn's estimator checks, round semantics, and the real
scikit-activeml pool loop and a scikit-learn Pipeline around it."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skactiveml.classifier import SklearnClassifier
from skactiveml.pool import UncertaintySampling
from skactiveml.stream import VariableUncertainty
from skactiveml.utils import MISSING_LABEL
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_fit_idempotent, parametrize_with_checks
from sklearn.utils.validation import check_is_fitted
from torch import nn

from activews.errors import ActivewsError
from activews.sklearn import EXPECTED_FAILED_CHECKS, WarmStartClassifier, _Rounds
from activews.strategies import STRATEGIES, InitContext, InitStrategy, register_strategy

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# Small and fast: one hidden layer of 16 units, at most 30 epochs per fit.
TINY = dict(model_params={"hidden": [16]}, lr=1e-2, batch_size=32, max_epochs=30, patience=5, random_state=0)
# For the digits tests: a model that reaches the 99% criterion in a few hundred steps.
SMALL = dict(model_params={"hidden": [64]}, lr=3e-3, batch_size=32, random_state=0)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@parametrize_with_checks(
    [WarmStartClassifier(**TINY)], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_every_fit_after_the_first_is_a_round_and_records_its_compute(digits):
    X, y = digits
    clf = WarmStartClassifier(strategy="warm", **SMALL)
    assert clf.fit(X[:200], y[:200]) is clf
    clf.fit(X[:400], y[:400])
    kinds = [(h["fit"], h["round"], h["kind"], h["n_samples"], h["n_new"]) for h in clf.fit_history_]
    assert kinds == [(0, 0, "first", 200, 200), (1, 1, "round", 400, 200)]
    assert clf.last_fit_ == clf.fit_history_[-1]
    for h in clf.fit_history_:
        assert h["steps"] > 0 and h["epochs"] > 0 and h["seconds"] > 0 and h["strategy"] == "warm"
        assert h["stop_reason"] == "target" and h["train_accuracy"] >= 0.99
    np.testing.assert_array_equal(clf.classes_, np.arange(10))
    assert clf.n_features_in_ == 64 and isinstance(clf.model_, nn.Module)
    proba = clf.predict_proba(X[1000:1100])
    assert proba.shape == (100, 10) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X[1000:1100]), proba.argmax(axis=1))
    assert clf.score(X[1000:], y[1000:]) > 0.85


def test_warm_continues_where_random_starts_over(digits):
    X, y = digits
    steps = {}
    for strategy in ("warm", "random"):
        clf = WarmStartClassifier(strategy=strategy, **SMALL).fit(X[:300], y[:300]).fit(X[:300], y[:300])
        steps[strategy] = clf.last_fit_["steps"]
    # Warm: the model already fits these data, so one epoch (10 steps) reaches the target again.
    assert steps["warm"] == 10
    assert steps["random"] > 5 * steps["warm"]


@pytest.fixture
def probe_strategy():
    """A registered strategy that records the context of every round (unregistered afterwards)."""
    seen: list[tuple[nn.Module, InitContext, dict]] = []

    @register_strategy("_sklearn_probe")
    class Probe(InitStrategy):
        def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
            before = {k: v.detach().clone() for k, v in model.state_dict().items()}
            seen.append((model, ctx, before))
            return model

    yield seen
    STRATEGIES.unregister("_sklearn_probe")


def test_the_strategy_gets_a_proper_context(digits, probe_strategy):
    X, y = digits
    clf = WarmStartClassifier(strategy="_sklearn_probe", **SMALL).fit(X[:100], y[:100])
    first_model = clf.model_
    first_weights = {k: v.detach().clone() for k, v in first_model.state_dict().items()}
    # Round 1 sees the old rows in another order plus 50 new ones; round 2 the same rows again.
    order = np.r_[np.arange(100, 150), np.arange(100)[::-1]]
    clf.fit(X[order], y[order]).fit(X[order], y[order])
    assert len(probe_strategy) == 2
    (model1, ctx1, before1), (_, ctx2, _) = probe_strategy
    assert [ctx1.round_index, ctx2.round_index] == [1, 2]
    # The strategy works on a copy of the previous fit's trained weights ...
    assert model1 is not first_model
    for k, v in first_weights.items():
        torch.testing.assert_close(before1[k], v, rtol=0, atol=0)
    # ... with the data of this fit, and the rows the previous fit did not train on marked as new.
    torch.testing.assert_close(ctx1.x_labeled, torch.as_tensor(X[order], dtype=torch.float32))
    assert ctx1.y_labeled.dtype == torch.long and torch.equal(ctx1.y_labeled, torch.as_tensor(y[order]))
    assert ctx1.new_mask.tolist() == [True] * 50 + [False] * 100
    assert not ctx2.new_mask.any()
    # initial_state is the first fit's initial draw in every round; the generator is seeded per fit.
    assert ctx1.initial_state is ctx2.initial_state
    assert any(not torch.equal(ctx1.initial_state[k], first_weights[k]) for k in first_weights)
    assert isinstance(ctx1.generator, torch.Generator) and ctx1.device == torch.device("cpu")
    a, b = ctx1.fresh_model(), ctx1.fresh_model()
    assert type(a) is type(first_model)
    assert any(not torch.equal(pa, pb) for pa, pb in zip(a.parameters(), b.parameters(), strict=True))


def test_the_same_random_state_and_data_give_the_same_predictions(digits):
    X, y = digits
    template = WarmStartClassifier(**SMALL)

    def run(est: WarmStartClassifier) -> np.ndarray:
        est.fit(X[:150], y[:150]).fit(X[:300], y[:300])
        return est.predict_proba(X[1000:])

    first = run(clone(template))
    np.testing.assert_array_equal(first, run(clone(template)))
    assert not np.array_equal(first, run(clone(template).set_params(random_state=1)))


def test_a_change_of_classes_or_features_starts_over(digits):
    X, y = digits
    low = y < 5
    clf = WarmStartClassifier(**TINY).fit(X[low][:100], y[low][:100]).fit(X[:100], y[:100])
    assert clf.last_fit_["kind"] == "restart" and clf.last_fit_["reason"] == "classes changed"
    assert clf.last_fit_["round"] == 0 and clf.predict_proba(X[:5]).shape == (5, 10)
    clf.fit(X[:100, :32], y[:100])
    assert (clf.last_fit_["kind"], clf.last_fit_["reason"]) == ("restart", "number of features changed")
    assert clf.n_features_in_ == 32
    # With `classes` given, a fit that lacks some classes is still a round, and the output is fixed.
    fixed = WarmStartClassifier(classes=np.arange(10), **TINY).fit(X[low][:100], y[low][:100])
    fixed.fit(X[:100], y[:100])
    assert [h["kind"] for h in fixed.fit_history_] == ["first", "round"]
    assert fixed.predict_proba(X[:5]).shape == (5, 10)
    np.testing.assert_array_equal(fixed.classes_, np.arange(10))


def test_labels_of_any_sortable_type(digits):
    X, y = digits
    names = np.array([f"digit-{d}" for d in y])  # sorts as the integers do
    by_name = WarmStartClassifier(**TINY).fit(X[:200], names[:200])
    by_int = WarmStartClassifier(**TINY).fit(X[:200], y[:200])
    np.testing.assert_array_equal(by_name.classes_, [f"digit-{d}" for d in range(10)])
    np.testing.assert_array_equal(by_name.predict(X[500:600]), by_name.classes_[by_int.predict(X[500:600])])
    np.testing.assert_array_equal(by_name.predict_proba(X[500:600]), by_int.predict_proba(X[500:600]))


def test_clone_starts_a_new_sequence_and_pickle_continues_it(digits):
    X, y = digits
    clf = WarmStartClassifier(**SMALL).fit(X[:150], y[:150])
    fresh = clone(clf)
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh)
    assert fresh.fit(X[:150], y[:150]).last_fit_["kind"] == "first"

    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X[1000:]), clf.predict_proba(X[1000:]))
    # The unpickled estimator continues the sequence exactly as the original does.
    restored.fit(X[:300], y[:300])
    clf.fit(X[:300], y[:300])
    assert [h["kind"] for h in restored.fit_history_] == ["first", "round"]
    np.testing.assert_array_equal(restored.predict_proba(X[1000:]), clf.predict_proba(X[1000:]))


def test_deep_copies_share_the_sequence(digits):
    # What scikit-activeml's SklearnClassifier relies on: it deep-copies the unfitted prototype
    # before every fit.
    X, y = digits
    prototype = WarmStartClassifier(**TINY)
    first = copy.deepcopy(prototype).fit(X[:100], y[:100])
    second = copy.deepcopy(prototype).fit(X[:200], y[:200])
    assert first.last_fit_["kind"] == "first" and second.last_fit_["kind"] == "round"
    assert len(second.fit_history_) == 2
    with pytest.raises(NotFittedError):
        check_is_fitted(prototype)
    assert second.model_ is not first.model_  # the earlier fit keeps its own model


def _factory(input_shape: tuple[int, ...], num_classes: int, width: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(input_shape[0], width), nn.ReLU(), nn.Linear(width, num_classes))


def test_a_callable_model_factory(digits):
    X, y = digits
    clf = WarmStartClassifier(**{**TINY, "model": _factory, "model_params": {"width": 8}})
    clf.fit(X[:100], y[:100]).fit(X[:200], y[:200])
    assert clf.model_[0].out_features == 8 and clf.last_fit_["kind"] == "round"
    assert pickle.loads(pickle.dumps(clf)).predict(X[:5]).shape == (5,)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"strategy": "shrink_pertub"}, "did you mean 'shrink_perturb'"),
        ({"strategy_params": {"shrnk": 0.5}}, "unknown parameter 'shrnk'"),
        ({"strategy": 3}, "strategy must be a registered strategy name"),
        ({"model": "mpl"}, "did you mean 'mlp'"),
        ({"model": 3}, "model must be a registered model name"),
        ({"model": lambda shape, n: "not a module", "model_params": None}, "must return a torch.nn.Module"),
        ({"model": _factory, "model_params": {"depth": 2}}, "unexpected keyword argument 'depth'"),
        ({"model_params": {"hiden": [4]}}, "unknown parameter 'hiden'"),
        ({"model_params": [4]}, "model_params must be a dict"),
        ({"lr": -1.0}, "lr"),
        ({"optimizer": "adagrad"}, "optimizer"),
        ({"target_accuracy": 2.0}, "target_accuracy"),
        ({"device": "tpu"}, "not a torch device"),
        ({"random_state": "seed"}, "random_state must be"),
        ({"classes": [0, 1]}, "not in classes=[0, 1]"),
        ({"refit": "sometimes"}, "refit must be 'always' or 'on_new_labels'"),
        ({"refit": True}, "refit must be 'always' or 'on_new_labels'"),
        ({"missing_label": True}, "missing_label must be None, a number"),
        ({"missing_label": [-1]}, "missing_label must be None, a number"),
        ({"missing_label": 3, "classes": list(range(10))}, "missing_label=3 is also one of classes"),
    ],
)
def test_bad_parameters_fail_in_fit_with_one_line(digits, params, message):
    X, y = digits
    clf = WarmStartClassifier(**{**TINY, **params})  # the constructor stores, never validates
    with pytest.raises(ActivewsError, match=message.replace("[", r"\[").replace("(", r"\(")) as info:
        clf.fit(X[:50], y[:50])
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_device_errors_name_the_estimators_parameter(digits):
    X, y = digits
    with pytest.raises(ActivewsError) as info:
        WarmStartClassifier(**{**TINY, "device": "tpu"}).fit(X[:50], y[:50])
    # The wording of activews.engine.setup.resolve_device, with the estimator's fix.
    assert str(info.value) == (
        "device 'tpu' is not a torch device (cpu, cuda, cuda:N, mps or auto); use device='cpu' or 'auto'"
    )
    if not torch.cuda.is_available():
        with pytest.raises(ActivewsError, match=r"CUDA is not available; use device='cpu' or 'auto'$"):
            WarmStartClassifier(**{**TINY, "device": "cuda"}).fit(X[:50], y[:50])


def test_seeds_are_the_ones_the_estimator_always_derived():
    """The estimator's per-fit seeds come from activews.engine.setup.derive_seed(seed, fit, purpose),
    which equals the SeedSequence([seed, fit, purpose]) it used before for every seed it accepts."""
    from activews.engine.setup import derive_seed

    def old(seed: int, fit_index: int, purpose: int) -> int:
        state = np.random.SeedSequence([seed, fit_index, purpose]).generate_state(2, np.uint64)
        return int(state[0] >> np.uint64(1))

    for seed in (0, 1, 12345, 2**31 - 2, 2**31 - 1, 2**32 - 1):
        for fit_index in (0, 1, 7):
            for purpose in (0, 1, 2):
                assert derive_seed(seed, fit_index, purpose) == old(seed, fit_index, purpose)
    # random_state accepts exactly the ints in [0, 2**32) (a RandomState draws below 2**31 - 1).
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    WarmStartClassifier(**{**TINY, "random_state": 2**32 - 1}).fit(X, y)
    for bad in (2**32, -1):
        with pytest.raises(ActivewsError, match=r"random_state must be"):
            WarmStartClassifier(**{**TINY, "random_state": bad}).fit(X, y)


def test_refit_on_new_labels_skips_a_fit_whose_labeled_set_is_unchanged(digits):
    X, y = digits
    clf = WarmStartClassifier(strategy="shrink_perturb", refit="on_new_labels", **SMALL)
    clf.fit(X[:200], y[:200])
    model, proba = clf.model_, clf.predict_proba(X[1000:1100])
    clf.fit(X[:200], y[:200])  # the same rows and labels: no round, no training
    clf.fit(X[:200][::-1], y[:200][::-1])  # ... in another order: still the same labeled set
    assert [h["kind"] for h in clf.fit_history_] == ["first"] and clf.n_skipped_fits_ == 2
    assert clf.model_ is model and clf.last_fit_ == clf.fit_history_[0]
    np.testing.assert_array_equal(clf.predict_proba(X[1000:1100]), proba)
    clf.fit(X[:300], y[:300])  # new labels: a round
    assert [(h["kind"], h["round"], h["n_new"]) for h in clf.fit_history_] == [
        ("first", 0, 200),
        ("round", 1, 100),
    ]
    assert clf.last_fit_["steps"] > 0 and clf.n_skipped_fits_ == 2
    relabeled = y[:300].copy()
    relabeled[0] = (relabeled[0] + 1) % 10
    clf.fit(X[:300], relabeled)  # a label changed: a round (no new row)
    clf.fit(X[1:300], relabeled[1:])  # a row removed: a round
    assert [(h["round"], h["n_new"]) for h in clf.fit_history_[2:]] == [(2, 0), (3, 0)]

    # The default keeps every fit a round, as before.
    always = WarmStartClassifier(strategy="shrink_perturb", **SMALL)
    always.fit(X[:200], y[:200]).fit(X[:200], y[:200])
    assert [h["kind"] for h in always.fit_history_] == ["first", "round"] and always.n_skipped_fits_ == 0
    assert always.fit_history_[1]["steps"] > 0


def test_skipped_fits_do_not_advance_the_seeds(digits):
    # refit="on_new_labels" with repeats gives the numbers of a loop that fits only on new labels.
    X, y = digits
    skipping = WarmStartClassifier(strategy="shrink_perturb", refit="on_new_labels", **TINY)
    for n in (100, 100, 100, 200, 200):
        skipping.fit(X[:n], y[:n])
    plain = WarmStartClassifier(strategy="shrink_perturb", **TINY).fit(X[:100], y[:100]).fit(X[:200], y[:200])
    strip = [{k: v for k, v in h.items() if k not in ("seconds", "init_seconds")} for h in plain.fit_history_]
    assert [
        {k: v for k, v in h.items() if k not in ("seconds", "init_seconds")} for h in skipping.fit_history_
    ] == strip
    assert skipping.n_skipped_fits_ == 3
    np.testing.assert_array_equal(skipping.predict_proba(X[1000:]), plain.predict_proba(X[1000:]))


def test_refit_on_new_labels_passes_check_fit_idempotent():
    check_fit_idempotent("WarmStartClassifier", WarmStartClassifier(**TINY, refit="on_new_labels"))


def test_missing_label_marks_unlabeled_rows(digits):
    X, y = digits
    for missing in (np.nan, -1):
        y_partial = y[:300].astype(float)
        y_partial[200:] = missing
        clf = WarmStartClassifier(missing_label=missing, refit="on_new_labels", classes=np.arange(10), **TINY)
        clf.fit(X[:300], y_partial)
        reference = WarmStartClassifier(classes=np.arange(10), **TINY).fit(X[:200], y[:200])
        assert clf.last_fit_["n_samples"] == 200
        np.testing.assert_array_equal(clf.predict_proba(X[1000:]), reference.predict_proba(X[1000:]))
        # A new unlabeled arrival leaves the labeled set as it was: no round.
        clf.fit(X[:301], np.append(y_partial, missing))
        assert len(clf.fit_history_) == 1 and clf.n_skipped_fits_ == 1
    strings = np.array(["a", "b", "?"] * 20, dtype=object)
    clf = WarmStartClassifier(missing_label="?", **TINY).fit(X[:60], strings)
    assert clf.classes_.tolist() == ["a", "b"] and clf.last_fit_["n_samples"] == 40
    with pytest.raises(ActivewsError, match=r"^y has no labeled rows \(all 50 are missing_label=nan\)"):
        WarmStartClassifier(missing_label=np.nan, **TINY).fit(X[:50], np.full(50, np.nan))


def test_unlabeled_rows_without_missing_label_fail_with_the_fix(digits):
    X, y = digits
    y_nan = y[:50].astype(float)
    y_nan[0] = np.nan
    with pytest.raises(ActivewsError, match=r"^Input y contains NaN; .*pass missing_label=np.nan"):
        WarmStartClassifier(**TINY).fit(X[:50], y_nan)
    y_minus = y[:50].copy()
    y_minus[0] = -1
    with pytest.raises(ActivewsError, match=r"\(if -1 marks unlabeled rows, pass missing_label=-1\)$"):
        WarmStartClassifier(classes=np.arange(10), **TINY).fit(X[:50], y_minus)


def test_sequences_pickled_before_refit_existed_still_load():
    rounds = _Rounds()
    for name in ("labeled_key", "classes", "n_skipped"):
        del rounds.__dict__[name]
    restored = pickle.loads(pickle.dumps(rounds))
    assert restored.labeled_key is None and restored.classes is None and restored.n_skipped == 0


def _stream_loop(refit: str, X: np.ndarray, y: np.ndarray, arrivals: int = 40) -> tuple[int, list[dict], int]:
    """scikit-activeml's stream loop: a refit after every arrival, unlabeled arrivals as MISSING_LABEL."""
    classes = np.arange(10)
    estimator = WarmStartClassifier(strategy="shrink_perturb", refit=refit, classes=classes, **SMALL)
    clf = SklearnClassifier(estimator, classes=classes, random_state=0)
    qs = VariableUncertainty(budget=0.2, random_state=0)
    X_seen, y_seen = list(X[:30]), [float(v) for v in y[:30]]
    clf.fit(np.array(X_seen), np.array(y_seen))
    labels = 0
    for t in range(30, 30 + arrivals):
        queried = qs.query(candidates=X[t : t + 1], clf=clf)
        qs.update(candidates=X[t : t + 1], queried_indices=queried)
        labels += len(queried)
        X_seen.append(X[t])
        y_seen.append(float(y[t]) if len(queried) else MISSING_LABEL)
        clf.fit(np.array(X_seen), np.array(y_seen))
        assert clf.is_fitted_
    return labels, clf.estimator_.fit_history_, clf.estimator_.n_skipped_fits_


def test_scikit_activeml_stream_loop_refits_on_new_labels_only(digits):
    X, y = digits
    labels, history, skipped = _stream_loop("on_new_labels", X, y)
    assert 0 < labels < 40
    assert [h["kind"] for h in history] == ["first"] + ["round"] * labels
    assert all(h["n_new"] == 1 for h in history[1:]) and skipped == 40 - labels
    labels_always, history_always, skipped_always = _stream_loop("always", X, y)
    assert len(history_always) == 41 and skipped_always == 0
    steps = sum(h["steps"] for h in history[1:])
    steps_always = sum(h["steps"] for h in history_always[1:])
    assert steps < steps_always, (steps, steps_always)


def _pool_loop(
    strategy: str, X: np.ndarray, y: np.ndarray, rounds: int = 5
) -> tuple[list[float], list[dict]]:
    """scikit-activeml's pool loop with margin sampling; test accuracy per round and the fit history."""
    X_pool, y_pool, X_test, y_test = X[:1200], y[:1200], X[1200:], y[1200:]
    classes = np.arange(10)
    clf = SklearnClassifier(WarmStartClassifier(strategy=strategy, **SMALL), classes=classes, random_state=0)
    qs = UncertaintySampling(method="margin_sampling", random_state=0)
    y_lab = np.full(len(y_pool), MISSING_LABEL)
    start = np.random.default_rng(0).choice(len(y_pool), 40, replace=False)
    y_lab[start] = y_pool[start]
    accuracies = []
    for r in range(rounds + 1):
        clf.fit(X_pool, y_lab)
        assert clf.is_fitted_  # SklearnClassifier turns a failed fit into a warning; make it loud
        accuracies.append(clf.score(X_test, y_test))
        if r < rounds:
            idx = qs.query(X=X_pool, y=y_lab, clf=clf, fit_clf=False, batch_size=40)
            y_lab[idx] = y_pool[idx]
    return accuracies, clf.estimator_.fit_history_


def test_scikit_activeml_pool_loop(digits):
    X, y = digits
    runs = {s: _pool_loop(s, X, y) for s in ("shrink_perturb", "warm", "random")}
    for strategy, (_, history) in runs.items():
        assert [h["kind"] for h in history] == ["first"] + ["round"] * 5, strategy
        assert [h["n_samples"] for h in history] == [40, 80, 120, 160, 200, 240]
        assert [h["n_new"] for h in history] == [40] * 6
    accuracies = runs["shrink_perturb"][0]
    assert accuracies[-1] > accuracies[0] + 0.1, accuracies
    # All three start from the same draw and labeled set; warm then spends far less than random.
    refit_steps = {s: sum(h["steps"] for h in history[1:]) for s, (_, history) in runs.items()}
    assert len({runs[s][1][0]["steps"] for s in runs}) == 1 and len({runs[s][0][0] for s in runs}) == 1
    assert refit_steps["warm"] < 0.7 * refit_steps["random"], refit_steps


def test_inside_a_pipeline(digits):
    X, y = digits
    pipe = Pipeline([("scale", StandardScaler()), ("clf", WarmStartClassifier(**SMALL))])
    pipe.fit(X[:300], y[:300]).fit(X[:600], y[:600])
    assert [h["kind"] for h in pipe.named_steps["clf"].fit_history_] == ["first", "round"]
    assert pipe.score(X[1000:], y[1000:]) > 0.85
    # And the pipeline as the classifier of a scikit-activeml loop (deep-copied at every fit).
    wrapped = SklearnClassifier(clone(pipe), classes=np.arange(10), random_state=0)
    y_lab = np.full(600, MISSING_LABEL)
    y_lab[:100] = y[:100]
    wrapped.fit(X[:600], y_lab)
    y_lab[100:200] = y[100:200]
    wrapped.fit(X[:600], y_lab)
    history = wrapped.estimator_.named_steps["clf"].fit_history_
    assert [h["kind"] for h in history] == ["first", "round"]


def test_importing_activews_does_not_import_sklearn():
    code = (
        "import sys, activews\n"
        "assert not any(m == 'sklearn' or m.startswith('sklearn.') for m in sys.modules), 'sklearn imported'\n"
        "assert activews.WarmStartClassifier.__module__ == 'activews.sklearn'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_skactiveml_example_runs(tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "skactiveml_loop.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line.split() for line in done.stdout.splitlines()[2:]}
    assert set(lines) == {"random", "warm", "shrink_perturb"}
    # columns: strategy, 6 accuracies, refit steps, steps vs random, refit seconds
    assert int(lines["warm"][7]) < int(lines["random"][7])
