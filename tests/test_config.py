"""BenchConfig: defaults, normalization, and one-line errors with the fix in them."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from activews.engine.config import REFERENCE_ARMS, BenchConfig
from activews.errors import ActivewsError
from activews.training import TrainConfig
from tests.helpers import assert_one_line


def test_defaults():
    c = BenchConfig()
    assert (c.stream, c.strategies, c.seeds) == ("active", ("shrink_perturb",), (0, 1, 2, 3))
    assert (c.dataset, c.model, c.acquisition) == ("mnist1d", "mlp", "margin")
    assert (c.rounds, c.initial, c.query_size, c.num_rounds) == (7, 1000, 1000, 7)
    assert (c.optimizer, c.lr, c.batch_size, c.target_accuracy) == ("adam", 1e-3, 128, 0.99)
    assert REFERENCE_ARMS == ("random", "warm")
    assert c.arms == ["random", "warm", "shrink_perturb"]
    assert c.train == TrainConfig(lr=1e-3, batch_size=128, target_accuracy=0.99, patience=25, max_epochs=500)


def test_normalization():
    assert BenchConfig.build(seeds=3).seeds == (0, 1, 2)
    assert BenchConfig.build(seeds=[5, 2]).seeds == (5, 2)
    assert BenchConfig.build(strategies="partial_reset").strategies == ("partial_reset",)
    c = BenchConfig.build(strategies=["warm", "partial_reset", "random", "partial_reset"])
    assert c.arms == ["random", "warm", "partial_reset"]
    c = BenchConfig.build(stream="passive", schedule=[0.5, 1.0])
    assert c.schedule == (0.5, 1.0) and c.num_rounds == 2
    with pytest.raises(ActivewsError, match="--schedule sets the labeled set of every round; drop --rounds"):
        BenchConfig.build(stream="passive", schedule=[0.5, 1.0], rounds=9)
    c = BenchConfig.build(optimizer="sgd", lr=0.1, momentum=0.9, keep_optimizer_state=True)
    assert (c.train.optimizer, c.train.lr, c.train.momentum, c.train.keep_optimizer_state) == (
        "sgd",
        0.1,
        0.9,
        True,
    )
    assert (
        BenchConfig.build(dataset="whatever.npz").dataset == "whatever.npz"
    )  # read (and checked) at load time


def test_frozen():
    with pytest.raises(ValidationError, match="frozen"):
        BenchConfig().rounds = 3


def test_round_trips_through_json():
    c = BenchConfig.build(stream="passive", schedule=[0.5, 1.0], params={"shrink_perturb": {"shrink": 0.6}})
    assert BenchConfig.model_validate_json(c.model_dump_json()) == c


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"strategies": ["shrink_perturbb"]},
            "unknown strategy 'shrink_perturbb'; did you mean 'shrink_perturb' or 'soft_shrink_perturb'?",
        ),
        ({"stream": "pasive"}, "unknown stream 'pasive'; did you mean 'passive'"),
        ({"model": "mpl"}, "unknown model 'mpl'; did you mean 'mlp'?"),
        ({"acquisition": "margn"}, "unknown acquisition 'margn'; did you mean 'margin'?"),
        (
            {"dataset": "mnist1"},
            "did you mean 'mnist1d' or 'mnist'? (or pass a path to an .npz file with arrays X and y)",
        ),
        ({"rounds": -1}, "rounds: Input should be greater than or equal to 0 (got -1)"),
        ({"query_size": 0}, "query_size: Input should be greater than or equal to 1 (got 0)"),
        ({"initial": -5}, "initial: Input should be greater than or equal to 1 (got -5)"),
        (
            {"params": {"shrink_perturb": {"shrink": 2}}},
            "strategy 'shrink_perturb': shrink: Input should be less than or equal to 1 (got 2)",
        ),
        (
            {"params": {"shrink_perturb": {"shrinkk": 0.5}}},
            "unknown parameter 'shrinkk' (known: shrink, perturb",
        ),
        (
            {"params": {"partial_reset": {"last": 2}}},
            "parameters given for strategy 'partial_reset', which is not in this run; "
            "add --strategy partial_reset",
        ),
        (
            {"schedule": [0.5, 1.0]},
            "--schedule applies to the passive stream; use --stream passive or drop --schedule",
        ),
        (
            {"stream": "passive", "schedule": [0.8, 0.5]},
            "must increase, got [0.8, 0.5]; e.g. --schedule 0.5,1.0",
        ),
        ({"model_params": {"hidden": [0]}}, "model 'mlp': "),
        ({"seeds": 0}, "seeds must be a positive count or a list of seeds"),
        ({"seeds": []}, "give at least one seed"),
        ({"seeds": [1, 1]}, "seeds must be distinct, got [1, 1]"),
        ({"device": "tpu"}, "device must be cpu, cuda, cuda:N, mps or auto"),
        ({"optimizer": "rmsprop"}, "optimizer: Input should be 'adam' or 'sgd'"),
        ({"lr": 0}, "lr: Input should be greater than 0"),
        ({"bogus": 1}, "unknown parameter 'bogus' (known: stream, strategies"),
    ],
)
def test_invalid_configs_raise_one_line_errors(values, expected):
    with pytest.raises(ActivewsError) as exc:
        BenchConfig.build(**values)
    message = str(exc.value)
    assert_one_line(message)
    assert expected in message


@pytest.mark.parametrize(
    "values",
    [{"lr": math.inf}, {"weight_decay": math.inf}, {"params": {"shrink_perturb": {"perturb": math.inf}}}],
)
def test_infinite_values_are_rejected(values):
    with pytest.raises(ActivewsError):
        BenchConfig.build(**values)


def test_training_fields_are_declared_once():
    """BenchConfig takes TrainConfig's fields as they are (type, bounds, default, description); only
    channels_last differs (None: automatic), and every field says what it is."""
    bench, train = BenchConfig.model_fields, TrainConfig.model_fields
    assert issubclass(BenchConfig, TrainConfig)
    for name, info in train.items():
        if name != "channels_last":
            assert repr(bench[name]) == repr(info), name  # a copy of the same declaration
    assert (bench["channels_last"].default, train["channels_last"].default) == (None, False)
    assert all(info.description for info in [*bench.values(), *train.values()])
    assert list(bench)[:2] == ["stream", "strategies"]  # the run's own settings first, as stored before
    c = BenchConfig.build(lr=0.1, patience=3, channels_last=None, precision="bf16")
    assert c.train == TrainConfig(lr=0.1, patience=3, precision="bf16", channels_last=False)


def test_the_stored_form_is_unchanged():
    """Stored runs compare their config by fingerprint: the default's must not move."""
    from activews.engine.checkpoint import config_fingerprint

    assert config_fingerprint(BenchConfig()) == (
        "95338bd7c8d030d76629f83f8a73dd289eadfe8af2e88e5a289b775c6cf98538"
    )
