"""A scikit-learn classifier whose every refit is a round: :class:`WarmStartClassifier`.

Someone else's loop (scikit-activeml's pool or stream loop, a scikit-learn ``Pipeline`` refitted as data
arrive, a hand-written loop) calls ``fit(X, y)`` again and again on a growing labeled set. This estimator
turns each of those calls into an activews round: the first fit draws a model and trains it to the
criterion; every later fit applies an initialization strategy (``shrink_perturb``, ``warm``, ``random``,
...) to the weights of the previous fit and trains again to the same criterion, recording the compute it
spent. With ``refit="on_new_labels"``, a fit on an unchanged labeled set is no round.

Importing this module imports scikit-learn (>= 1.6); ``import activews`` does not (``activews``
re-exports :class:`WarmStartClassifier` lazily).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from activews.engine.setup import derive_seed, resolve_device
from activews.engine.step import RoundStep
from activews.errors import ActivewsError, format_validation_error
from activews.models import MODELS, build_from_factory, build_model, model_params
from activews.strategies import InitStrategy, make_strategy
from activews.training import TrainConfig, predict_proba

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils import _safe_indexing, check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_consistent_length, check_is_fitted, validate_data
except ImportError as exc:  # validate_data and __sklearn_tags__ arrived in scikit-learn 1.6
    raise ImportError(
        f"activews.sklearn needs scikit-learn >= 1.6 ({exc}); upgrade with: pip install 'scikit-learn>=1.6'"
    ) from exc

__all__ = ["WarmStartClassifier", "EXPECTED_FAILED_CHECKS"]

log = logging.getLogger(__name__)

# Independent random streams derived from (seed, fit index) with activews.engine.setup.derive_seed; the
# numbers only name the purpose.
_MODEL0, _TRAIN, _INIT = 0, 1, 2

# How a user of the estimator changes the device (the end of resolve_device's one-line errors).
_DEVICE_FIX = "use device='cpu' or 'auto'"

# The values of the ``refit`` parameter.
_REFIT = ("always", "on_new_labels")

#: The scikit-learn estimator checks that cannot pass by design, with the reason; pass it to
#: ``parametrize_with_checks(..., expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)`` or
#: ``check_estimator(..., expected_failed_checks=EXPECTED_FAILED_CHECKS)``.
EXPECTED_FAILED_CHECKS: dict[str, str] = {
    "check_fit_idempotent": (
        "a second fit on the same data is a new round by design: the strategy is applied to the first "
        "fit's weights and training continues to the criterion, so predictions change (use "
        "sklearn.base.clone(est) for an independent fit from scratch)"
    ),
    "check_supervised_y_2d": (
        "it fits the same estimator twice (y as a vector, then as a column) and expects equal predictions; "
        "the second fit is a round. The column y itself is accepted with a DataConversionWarning"
    ),
    "check_methods_subset_invariance": (
        "float32 matrix products may round differently for different batch sizes (BLAS picks its kernel "
        "by shape), so a row's probabilities can differ by ~1e-7 between a batch and the whole set, above "
        "the check's atol of 1e-7 (it passes for some models, e.g. a one-layer MLP of 16 units)"
    ),
}


def _row_hashes(x: np.ndarray) -> np.ndarray:
    """A 64-bit digest of each row's bytes, to tell the rows a fit has not seen before."""
    rows = np.ascontiguousarray(x).reshape(len(x), -1)
    digests = b"".join(hashlib.blake2b(row.tobytes(), digest_size=8).digest() for row in rows)
    return np.frombuffer(digests, dtype="<u8").copy()


def _labeled_key(hashes: np.ndarray, y_idx: np.ndarray) -> np.ndarray:
    """The labeled set as a value: the (row digest, class index) pairs, sorted, so that two fits on the
    same rows with the same labels (in any order) have equal keys."""
    order = np.lexsort((y_idx, hashes))
    return np.stack([hashes[order], y_idx[order].astype(np.uint64)])


def _is_nan(value: Any) -> bool:
    try:
        return bool(value != value)
    except (TypeError, ValueError):  # e.g. pandas.NA, whose comparisons are not booleans
        return False


def _equals(value: Any, other: Any) -> bool:
    try:
        return bool(value == other)
    except (TypeError, ValueError):
        return False


def _unlabeled(y: np.ndarray, missing_label: Any) -> np.ndarray:
    """A boolean mask of the entries of 1-D ``y`` equal to ``missing_label`` (NaN matches NaN)."""
    if _is_nan(missing_label):
        if y.dtype.kind in "fc":
            return np.isnan(y)
        if y.dtype.kind == "O":
            return np.fromiter((_is_nan(v) for v in y), dtype=bool, count=len(y))
        return np.zeros(len(y), dtype=bool)
    if y.dtype.kind == "O":
        return np.fromiter((_equals(v, missing_label) for v in y), dtype=bool, count=len(y))
    return np.asarray(y == missing_label, dtype=bool).reshape(len(y))


def _as_float32(X: np.ndarray) -> np.ndarray:
    """A writable float32 copy of validated ``X``; values beyond float32's range are refused, since they
    would become infinities and train on a NaN loss."""
    with np.errstate(over="ignore"):
        x = np.array(X, dtype=np.float32)
    if not np.isfinite(x).all():  # X was checked finite in float64: the cast overflowed
        big = np.asarray(X, dtype=np.float64)[~np.isfinite(x)]
        raise ActivewsError(
            f"X has values beyond the float32 range (|x| > 3.4e38), such as {big.flat[0]:.3g}; the model "
            f"computes in float32: scale the features (e.g. sklearn.preprocessing.StandardScaler)"
        )
    return x


def _same(a: Any, b: Any) -> bool:
    """Equality that survives deep copies of a model factory (a ``functools.partial`` is compared by repr)."""
    try:
        if a is b or a == b:
            return True
    except Exception:  # an object whose __eq__ raises is simply compared by repr below
        pass
    return callable(a) and callable(b) and repr(a) == repr(b)


class _Rounds:
    """What one sequence of fits carries from fit to fit.

    It lives on the estimator from construction on, and a deep copy of the estimator shares it (its
    ``__deepcopy__`` returns itself). That is what lets a wrapper which deep-copies an unfitted
    prototype before every fit (scikit-activeml's ``SklearnClassifier`` does) still run rounds: each
    copy continues from the last fit of any copy. ``sklearn.base.clone`` builds a new estimator through
    ``__init__`` and so starts a new sequence; pickling stores the sequence with the estimator.
    """

    def __init__(self) -> None:
        self.seed: int | None = None  # drawn from random_state at the sequence's first fit
        self.n_fits = 0  # fits in this sequence, restarts included: indexes the per-fit generators
        self.round_index = 0  # rounds since the last (re)start; 0 = the initial draw
        self.signature: tuple[Any, ...] | None = None  # model spec, input shape and classes of `model`
        self.model: nn.Module | None = None  # the last fit's trained model
        self.initial_state: dict[str, torch.Tensor] | None = None  # the (re)start's initial draw
        self.row_hashes: np.ndarray | None = None  # rows the last fit trained on
        self.labeled_key: np.ndarray | None = None  # the last fit's (row, label) pairs (see _labeled_key)
        self.classes: np.ndarray | None = None  # the last fit's classes_
        self.n_skipped = 0  # fits that did not train: refit="on_new_labels" and an unchanged labeled set
        self.strategy: InitStrategy | None = None  # kept across rounds: strategies may carry state
        self.strategy_key: tuple[Any, ...] | None = None
        self.history: list[dict[str, Any]] = []

    def __deepcopy__(self, memo: dict[int, Any]) -> _Rounds:
        return self

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickles made before a field existed get its initial value.
        self.__dict__.update({**_Rounds().__dict__, **state})


@dataclass(frozen=True)
class _Settings:
    """The estimator's parameters, validated (built at the start of every fit)."""

    model: str | Callable[..., nn.Module]
    model_params: Any  # ModelParams for a registered name, a dict of keyword arguments for a factory
    strategy_key: tuple[Any, ...]
    train: TrainConfig
    device: torch.device
    refit: str


class WarmStartClassifier(ClassifierMixin, BaseEstimator):
    """A PyTorch classifier for scikit-learn whose every refit is an activews round.

    The first ``fit`` draws a model (seeded from ``random_state``) and trains it until the running
    training accuracy reaches ``target_accuracy`` (or plateaus for ``patience`` epochs, or hits
    ``max_epochs``), as every round of ``activews bench`` does. Each later ``fit(X, y)`` is a round: the
    strategy's ``init_round`` receives the previous fit's trained model and an
    :class:`~activews.strategies.InitContext` (round index; a factory of fresh draws seeded from a
    per-fit generator; the first fit's initial weights; this fit's ``X``, ``y`` as tensors; and a
    ``new_mask`` marking the rows that the previous fit did not train on, found by hashing each row's
    bytes), and the model it returns is trained to the criterion on the given ``(X, y)`` with a new
    optimizer. The same criterion in every fit is what makes compute and accuracy comparable between
    strategies.

    Loops that refit when nothing new was labeled (scikit-activeml's stream loop refits after every
    arrival, labeled or not) can pass ``refit="on_new_labels"``: a fit whose labeled set (the rows and
    their labels, in any order) equals the previous fit's then starts no round. The strategy is not
    applied, nothing trains, the previous fit's model stays, and the fit is counted in
    ``n_skipped_fits_`` instead of ``fit_history_``. A skipped fit does not advance the per-fit seeds,
    so the rounds are those of a loop that calls ``fit`` only when the labeled set changed.

    A fit starts over (a new initial draw, recorded as ``kind="restart"``) when the number of features,
    the set of classes, ``model`` or ``model_params`` differ from the previous fit's. When the labeled set
    may miss some classes early on (an active-learning loop that starts from a few labels), pass
    ``classes`` so that the output layer is fixed and rounds are not broken by a new class appearing.

    Copies: ``sklearn.base.clone`` gives an unfitted estimator that starts a new sequence of fits. A
    ``copy.deepcopy`` shares the sequence with the original, so that wrappers which deep-copy the
    estimator before each fit (scikit-activeml's ``SklearnClassifier``) still get rounds; use one
    estimator object (or a ``clone``) per loop. Pickling works when ``model`` is a registered name or an
    importable (module-level) factory; the unpickled estimator predicts the same and continues the
    sequence where it was.

    Randomness: every draw comes from generators seeded by ``random_state`` and the fit's index in the
    sequence, so the same ``random_state`` and the same data sequence give the same predictions on CPU.
    With ``random_state=None`` a seed is drawn from NumPy's global generator at the first fit.

    scikit-learn's estimator checks pass except those in :data:`EXPECTED_FAILED_CHECKS`:
    ``check_fit_idempotent`` and ``check_supervised_y_2d`` fit the same estimator twice and expect the
    same predictions, but the second fit is a round, by design; ``check_methods_subset_invariance``
    expects probabilities equal to 1e-7 whatever the batch, which float32 BLAS kernels do not promise.

    Args:
        model: a registered model name (``"mlp"``, ``"logreg"``, ``"paper_mlp"``, ``"cnn"``, ...) or a
            callable ``factory(input_shape, num_classes, **model_params) -> torch.nn.Module``. Models see
            each row as an example of shape ``(n_features,)``; a factory for images can start with
            ``nn.Unflatten``.
        model_params: parameters of the registered model (e.g. ``{"hidden": [128, 128]}``), or keyword
            arguments for the factory. ``None``: the defaults.
        strategy: the registered strategy applied at every fit after the first. Default
            ``"shrink_perturb"`` (Ash & Adams' fix: close to the accuracy of a fresh draw at a fraction of
            its compute); ``"warm"`` keeps the weights (fast, but pays the warm-start penalty),
            ``"random"`` draws new weights every fit (the accuracy reference).
        strategy_params: the strategy's parameters (e.g. ``{"shrink": 0.6, "perturb": 0.01}``).
        optimizer: ``"adam"`` or ``"sgd"``; re-created at every fit, as in the paper.
        lr: learning rate.
        batch_size: minibatch size.
        target_accuracy: training stops when the running training accuracy reaches this.
        patience: ... or after this many epochs without improvement (the plateau rule). On a few hundred
            rows an epoch is only a few steps, and a slow start (``logreg`` at ``lr=1e-3``) can stop at
            chance level: raise ``lr`` or ``patience``, or lower ``batch_size``.
        max_epochs: ... or after this many epochs.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.
        random_state: an int, a ``numpy.random.RandomState`` or ``None``.
        classes: all class labels the loop will ever see, or ``None`` to take ``np.unique(y)`` at every
            fit. When given, every ``y`` must be a subset, and the model always has one output per class.
        refit: ``"always"`` (default): every fit after the first is a round. ``"on_new_labels"``: a fit
            whose labeled set (rows and labels) equals the previous fit's is skipped (no round, no
            training; see above); a row added, removed or relabeled makes the fit a round.
        missing_label: the label that marks an unlabeled row (``np.nan`` or ``-1`` in scikit-activeml),
            or ``None`` (default): every row is labeled. Unlabeled rows are dropped before the fit, so
            ``fit(X, y)`` with scikit-activeml's ``y`` trains on the labeled rows only. Not needed
            inside scikit-activeml's ``SklearnClassifier``, which drops them itself.

    Attributes:
        classes_: the class labels, sorted; ``predict_proba`` columns follow this order.
        n_features_in_: number of features seen in ``fit``.
        feature_names_in_: column names, when ``X`` had string column names.
        model_: the trained ``torch.nn.Module``.
        fit_history_: one dict per fit of this sequence, oldest first: ``fit`` (index), ``round`` (fits
            since the last start), ``kind`` (``"first"``, ``"round"`` or ``"restart"``), ``reason`` (why a
            restart happened, else ``None``), ``strategy`` (the configured strategy; it was applied only
            when ``kind == "round"``), ``n_samples``, ``n_new`` (rows the previous fit did not train on),
            ``steps`` (optimizer steps), ``epochs``, ``seconds`` (training wall time), ``init_seconds``
            (the strategy's own time), ``stop_reason`` (``"target"``, ``"plateau"`` or ``"max_epochs"``),
            ``train_accuracy`` and ``train_loss``.
        last_fit_: the last entry of ``fit_history_``.
        n_skipped_fits_: fits of this sequence that trained nothing (``refit="on_new_labels"`` and an
            unchanged labeled set); ``len(fit_history_) + n_skipped_fits_`` is the number of calls.

    Example:
        >>> clf = WarmStartClassifier(strategy="shrink_perturb", random_state=0)  # doctest: +SKIP
        >>> clf.fit(X[:100], y[:100]).fit(X[:200], y[:200])  # the second fit is round 1  # doctest: +SKIP
        >>> [h["steps"] for h in clf.fit_history_]  # doctest: +SKIP

    References:
        Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020 (arXiv 1910.08475).
    """

    def __init__(
        self,
        model: str | Callable[..., nn.Module] = "mlp",
        model_params: Mapping[str, Any] | None = None,
        strategy: str = "shrink_perturb",
        strategy_params: Mapping[str, Any] | None = None,
        optimizer: str = "adam",
        lr: float = 1e-3,
        batch_size: int = 128,
        target_accuracy: float = 0.99,
        patience: int = 25,
        max_epochs: int = 500,
        device: str = "cpu",
        random_state: int | np.random.RandomState | None = None,
        classes: Any = None,
        refit: str = "always",
        missing_label: Any = None,
    ) -> None:
        self.model = model
        self.model_params = model_params
        self.strategy = strategy
        self.strategy_params = strategy_params
        self.optimizer = optimizer
        self.lr = lr
        self.batch_size = batch_size
        self.target_accuracy = target_accuracy
        self.patience = patience
        self.max_epochs = max_epochs
        self.device = device
        self.random_state = random_state
        self.classes = classes
        self.refit = refit
        self.missing_label = missing_label
        # Private, so not a parameter: the sequence of fits (see _Rounds for how copies share it).
        self._rounds = _Rounds()

    # ------------------------------------------------------------------ scikit-learn protocol

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # Bit-identical results are only promised on CPU; GPU kernels may be non-deterministic.
        tags.non_deterministic = not (isinstance(self.device, str) and self.device == "cpu")
        return tags

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if "_rounds" not in self.__dict__:  # tolerate pickles of estimators built without __init__
            self._rounds = _Rounds()

    # ------------------------------------------------------------------ validation

    def _settings(self) -> _Settings:
        """Validate every parameter; raise a one-line :class:`ActivewsError` naming the fix."""
        if isinstance(self.model, str):
            MODELS.get(self.model)  # unknown name: "unknown model 'mpl'; did you mean 'mlp'?"
            mparams: Any = model_params(self.model, self._mapping("model_params", self.model_params))
        elif callable(self.model):
            mparams = dict(self._mapping("model_params", self.model_params))
        else:
            raise ActivewsError(
                f"model must be a registered model name (one of: {', '.join(MODELS.names())}) or a callable "
                f"factory(input_shape, num_classes) -> torch.nn.Module; got {type(self.model).__name__}"
            )
        if not isinstance(self.strategy, str):
            raise ActivewsError(
                f"strategy must be a registered strategy name such as 'shrink_perturb', 'warm' or 'random' "
                f"(register your own with activews.register_strategy); got {type(self.strategy).__name__}"
            )
        strategy_params = dict(self._mapping("strategy_params", self.strategy_params))
        # Unknown names and bad parameters fail here, in one line, before any data are touched.
        make_strategy(self.strategy, strategy_params)
        values = {
            "optimizer": self.optimizer,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "target_accuracy": self.target_accuracy,
            "patience": self.patience,
            "max_epochs": self.max_epochs,
        }
        try:
            train = TrainConfig(**values)
        except ValidationError as exc:
            raise ActivewsError(f"WarmStartClassifier: {format_validation_error(exc, values)}") from None
        self._check_random_state()
        if not (isinstance(self.refit, str) and self.refit in _REFIT):
            raise ActivewsError(f"refit must be 'always' or 'on_new_labels', got {self.refit!r}")
        self._check_missing_label()
        return _Settings(
            self.model,
            mparams,
            (self.strategy, tuple(sorted(strategy_params.items(), key=lambda kv: kv[0]))),
            train,
            resolve_device(self.device, fix=_DEVICE_FIX),
            self.refit,
        )

    @staticmethod
    def _mapping(name: str, value: Any) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ActivewsError(f"{name} must be a dict or None, got {type(value).__name__}")
        return value

    def _check_random_state(self) -> None:
        rs = self.random_state
        if rs is None or isinstance(rs, np.random.RandomState):
            return
        if isinstance(rs, bool) or not isinstance(rs, numbers.Integral) or not 0 <= int(rs) < 2**32:
            raise ActivewsError(
                f"random_state must be None, a numpy RandomState or an int in [0, 2**32), got {rs!r}"
            )

    def _check_missing_label(self) -> None:
        ml = self.missing_label
        if ml is None:
            return
        if isinstance(ml, bool) or not isinstance(ml, numbers.Real | str):
            raise ActivewsError(
                f"missing_label must be None, a number (np.nan, -1) or a string, got {type(ml).__name__}"
            )
        if self.classes is not None and not _is_nan(ml) and np.isin(ml, np.asarray(self.classes)).item():
            raise ActivewsError(
                f"missing_label={ml!r} is also one of classes={np.asarray(self.classes).tolist()}; "
                f"remove it from `classes` or mark unlabeled rows with another value"
            )

    def _drop_unlabeled(self, X: Any, y: Any) -> tuple[Any, Any]:
        """``(X, y)`` without the rows labeled ``missing_label`` (unchanged when it is ``None``)."""
        if self.missing_label is None:
            y_arr = np.asarray(y) if isinstance(y, np.ndarray | list | tuple) else None
            if y_arr is not None and y_arr.dtype.kind == "f" and np.isnan(y_arr).any():
                raise ActivewsError(
                    "Input y contains NaN; if NaN marks unlabeled rows (scikit-activeml's MISSING_LABEL), "
                    "pass missing_label=np.nan or wrap the estimator in skactiveml's SklearnClassifier"
                )
            return X, y
        check_consistent_length(X, y)
        y_arr = np.asarray(y)
        if y_arr.ndim != 1:
            y_arr = y_arr.reshape(len(y_arr), -1)[:, 0] if y_arr.ndim == 2 and y_arr.shape[1] == 1 else y_arr
        if y_arr.ndim != 1:
            return X, y  # validate_data explains the shape
        unlabeled = _unlabeled(y_arr, self.missing_label)
        if unlabeled.all():
            raise ActivewsError(
                f"y has no labeled rows (all {len(y_arr)} are missing_label={self.missing_label!r}); "
                f"call fit once at least one row is labeled"
            )
        if not unlabeled.any():
            return X, y
        keep = np.flatnonzero(~unlabeled)
        return _safe_indexing(X, keep), _safe_indexing(y, keep)

    def _classes_for(self, y: np.ndarray) -> np.ndarray:
        present = np.unique(y)
        if self.classes is None:
            return present
        classes = np.unique(np.asarray(self.classes))
        missing = present[~np.isin(present, classes)]
        if missing.size:
            hint = (
                f" (if {missing.tolist()[0]!r} marks unlabeled rows, pass missing_label={missing.tolist()[0]!r})"
                if self.missing_label is None and missing.size == 1
                else ""
            )
            raise ActivewsError(
                f"y has labels {missing.tolist()[:10]} that are not in classes={classes.tolist()}; "
                f"add them to `classes` or pass classes=None{hint}"
            )
        return classes

    # ------------------------------------------------------------------ models

    def _build(
        self, settings: _Settings, input_shape: tuple[int, ...], num_classes: int, seed: int
    ) -> nn.Module:
        """A new draw of the model, seeded by ``seed`` (the caller's global RNG is left untouched)."""
        if isinstance(settings.model, str):
            return build_model(
                settings.model,
                input_shape,
                num_classes,
                settings.model_params,
                seed=seed,
                device=settings.device,
            )
        return build_from_factory(
            settings.model,
            input_shape,
            num_classes,
            settings.model_params,
            seed=seed,
            device=settings.device,
            who=f"model factory {settings.model!r}",
        )

    # ------------------------------------------------------------------ fit / predict

    def fit(self, X: Any, y: Any) -> WarmStartClassifier:
        """Train on ``(X, y)``: the first fit from a seeded draw, every later fit as a round.

        Args:
            X: array-like of shape ``(n_samples, n_features)``, finite and within float32's range
                (``|x| <= 3.4e38``; the model computes in float32).
            y: array-like of shape ``(n_samples,)``: class labels of any sortable type.

        Returns:
            ``self``.

        Raises:
            ActivewsError: an invalid parameter, labels outside ``classes``, or features beyond float32's
                range (scale them).
        """
        settings = self._settings()
        X, y = self._drop_unlabeled(X, y)
        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64], y_numeric=False)
        check_classification_targets(y)
        classes = self._classes_for(y)
        y_idx = np.searchsorted(classes, y).astype(np.int64)
        x_np = _as_float32(X)  # a writable copy: read-only inputs (memmaps) are fine
        input_shape = (x_np.shape[1],)

        rounds = self.__dict__.get("_rounds")
        if rounds is None:
            rounds = self._rounds = _Rounds()
        if rounds.seed is None:
            rounds.seed = (
                int(self.random_state)
                if isinstance(self.random_state, numbers.Integral)
                else int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            )
        fit_index = rounds.n_fits
        signature = (settings.model, settings.model_params, input_shape, tuple(classes.tolist()))
        reason = None
        if rounds.model is None:
            kind = "first"
        else:
            reason = self._restart_reason(rounds.signature, signature)
            kind = "round" if reason is None else "restart"

        hashes = _row_hashes(x_np)
        labeled_key = _labeled_key(hashes, y_idx)
        if (
            settings.refit == "on_new_labels"
            and kind == "round"
            and rounds.labeled_key is not None
            and np.array_equal(labeled_key, rounds.labeled_key)
        ):
            return self._skip(rounds)

        device = settings.device
        x = torch.from_numpy(x_np).to(device)
        y_t = torch.from_numpy(y_idx).to(device)
        if kind == "round" and rounds.row_hashes is not None:
            new = ~np.isin(hashes, rounds.row_hashes)
        else:
            new = np.ones(len(hashes), dtype=bool)
        strategy = self._strategy(rounds, settings)

        new_mask = torch.from_numpy(new).to(device)
        init_gen = torch.Generator().manual_seed(derive_seed(rounds.seed, fit_index, _INIT))

        def fresh_model() -> nn.Module:
            draw = int(torch.randint(0, 2**62, (1,), generator=init_gen))
            return self._build(settings, input_shape, len(classes), draw)

        if kind == "round":
            if rounds.model is None or rounds.initial_state is None:  # set by the first fit; never user input
                raise RuntimeError("WarmStartClassifier: a round without a first fit (please report this)")
            round_index = rounds.round_index + 1
            # A copy: the previous fit's model_ keeps predicting as it did (strategies work in place).
            model = copy.deepcopy(rounds.model).to(device)
            initial_state = rounds.initial_state
        else:
            round_index = 0
            model = self._build(
                settings, input_shape, len(classes), derive_seed(rounds.seed, fit_index, _MODEL0)
            )
            initial_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

        train_gen = torch.Generator().manual_seed(derive_seed(rounds.seed, fit_index, _TRAIN))
        # The round step: the strategy's init_round (from round 1 on), then training to the criterion
        # with a new optimizer and the strategy's training hooks (in every fit, the first included).
        # check_model in every fit: the first fails now rather than at the first round.
        step = RoundStep(strategy, settings.train, check_model=True, name=self.strategy)
        result = step.run(
            model,
            x,
            y_t,
            round_index=round_index,
            fresh_model=fresh_model,
            initial_state=initial_state,
            init_generator=init_gen,
            train_generator=train_gen,
            device=device,
            new_mask=new_mask,
        )
        model, stats, init_seconds = result.model, result.stats, result.init_seconds

        # Commit the sequence's state only after training succeeded, so a failed fit changes nothing.
        if kind != "round":
            rounds.initial_state = initial_state
        rounds.n_fits = fit_index + 1
        rounds.round_index = round_index
        rounds.signature = signature
        rounds.model = model
        rounds.row_hashes = hashes
        rounds.labeled_key = labeled_key
        rounds.classes = classes
        record = {
            "fit": fit_index,
            "round": round_index,
            "kind": kind,
            "reason": reason,
            "strategy": self.strategy,
            "n_samples": int(len(y_idx)),
            "n_new": int(new.sum()),
            "steps": stats.steps,
            "epochs": stats.epochs,
            "seconds": stats.seconds,
            "init_seconds": init_seconds,
            "stop_reason": stats.stop_reason,
            "train_accuracy": stats.train_accuracy,
            "train_loss": stats.train_loss,
        }
        rounds.history.append(record)
        log.info(
            "fit %d (%s, round %d): %d samples, %d new, %d steps, stop=%s",
            fit_index,
            kind if reason is None else f"restart: {reason}",
            round_index,
            record["n_samples"],
            record["n_new"],
            stats.steps,
            stats.stop_reason,
        )

        self.classes_ = classes
        self.model_ = model
        self.fit_history_ = [dict(r) for r in rounds.history]
        self.last_fit_ = dict(record)
        self.n_skipped_fits_ = rounds.n_skipped
        return self

    def _skip(self, rounds: _Rounds) -> WarmStartClassifier:
        """A fit that trains nothing (``refit="on_new_labels"``, same labeled set): this estimator (maybe a
        fresh deep copy, as scikit-activeml makes) takes the sequence's fitted state as it is."""
        if rounds.model is None or rounds.classes is None:  # set by the first fit; never user input
            raise RuntimeError("WarmStartClassifier: a skipped fit without a first fit (please report this)")
        rounds.n_skipped += 1
        log.info(
            "fit skipped (refit='on_new_labels'): the labeled set is unchanged; %d skipped so far",
            rounds.n_skipped,
        )
        self.classes_ = rounds.classes
        self.model_ = rounds.model
        self.fit_history_ = [dict(r) for r in rounds.history]
        self.last_fit_ = dict(rounds.history[-1])
        self.n_skipped_fits_ = rounds.n_skipped
        return self

    @staticmethod
    def _restart_reason(old: tuple[Any, ...] | None, new: tuple[Any, ...]) -> str | None:
        """Why the previous fit's model cannot be carried into this fit (``None`` if it can)."""
        if old is None:
            return "no previous model"
        names = ("model changed", "model_params changed", "number of features changed", "classes changed")
        for name, a, b in zip(names, old, new, strict=True):
            if not _same(a, b):
                return name
        return None

    def _strategy(self, rounds: _Rounds, settings: _Settings) -> InitStrategy:
        """The sequence's strategy object, re-made only when the strategy or its parameters change."""
        if rounds.strategy is None or rounds.strategy_key != settings.strategy_key:
            rounds.strategy = make_strategy(settings.strategy_key[0], dict(settings.strategy_key[1]))
            rounds.strategy_key = settings.strategy_key
        return rounds.strategy

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per entry of ``classes_`` in that order (float64)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        model = self.model_
        device = next(iter(model.parameters()), torch.empty(0)).device
        x = torch.from_numpy(_as_float32(X)).to(device)
        probs = predict_proba(model, x).double().cpu().numpy()
        # float32 softmax rows sum to 1 within ~1e-7; renormalize in float64 as scikit-learn expects.
        return probs / probs.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class label of each row (the argmax of :meth:`predict_proba`)."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
