"""Datasets as in-memory tensors with a seeded train/test split.

Built-in (no download): ``mnist1d`` (generated locally by the ``mnist1d`` package) and ``digits``
(scikit-learn). Image datasets read through torchvision from ``data_dir`` (``--data-dir``): ``cifar10``,
``cifar100``, ``svhn``, ``mnist``, ``fashion_mnist`` (see :mod:`activews.data.vision`). User data:
:func:`load_npz` for ``.npz`` files holding ``X`` and ``y``, and :func:`from_arrays` for tensors or arrays
from Python. :func:`random_crop_flip` augments image minibatches.
"""

from activews.data import builtin, vision  # noqa: F401  (register the built-in and image datasets)
from activews.data.augment import random_crop_flip
from activews.data.base import (
    DATASETS,
    Dataset,
    from_arrays,
    load_dataset,
    load_npz,
    register_dataset,
    val_split_indices,
)

__all__ = [
    "DATASETS",
    "Dataset",
    "from_arrays",
    "load_dataset",
    "load_npz",
    "random_crop_flip",
    "register_dataset",
    "val_split_indices",
]
