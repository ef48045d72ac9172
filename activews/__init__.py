"""activews: measure the warm-start penalty in continual and active learning.

Quick start::

    from activews import BenchConfig, run_bench
    result = run_bench(BenchConfig(stream="active", strategies=["shrink_perturb"], seeds=3))
    penalties = {arm["arm"]: (arm["penalty"], arm["penalty_ci"]) for arm in result.summary}
"""

from activews.bench import BenchResult, ProgressEvent, run_arm, run_bench, summarize
from activews.config import REFERENCE_ARMS, BenchConfig
from activews.data import Dataset, from_arrays, load_dataset, load_npz, register_dataset
from activews.errors import ActivewsError
from activews.models import ModelParams, build_model, register_model
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

__version__ = "0.1.0"

__all__ = [
    "REFERENCE_ARMS",
    "ActiveStream",
    "ActivewsError",
    "BenchConfig",
    "BenchResult",
    "Dataset",
    "InitContext",
    "InitStrategy",
    "ModelParams",
    "PassiveStream",
    "ProgressEvent",
    "Round",
    "Step",
    "Stream",
    "TrainConfig",
    "TrainStats",
    "WarmStartClassifier",
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
]


def __getattr__(name: str) -> object:
    # activews.sklearn imports scikit-learn's estimator machinery (and needs scikit-learn >= 1.6):
    # load it on first use, so that `import activews` stays light.
    if name == "WarmStartClassifier":
        from activews.sklearn import WarmStartClassifier

        return WarmStartClassifier
    raise AttributeError(f"module 'activews' has no attribute {name!r}")
