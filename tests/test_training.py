"""The train-to-criterion loop: stopping rules, compute accounting, determinism, evaluation."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from activews.models import build_model
from activews.training import (
    TrainConfig,
    TrainStats,
    evaluate,
    make_optimizer,
    predict_proba,
    train_to_criterion,
)
from tests.helpers import assert_same_state, changed_keys, snapshot


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


# ------------------------------------------------------------------------------ exact epochs and probes


@pytest.mark.parametrize("epochs", [1, 4])
def test_exact_epochs_ignore_the_stopping_rule(epochs):
    x, y = separable()
    # an easy problem and a low target: the stopping rule alone would stop after the first epoch
    cfg = TrainConfig(lr=0.05, batch_size=64, target_accuracy=0.5, max_epochs=2)
    seen: list[int] = []
    stats, _ = train_to_criterion(
        logreg(), x, y, cfg, gen(), epochs=epochs, on_epoch=lambda e, a: seen.append(e)
    )
    assert (stats.stop_reason, stats.epochs, stats.steps) == ("epochs", epochs, epochs * math.ceil(300 / 64))
    assert seen == list(range(1, epochs + 1))
    assert not stats.reached_target and stats.as_dict()["stop_reason"] == "epochs"
    # more epochs than max_epochs: still exactly that many
    stats, _ = train_to_criterion(logreg(), x, y, cfg.model_copy(update={"max_epochs": 1}), gen(), epochs=3)
    assert (stats.epochs, stats.steps) == (3, 3 * math.ceil(300 / 64))


def test_exact_epochs_match_the_same_epochs_under_the_stopping_rule():
    x, y = random_labels()
    cfg = TrainConfig(lr=0.05, batch_size=32, patience=1000, max_epochs=3)
    a, b = logreg(5), logreg(5)
    sa, _ = train_to_criterion(a, x, y, cfg, gen(), epochs=3)
    sb, _ = train_to_criterion(b, x, y, cfg.model_copy(update={"max_epochs": 500}), gen(), epochs=3)
    sc, _ = train_to_criterion(c := logreg(5), x, y, cfg, gen())  # max_epochs=3 stops at the same point
    assert sc.stop_reason == "max_epochs" and sa.stop_reason == sb.stop_reason == "epochs"
    assert_same_state(snapshot(a), snapshot(c))
    assert_same_state(snapshot(a), snapshot(b))
    assert (sa.train_accuracy, sa.train_loss) == (sc.train_accuracy, sc.train_loss)


def test_zero_epochs_trains_nothing():
    x, y = separable()
    model = logreg()
    before = snapshot(model)
    g = gen()
    state = g.get_state()
    calls: list = []
    stats, opt = train_to_criterion(
        model, x, y, TrainConfig(), g, epochs=0, probe=lambda m, i: calls.append(i), on_epoch=calls.append
    )
    assert (stats.stop_reason, stats.steps, stats.epochs) == ("epochs", 0, 0)
    assert_same_state(before, snapshot(model))
    assert torch.equal(g.get_state(), state)  # no minibatch order drawn
    assert calls == [] and isinstance(opt, torch.optim.Optimizer)


@pytest.mark.parametrize("epochs", [None, 3])
def test_probe_sees_every_minibatch_of_the_first_epoch_only(epochs):
    x, y = separable()
    model = logreg()
    initial = snapshot(model)
    calls: list[tuple[torch.Tensor, dict]] = []

    def probe(m, idx):
        assert m is model and m.training
        calls.append((idx.clone(), snapshot(m)))

    cfg = TrainConfig(lr=0.05, batch_size=64, target_accuracy=0.999, patience=2, max_epochs=3)
    stats, _ = train_to_criterion(model, x, y, cfg, gen(), epochs=epochs, probe=probe)
    assert stats.epochs >= 2  # the later epochs were not probed
    assert [len(i) for i, _ in calls] == [64, 64, 64, 64, 44]
    assert sorted(torch.cat([i for i, _ in calls]).tolist()) == list(range(300))  # one epoch, each once
    assert torch.equal(torch.cat([i for i, _ in calls]), torch.randperm(300, generator=gen()))
    # called before each step: the first call sees the initial weights, the next ones the updated ones
    assert_same_state(calls[0][1], initial)
    assert changed_keys(calls[1][1], initial)


def test_a_grad_norm_probe_does_not_change_training():
    from activews.diagnostics import GradNormProbe

    x = torch.randn(200, 40, generator=gen(6)) + 0.3
    y = torch.randint(0, 10, (200,), generator=gen(7))
    new = torch.arange(200) >= 120
    cfg = TrainConfig(batch_size=32, max_epochs=3, patience=100)

    def train(probe):
        model = build_model("cnn", (40,), 10, {"channels": [4], "batchnorm": True}, seed=0)
        stats, _ = train_to_criterion(model, x, y, cfg, gen(), probe=probe)
        return snapshot(model), stats

    probe = GradNormProbe(x, y, new)
    (a, sa), (b, sb) = train(None), train(probe)
    assert_same_state(a, b)  # weights and BatchNorm statistics
    assert (sa.steps, sa.train_accuracy, sa.train_loss) == (sb.steps, sb.train_accuracy, sb.train_loss)
    assert len(probe.pairs) == math.ceil(200 / 32)  # every first-epoch batch held new and old examples


# ---------------------------------------------------------------------------------------- augmentation


class Recorder(nn.Module):
    """Flatten + linear; keeps every input batch it sees in training mode."""

    def __init__(self, shape: tuple[int, ...], classes: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(math.prod(shape), classes)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x.detach().clone())
        return self.linear(x.flatten(1))


def images(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(n, 2, 6, 6, generator=gen(8)) + 1.0, torch.randint(0, 3, (n,), generator=gen(9))


def train_images(augment: bool, seed: int = 0) -> tuple[Recorder, TrainStats]:
    x, y = images()
    model = Recorder(x.shape[1:])
    cfg = TrainConfig(batch_size=16, augment=augment)
    stats, _ = train_to_criterion(model, x, y, cfg, gen(seed), epochs=2)
    return model, stats


def test_augment_changes_the_batches_deterministically():
    from activews.data.augment import random_crop_flip

    x, _ = images()
    plain, sp = train_images(False)
    aug, sa = train_images(True)
    again, _ = train_images(True)
    other, _ = train_images(True, seed=1)
    assert sp.steps == sa.steps == 2 * 3 and len(aug.seen) == 6
    perm = torch.randperm(40, generator=gen())
    assert torch.equal(plain.seen[0], x[perm[:16]])  # without augmentation: the images themselves
    assert all(a.shape == b.shape for a, b in zip(aug.seen, plain.seen, strict=True))
    assert not torch.equal(aug.seen[0], plain.seen[0])
    # the padding (zeros) shows up: the images themselves are all >= 1
    assert (torch.cat(aug.seen) == 0).any() and not (torch.cat(plain.seen) == 0).any()
    # the same generator gives the same augmented batches and weights; another one different batches
    assert all(torch.equal(a, b) for a, b in zip(aug.seen, again.seen, strict=True))
    assert_same_state(aug.state_dict(), again.state_dict())
    assert not torch.equal(aug.seen[0], other.seen[0])
    # the first batch is the crop+flip of the first minibatch, drawn from the training generator
    g = gen()
    first = torch.randperm(40, generator=g)[:16]
    assert torch.equal(aug.seen[0], random_crop_flip(x[first], g))


def test_augment_needs_image_data():
    from activews.errors import ActivewsError

    x, y = separable()
    with pytest.raises(ActivewsError, match="needs image data"):
        train_to_criterion(logreg(), x, y, TrainConfig(augment=True), gen(), epochs=1)


# -------------------------------------------------------------------------------- first_round_epochs


@pytest.fixture(scope="module")
def tiny_data():
    from activews.engine.config import BenchConfig
    from activews.engine.setup import load_bench_dataset

    return load_bench_dataset(BenchConfig.build(n_examples=300))


@pytest.mark.parametrize("first_round_epochs", [0, 3])
def test_first_round_epochs_in_a_bench(tiny_data, first_round_epochs):
    from activews.engine.arm import run_arm
    from activews.engine.config import BenchConfig

    cfg = BenchConfig.build(
        n_examples=300,
        stream="passive",
        rounds=2,
        initial=100,
        query_size=50,
        seeds=1,
        strategies=[],
        batch_size=32,
        max_epochs=5,
        first_round_epochs=first_round_epochs,
    )
    first, second = run_arm(cfg, tiny_data, "warm", 0)
    assert (first["stop_reason"], first["epochs"], first["steps"]) == (
        "epochs",
        first_round_epochs,
        first_round_epochs * math.ceil(100 / 32),
    )
    assert second["stop_reason"] != "epochs" and second["steps"] > 0  # only round 0 is affected
    if first_round_epochs == 0:  # round 0 is the untrained model
        from activews.engine.arm import _MODEL0
        from activews.engine.setup import derive_seed

        model = build_model("mlp", tiny_data.input_shape, tiny_data.num_classes, seed=derive_seed(0, _MODEL0))
        assert first["test_accuracy"] == evaluate(model, tiny_data.x_test, tiny_data.y_test)[0]


def test_dropout_masks_come_from_the_generator():
    x = torch.randn(64, 40, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(1))

    def trained(seed: int, disturb: bool = False) -> torch.Tensor:
        model = build_model("mlp", (40,), 10, {"hidden": [16], "dropout": 0.5}, seed=0)
        if disturb:
            torch.rand(7)  # the global RNG moved: must not matter
        before = torch.get_rng_state()
        train_to_criterion(model, x, y, TrainConfig(max_epochs=3), torch.Generator().manual_seed(seed))
        assert torch.equal(torch.get_rng_state(), before)  # and it is left as it was
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(trained(2), trained(2, disturb=True))
    assert not torch.equal(trained(2), trained(3))
