"""Initialization strategies: how each round's model starts, given the previous round's.

Public API::

    from activews.strategies import InitStrategy, InitContext, register_strategy, get_strategy, list_strategies
"""

from activews.strategies import partial_reset, random_init, reset_to_init, shrink_perturb, warm  # noqa: F401
from activews.strategies.base import (
    STRATEGIES,
    InitContext,
    InitStrategy,
    get_strategy,
    list_strategies,
    make_strategy,
    register_strategy,
    training_hooks,
)

__all__ = [
    "STRATEGIES",
    "InitContext",
    "InitStrategy",
    "get_strategy",
    "list_strategies",
    "make_strategy",
    "register_strategy",
    "training_hooks",
]
