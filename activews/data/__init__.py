"""Datasets as in-memory tensors with a seeded train/test split.

Built-in (no download): ``mnist1d`` (generated locally by the ``mnist1d`` package) and ``digits``
(scikit-learn). User data: :func:`load_npz` for ``.npz`` files holding ``X`` and ``y``, and
:func:`from_arrays` for tensors or arrays from Python.
"""

from activews.data import builtin  # noqa: F401  (registers the built-in datasets)
from activews.data.base import DATASETS, Dataset, from_arrays, load_dataset, load_npz, register_dataset

__all__ = ["DATASETS", "Dataset", "from_arrays", "load_dataset", "load_npz", "register_dataset"]
