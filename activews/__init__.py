"""activews: measure the warm-start penalty in continual and active learning.

Quick start::

    from activews import BenchConfig, run_bench
    result = run_bench(BenchConfig(stream="active", strategies=["shrink_perturb"], seeds=3))
    penalties = {arm["arm"]: (arm["penalty"], arm["penalty_ci"]) for arm in result.summary}

The names below load on first use (PEP 562), so ``import activews`` costs almost nothing and
``from activews import run_bench`` loads only the engine. The layout (domain, engine, report,
reproduce, cli) is described in docs/architecture.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from activews import _compat
from activews.version import __version__

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from activews.data import Dataset, from_arrays, load_dataset, load_npz, register_dataset
    from activews.engine.advise import Advice, advise
    from activews.engine.arm import ProgressEvent, run_arm
    from activews.engine.bench import BenchResult, run_bench
    from activews.engine.config import REFERENCE_ARMS, BenchConfig
    from activews.engine.step import RoundResult, RoundStep, TrainHooks
    from activews.engine.summary import summarize
    from activews.errors import ActivewsError
    from activews.models import ModelParams, build_model, register_model
    from activews.params import Tune
    from activews.reinit import Reinitializer
    from activews.report.advise import write_advice
    from activews.roundlog import RoundLog
    from activews.sklearn import WarmStartClassifier
    from activews.strategies import (
        InitContext,
        InitStrategy,
        get_strategy,
        list_strategies,
        make_strategy,
        register_strategy,
        training_hooks,
    )
    from activews.streams import ActiveStream, PassiveStream, Round, Stream, register_acquisition
    from activews.training import Step, TrainConfig, TrainStats, evaluate, predict_proba, train_to_criterion

_compat.install()

_EXPORTS: dict[str, str] = {
    "REFERENCE_ARMS": "activews.engine.config",
    "BenchConfig": "activews.engine.config",
    "BenchResult": "activews.engine.bench",
    "run_bench": "activews.engine.bench",
    "Advice": "activews.engine.advise",
    "advise": "activews.engine.advise",
    "write_advice": "activews.report.advise",
    "Tune": "activews.params",
    "ProgressEvent": "activews.engine.arm",
    "run_arm": "activews.engine.arm",
    "RoundStep": "activews.engine.step",
    "RoundResult": "activews.engine.step",
    "TrainHooks": "activews.engine.step",
    "summarize": "activews.engine.summary",
    "ActivewsError": "activews.errors",
    "Dataset": "activews.data",
    "from_arrays": "activews.data",
    "load_dataset": "activews.data",
    "load_npz": "activews.data",
    "register_dataset": "activews.data",
    "ModelParams": "activews.models",
    "build_model": "activews.models",
    "register_model": "activews.models",
    "RoundLog": "activews.roundlog",
    "Reinitializer": "activews.reinit",
    "InitContext": "activews.strategies",
    "InitStrategy": "activews.strategies",
    "get_strategy": "activews.strategies",
    "list_strategies": "activews.strategies",
    "make_strategy": "activews.strategies",
    "register_strategy": "activews.strategies",
    "training_hooks": "activews.strategies",
    "ActiveStream": "activews.streams",
    "PassiveStream": "activews.streams",
    "Round": "activews.streams",
    "Stream": "activews.streams",
    "register_acquisition": "activews.streams",
    "Step": "activews.training",
    "TrainConfig": "activews.training",
    "TrainStats": "activews.training",
    "evaluate": "activews.training",
    "predict_proba": "activews.training",
    "train_to_criterion": "activews.training",
    # scikit-learn's estimator machinery (scikit-learn >= 1.6) loads only when this is used
    "WarmStartClassifier": "activews.sklearn",
}

__all__ = [
    "ActiveStream",
    "ActivewsError",
    "Advice",
    "BenchConfig",
    "BenchResult",
    "Dataset",
    "InitContext",
    "InitStrategy",
    "ModelParams",
    "PassiveStream",
    "ProgressEvent",
    "REFERENCE_ARMS",
    "Round",
    "Reinitializer",
    "RoundLog",
    "RoundResult",
    "RoundStep",
    "Step",
    "Stream",
    "TrainConfig",
    "TrainHooks",
    "TrainStats",
    "Tune",
    "WarmStartClassifier",
    "__version__",
    "advise",
    "build_model",
    "evaluate",
    "from_arrays",
    "get_strategy",
    "list_strategies",
    "load_dataset",
    "load_npz",
    "make_strategy",
    "predict_proba",
    "register_acquisition",
    "register_dataset",
    "register_model",
    "register_strategy",
    "run_arm",
    "run_bench",
    "summarize",
    "train_to_criterion",
    "training_hooks",
    "write_advice",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'activews' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
