"""Active learning with baal (BALD on MC dropout), each round re-initialized by an activews strategy.

baal runs the loop: an ``ActiveLearningDataset`` holds the pool and what is labeled, a ``ModelWrapper``
trains the model, and an ``ActiveLearningLoop`` scores the pool with BALD over MC-dropout samples
(``MCDropoutModule`` keeps dropout on at prediction) and labels the top ``QUERY``. activews supplies
one thing: at the start of every round, ``Reinitializer`` applies a strategy to the last round's
weights (where baal's own examples reload the initial weights, which is ``reset_to_init``). It returns
the model and a new optimizer over that model's parameters; both go back into the wrapper.

Each round trains epoch by epoch until the running training accuracy reaches 99% (activews' criterion,
so that compute compares across strategies). The script prints, per strategy, the test accuracy after
each round and the optimizer steps of the rounds after the first:

- ``random``: a fresh draw every round (the accuracy reference);
- ``warm``: keep the weights (the compute reference; it pays the warm-start penalty);
- ``shrink_perturb``: Ash & Adams' fix, between the two.

Randomness: baal's minibatch order, its dropout masks (training and MC sampling) and nothing else draw
from torch's global RNG, which ``run`` seeds (inside ``torch.random.fork_rng``, so the caller's state
is left alone); the initial labels come from ``random_state``; the model and the strategy's draws from
the ``Reinitializer``'s ``seed``. Same seed, same numbers on CPU.

Run it with (needs baal, see docs/active-learning.md; about 35 s on one CPU core)::

    pip install 'structlog>=22,<23' 'torchmetrics>=1.7.3,<2' 'tqdm>=4.62.2,<5'
    pip install --no-deps 'baal>=2.1,<3'
    python examples/baal_loop.py

``ACTIVEWS_EXAMPLE_TINY=1`` runs a smaller pool and fewer rounds (the tests do).
"""

from __future__ import annotations

import logging
import math
import os
import warnings

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from activews import Reinitializer, load_dataset

try:
    import structlog
    from baal import ActiveLearningDataset, ModelWrapper
    from baal.active import ActiveLearningLoop
    from baal.active.heuristics import BALD
    from baal.bayesian.dropout import MCDropoutModule
    from baal.modelwrapper import TrainingArgs
    from baal.utils.metrics import Accuracy
except ImportError:
    raise SystemExit(
        "this example needs baal: pip install 'activews[baal]' (see docs/active-learning.md)"
    ) from None

# baal logs every epoch and prediction; keep its warnings only. Its Accuracy metric warns on every
# epoch about a tensor that requires grad (harmless here).
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True", category=UserWarning)
torch.set_num_threads(1)  # models this small train fastest on one CPU thread

TINY = os.environ.get("ACTIVEWS_EXAMPLE_TINY") == "1"
SEED = 0
INITIAL, QUERY = 100, 100
ROUNDS = 2 if TINY else 5
MC_SAMPLES = 10 if TINY else 20  # MC-dropout forward passes per pool example
BATCH, TARGET, MAX_EPOCHS = 64, 0.99, 300
STRATEGIES = {"random": {}, "warm": {}, "shrink_perturb": {"shrink": 0.6, "perturb": 0.01}}

data = load_dataset("mnist1d", n_examples=1500 if TINY else 4000, test_fraction=0.25, split_seed=SEED)
POOL = TensorDataset(data.x_train, data.y_train)
TEST = TensorDataset(data.x_test, data.y_test)


class Net(nn.Module):
    """The user's model: an MLP with dropout (baal's MCDropoutModule keeps it on for BALD)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(40, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.2)
        )
        self.head = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def mc_net() -> nn.Module:
    """A new ``Net`` with its dropout layers patched to stay on (the factory the strategy draws from)."""
    return MCDropoutModule(Net())


def train_to_criterion(wrapper: ModelWrapper, labeled: ActiveLearningDataset) -> int:
    """baal's one-epoch training, repeated until the running training accuracy reaches TARGET; the steps."""
    epochs = 0
    while epochs < MAX_EPOCHS:
        wrapper.train_on_dataset(labeled)  # one epoch (TrainingArgs.epoch=1)
        epochs += 1
        if wrapper.get_metrics("train")["train_accuracy"] >= TARGET:
            break
    return epochs * math.ceil(len(labeled) / BATCH)


def run(arm: str, seed: int = SEED) -> list[tuple[float, int]]:
    """One baal loop with strategy ``arm``: per round, the test accuracy and the optimizer steps."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # baal's minibatch order and dropout masks
        labeled = ActiveLearningDataset(POOL, random_state=seed)
        labeled.label_randomly(INITIAL)  # the same initial set for every arm

        model = mc_net()  # the user's model, drawn from the seeded global RNG
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        wrapper = ModelWrapper(
            model,
            TrainingArgs(
                optimizer=optimizer,
                criterion=nn.CrossEntropyLoss(),
                batch_size=BATCH,
                epoch=1,
                use_cuda=False,
                workers=0,
            ),
        )
        wrapper.add_metric("accuracy", lambda: Accuracy())
        loop = ActiveLearningLoop(
            labeled, wrapper.predict_on_dataset, heuristic=BALD(), query_size=QUERY,
            iterations=MC_SAMPLES, verbose=False,
        )  # fmt: skip
        # activews: the strategy, and fresh draws of the model (random, shrink_perturb) seeded from `seed`.
        reinit = Reinitializer(arm, params=STRATEGIES[arm], factory=mc_net, seed=seed)

        results = []
        for r in range(ROUNDS + 1):
            # Where baal's examples reload the initial weights: the strategy, applied to last round's
            # model (round 0: the model is returned as given and its state kept). A strategy may return a
            # new module, and the optimizer returned holds its parameters: rebind both in the wrapper.
            idx = np.flatnonzero(labeled.labelled)
            new = torch.from_numpy(labeled.labelled_map[idx] == labeled.current_al_step)
            model, optimizer = reinit(
                model, optimizer, x=POOL.tensors[0][idx], y=POOL.tensors[1][idx], new=new
            )
            wrapper.model, wrapper.args.optimizer = model, optimizer
            steps = train_to_criterion(wrapper, labeled)
            wrapper.test_on_dataset(TEST)
            results.append((float(wrapper.get_metrics("test")["test_accuracy"]), steps))
            if r < ROUNDS:
                loop.step()  # BALD over MC_SAMPLES dropout masks; labels the top QUERY
    return results


def main() -> None:
    print(
        f"mnist1d, baal BALD ({MC_SAMPLES} MC-dropout samples), {INITIAL} + {ROUNDS} x {QUERY} labels, "
        f"MLP 256-256 with dropout 0.2, seed {SEED}"
    )
    runs = {arm: run(arm) for arm in STRATEGIES}
    random_steps = sum(steps for _, steps in runs["random"][1:])
    print(f"{'strategy':<16}{'accuracy per round':<44}{'refit steps':>12}{'vs random':>10}")
    for arm, results in runs.items():
        per_round = " ".join(f"{acc:.3f}" for acc, _ in results)
        steps = sum(s for _, s in results[1:])
        print(f"{arm:<16}{per_round:<44}{steps:>12}{steps / random_steps:>10.2f}")


if __name__ == "__main__":
    main()
