"""Pool-based active learning with scikit-activeml, each refit initialized by an activews strategy.

scikit-activeml runs the loop (margin sampling picks what to label next); activews supplies the
classifier. ``WarmStartClassifier`` turns every ``fit`` after the first into a round: the strategy is
applied to the previous fit's weights, then the model is trained to the same criterion (99% training
accuracy). The script runs the same loop with three strategies and prints, per strategy, the test
accuracy after each round and the compute the refits spent:

- ``random``: a fresh draw at every refit (the accuracy reference);
- ``warm``: keep the weights (the compute reference; it pays the warm-start penalty);
- ``shrink_perturb``: Ash & Adams' fix, between the two.

Run it with (needs ``pip install scikit-activeml``; about 20 s on one CPU core)::

    python examples/skactiveml_loop.py
"""

from __future__ import annotations

import numpy as np
import torch

from activews import load_dataset
from activews.sklearn import WarmStartClassifier

try:
    from skactiveml.classifier import SklearnClassifier
    from skactiveml.pool import UncertaintySampling
    from skactiveml.utils import MISSING_LABEL
except ImportError:
    raise SystemExit("this example needs scikit-activeml: pip install scikit-activeml") from None

torch.set_num_threads(1)  # models this small train fastest on one CPU thread (results do not change)

SEED = 0
INITIAL, QUERY, ROUNDS = 200, 200, 5
STRATEGIES = {"random": {}, "warm": {}, "shrink_perturb": {"shrink": 0.6, "perturb": 0.01}}

data = load_dataset("mnist1d", n_examples=2500, test_fraction=0.3, split_seed=SEED)
X_pool, y_pool = data.x_train.numpy(), data.y_train.numpy()
X_test, y_test = data.x_test.numpy(), data.y_test.numpy()
# Every class label up front: the output layer is then fixed from the first fit on, so a class that
# first appears in a later round does not force a restart.
CLASSES = np.arange(data.num_classes)


def run_loop(strategy: str, params: dict) -> tuple[list[float], list[dict]]:
    """One scikit-activeml loop with ``strategy``: test accuracy per round and the fit history."""
    estimator = WarmStartClassifier(
        model="mlp",
        model_params={"hidden": [128, 128]},
        strategy=strategy,
        strategy_params=params,
        batch_size=64,
        random_state=SEED,
        classes=CLASSES,
    )
    clf = SklearnClassifier(estimator, classes=CLASSES, random_state=SEED)
    qs = UncertaintySampling(method="margin_sampling", random_state=SEED)

    y = np.full(len(y_pool), MISSING_LABEL)  # nothing labeled yet ...
    start = np.random.default_rng(SEED).choice(len(y_pool), INITIAL, replace=False)
    y[start] = y_pool[start]  # ... but a random initial set (the same for every strategy)

    accuracies = []
    for r in range(ROUNDS + 1):
        clf.fit(X_pool, y)  # round r: the strategy re-initializes, then training to the criterion
        accuracies.append(clf.score(X_test, y_test))
        if r < ROUNDS:
            # fit_clf=False: clf was just fitted; the default (True) would fit a clone from scratch.
            idx = qs.query(X=X_pool, y=y, clf=clf, fit_clf=False, batch_size=QUERY)
            y[idx] = y_pool[idx]
    # SklearnClassifier keeps the fitted copy of our estimator in estimator_.
    return accuracies, clf.estimator_.fit_history_


def main() -> None:
    results = {name: run_loop(name, params) for name, params in STRATEGIES.items()}
    random_steps = sum(h["steps"] for h in results["random"][1][1:])
    print(f"mnist1d, margin sampling, {INITIAL} + {ROUNDS} x {QUERY} labels, MLP 128-128, seed {SEED}")
    print(f"{'strategy':<16}{'accuracy per round':<44}{'refit steps':>12}{'vs random':>10}{'refit s':>9}")
    for name, (accuracies, history) in results.items():
        refits = history[1:]  # the first fit is the same initial draw and data for every strategy
        steps = sum(h["steps"] for h in refits)
        seconds = sum(h["seconds"] + h["init_seconds"] for h in refits)
        per_round = " ".join(f"{a:.3f}" for a in accuracies)
        print(f"{name:<16}{per_round:<44}{steps:>12}{steps / random_steps:>10.2f}{seconds:>9.2f}")


if __name__ == "__main__":
    main()
