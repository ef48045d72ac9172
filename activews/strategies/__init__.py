"""Initialization strategies: how each round's model starts, given the previous round's.

Public API::

    from activews.strategies import InitStrategy, InitContext, register_strategy, get_strategy, list_strategies
"""

from activews.strategies import (  # noqa: F401
    continual_backprop,
    dash,
    hare_tortoise,
    l2,
    l2_init,
    partial_reset,
    random_init,
    redo,
    reset_to_init,
    scheduled,
    shrink_perturb,
    soft_shrink_perturb,
    warm,
    weight_clipping,
)
from activews.strategies.base import (
    NEEDS,
    STRATEGIES,
    InitContext,
    InitStrategy,
    RoundHooks,
    get_strategy,
    list_strategies,
    make_strategy,
    register_strategy,
    training_hooks,
)

__all__ = [
    "NEEDS",
    "STRATEGIES",
    "InitContext",
    "InitStrategy",
    "RoundHooks",
    "get_strategy",
    "list_strategies",
    "make_strategy",
    "register_strategy",
    "training_hooks",
]
