"""Built-in datasets, user arrays and .npz files."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from activews.data import DATASETS, from_arrays, load_dataset, load_npz, val_split_indices
from activews.data import builtin as builtin_data
from activews.errors import DataError, UnknownNameError
from tests.helpers import assert_one_line


def test_mnist1d_default_split():
    ds = load_dataset("mnist1d")
    assert (len(ds.y_train), len(ds.y_test)) == (7000, 3000)
    assert ds.x_train.dtype == ds.x_test.dtype == torch.float32
    assert ds.y_train.dtype == ds.y_test.dtype == torch.int64
    assert ds.input_shape == (40,) and ds.num_classes == 10
    assert set(ds.y_train.unique().tolist()) == set(range(10))
    assert repr(ds) == "Dataset('mnist1d', train=7000, test=3000, input_shape=(40,), classes=10)"


def test_mnist1d_split_is_seeded():
    a, b = load_dataset("mnist1d", n_examples=1000), load_dataset("mnist1d", n_examples=1000)
    c = load_dataset("mnist1d", n_examples=1000, split_seed=1)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    # a different split of the same examples
    assert sorted(map(tuple, torch.cat([a.x_train, a.x_test]).tolist())) == sorted(
        map(tuple, torch.cat([c.x_train, c.x_test]).tolist())
    )
    assert len(load_dataset("mnist1d", n_examples=1000, test_fraction=0.5).y_test) == 500


def test_mnist1d_generation_leaves_global_random_state_alone(mnist1d_cache):
    np_state, py_state, torch_state = np.random.get_state(), random.getstate(), torch.get_rng_state()
    load_dataset("mnist1d", n_examples=200)
    assert (mnist1d_cache / "mnist1d-200-seed42.npz").is_file(), "the data must have been generated here"
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert random.getstate() == py_state
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_mnist1d_reads_its_disk_cache(mnist1d_cache, monkeypatch):
    first = load_dataset("mnist1d", n_examples=200)
    builtin_data._mnist1d_arrays.cache_clear()

    def no_generation(*args, **kwargs):
        raise AssertionError("regenerated although a cache file exists")

    monkeypatch.setattr("mnist1d.data.make_dataset", no_generation)
    second = load_dataset("mnist1d", n_examples=200)
    assert torch.equal(first.x_train, second.x_train) and torch.equal(first.y_train, second.y_train)


def test_mnist1d_regenerates_over_an_unreadable_cache(mnist1d_cache):
    mnist1d_cache.mkdir(parents=True)
    (mnist1d_cache / "mnist1d-200-seed42.npz").write_bytes(b"garbage")
    ds = load_dataset("mnist1d", n_examples=200)
    assert len(ds.y_train) + len(ds.y_test) == 200
    with np.load(mnist1d_cache / "mnist1d-200-seed42.npz") as npz:  # rewritten with real data
        assert npz["X"].shape == (200, 40)


def test_mnist1d_too_few_examples():
    with pytest.raises(DataError, match="n_examples >= 20"):
        load_dataset("mnist1d", n_examples=10)


def test_digits():
    ds = load_dataset("digits")
    assert ds.input_shape == (1, 8, 8) and ds.num_classes == 10
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert 0.0 <= float(ds.x_train.min()) and float(ds.x_train.max()) <= 1.0
    assert len(load_dataset("digits", n_examples=100).y_train) == 70


def test_unknown_dataset():
    with pytest.raises(UnknownNameError, match="unknown dataset 'digit'; did you mean 'digits'"):
        load_dataset("digit")
    assert {"mnist1d", "digits"} <= set(DATASETS.names())


# ------------------------------------------------------------------------------------------ user arrays


def labeled_arrays(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features whose first column encodes the label (0 or 1), and the labels as strings."""
    rng = np.random.default_rng(seed)
    is_dog = rng.integers(0, 2, n)
    X = np.column_stack([is_dog, rng.normal(size=(n, 2))]).astype(np.float64)
    return X, np.where(is_dog == 1, "dog", "cat")


def test_from_arrays_with_string_labels():
    X, y = labeled_arrays()
    ds = from_arrays(X, y, test_fraction=0.25)
    assert ds.num_classes == 2 and (len(ds.y_train), len(ds.y_test)) == (30, 10)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    # labels map to 0..C-1 in sorted order ("cat" -> 0, "dog" -> 1), and stay with their rows
    for x, lab in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert torch.equal(x[:, 0].long(), lab)


def test_from_arrays_explicit_test_split_and_subset():
    X, y = labeled_arrays(40)
    Xt, yt = labeled_arrays(12, seed=1)
    ds = from_arrays(torch.from_numpy(X), y, X_test=Xt, y_test=yt, n_examples=25)
    assert (len(ds.y_train), len(ds.y_test)) == (25, 12)
    assert torch.equal(ds.x_test[:, 0].long(), ds.y_test)
    with pytest.raises(DataError, match="give both X_test and y_test"):
        from_arrays(X, y, X_test=Xt)


@pytest.mark.parametrize(
    ("X", "y", "kwargs", "match"),
    [
        (np.zeros((10, 3)), np.zeros(9), {}, r"y must be one label per row of X \(X has 10 rows"),
        (np.zeros((10, 3)), np.zeros((10, 1)), {}, "y must be one label per row"),
        (np.zeros(10), np.zeros(10), {}, r"X must have shape \(examples, features...\)"),
        (np.array([["a", "b"], ["c", "d"]]), np.array([0, 1]), {}, "X must be numeric"),
        (np.zeros((10, 3)), np.zeros(10), {}, "need at least 2 classes"),
        (np.zeros((10, 3)), np.arange(10) % 2, {"test_fraction": 1.0}, "test_fraction must be in"),
        (np.zeros((10, 3)), np.arange(10) % 2, {"n_examples": 1}, "n_examples must be between 2 and"),
    ],
)
def test_from_arrays_errors(X, y, kwargs, match):
    with pytest.raises(DataError, match=match) as exc:
        from_arrays(X, y, **kwargs)
    assert_one_line(str(exc.value))


# ------------------------------------------------------------------------------------------- npz files


def test_load_npz_good_file(tmp_path):
    X, y = labeled_arrays(50)
    np.savez(tmp_path / "good.npz", X=X, y=(y == "dog").astype(np.int64))
    ds = load_npz(tmp_path / "good.npz", test_fraction=0.2)
    assert ds.name == "npz:good.npz" and (len(ds.y_train), len(ds.y_test)) == (40, 10)
    assert ds.input_shape == (3,) and ds.num_classes == 2
    assert torch.equal(ds.x_train[:, 0].long(), ds.y_train)
    assert torch.equal(load_dataset(str(tmp_path / "good.npz"), test_fraction=0.2).x_train, ds.x_train)


def test_load_npz_uses_its_test_arrays(tmp_path):
    X, y = labeled_arrays(30)
    Xt, yt = labeled_arrays(7, seed=3)
    np.savez(tmp_path / "split.npz", X=X, y=y, X_test=Xt, y_test=yt)
    ds = load_npz(tmp_path / "split.npz")
    assert (len(ds.y_train), len(ds.y_test)) == (30, 7)


def _write(path, kind: str) -> None:
    X, y = np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2
    if kind == "missing_y":
        np.savez(path, X=X, labels=y)
    elif kind == "not_a_zip":
        path.write_bytes(b"\x00\x01 definitely not a zip archive \xff" * 10)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "nan":
        X[3, 1] = np.nan
        np.savez(path, X=X, y=y)
    elif kind == "mismatched":
        np.savez(path, X=X, y=y[:15])
    elif kind == "npy_inside":  # numpy.save's format under an .npz name
        with open(path, "wb") as fh:
            np.save(fh, X)
    elif kind == "nan_labels":
        y = y.astype(float)
        y[0] = np.nan
        np.savez(path, X=X, y=y)


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("missing_y", r"lacks array\(s\) y \(found: X, labels\); save it with numpy.savez"),
        ("not_a_zip", r"cannot read '.*bad.npz' as .npz \(ValueError\); save it with numpy.savez"),
        ("empty", r"cannot read '.*bad.npz' as .npz"),
        ("missing", "no such file; pass an existing .npz with arrays X and y"),
        ("nan", "X contains NaN or infinite values; clean or impute them first"),
        ("mismatched", r"y must be one label per row of X \(X has 20 rows, y has shape \(15,\)\)"),
        ("npy_inside", "cannot read"),
        ("nan_labels", "y contains NaN"),
    ],
)
def test_load_npz_errors(tmp_path, kind, match):
    path = tmp_path / "bad.npz"
    if kind != "missing":
        _write(path, kind)
    with pytest.raises(DataError, match=match) as exc:
        load_npz(path)
    assert_one_line(str(exc.value))


# ------------------------------------------------------------------- load_dataset's optional keywords


@pytest.fixture
def user_loaders():
    """Three user loaders: the original signature, one naming the new keywords, one taking **kwargs."""
    calls: dict[str, dict] = {}
    X, y = labeled_arrays(30)

    def old_style(n_examples, test_fraction, split_seed):
        calls["old_style"] = {}
        return from_arrays(X, y, n_examples=n_examples, test_fraction=test_fraction, split_seed=split_seed)

    def new_style(
        n_examples=None, test_fraction=0.3, split_seed=0, *, data_dir=None, download=False, val_split=False
    ):
        calls["new_style"] = {"data_dir": data_dir, "download": download, "val_split": val_split}
        return from_arrays(X, y, test_fraction=test_fraction, split_seed=split_seed)

    def forwarding(**kwargs):
        calls["forwarding"] = dict(kwargs)
        return from_arrays(X, y, **kwargs)  # from_arrays knows none of the new keywords

    for name, fn in (("aw_old_style", old_style), ("aw_new_style", new_style), ("aw_forwarding", forwarding)):
        DATASETS.register(name, fn)
    try:
        yield calls
    finally:
        for name in ("aw_old_style", "aw_new_style", "aw_forwarding"):
            DATASETS.unregister(name)


def test_new_keywords_reach_only_loaders_that_take_them(user_loaders, tmp_path):
    ds = load_dataset("aw_old_style", n_examples=20, data_dir=tmp_path, download=True)
    assert len(ds.y_train) + len(ds.y_test) == 20
    load_dataset("aw_new_style", data_dir=tmp_path, download=True, val_split=True)
    assert user_loaders["new_style"] == {"data_dir": tmp_path, "download": True, "val_split": True}
    load_dataset("aw_new_style")
    assert user_loaders["new_style"] == {"data_dir": None, "download": False, "val_split": False}
    load_dataset("aw_forwarding", split_seed=2)  # defaults are not forced on a **kwargs loader
    assert user_loaders["forwarding"] == {"n_examples": None, "test_fraction": 0.3, "split_seed": 2}
    with pytest.raises(TypeError, match="data_dir"):  # a value the caller set does reach it
        load_dataset("aw_forwarding", data_dir=tmp_path)


@pytest.mark.parametrize("name", ["mnist1d", "digits", "aw_old_style"])
def test_val_split_needs_an_official_test_split(user_loaders, name):
    with pytest.raises(DataError) as exc:
        load_dataset(name, val_split=True)
    assert (
        str(exc.value)
        == f"{name} has no official test split; its hold-out is set by --test-fraction; drop --val-split"
    )


def test_builtins_ignore_data_dir_and_download(tmp_path):
    ds = load_dataset("digits", n_examples=100, data_dir=tmp_path / "nowhere", download=True)
    assert torch.equal(ds.x_train, load_dataset("digits", n_examples=100).x_train)
    assert not (tmp_path / "nowhere").exists()


def test_npz_val_split(tmp_path):
    X, y = labeled_arrays(30)
    Xt, yt = labeled_arrays(7, seed=3)
    np.savez(tmp_path / "split.npz", X=X, y=y, X_test=Xt, y_test=yt)
    ds = load_dataset(str(tmp_path / "split.npz"), val_split=True, split_seed=1)
    assert (len(ds.y_train), len(ds.y_test)) == (20, 10)  # 2/3 and 1/3 of X; X_test is not used
    pool, held = val_split_indices(30, 1)
    assert torch.equal(ds.x_test, torch.from_numpy(X[held].astype(np.float32)))
    assert torch.equal(ds.x_train, torch.from_numpy(X[pool].astype(np.float32)))
    assert len(load_dataset(str(tmp_path / "split.npz"), val_split=True, n_examples=5).y_train) == 5
    np.savez(tmp_path / "plain.npz", X=X, y=y)
    with pytest.raises(
        DataError,
        match=r"plain.npz' \(no X_test/y_test arrays\) has no official test split; .*drop --val-split",
    ):
        load_dataset(str(tmp_path / "plain.npz"), val_split=True)
