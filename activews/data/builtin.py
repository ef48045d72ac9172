"""Built-in datasets that need no download: ``mnist1d`` and ``digits``."""

from __future__ import annotations

import functools
import logging
import os
import random
from pathlib import Path

import numpy as np

from activews.data.base import Dataset, from_arrays, register_dataset
from activews.errors import DataError

log = logging.getLogger(__name__)

MNIST1D_DEFAULT_EXAMPLES = 10_000
MNIST1D_MAX_EXAMPLES = 1_000_000
"""The most examples ``mnist1d`` generates: they are made one by one (a few thousand a second), so 10**8
would take days; beyond this, generate them once and pass an ``.npz``."""


def cache_dir() -> Path:
    """Where generated data are cached: ``$ACTIVEWS_CACHE`` or ``~/.cache/activews``."""
    return Path(os.environ.get("ACTIVEWS_CACHE") or Path.home() / ".cache" / "activews")


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Generate (or read from the cache) ``num_samples`` MNIST-1D examples with the package's seed 42."""
    cached = cache_dir() / f"mnist1d-{num_samples}-seed42.npz"
    if cached.is_file():
        try:
            with np.load(cached) as npz:
                return npz["X"], npz["y"]
        except (OSError, ValueError, KeyError):
            log.warning("ignoring unreadable cache file %s", cached)
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.train_split = 1.0  # activews makes its own seeded split
    # make_dataset seeds numpy's and Python's global generators; keep the caller's state intact.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    X, y = data["x"].astype(np.float32), data["y"].astype(np.int64)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, X=X, y=y)
        os.replace(tmp, cached)
    except OSError as exc:  # a read-only home only costs regeneration time
        log.info("could not cache MNIST-1D at %s: %s", cached, exc)
    return X, y


@register_dataset("mnist1d")
def mnist1d(n_examples: int | None = None, test_fraction: float = 0.3, split_seed: int = 0) -> Dataset:
    """MNIST-1D (Greydanus, 2020): 40-sample 1-D signals of 10 digit templates, generated locally.

    ``n_examples`` (default 10,000; at most 1,000,000) examples are generated with the package's fixed
    seed, then split ``1 - test_fraction`` / ``test_fraction`` with ``split_seed``.

    References:
        Greydanus & Kobak, "Scaling Down Deep Learning with MNIST-1D", ICML 2024 (arXiv 2011.14439).
    """
    n = MNIST1D_DEFAULT_EXAMPLES if n_examples is None else int(n_examples)
    if n < 20:
        raise DataError(f"mnist1d needs n_examples >= 20 (two per class), got {n}")
    if n > MNIST1D_MAX_EXAMPLES:
        raise DataError(
            f"mnist1d generates at most {MNIST1D_MAX_EXAMPLES:,} examples (a few thousand a second), got "
            f"n_examples {n:,}; lower --n-examples"
        )
    X, y = _mnist1d_arrays(n)
    return from_arrays(X, y, name="mnist1d", test_fraction=test_fraction, split_seed=split_seed)


@register_dataset("digits")
def digits(n_examples: int | None = None, test_fraction: float = 0.3, split_seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 examples), scaled to [0, 1], shape ``(1, 8, 8)``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    return from_arrays(
        X,
        bunch.target,
        name="digits",
        n_examples=n_examples,
        test_fraction=test_fraction,
        split_seed=split_seed,
    )
