"""The contract every registered acquisition keeps, checked through :mod:`activews.testing` (the checks
plugin authors run): row-wise functions and batch selectors alike."""

from __future__ import annotations

import pytest

from activews.streams import list_acquisitions
from activews.testing import acquisition_checks

EXERCISED: list[tuple[str, dict]] = [("bald", {"samples": 3})]
"""Non-default parameters worth a second pass (fewer Monte Carlo samples: other scores, same rules)."""


@pytest.mark.parametrize("check", [p for name in list_acquisitions() for p in acquisition_checks(name)])
def test_acquisition_contract(check):
    check()


@pytest.mark.parametrize("check", [p for name, params in EXERCISED for p in acquisition_checks(name, params)])
def test_acquisition_contract_with_parameters(check):
    check()
