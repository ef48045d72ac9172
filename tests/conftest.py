"""Shared fixtures.

The suite pins torch to one intra-op thread: the models are tiny, and on a small shared CI machine
two threads competing with another process slow training down by an order of magnitude.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from activews import plugins
from activews.data import builtin
from activews.models import build_model
from activews.strategies import STRATEGIES, InitContext, InitStrategy, register_strategy
from tests.helpers import INPUT_SHAPE, MODEL_SPECS, NUM_CLASSES, USER_STRATEGY, make_ctx, snapshot

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")  # and in the CLI processes the tests start


@dataclass
class Trained:
    """A model trained for a few steps (weights and BatchNorm statistics differ from its init)."""

    key: str
    model: nn.Module
    initial_state: dict[str, torch.Tensor]

    def copy(self) -> nn.Module:
        """A copy to hand to a strategy (strategies may modify their input in place)."""
        return copy.deepcopy(self.model)

    def ctx(self, seed: int) -> InitContext:
        return make_ctx(self.key, seed, self.initial_state)


def _train_briefly(key: str) -> Trained:
    name, params = MODEL_SPECS[key]
    model = build_model(name, INPUT_SHAPE, NUM_CLASSES, params, seed=0)
    initial_state = snapshot(model)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, *INPUT_SHAPE, generator=gen) + 0.5  # shifted, so BN running means move away from 0
    y = torch.randint(0, NUM_CLASSES, (64,), generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for _ in range(5):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return Trained(key, model, initial_state)


@pytest.fixture(scope="session")
def trained_models() -> dict[str, Trained]:
    return {key: _train_briefly(key) for key in MODEL_SPECS}


@pytest.fixture(params=list(MODEL_SPECS))
def trained(request: pytest.FixtureRequest, trained_models: dict[str, Trained]) -> Trained:
    """Each model of ``MODEL_SPECS`` after a short training run."""
    return trained_models[request.param]


@pytest.fixture
def trained_mlp(trained_models: dict[str, Trained]) -> Trained:
    return trained_models["mlp"]


@pytest.fixture
def trained_cnn(trained_models: dict[str, Trained]) -> Trained:
    return trained_models["cnn_bn"]


@pytest.fixture
def user_strategy() -> Iterator[type[InitStrategy]]:
    """A user strategy registered as ``my_test_strategy`` for the duration of one test."""
    assert USER_STRATEGY not in STRATEGIES

    @register_strategy(USER_STRATEGY)
    class Halve(InitStrategy):
        """Scale every weight by ``factor``."""

        class Params(InitStrategy.Params):
            factor: float = Field(0.5, gt=0, le=1)

        calls: list[int] = []

        @torch.no_grad()
        def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
            type(self).calls.append(ctx.round_index)
            for p in model.parameters():
                p.mul_(self.params.factor)
            return model

    try:
        yield Halve
    finally:
        STRATEGIES.unregister(USER_STRATEGY)


PLUGIN_SOURCE = '''
from activews.strategies import InitStrategy, register_strategy


@register_strategy({name!r})
class PluginStrategy(InitStrategy):
    """Keep the weights (a plugin loaded from a .py file)."""

    def init_round(self, model, ctx):
        return model
'''


@pytest.fixture(autouse=True)
def _forget_plugins_loaded_by_the_test() -> Iterator[None]:
    """A test that loads a plugin in this process (``main(["--plugin", ...])``) leaves it out of the next
    tests: worker processes re-load every plugin the parent loaded, and a plugin file deleted or
    re-registered by a later test would break their start."""
    before = list(plugins._LOADED)
    yield
    plugins._LOADED[:] = before


@pytest.fixture
def plugin_file(tmp_path) -> Iterator[tuple[str, str]]:
    """A ``.py`` file registering strategy ``my_cli_strategy`` when imported; ``(path, name)``."""
    name = "my_cli_strategy"
    path = tmp_path / "my_plugin.py"
    path.write_text(PLUGIN_SOURCE.format(name=name))
    try:
        yield str(path), name
    finally:
        STRATEGIES.unregister(name)
        sys.modules.pop("activews_plugin_my_plugin", None)


@pytest.fixture
def mnist1d_cache(tmp_path, monkeypatch) -> Iterator:
    """An empty ``ACTIVEWS_CACHE`` folder, with the in-memory MNIST-1D cache cleared before and after."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("ACTIVEWS_CACHE", str(folder))
    builtin._mnist1d_arrays.cache_clear()
    try:
        yield folder
    finally:
        builtin._mnist1d_arrays.cache_clear()
