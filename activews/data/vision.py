"""Image datasets read through torchvision: ``cifar10``, ``cifar100``, ``svhn``, ``mnist``, ``fashion_mnist``.

Each loader reads the dataset's official files from ``data_dir`` (``--data-dir DIR``) with the torchvision
class of the same name, takes the decoded arrays straight from the dataset object (``.data``,
``.targets``/``.labels``; no per-image PIL round trip) and returns in-memory tensors: ``x`` float32
``(N, C, H, W)``, scaled to [0, 1] and then normalized per channel, ``(v / 255 - mean) / std``; ``y``
int64. Nothing is fetched unless ``download=True`` (``--download``).

Splits: the official training split is the training pool and the official test split the test split
(``test_fraction`` does not apply). With ``val_split=True`` the paper's protocol is used instead: a
seeded random 1/3 of the official *training* split is the test split, the other 2/3 the pool, and the
official test split is not read. ``n_examples`` keeps a seeded random subset of the pool (after the
validation split); the test split keeps its full size.

Normalization constants (mean, std per channel, in [0, 1] pixel units):

============== ============================== ============================== ==========================
dataset        mean                           std                            source
============== ============================== ============================== ==========================
cifar10        (0.5, 0.5, 0.5)                (0.5, 0.5, 0.5)                authors' ``run.py``
cifar100       (0.5, 0.5, 0.5)                (0.5, 0.5, 0.5)                authors' ``run.py``
svhn           (0.5, 0.5, 0.5)                (0.5, 0.5, 0.5)                authors' ``run.py``
mnist          (0.1307,)                      (0.3081,)                      training-set statistics
fashion_mnist  (0.2860,)                      (0.3530,)                      training-set statistics
============== ============================== ============================== ==========================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from activews.data.base import Dataset, register_dataset, val_split_indices
from activews.errors import DataError

__all__ = ["VisionSource", "VISION_SOURCES", "load_vision"]

HALF = (0.5, 0.5, 0.5)
"""Mean and std the authors' released ``run.py`` (``JordanAsh/warm_start``) uses for CIFAR-10, CIFAR-100
and SVHN alike (``transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))``): pixels map to [-1, 1].
(The Kireev et al. reproduction used the CIFAR-10 statistics (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994,
0.2010) instead; activews follows the authors' code.)"""
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
"""MNIST training-set pixel mean and std (the values of PyTorch's ``examples/mnist``)."""
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
"""Fashion-MNIST training-set pixel mean and std."""


@dataclass(frozen=True)
class VisionSource:
    """Where one torchvision dataset lives under ``--data-dir``, how to get it, and how it is normalized.

    Attributes:
        tv_class: the ``torchvision.datasets`` class that reads it.
        folder: the folder under ``--data-dir`` holding the files (``""``: ``--data-dir`` itself).
        files: the files torchvision reads there (listed in error messages when missing).
        url: where to fetch them by hand.
        manual: how to install a manual download; ``{url}``, ``{root}`` and ``{folder}`` are filled in.
        shape: one image's ``(C, H, W)``.
        num_classes: number of classes.
        mean, std: per-channel normalization constants in [0, 1] pixel units.
    """

    tv_class: str
    folder: str
    files: tuple[str, ...]
    url: str
    manual: str
    shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


_CIFAR_MANUAL = "download {url} and extract it in '{root}'"
_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_IDX_MANUAL = "download the four *-ubyte.gz files from {url} and gunzip them into '{folder}'"

VISION_SOURCES: dict[str, VisionSource] = {
    "cifar10": VisionSource(
        "CIFAR10",
        "cifar-10-batches-py",
        (
            "data_batch_1",
            "data_batch_2",
            "data_batch_3",
            "data_batch_4",
            "data_batch_5",
            "test_batch",
            "batches.meta",
        ),
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        _CIFAR_MANUAL,
        (3, 32, 32),
        10,
        HALF,
        HALF,
    ),
    "cifar100": VisionSource(
        "CIFAR100",
        "cifar-100-python",
        ("train", "test", "meta"),
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        _CIFAR_MANUAL,
        (3, 32, 32),
        100,
        HALF,
        HALF,
    ),
    "svhn": VisionSource(
        "SVHN",
        "",
        ("train_32x32.mat", "test_32x32.mat"),
        "http://ufldl.stanford.edu/housenumbers/",
        "download train_32x32.mat and test_32x32.mat from {url} into '{root}'",
        (3, 32, 32),
        10,
        HALF,
        HALF,
    ),
    "mnist": VisionSource(
        "MNIST",
        "MNIST/raw",
        _IDX_FILES,
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        _IDX_MANUAL,
        (1, 28, 28),
        10,
        MNIST_MEAN,
        MNIST_STD,
    ),
    "fashion_mnist": VisionSource(
        "FashionMNIST",
        "FashionMNIST/raw",
        _IDX_FILES,
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        _IDX_MANUAL,
        (1, 28, 28),
        10,
        FASHION_MNIST_MEAN,
        FASHION_MNIST_STD,
    ),
}
"""Per-dataset facts: the on-disk layout under ``--data-dir``, where to get the files, normalization."""


class _BadFiles(Exception):
    """Files that were read but hold the wrong thing (carries the one-line reason)."""


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _root_dir(name: str, src: VisionSource, data_dir: str | Path | None, download: bool) -> Path:
    holds = f"{src.folder}/" if src.folder else " and ".join(src.files)
    if data_dir is None or str(data_dir) == "":
        if download:
            raise DataError(f"{name} --download needs --data-dir DIR, the folder to save {holds} in")
        raise DataError(
            f"{name} reads its files from --data-dir DIR; pass the folder holding {holds} "
            f"(or add --download to fetch it)"
        )
    return Path(data_dir).expanduser()


def _read_split(src: VisionSource, root: Path, train: bool, download: bool) -> tuple[np.ndarray, np.ndarray]:
    """One official split as uint8 images ``(N, C, H, W)`` and int64 labels, read by torchvision."""
    import torchvision.datasets  # slow to import: only when an image dataset is asked for

    cls = getattr(torchvision.datasets, src.tv_class)
    if src.tv_class == "SVHN":
        ds = cls(root=str(root), split="train" if train else "test", download=download)
        images, labels = ds.data, ds.labels  # already (N, C, H, W); torchvision maps label 10 to digit 0
    elif src.tv_class.startswith("CIFAR"):
        ds = cls(root=str(root), train=train, download=download)
        images, labels = np.asarray(ds.data).transpose(0, 3, 1, 2), ds.targets  # stored (N, H, W, C)
    else:  # the MNIST family holds uint8 tensors (N, H, W)
        ds = cls(root=str(root), train=train, download=download)
        images, labels = ds.data.numpy()[:, None], ds.targets.numpy()
    return np.asarray(images), np.asarray(labels).reshape(-1)


def _check_arrays(src: VisionSource, images: np.ndarray, labels: np.ndarray, split: str) -> np.ndarray:
    """Validate one decoded split; return the labels as int64."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != src.shape:
        raise _BadFiles(
            f"the {split} images decode to {images.dtype} {images.shape}, not uint8 (N, {', '.join(map(str, src.shape))})"
        )
    if len(images) == 0 or len(labels) != len(images):
        raise _BadFiles(f"the {split} split has {len(images)} images and {len(labels)} labels")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= src.num_classes:
        raise _BadFiles(f"the {split} labels are not integers in 0..{src.num_classes - 1}")
    return labels.astype(np.int64)


def _problem(src: VisionSource, root: Path, exc: BaseException) -> str:
    """Why reading failed, in words: what is missing, or what failed on files that are there."""
    folder = root / src.folder
    if not root.exists():
        return f"folder '{root}' does not exist"
    if not root.is_dir():
        return f"'{root}' is not a folder"
    if src.folder and not folder.is_dir():
        return f"no {src.folder}/ in '{root}'"
    missing = [f for f in src.files if not (folder / f).is_file()]
    if missing:
        return f"'{folder}' lacks {', '.join(missing)}"
    if isinstance(exc, _BadFiles):
        return f"the files in '{folder}' are not {src.tv_class} data ({exc})"
    # torchvision's own verdict when a checksum (md5) does not match: "... not found or corrupted ..."
    if isinstance(exc, RuntimeError) and "corrupted" in str(exc):
        return f"the files in '{folder}' fail torchvision's checksum (corrupt or incomplete)"
    return f"cannot parse the files in '{folder}' ({_one_line(exc)})"


def _read_checked(
    name: str, src: VisionSource, root: Path, train: bool, download: bool
) -> tuple[np.ndarray, np.ndarray]:
    split = "training" if train else "test"
    try:
        images, labels = _read_split(src, root, train, download)
        return images, _check_arrays(src, images, labels, split)
    except MemoryError:
        raise
    # A file parser raises an open-ended set of types (pickle, scipy.io, zlib, torchvision's own asserts
    # and RuntimeErrors); whichever it is, the user's fix is the same: get good files.
    except Exception as exc:
        folder = root / src.folder
        manual = src.manual.format(url=src.url, root=root, folder=folder)
        if download:
            raise DataError(
                f"{name}: could not download or read its files into '{folder}' ({_one_line(exc)}); "
                f"check the network, or {manual}"
            ) from exc
        raise DataError(
            f"{name}: {_problem(src, root, exc)}; add --download to fetch it into '{root}', or {manual}"
        ) from exc


def _normalized(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> float32 ``(v / 255 - mean) / std``, computed in place on one buffer."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32)
    x.div_(255.0)
    x.sub_(torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
    x.div_(torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
    return x


def load_vision(
    name: str,
    *,
    data_dir: str | Path | None,
    n_examples: int | None = None,
    split_seed: int = 0,
    download: bool = False,
    val_split: bool = False,
) -> Dataset:
    """Load one of :data:`VISION_SOURCES` (the registered loaders call this; see the module docstring).

    Args:
        name: a key of :data:`VISION_SOURCES`.
        data_dir: the folder holding the dataset's files (layout in :data:`VISION_SOURCES`).
        n_examples: keep a seeded random subset of this many training-pool examples (after the
            validation split); the test split keeps its size.
        split_seed: seed of the validation split and of the subset.
        download: fetch missing files into ``data_dir`` with torchvision; otherwise nothing touches the
            network.
        val_split: hold out a seeded 1/3 of the official training split as the test split (the paper's
            protocol) instead of using the official test split.

    Raises:
        DataError: no ``data_dir``, files missing, failing torchvision's checksum or not parsing, or an
            ``n_examples`` larger than the pool.
    """
    src = VISION_SOURCES[name]
    root = _root_dir(name, src, data_dir, download)
    x_pool, y_pool = _read_checked(name, src, root, train=True, download=download)
    pool: np.ndarray | None = None  # indices into the official training split; None: all of it
    if val_split:
        pool, held = val_split_indices(len(y_pool), split_seed)
        if len(pool) == 0:
            raise DataError(f"{name}: --val-split needs at least 2 training images, found {len(y_pool)}")
        held = np.sort(held)
        x_test, y_test = x_pool[held], y_pool[held]
    else:
        x_test, y_test = _read_checked(name, src, root, train=False, download=download)
    if n_examples is not None:
        if pool is None:
            pool = np.random.default_rng(split_seed).permutation(len(y_pool))
        if not 2 <= n_examples <= len(pool):
            raise DataError(
                f"{name}: n_examples must be between 2 and the {len(pool)} training examples, "
                f"got {n_examples}; lower --n-examples"
            )
        pool = pool[:n_examples]
    if pool is not None:
        # Ascending order: a gather that walks memory forward, and the pool in file order like the full set.
        keep = np.sort(pool)
        x_pool, y_pool = x_pool[keep], y_pool[keep]
    return Dataset(
        name=name,
        x_train=_normalized(x_pool, src.mean, src.std),
        y_train=torch.from_numpy(np.ascontiguousarray(y_pool)),
        x_test=_normalized(x_test, src.mean, src.std),
        y_test=torch.from_numpy(np.ascontiguousarray(y_test)),
        num_classes=src.num_classes,
    )


def _register(name: str) -> None:
    src = VISION_SOURCES[name]
    where = f"{src.folder}/" if src.folder else ", ".join(src.files)

    def loader(
        n_examples: int | None = None,
        test_fraction: float = 0.3,
        split_seed: int = 0,
        *,
        data_dir: str | Path | None = None,
        download: bool = False,
        val_split: bool = False,
    ) -> Dataset:
        del test_fraction  # the official test split (or --val-split) decides the hold-out
        return load_vision(
            name,
            data_dir=data_dir,
            n_examples=n_examples,
            split_seed=split_seed,
            download=download,
            val_split=val_split,
        )

    loader.__name__ = loader.__qualname__ = name
    loader.__doc__ = (
        f"{src.tv_class} via ``torchvision.datasets.{src.tv_class}``: {src.num_classes} classes, images "
        f"{src.shape}, read from ``{where}`` under ``data_dir``.\n\n"
        f"Normalized per channel with mean {src.mean}, std {src.std} (sources in :mod:`activews.data.vision`). "
        f"``test_fraction`` is ignored: the official test split is used, or a seeded 1/3 of the training "
        f"split with ``val_split``."
    )
    register_dataset(name)(loader)


for _name in VISION_SOURCES:
    _register(_name)
