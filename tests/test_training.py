"""The train-to-criterion loop: stopping rules, compute accounting, determinism, evaluation."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from activews.models import build_model
from activews.training import TrainConfig, evaluate, make_optimizer, predict_proba, train_to_criterion
from tests.helpers import assert_same_state, snapshot


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def separable(n: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    """Two well-separated Gaussian blobs in 2-D."""
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=gen(1)) * 0.3 + (y[:, None] * 2 - 1) * 2.0
    return x, y


def random_labels(n: int = 300, classes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels independent of 2-D features: logistic regression cannot fit them."""
    return torch.randn(n, 2, generator=gen(2)), torch.randint(0, classes, (n,), generator=gen(3))


def logreg(classes: int = 2, seed: int = 0):
    return build_model("logreg", (2,), classes, seed=seed)


@pytest.mark.parametrize(("optimizer", "lr"), [("adam", 0.05), ("sgd", 0.5)])
def test_reaches_the_target_on_an_easy_problem(optimizer, lr):
    x, y = separable()
    model = logreg()
    cfg = TrainConfig(optimizer=optimizer, lr=lr, batch_size=64, target_accuracy=0.99)
    epochs_seen: list[tuple[int, float]] = []
    stats, opt = train_to_criterion(model, x, y, cfg, gen(), on_epoch=lambda e, a: epochs_seen.append((e, a)))
    assert stats.stop_reason == "target" and stats.reached_target
    assert stats.train_accuracy >= 0.99
    assert evaluate(model, x, y)[0] >= 0.99
    assert stats.steps == stats.epochs * math.ceil(300 / 64)
    assert [e for e, _ in epochs_seen] == list(range(1, stats.epochs + 1))
    assert epochs_seen[-1][1] == stats.train_accuracy
    assert isinstance(opt, torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)
    assert stats.as_dict()["reached_target"] is True


def test_plateau_stops_an_impossible_problem():
    x, y = random_labels()
    cfg = TrainConfig(lr=0.05, batch_size=50, patience=3, max_epochs=500)
    stats, _ = train_to_criterion(logreg(5), x, y, cfg, gen())
    assert stats.stop_reason == "plateau" and not stats.reached_target
    assert 3 < stats.epochs < 500
    assert stats.train_accuracy < 0.6


def test_max_epochs_caps_training():
    x, y = random_labels()
    cfg = TrainConfig(batch_size=128, patience=1000, max_epochs=3)
    stats, _ = train_to_criterion(logreg(5), x, y, cfg, gen())
    assert (stats.stop_reason, stats.epochs, stats.steps) == ("max_epochs", 3, 3 * math.ceil(300 / 128))


def test_empty_data():
    stats, _ = train_to_criterion(
        logreg(), torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), TrainConfig(), gen()
    )
    assert (stats.stop_reason, stats.steps, stats.epochs) == ("empty", 0, 0)


def test_same_generator_same_result():
    x, y = random_labels(200)
    cfg = TrainConfig(batch_size=32, max_epochs=4, patience=100)

    def train(seed: int):
        model = build_model("mlp", (2,), 5, {"hidden": [16]}, seed=0)
        stats, _ = train_to_criterion(model, x, y, cfg, gen(seed))
        return snapshot(model), stats

    (a, sa), (b, sb), (c, _) = train(7), train(7), train(8)
    assert_same_state(a, b)
    assert (sa.steps, sa.epochs, sa.train_accuracy, sa.train_loss) == (
        sb.steps,
        sb.epochs,
        sb.train_accuracy,
        sb.train_loss,
    )
    assert not torch.equal(a["1.weight"], c["1.weight"])  # the minibatch order comes from the generator


def test_a_given_optimizer_is_reused():
    x, y = separable()
    model = logreg()
    opt = make_optimizer(model, TrainConfig(optimizer="sgd", lr=0.5))
    _, used = train_to_criterion(model, x, y, TrainConfig(), gen(), optimizer=opt)
    assert used is opt


def test_make_optimizer_settings():
    model = logreg()
    sgd = make_optimizer(model, TrainConfig(optimizer="sgd", lr=0.2, momentum=0.9, weight_decay=1e-4))
    assert isinstance(sgd, torch.optim.SGD)
    assert (sgd.defaults["lr"], sgd.defaults["momentum"], sgd.defaults["weight_decay"]) == (0.2, 0.9, 1e-4)
    adam = make_optimizer(model, TrainConfig(lr=0.01))
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["lr"] == 0.01


@pytest.mark.parametrize(
    "bad",
    [
        {"lr": 0},
        {"batch_size": 0},
        {"target_accuracy": 1.5},
        {"optimizer": "rmsprop"},
        {"momentum": 1.0},
        {"unknown": 1},
    ],
)
def test_train_config_validation(bad):
    with pytest.raises(ValidationError):
        TrainConfig(**bad)


def test_predict_proba_and_evaluate():
    model = build_model("cnn", (40,), 10, {"channels": [4], "batchnorm": True}, seed=0)
    model.train()
    x = torch.randn(23, 40, generator=gen(4))
    y = torch.randint(0, 10, (23,), generator=gen(5))
    probs = predict_proba(model, x, batch_size=5)
    assert probs.shape == (23, 10)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(23))
    assert (probs >= 0).all()
    assert model.training, "the model's mode is restored"
    torch.testing.assert_close(predict_proba(model, x, batch_size=100), probs)  # batching does not matter

    acc, loss = evaluate(model, x, y, batch_size=4)
    assert model.training
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert acc == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
