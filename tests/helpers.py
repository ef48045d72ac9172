"""Helpers shared by the test modules (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import torch
from torch import nn

from activews.models import build_model
from activews.strategies import InitContext

INPUT_SHAPE = (40,)
NUM_CLASSES = 10

MODEL_SPECS: dict[str, tuple[str, dict]] = {
    "mlp": ("mlp", {}),
    "cnn_bn": ("cnn", {"batchnorm": True, "channels": [4, 8]}),
    "resnet18": ("resnet18", {"width": 4}),
}
"""The models every strategy is checked on: the default MLP, a small CNN with BatchNorm, and a narrow
ResNet-18 (nested blocks, projection shortcuts, 20 BatchNorm layers)."""

USER_STRATEGY = "my_test_strategy"
"""The name the ``user_strategy`` fixture registers (and unregisters) for one test."""


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of every parameter and buffer of ``model``."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed_keys(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> set[str]:
    """Names whose tensors differ between two state dicts with the same keys."""
    assert a.keys() == b.keys()
    return {k for k in a if not torch.equal(a[k], b[k])}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    diff = changed_keys(a, b)
    assert not diff, f"tensors differ: {sorted(diff)}"


def make_ctx(
    model_key: str, seed: int, initial_state: dict[str, torch.Tensor], round_index: int = 1
) -> InitContext:
    """A context whose ``fresh_model`` draws its seed from the context generator, as bench does."""
    name, params = MODEL_SPECS[model_key]
    gen = torch.Generator().manual_seed(seed)

    def fresh_model() -> nn.Module:
        draw = int(torch.randint(0, 2**62, (1,), generator=gen))
        return build_model(name, INPUT_SHAPE, NUM_CLASSES, params, seed=draw)

    # Labeled data for strategies that need it (dash), from a generator of its own so that the context
    # generator's fresh draws are the same with or without data: 48 examples, the last 16 new.
    data = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(48, *INPUT_SHAPE, generator=data)
    y = torch.randint(0, NUM_CLASSES, (48,), generator=data)
    return InitContext(
        round_index,
        fresh_model,
        initial_state,
        gen,
        x_labeled=x,
        y_labeled=y,
        new_mask=torch.arange(48) >= 32,
    )


def first_fresh_draw(model_key: str, seed: int) -> dict[str, torch.Tensor]:
    """The state of the first model ``make_ctx(model_key, seed, ...).fresh_model()`` returns."""
    return snapshot(make_ctx(model_key, seed, {}).fresh_model())


def assert_one_line(message: str) -> None:
    """User-facing errors are a single non-empty line."""
    assert message.strip(), "empty message"
    assert "\n" not in message, f"message spans several lines: {message!r}"


def record_returns(monkeypatch, module: object, name: str) -> list:
    """Wrap ``module.name`` for one test: it works as before, and each call's return value is appended
    to the returned list (e.g. how many units each ``recycle_units`` call re-initialized)."""
    real = getattr(module, name)
    returns: list = []

    def wrapper(*args, **kwargs):
        out = real(*args, **kwargs)
        returns.append(out)
        return out

    monkeypatch.setattr(module, name, wrapper)
    return returns
