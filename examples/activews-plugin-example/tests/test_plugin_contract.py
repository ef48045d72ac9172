"""The package's tests: activews' own contract checks (``activews.testing``) on its strategy and its
acquisition, one test per check. Run them from this folder with ``python -m pytest`` (pyproject.toml puts
``src`` on the path, so the package need not be installed)."""

from __future__ import annotations

import pytest
from activews_plugin_example.acquisition import StochasticPower
from activews_plugin_example.strategy import NormToInit

from activews.testing import acquisition_checks, strategy_checks


@pytest.mark.parametrize(
    "check", strategy_checks(NormToInit) + strategy_checks(NormToInit, {"mix": 0.5, "min_ndim": 1})
)
def test_norm_to_init_keeps_the_strategy_contract(check):
    check()


@pytest.mark.parametrize(
    "check",
    acquisition_checks(StochasticPower)
    + acquisition_checks(StochasticPower, {"base": "least_confidence", "beta": 4.0}),
)
def test_stochastic_power_keeps_the_acquisition_contract(check):
    check()
