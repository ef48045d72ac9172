"""The in-memory dataset type, the dataset registry, and user-array loading."""

from __future__ import annotations

import inspect
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from activews.errors import DataError
from activews.registry import Registry

__all__ = [
    "Dataset",
    "DATASETS",
    "register_dataset",
    "load_dataset",
    "from_arrays",
    "load_npz",
    "val_split_indices",
]


@dataclass(frozen=True)
class Dataset:
    """A classification dataset held in memory as tensors.

    Attributes:
        name: dataset name (registry key, or ``npz:<path>`` / ``arrays``).
        x_train, y_train: the training pool (float32 features, int64 labels in ``0..num_classes-1``).
        x_test, y_test: the held-out test split.
        num_classes: number of classes.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example (without the batch dimension)."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
            f"input_shape={self.input_shape}, classes={self.num_classes})"
        )


Loader = Callable[..., Dataset]
DATASETS: Registry[Loader] = Registry("dataset", entry_point_group="activews.datasets")


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Decorator: register a loader ``f(n_examples, test_fraction, split_seed) -> Dataset``.

    A loader may also accept any of the keywords ``data_dir``, ``download`` and ``val_split``;
    :func:`load_dataset` passes each one only to loaders whose signature names it (or that take
    ``**kwargs``, and then only when it differs from its default), so older loaders keep working.
    A loader that accepts ``val_split`` must honour it (see :func:`val_split_indices`).
    """
    return DATASETS.register(name)  # type: ignore[return-value]


# The keywords added after the original (n_examples, test_fraction, split_seed) loader signature, with
# their defaults: a loader that does not name one is called without it.
_OPTIONAL_KEYWORDS: dict[str, Any] = {"data_dir": None, "download": False, "val_split": False}


def _keywords_for(loader: Loader, values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The optional keywords ``loader`` accepts out of ``values``, and whether it can take ``val_split``."""
    try:
        params = inspect.signature(loader).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature: call it the original way
        return {}, False
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    kwargs = {}
    for key, value in values.items():
        # A **kwargs loader may forward them to a function that knows none of these keywords, so it only
        # sees the ones the caller actually set.
        if key in named or (takes_any and value != _OPTIONAL_KEYWORDS[key]):
            kwargs[key] = value
    return kwargs, "val_split" in named or takes_any


def _no_test_split_error(label: str) -> DataError:
    return DataError(
        f"{label} has no official test split; its hold-out is set by --test-fraction; drop --val-split"
    )


def load_dataset(
    name: str,
    *,
    n_examples: int | None = None,
    test_fraction: float = 0.3,
    split_seed: int = 0,
    data_dir: str | Path | None = None,
    download: bool = False,
    val_split: bool = False,
) -> Dataset:
    """Load a registered dataset, or a ``.npz`` file when ``name`` ends in ``.npz``.

    Args:
        name: a registered dataset name, or a path ending in ``.npz``.
        n_examples: use a seeded random subset of this many examples (each dataset documents whether
            the subset is taken before or after the train/test split).
        test_fraction: the held-out fraction for datasets without an official test split.
        split_seed: seed of the subset and of the split.
        data_dir: the folder a file-backed dataset reads from (e.g. ``cifar10``); ignored by datasets
            that need no files (``mnist1d``, ``digits``, ``.npz`` paths).
        download: let a file-backed dataset fetch missing files into ``data_dir``; ignored by the others.
            Nothing touches the network unless this is set.
        val_split: the paper's evaluation protocol: a seeded random 1/3 of the official training set is
            the test split and the other 2/3 the training pool; the official test split is not used.
            Only for datasets with an official test split.

    Raises:
        DataError: the data cannot be read, or ``val_split`` was asked of a dataset without an official
            test split.
        UnknownNameError: ``name`` is neither registered nor an ``.npz`` path.
    """
    if name.endswith(".npz"):
        return load_npz(
            name,
            n_examples=n_examples,
            test_fraction=test_fraction,
            split_seed=split_seed,
            val_split=val_split,
        )
    loader = DATASETS.get(name)
    kwargs, takes_val_split = _keywords_for(
        loader, {"data_dir": data_dir, "download": download, "val_split": val_split}
    )
    if val_split and not takes_val_split:
        raise _no_test_split_error(name)
    return loader(n_examples=n_examples, test_fraction=test_fraction, split_seed=split_seed, **kwargs)


def val_split_indices(n: int, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The paper's split of an official training set of ``n`` examples: (training pool, evaluation set).

    A seeded permutation of ``range(n)``: its first ``floor(2n/3)`` entries are the training pool and the
    rest (about 1/3) the evaluation set, as in the authors' code (``int(len(trainset) * 2/3)``): 33,333 /
    16,667 for CIFAR-10's 50,000. The pool keeps the permutation's order, so its first ``k`` entries are a
    seeded random subset of it (nested across ``k``).
    """
    order = np.random.default_rng(split_seed).permutation(n)
    n_pool = (2 * n) // 3
    return order[:n_pool], order[n_pool:]


def from_arrays(
    X: Any,
    y: Any,
    *,
    name: str = "arrays",
    n_examples: int | None = None,
    test_fraction: float = 0.3,
    split_seed: int = 0,
    X_test: Any = None,
    y_test: Any = None,
) -> Dataset:
    """Build a :class:`Dataset` from arrays or tensors.

    Labels may be any integer or string values (float labels must be whole numbers: a continuous target
    is refused); they are mapped to ``0..C-1`` in sorted order. Features are cast to float32: complex
    values, and values beyond float32's range (``|x| > 3.4e38``), are refused rather than silently changed.
    If ``X_test``/``y_test`` are given they are the test split; otherwise a seeded ``test_fraction`` of
    ``X`` is held out.

    Args:
        X: features, shape ``(N, ...)``.
        y: labels, shape ``(N,)``.
        n_examples: keep a seeded random subset of this many examples (before splitting).
        test_fraction: fraction held out for testing when no explicit test split is given.
        split_seed: seed of the subset and split permutation.
    """
    x_np = _as_float_array(X, "X", name)
    y_np = _as_labels(y, "y", name)
    if y_np.ndim != 1 or len(y_np) != len(x_np):
        raise DataError(
            f"{name}: y must be one label per row of X (X has {len(x_np)} rows, y has shape {y_np.shape})"
        )
    if len(x_np) < 2:
        raise DataError(f"{name}: need at least 2 examples, got {len(x_np)}")
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(split_seed)
    if X_test is not None or y_test is not None:
        if X_test is None or y_test is None:
            raise DataError(f"{name}: give both X_test and y_test, or neither")
        xt_np = _as_float_array(X_test, "X_test", name)
        yt_np = _as_labels(y_test, "y_test", name)
        if xt_np.shape[1:] != x_np.shape[1:] or len(yt_np) != len(xt_np):
            raise DataError(f"{name}: X_test/y_test do not match X's example shape {x_np.shape[1:]}")
        if n_examples is not None and not 2 <= n_examples <= len(x_np):
            raise DataError(
                f"{name}: n_examples must be between 2 and the {len(x_np)} training examples, "
                f"got {n_examples}; lower --n-examples"
            )
        if n_examples is not None and n_examples < len(x_np):
            keep = rng.permutation(len(x_np))[:n_examples]
            x_np, y_np = x_np[keep], y_np[keep]
        x_tr, y_tr, x_te, y_te = x_np, y_np, xt_np, yt_np
    else:
        order = rng.permutation(len(x_np))
        if n_examples is not None:
            if not 2 <= n_examples <= len(x_np):
                raise DataError(
                    f"{name}: n_examples must be between 2 and the {len(x_np)} examples available, "
                    f"got {n_examples}; lower --n-examples"
                )
            order = order[:n_examples]
        n_test = max(1, int(round(len(order) * test_fraction)))
        if n_test >= len(order):
            raise DataError(f"{name}: test_fraction {test_fraction} leaves no training examples")
        te, tr = order[:n_test], order[n_test:]
        x_tr, y_tr, x_te, y_te = x_np[tr], y_np[tr], x_np[te], y_np[te]
    classes, y_all = np.unique(np.concatenate([y_tr, y_te]), return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"{name}: need at least 2 classes in y, found {len(classes)}")
    return Dataset(
        name=name,
        x_train=torch.from_numpy(np.ascontiguousarray(x_tr, dtype=np.float32)),
        y_train=torch.from_numpy(y_all[: len(y_tr)].astype(np.int64)),
        x_test=torch.from_numpy(np.ascontiguousarray(x_te, dtype=np.float32)),
        y_test=torch.from_numpy(y_all[len(y_tr) :].astype(np.int64)),
        num_classes=int(len(classes)),
    )


def _as_float_array(X: Any, label: str, name: str) -> np.ndarray:
    """Features as float32, refusing what the cast would silently change (imaginary parts, overflow)."""
    arr = X.detach().cpu().resolve_conj().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    if arr.ndim < 2:
        raise DataError(f"{name}: {label} must have shape (examples, features...), got shape {arr.shape}")
    if arr.dtype.kind == "c":
        raise DataError(
            f"{name}: {label} holds complex numbers (dtype {arr.dtype}) and casting them to float32 would drop "
            f"the imaginary part; pass real features, e.g. the real and imaginary parts as separate columns"
        )
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            out = arr.astype(np.float32)
    except (TypeError, ValueError):
        raise DataError(f"{name}: {label} must be numeric, got dtype {arr.dtype}") from None
    bad = ~np.isfinite(out)
    if bad.any():
        source = np.asarray(arr[bad], dtype=np.float64)
        overflow = source[np.isfinite(source)]
        if overflow.size:  # finite before the cast: beyond float32's range (a float64 such as 1e39)
            raise DataError(
                f"{name}: {label} has values beyond the float32 range (|x| > 3.4e38), such as "
                f"{overflow[0]:.3g}; models train in float32: scale the features (e.g. standardize them)"
            )
        raise DataError(f"{name}: {label} contains NaN or infinite values; clean or impute them first")
    return out


def _as_labels(y: Any, label: str, name: str) -> np.ndarray:
    """Class labels as an array; float labels must be whole numbers (a regression target is refused)."""
    arr = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y)
    if arr.dtype.kind == "c":
        raise DataError(
            f"{name}: {label} holds complex numbers (dtype {arr.dtype}); it must hold class labels "
            f"(integers or strings)"
        )
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise DataError(f"{name}: {label} contains NaN or infinite labels; drop or fix those rows first")
        fractional = arr != np.round(arr)
        if fractional.any():
            raise DataError(
                f"{name}: {label} must hold integer class labels; got non-integer values such as "
                f"{arr[fractional].flat[0]:.6g} (a continuous target?); activews compares classifiers: "
                f"bin the target into classes or pass integer labels"
            )
    return arr


def load_npz(
    path: str | Path,
    *,
    n_examples: int | None = None,
    test_fraction: float = 0.3,
    split_seed: int = 0,
    val_split: bool = False,
) -> Dataset:
    """Load a ``.npz`` file with arrays ``X`` and ``y`` (and optionally ``X_test``, ``y_test``).

    With ``val_split`` (only for files that hold ``X_test``/``y_test``), the paper's protocol replaces the
    file's test split: a seeded 1/3 of ``X`` is held out (:func:`val_split_indices`) and ``n_examples``
    subsets the remaining 2/3.
    """
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a folder; pass an .npz file with arrays X and y")
    if not path.is_file():
        raise DataError(f"cannot read {str(path)!r}: no such file; pass an existing .npz with arrays X and y")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array under an .npz name
            raise ValueError("not an npz archive")
        with loaded as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if "Object arrays cannot be loaded" in str(exc):  # loading them would run pickled code
            raise DataError(
                f"{str(path)!r} holds object arrays, which load only through pickle (never done here); "
                f"save numeric arrays, e.g. numpy.savez(path, X=X.astype('float32'), y=y.astype('int64'))"
            ) from None
        raise DataError(
            f"cannot read {str(path)!r} as .npz ({type(exc).__name__}); save it with numpy.savez(path, X=..., y=...)"
        ) from None
    missing = [k for k in ("X", "y") if k not in arrays]
    if missing:
        raise DataError(
            f"{str(path)!r} lacks array(s) {', '.join(missing)} (found: {', '.join(arrays) or 'none'}); "
            f"save it with numpy.savez(path, X=features, y=labels)"
        )
    if val_split:
        if "X_test" not in arrays or "y_test" not in arrays:
            raise _no_test_split_error(f"{str(path)!r} (no X_test/y_test arrays)")
        X, y = arrays["X"], arrays["y"]
        if X.ndim >= 1 and y.ndim == 1 and len(X) == len(y):  # otherwise from_arrays below says what is wrong
            pool, held = val_split_indices(len(y), split_seed)
            return from_arrays(
                X[pool],
                y[pool],
                name=f"npz:{path.name}",
                n_examples=n_examples,
                split_seed=split_seed,
                X_test=X[held],
                y_test=y[held],
            )
    return from_arrays(
        arrays["X"],
        arrays["y"],
        name=f"npz:{path.name}",
        n_examples=n_examples,
        test_fraction=test_fraction,
        split_seed=split_seed,
        X_test=arrays.get("X_test"),
        y_test=arrays.get("y_test"),
    )
