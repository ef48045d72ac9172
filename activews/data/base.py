"""The in-memory dataset type, the dataset registry, and user-array loading."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from activews.errors import DataError
from activews.registry import Registry

__all__ = ["Dataset", "DATASETS", "register_dataset", "load_dataset", "from_arrays", "load_npz"]


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
    """Decorator: register a loader ``f(n_examples, test_fraction, split_seed) -> Dataset``."""
    return DATASETS.register(name)  # type: ignore[return-value]


def load_dataset(
    name: str, *, n_examples: int | None = None, test_fraction: float = 0.3, split_seed: int = 0
) -> Dataset:
    """Load a registered dataset, or a ``.npz`` file when ``name`` ends in ``.npz``."""
    if name.endswith(".npz"):
        return load_npz(name, n_examples=n_examples, test_fraction=test_fraction, split_seed=split_seed)
    return DATASETS.get(name)(n_examples=n_examples, test_fraction=test_fraction, split_seed=split_seed)


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

    Labels may be any integer or string values; they are mapped to ``0..C-1`` in sorted order. If
    ``X_test``/``y_test`` are given they are the test split; otherwise a seeded ``test_fraction`` of
    ``X`` is held out.

    Args:
        X: features, shape ``(N, ...)``.
        y: labels, shape ``(N,)``.
        n_examples: keep a seeded random subset of this many examples (before splitting).
        test_fraction: fraction held out for testing when no explicit test split is given.
        split_seed: seed of the subset and split permutation.
    """
    x_np = _as_float_array(X, "X", name)
    y_np = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if y_np.dtype.kind == "f" and not np.isfinite(y_np).all():
        raise DataError(f"{name}: y contains NaN or infinite labels; drop or fix those rows first")
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
        yt_np = np.asarray(y_test.cpu() if isinstance(y_test, torch.Tensor) else y_test)
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
    arr = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    if arr.ndim < 2:
        raise DataError(f"{name}: {label} must have shape (examples, features...), got shape {arr.shape}")
    try:
        arr = arr.astype(np.float32)
    except (TypeError, ValueError):
        raise DataError(f"{name}: {label} must be numeric, got dtype {arr.dtype}") from None
    if not np.isfinite(arr).all():
        raise DataError(f"{name}: {label} contains NaN or infinite values; clean or impute them first")
    return arr


def load_npz(
    path: str | Path, *, n_examples: int | None = None, test_fraction: float = 0.3, split_seed: int = 0
) -> Dataset:
    """Load a ``.npz`` file with arrays ``X`` and ``y`` (and optionally ``X_test``, ``y_test``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"cannot read {str(path)!r}: no such file; pass an existing .npz with arrays X and y")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array under an .npz name
            raise ValueError("not an npz archive")
        with loaded as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"cannot read {str(path)!r} as .npz ({type(exc).__name__}); save it with numpy.savez(path, X=..., y=...)"
        ) from None
    missing = [k for k in ("X", "y") if k not in arrays]
    if missing:
        raise DataError(
            f"{str(path)!r} lacks array(s) {', '.join(missing)} (found: {', '.join(arrays) or 'none'}); "
            f"save it with numpy.savez(path, X=features, y=labels)"
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
