"""Stream-based active learning with scikit-activeml, each refit initialized by an activews strategy.

Examples arrive one at a time. For each arrival scikit-activeml's ``VariableUncertainty`` decides, from
the classifier's confidence and a label budget, whether to ask for its label; then the loop refits the
classifier on everything seen so far, the unlabeled arrivals marked ``MISSING_LABEL`` (scikit-activeml's
usual stream loop). Most arrivals are not labeled, so most refits see the same labeled set as the one
before.

With ``refit="always"`` (the default of ``WarmStartClassifier``) every refit is a round all the same:
the strategy is applied and the model trains again to the criterion on data it has already fitted.
For ``warm`` that is an epoch or so; for ``shrink_perturb`` it is a full retraining from shrunk weights,
every arrival. With ``refit="on_new_labels"`` a refit whose labeled set has not changed starts no
round: nothing trains and the model stays. The script runs the loop for ``warm`` and
``shrink_perturb`` with both settings and prints, for each, the refits, the rounds, the labels bought,
the optimizer steps of the rounds and the final test accuracy.

Run it with (needs ``pip install scikit-activeml``; about 40 s on one CPU core)::

    python examples/skactiveml_stream.py

``ACTIVEWS_EXAMPLE_TINY=1`` runs a shorter stream (the tests do).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from sklearn.datasets import load_digits

from activews.sklearn import WarmStartClassifier

try:
    from skactiveml.classifier import SklearnClassifier
    from skactiveml.stream import VariableUncertainty
    from skactiveml.utils import MISSING_LABEL
except ImportError:
    raise SystemExit("this example needs scikit-activeml: pip install scikit-activeml") from None

torch.set_num_threads(1)  # models this small train fastest on one CPU thread (results do not change)

TINY = os.environ.get("ACTIVEWS_EXAMPLE_TINY") == "1"
SEED = 0
INITIAL = 30  # labeled before the stream starts
ARRIVALS = 60 if TINY else 400
BUDGET = 0.1  # the share of arrivals that may be labeled
STRATEGIES = {"warm": {}, "shrink_perturb": {"shrink": 0.6, "perturb": 0.01}}

# scikit-learn's 8x8 digits (bundled, no download), shuffled once: the stream, then a test set.
X_digits, y_digits = load_digits(return_X_y=True)
order = np.random.default_rng(SEED).permutation(len(y_digits))
X_all, y_all = X_digits[order][:1297] / 16.0, y_digits[order][:1297]
X_test, y_test = X_digits[order][1297:] / 16.0, y_digits[order][1297:]
CLASSES = np.arange(10)  # fixed output layer: a late first label of a class is no restart


def run_stream(strategy: str, params: dict, refit: str) -> dict:
    """One pass over the stream; what it cost and where it ended."""
    estimator = WarmStartClassifier(
        model="mlp",
        model_params={"hidden": [128, 128]},
        strategy=strategy,
        strategy_params=params,
        batch_size=64,
        random_state=SEED,
        classes=CLASSES,
        refit=refit,
    )
    clf = SklearnClassifier(estimator, classes=CLASSES, random_state=SEED)
    qs = VariableUncertainty(budget=BUDGET, random_state=SEED)

    X_seen = list(X_all[:INITIAL])
    y_seen = [float(label) for label in y_all[:INITIAL]]
    clf.fit(np.array(X_seen), np.array(y_seen))  # the first fit: a seeded draw trained on the initial set
    for t in range(INITIAL, INITIAL + ARRIVALS):
        x_t = X_all[t : t + 1]
        queried = qs.query(candidates=x_t, clf=clf)
        qs.update(candidates=x_t, queried_indices=queried)
        X_seen.append(x_t[0])
        y_seen.append(float(y_all[t]) if len(queried) else MISSING_LABEL)
        clf.fit(np.array(X_seen), np.array(y_seen))  # after every arrival, labeled or not
        assert clf.is_fitted_, "the fit failed; fit the bare WarmStartClassifier to see why"

    est = clf.estimator_  # the fitted copy of our estimator
    rounds = est.fit_history_[1:]  # the first fit is the same for every arm
    return {
        "refits": ARRIVALS,
        "rounds": len(rounds),
        "labels": int(np.sum(~np.isnan(np.array(y_seen[INITIAL:])))),
        "steps": sum(h["steps"] for h in rounds),
        "accuracy": clf.score(X_test, y_test),
    }


def main() -> None:
    print(
        f"digits stream, {INITIAL} labels + {ARRIVALS} arrivals, VariableUncertainty (budget {BUDGET}), "
        f"MLP 128-128, seed {SEED}"
    )
    print(f"{'strategy':<16}{'refit':<15}{'refits':>7}{'rounds':>8}{'labels':>8}{'steps':>8}{'accuracy':>10}")
    for refit in ("always", "on_new_labels"):
        for name, params in STRATEGIES.items():
            r = run_stream(name, params, refit)
            print(
                f"{name:<16}{refit:<15}{r['refits']:>7}{r['rounds']:>8}{r['labels']:>8}{r['steps']:>8}"
                f"{r['accuracy']:>10.3f}"
            )


if __name__ == "__main__":
    main()
