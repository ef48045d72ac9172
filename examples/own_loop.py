"""Your own PyTorch model and training loop, each active-learning round re-initialized by activews.

Everything here is plain PyTorch that a user would already have (a model class, a training loop, margin
sampling over the pool) except three lines, marked ``# activews``:

1. ``reinit = Reinitializer(arm, params, factory=Net, seed=seed)`` once, before the loop;
2. ``model, optimizer = reinit(model, optimizer, x=..., y=..., new=...)`` at the start of every round;
3. in the training loop, ``reinit.loss_term(model)`` and ``reinit.after_step(...)``: the training hooks of
   strategies such as ``l2_init``, ``redo`` and ``continual_backprop`` (no-ops for the others).

Line 2 is the optimizer rule: a strategy may return a new module (``random`` does), and an optimizer
built over the old module's parameters would then train nothing, silently. The re-initializer returns
an optimizer of the same class and hyperparameters over the returned model's parameters (fresh state,
the paper's protocol); rebind both.

Each round trains until the running training accuracy reaches 99% (activews' criterion, so compute
compares across strategies). ``run(arm, seed)`` returns, per round, the test accuracy and the optimizer
steps; the script prints them for each arm. Every draw comes from an explicit generator: the same seed
gives the same numbers on CPU.

Run it with (about 12 s on one CPU core)::

    python examples/own_loop.py                      # random, warm, shrink_perturb
    python examples/own_loop.py warm l2_init         # any registered strategies

``ACTIVEWS_EXAMPLE_TINY=1`` runs a smaller pool and fewer rounds (the tests do).
"""

from __future__ import annotations

import os
import sys

import torch
from torch import nn

from activews import Reinitializer, load_dataset

torch.set_num_threads(1)  # models this small train fastest on one CPU thread

TINY = os.environ.get("ACTIVEWS_EXAMPLE_TINY") == "1"
SEED = 0
INITIAL, QUERY = 100, 100
ROUNDS = 2 if TINY else 5
BATCH, TARGET, MAX_EPOCHS = 64, 0.99, 300
PARAMS = {"shrink_perturb": {"shrink": 0.6, "perturb": 0.01}}  # other arms: the registered defaults

data = load_dataset("mnist1d", n_examples=1500 if TINY else 4000, test_fraction=0.25, split_seed=SEED)
X_POOL, Y_POOL, X_TEST, Y_TEST = data.x_train, data.y_train, data.x_test, data.y_test


class Net(nn.Module):
    """The user's model."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(40, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
        self.head = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train(model, optimizer, reinit, x, y, generator) -> int:
    """The user's training loop: epochs until the running training accuracy reaches TARGET; the steps."""
    model.train()
    steps = 0
    for _ in range(MAX_EPOCHS):
        correct = 0
        for batch in torch.randperm(len(y), generator=generator).split(BATCH):
            xb, yb = x[batch], y[batch]
            out = model(xb)
            loss = nn.functional.cross_entropy(out, yb)
            loss = loss + reinit.loss_term(model)  # activews (3): the strategy's training hooks
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            reinit.after_step(model, optimizer, x=xb, y=yb)  # activews (3)
            steps += 1
            correct += int((out.argmax(1) == yb).sum())
        if correct / len(y) >= TARGET:
            break
    return steps


@torch.no_grad()
def margins(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 probability: small = uncertain."""
    model.eval()
    top2 = model(x).softmax(1).topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def run(arm: str, seed: int = SEED) -> list[tuple[float, int]]:
    """One active-learning loop with strategy ``arm``: per round, (test accuracy, optimizer steps)."""
    generator = torch.Generator().manual_seed(seed)  # initial labels and minibatch order
    labeled = torch.zeros(len(Y_POOL), dtype=torch.bool)
    labeled[torch.randperm(len(Y_POOL), generator=generator)[:INITIAL]] = True
    new = labeled.clone()

    reinit = Reinitializer(arm, params=PARAMS.get(arm), factory=Net, seed=seed)  # activews (1)
    model = reinit.first_model()  # Net(), drawn from a generator seeded by `seed`
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    results = []
    for r in range(ROUNDS + 1):
        x, y = X_POOL[labeled], Y_POOL[labeled]
        model, optimizer = reinit(model, optimizer, x=x, y=y, new=new[labeled])  # activews (2)
        steps = train(model, optimizer, reinit, x, y, generator)
        with torch.no_grad():
            model.eval()
            accuracy = float((model(X_TEST).argmax(1) == Y_TEST).float().mean())
        results.append((accuracy, steps))
        if r < ROUNDS:  # margin sampling: label the QUERY least certain pool examples
            pool = (~labeled).nonzero().squeeze(1)
            picked = pool[margins(model, X_POOL[pool]).argsort()[:QUERY]]
            new = torch.zeros_like(labeled)
            new[picked] = True
            labeled |= new
    return results


def main(arms: list[str]) -> None:
    print(f"mnist1d, margin sampling, {INITIAL} + {ROUNDS} x {QUERY} labels, MLP 256-256, seed {SEED}")
    runs = {arm: run(arm) for arm in arms}
    random_steps = sum(s for _, s in runs["random"][1:]) if "random" in runs else None
    print(f"{'strategy':<20}{'accuracy per round':<44}{'refit steps':>12}{'vs random':>10}")
    for arm, results in runs.items():
        per_round = " ".join(f"{acc:.3f}" for acc, _ in results)
        steps = sum(s for _, s in results[1:])  # round 0 is the same for every arm
        ratio = f"{steps / random_steps:.2f}" if random_steps else "-"
        print(f"{arm:<20}{per_round:<44}{steps:>12}{ratio:>10}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["random", "warm", "shrink_perturb"])
