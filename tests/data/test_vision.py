"""Image datasets read through torchvision, from tiny files written in each dataset's real on-disk format.

Every test goes through ``load_dataset`` -> the registered loader -> the real ``torchvision.datasets``
class -> our conversion. The only thing bypassed (by the ``skip_checksums`` fixture, where a test asks
for it) is torchvision's md5 comparison, which fabricated files cannot pass; its file-existence checks
and readers run for real. No test may reach the network: ``no_network`` refuses every connection.
"""

from __future__ import annotations

import pickle
import re
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from activews.data import load_dataset, val_split_indices
from activews.data.vision import VISION_SOURCES
from activews.errors import DataError
from tests.helpers import assert_one_line

PER_BATCH = 6  # images per CIFAR-10 batch file: 5 x 6 = 30 training images
N_TRAIN, N_TEST = 30, 6
TEST_ID = 100  # test image j carries id 100 + j; training image i carries id i (see Fabricated)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Refuse every connection and name lookup: these tests must work offline and never download."""

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("network access is disabled in these tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def skip_checksums(monkeypatch):
    """Accept any md5: fabricated files cannot match the real archives' checksums.

    torchvision's ``check_integrity`` (used by CIFAR10/CIFAR100 ``_check_integrity`` and ``_load_meta``, and
    by SVHN ``_check_integrity``) still requires each file to exist; only ``check_md5`` is replaced. MNIST
    and FashionMNIST check raw files for existence only, so they need no bypass.
    """
    import torchvision.datasets.utils as tv_utils

    monkeypatch.setattr(tv_utils, "check_md5", lambda fpath, md5, **kwargs: True)


@dataclass
class Fabricated:
    """What was written: uint8 images (N, C, H, W) and labels of both official splits.

    Pixel (0, 0) of channel 0 of every image holds its id (training image i: i; test image j: 100 + j),
    so the images a loader returns can be traced back to the files.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def _images(n: int, shape: tuple[int, int, int], first_id: int, seed: int) -> np.ndarray:
    images = np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(first_id, first_id + n)
    return images


def _fabricate(shape: tuple[int, int, int], num_classes: int) -> Fabricated:
    train = _images(N_TRAIN, shape, 0, seed=1)
    test = _images(N_TEST, shape, TEST_ID, seed=2)
    # labels a known function of the id, so a test can check that labels stay with their images
    return Fabricated(
        train, (np.arange(N_TRAIN) * 7) % num_classes, test, (np.arange(N_TEST) * 7 + 3) % num_classes
    )


def _pickle(path: Path, obj: dict) -> None:
    # The official files are Python 2 pickles (protocol 2) with str keys; torchvision reads them with
    # pickle.load(f, encoding="latin1"), which turns those keys into str.
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def write_cifar10(root: Path) -> Fabricated:
    """``root/cifar-10-batches-py/``: data_batch_1..5, test_batch, batches.meta (rows of 3072 bytes: R, G, B planes)."""
    fab = _fabricate((3, 32, 32), 10)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b in range(5):
        part = slice(b * PER_BATCH, (b + 1) * PER_BATCH)
        _pickle(
            folder / f"data_batch_{b + 1}",
            {
                "batch_label": f"training batch {b + 1} of 5",
                "labels": fab.train_labels[part].tolist(),
                "data": fab.train_images[part].reshape(PER_BATCH, 3072),
                "filenames": [f"img_{i}.png" for i in range(PER_BATCH)],
            },
        )
    _pickle(
        folder / "test_batch",
        {
            "batch_label": "testing batch 1 of 1",
            "labels": fab.test_labels.tolist(),
            "data": fab.test_images.reshape(N_TEST, 3072),
        },
    )
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072})
    return fab


def write_cifar100(root: Path) -> Fabricated:
    """``root/cifar-100-python/``: train, test (fine_labels, coarse_labels), meta."""
    fab = _fabricate((3, 32, 32), 100)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for fname, images, labels in (
        ("train", fab.train_images, fab.train_labels),
        ("test", fab.test_images, fab.test_labels),
    ):
        _pickle(
            folder / fname,
            {
                "fine_labels": labels.tolist(),
                "coarse_labels": (labels // 5).tolist(),
                "data": images.reshape(len(images), 3072),
            },
        )
    _pickle(
        folder / "meta",
        {
            "fine_label_names": [f"f{i}" for i in range(100)],
            "coarse_label_names": [f"c{i}" for i in range(20)],
        },
    )
    return fab


def write_svhn(root: Path) -> Fabricated:
    """``root/train_32x32.mat``, ``root/test_32x32.mat``: X (32, 32, 3, N) uint8, y (N, 1) with 10 for digit 0."""
    fab = _fabricate((3, 32, 32), 10)
    root.mkdir(parents=True, exist_ok=True)
    for fname, images, labels in (
        ("train_32x32.mat", fab.train_images, fab.train_labels),
        ("test_32x32.mat", fab.test_images, fab.test_labels),
    ):
        on_disk = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]
        scipy.io.savemat(root / fname, {"X": images.transpose(2, 3, 1, 0), "y": on_disk})
    return fab


def _idx(path: Path, array: np.ndarray, claimed: tuple[int, ...] | None = None) -> None:
    """An idx-ubyte file: magic 0x00 0x00 0x08 ndim, big-endian uint32 dims, then the bytes."""
    dims = claimed or array.shape
    path.write_bytes(
        struct.pack(f">I{len(dims)}I", 0x0800 + len(dims), *dims) + array.astype(np.uint8).tobytes()
    )


def write_mnist(root: Path, cls_folder: str = "MNIST") -> Fabricated:
    """``root/<cls_folder>/raw/``: the four unzipped idx-ubyte files."""
    fab = _fabricate((1, 28, 28), 10)
    raw = root / cls_folder / "raw"
    raw.mkdir(parents=True)
    for prefix, images, labels in (
        ("train", fab.train_images, fab.train_labels),
        ("t10k", fab.test_images, fab.test_labels),
    ):
        _idx(raw / f"{prefix}-images-idx3-ubyte", images[:, 0])
        _idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return fab


WRITERS = {
    "cifar10": write_cifar10,
    "cifar100": write_cifar100,
    "svhn": write_svhn,
    "mnist": write_mnist,
    "fashion_mnist": lambda root: write_mnist(root, "FashionMNIST"),
}


def expected(images: np.ndarray, name: str) -> torch.Tensor:
    src = VISION_SOURCES[name]
    mean = torch.tensor(src.mean, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(src.std, dtype=torch.float64).view(1, -1, 1, 1)
    return ((torch.from_numpy(images).double() / 255 - mean) / std).float()


def ids_of(x: torch.Tensor, name: str) -> list[int]:
    """Undo the normalization of pixel (0, 0) of channel 0: the image ids a split holds."""
    src = VISION_SOURCES[name]
    return np.rint((x[:, 0, 0, 0].double().numpy() * src.std[0] + src.mean[0]) * 255).astype(int).tolist()


# ------------------------------------------------------------------------------------------ reading


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_reads_the_official_splits(name, tmp_path, skip_checksums):
    fab = WRITERS[name](tmp_path)
    ds = load_dataset(name, data_dir=tmp_path)
    src = VISION_SOURCES[name]
    assert ds.name == name and ds.num_classes == src.num_classes and ds.input_shape == src.shape
    assert (len(ds.y_train), len(ds.y_test)) == (N_TRAIN, N_TEST)
    assert ds.x_train.dtype == ds.x_test.dtype == torch.float32
    assert ds.y_train.dtype == ds.y_test.dtype == torch.int64
    assert ds.x_train.is_contiguous()
    # every pixel, in file order, normalized per channel: (v / 255 - mean) / std
    torch.testing.assert_close(ds.x_train, expected(fab.train_images, name), rtol=0, atol=1e-5)
    torch.testing.assert_close(ds.x_test, expected(fab.test_images, name), rtol=0, atol=1e-5)
    assert ds.y_train.tolist() == fab.train_labels.tolist() and ds.y_test.tolist() == fab.test_labels.tolist()


def test_cifar10_pixel_layout_and_constants(tmp_path, skip_checksums):
    """Hand-checkable: the first 1024 bytes of a row are the red plane, the next 1024 the green one."""
    fab = write_cifar10(tmp_path)
    row = fab.train_images[3].reshape(3072)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    for byte, (c, h, w) in ((5, (0, 0, 5)), (1024 + 33, (1, 1, 1)), (2048 + 1023, (2, 31, 31))):
        # the authors' normalization: mean = std = 0.5 per channel, so v maps to v / 255 * 2 - 1
        assert float(ds.x_train[3, c, h, w]) == pytest.approx(row[byte] / 255 * 2 - 1, abs=1e-5)


def test_svhn_maps_label_10_to_digit_0_and_uses_half_normalization(tmp_path, skip_checksums):
    fab = write_svhn(tmp_path)
    with np.errstate(all="ignore"):
        on_disk = scipy.io.loadmat(tmp_path / "train_32x32.mat")["y"].ravel()
    assert 10 in on_disk.tolist() and 0 not in on_disk.tolist()  # the file uses SVHN's own labels
    ds = load_dataset("svhn", data_dir=tmp_path)
    assert ds.y_train.tolist() == fab.train_labels.tolist() and 0 in ds.y_train.tolist()
    # X is (H, W, C, N) on disk; mean = std = 0.5 maps 0 -> -1 and 255 -> 1
    v = int(fab.train_images[2, 1, 4, 7])
    assert float(ds.x_train[2, 1, 4, 7]) == pytest.approx(v / 255 * 2 - 1, abs=1e-6)


def test_mnist_uses_its_own_statistics(tmp_path):
    fab = write_mnist(tmp_path)  # no checksum bypass: torchvision only checks that the raw files exist
    ds = load_dataset("mnist", data_dir=str(tmp_path))
    v = int(fab.test_images[1, 0, 10, 20])
    assert float(ds.x_test[1, 0, 10, 20]) == pytest.approx((v / 255 - 0.1307) / 0.3081, abs=1e-5)


def test_test_fraction_is_ignored_and_the_files_are_untouched(tmp_path, skip_checksums):
    write_cifar10(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    ds = load_dataset("cifar10", data_dir=tmp_path, test_fraction=0.5)
    assert (len(ds.y_train), len(ds.y_test)) == (N_TRAIN, N_TEST)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


# -------------------------------------------------------------------------------- val split, subsets


def test_val_split_holds_out_a_seeded_third_of_the_training_split(tmp_path, skip_checksums):
    fab = write_cifar10(tmp_path)
    ds = load_dataset("cifar10", data_dir=tmp_path, val_split=True, split_seed=3)
    assert (len(ds.y_train), len(ds.y_test)) == (20, 10)  # floor(2/3 * 30) / the rest
    pool, held = ids_of(ds.x_train, "cifar10"), ids_of(ds.x_test, "cifar10")
    assert set(pool).isdisjoint(held) and sorted(pool + held) == list(
        range(N_TRAIN)
    )  # the official test set is unused
    assert pool == sorted(val_split_indices(N_TRAIN, 3)[0].tolist())
    assert (
        ds.y_train.tolist() == fab.train_labels[pool].tolist()
        and ds.y_test.tolist() == fab.train_labels[held].tolist()
    )
    again = load_dataset("cifar10", data_dir=tmp_path, val_split=True, split_seed=3)
    assert torch.equal(again.x_train, ds.x_train) and torch.equal(again.x_test, ds.x_test)
    other = load_dataset("cifar10", data_dir=tmp_path, val_split=True, split_seed=4)
    assert set(ids_of(other.x_test, "cifar10")) != set(held)


def test_val_split_paper_sizes():
    pool, held = val_split_indices(50_000, 0)
    assert (len(pool), len(held)) == (33_333, 16_667)
    assert sorted(np.concatenate([pool, held]).tolist()) == list(range(50_000))


def test_n_examples_subsets_the_training_pool_only(tmp_path, skip_checksums):
    write_svhn(tmp_path)
    ds = load_dataset("svhn", data_dir=tmp_path, n_examples=5, split_seed=1)
    assert (len(ds.y_train), len(ds.y_test)) == (5, N_TEST)
    assert len(set(ids_of(ds.x_train, "svhn"))) == 5 and max(ids_of(ds.x_train, "svhn")) < N_TRAIN
    assert sorted(ids_of(ds.x_test, "svhn")) == list(range(TEST_ID, TEST_ID + N_TEST))
    assert ids_of(
        load_dataset("svhn", data_dir=tmp_path, n_examples=5, split_seed=2).x_train, "svhn"
    ) != ids_of(ds.x_train, "svhn")
    full = load_dataset("svhn", data_dir=tmp_path, val_split=True, split_seed=1)
    small = load_dataset("svhn", data_dir=tmp_path, val_split=True, split_seed=1, n_examples=5)
    bigger = load_dataset("svhn", data_dir=tmp_path, val_split=True, split_seed=1, n_examples=8)
    assert (len(small.y_train), len(small.y_test)) == (5, 10)
    assert torch.equal(small.x_test, full.x_test)  # the subset is taken after the validation split
    small_ids, bigger_ids = set(ids_of(small.x_train, "svhn")), set(ids_of(bigger.x_train, "svhn"))
    assert small_ids < bigger_ids <= set(ids_of(full.x_train, "svhn"))  # nested, inside the pool


@pytest.mark.parametrize(("n", "val_split", "limit"), [(21, True, 20), (31, False, 30), (1, False, 30)])
def test_n_examples_out_of_range(tmp_path, skip_checksums, n, val_split, limit):
    write_cifar100(tmp_path)
    with pytest.raises(
        DataError,
        match=rf"cifar100: n_examples must be between 2 and the {limit} training examples, got {n}; lower --n-examples",
    ):
        load_dataset("cifar100", data_dir=tmp_path, n_examples=n, val_split=val_split)


# ---------------------------------------------------------------------------------------------- errors


def test_no_data_dir():
    with pytest.raises(DataError) as exc:
        load_dataset("cifar10")
    assert str(exc.value) == (
        "cifar10 reads its files from --data-dir DIR; pass the folder holding cifar-10-batches-py/ "
        "(or add --download to fetch it)"
    )
    with pytest.raises(DataError) as exc:
        load_dataset("svhn", download=True)
    assert (
        str(exc.value)
        == "svhn --download needs --data-dir DIR, the folder to save train_32x32.mat and test_32x32.mat in"
    )


def test_download_is_passed_to_torchvision(tmp_path):
    """--download reaches torchvision (the no_network guard refuses it, which must end in one clean line)."""
    with pytest.raises(DataError) as exc:
        load_dataset("cifar10", data_dir=tmp_path, download=True)
    message = str(exc.value)
    assert_one_line(message)
    assert message.startswith(
        f"cifar10: could not download or read its files into '{tmp_path / 'cifar-10-batches-py'}'"
    )
    assert "network access is disabled in these tests" in message
    assert message.endswith(
        f"check the network, or download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it in '{tmp_path}'"
    )


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def _break(name: str, root: Path, how: str) -> None:
    """Write ``name``'s files under ``root`` and damage them ``how``."""
    if how == "missing":
        return
    if how == "empty":
        root.mkdir()
        return
    WRITERS[name](root)
    if how == "no_test_file":
        folder = root / VISION_SOURCES[name].folder
        (folder / VISION_SOURCES[name].files[-2 if name == "cifar10" else 1]).unlink()
    elif how == "truncated_pickle":
        _truncate(root / "cifar-10-batches-py" / "data_batch_3")
    elif how == "bytes_keys":  # a Python 3 pickle with bytes keys is not what torchvision reads
        _pickle_raw = {b"data": np.zeros((PER_BATCH, 3072), np.uint8), b"labels": [0] * PER_BATCH}
        with open(root / "cifar-10-batches-py" / "data_batch_1", "wb") as fh:
            pickle.dump(_pickle_raw, fh)
    elif how == "wrong_row_size":
        with open(root / "cifar-100-python" / "train", "wb") as fh:
            pickle.dump({"fine_labels": [0] * 4, "data": np.zeros((4, 3000), np.uint8)}, fh, protocol=2)
    elif how == "garbage_mat":
        (root / "train_32x32.mat").write_bytes(b"MATLAB? no: " + bytes(range(256)) * 4)
    elif how == "label_11":
        scipy.io.savemat(
            root / "train_32x32.mat",
            {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.full((4, 1), 11, np.uint8)},
        )
    elif how == "short_idx":  # the header promises 30 images, the file holds 29
        fab = _fabricate((1, 28, 28), 10)
        _idx(
            root / "MNIST" / "raw" / "train-images-idx3-ubyte",
            fab.train_images[:-1, 0],
            claimed=(N_TRAIN, 28, 28),
        )
    elif how == "label_count":  # 30 images, 29 labels
        _idx(root / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte", np.zeros(N_TRAIN - 1))


MANUAL = {
    "cifar10": "download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it in '{root}'",
    "cifar100": "download https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz and extract it in '{root}'",
    "svhn": "download train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/ into '{root}'",
    "mnist": "download the four *-ubyte.gz files from https://ossci-datasets.s3.amazonaws.com/mnist/ and gunzip them into '{root}/MNIST/raw'",
    "fashion_mnist": (
        "download the four *-ubyte.gz files from http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ "
        "and gunzip them into '{root}/FashionMNIST/raw'"
    ),
}

BROKEN = [
    ("cifar10", "missing", r"folder '{root}' does not exist"),
    ("cifar10", "empty", r"no cifar-10-batches-py/ in '{root}'"),
    ("cifar10", "no_test_file", r"'{root}/cifar-10-batches-py' lacks test_batch"),
    (
        "cifar10",
        "truncated_pickle",
        r"cannot parse the files in '{root}/cifar-10-batches-py' \((UnpicklingError|EOFError)",
    ),
    ("cifar10", "bytes_keys", r"cannot parse the files in '{root}/cifar-10-batches-py' \(KeyError: 'data'\)"),
    (
        "cifar100",
        "wrong_row_size",
        r"cannot parse the files in '{root}/cifar-100-python' \(ValueError: cannot reshape",
    ),
    ("svhn", "empty", r"'{root}' lacks train_32x32.mat, test_32x32.mat"),
    ("svhn", "no_test_file", r"'{root}' lacks test_32x32.mat"),
    ("svhn", "garbage_mat", r"cannot parse the files in '{root}' \("),
    (
        "svhn",
        "label_11",
        r"the files in '{root}' are not SVHN data \(the training labels are not integers in 0..9\)",
    ),
    ("mnist", "empty", r"no MNIST/raw/ in '{root}'"),
    ("mnist", "short_idx", r"cannot parse the files in '{root}/MNIST/raw' \("),
    (
        "fashion_mnist",
        "label_count",
        r"the files in '{root}/FashionMNIST/raw' are not FashionMNIST data \(the training split has 30 images and 29 labels\)",
    ),
]


@pytest.mark.parametrize(("name", "how", "problem"), BROKEN)
def test_unreadable_files(tmp_path, skip_checksums, name, how, problem):
    root = tmp_path / "data"
    _break(name, root, how)
    with pytest.raises(DataError) as exc:
        load_dataset(name, data_dir=root)
    message = str(exc.value)
    assert_one_line(message)
    assert re.search(f"^{name}: " + problem.replace("{root}", re.escape(str(root))), message), message
    # ... and says how to get good files: --download with the folder, or the URL and where to put them
    assert message.endswith(
        f"; add --download to fetch it into '{root}', or " + MANUAL[name].format(root=root)
    )


def test_files_failing_the_checksum(tmp_path):
    """Without the bypass, torchvision's real md5 check rejects fabricated files."""
    write_cifar10(tmp_path)
    with pytest.raises(DataError) as exc:
        load_dataset("cifar10", data_dir=tmp_path)
    assert str(exc.value) == (
        f"cifar10: the files in '{tmp_path}/cifar-10-batches-py' fail torchvision's checksum (corrupt or incomplete); "
        f"add --download to fetch it into '{tmp_path}', or download "
        f"https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it in '{tmp_path}'"
    )
    write_svhn(tmp_path / "svhn")
    with pytest.raises(DataError, match="fail torchvision's checksum"):
        load_dataset("svhn", data_dir=tmp_path / "svhn")


def test_mnist_message_names_the_raw_folder(tmp_path):
    with pytest.raises(DataError) as exc:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(exc.value) == (
        f"mnist: no MNIST/raw/ in '{tmp_path}'; add --download to fetch it into '{tmp_path}', or download the four "
        f"*-ubyte.gz files from https://ossci-datasets.s3.amazonaws.com/mnist/ and gunzip them into '{tmp_path}/MNIST/raw'"
    )


def test_normalization_constants():
    table = {name: (src.mean, src.std) for name, src in VISION_SOURCES.items()}
    assert table == {
        "cifar10": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        "cifar100": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        "svhn": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        "mnist": ((0.1307,), (0.3081,)),
        "fashion_mnist": ((0.2860,), (0.3530,)),
    }


def test_importing_activews_does_not_import_torchvision():
    import subprocess
    import sys

    code = "import sys, activews.data; print('torchvision' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )
