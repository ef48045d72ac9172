"""Bad inputs get one clean line (exit 2 on the CLI), never a traceback or a silently wrong run.

Each test here is a case that once crashed with a traceback, or was accepted and gave wrong numbers:
seeds beyond 32 bits, a binary --config, a model too large to allocate, an unwritable report folder,
a 0-byte store, rich markup in paths, damaged folders in 'runs list', float labels and complex or
float32-overflowing features, duplicate --grid values, booleans read as numbers, progress past 100%,
and a matplotlib legend warning.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pytest

from activews.cli import main
from activews.cli.progress import BarProgress, PlainProgress
from activews.errors import ActivewsError, DataError

TINY = "--n-examples 1000 --rounds 2 --initial 100 --query-size 100 --seeds 1 --no-plot --quiet".split()


def tiny(*drop: str) -> list[str]:
    """``TINY`` without the flags ``drop`` (and their values)."""
    out, skip = [], False
    for i, arg in enumerate(TINY):
        if skip:
            skip = False
            continue
        if arg in drop:
            skip = i + 1 < len(TINY) and not TINY[i + 1].startswith("--")
            continue
        out.append(arg)
    return out


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def one_line_error(*argv: str) -> str:
    """Run the CLI; assert exit 2 and a single ``activews: error:`` line; return that line."""
    rc, _, err = run(*argv)
    assert rc == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("activews: error: "), err
    return err


@pytest.fixture(scope="module")
def healthy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad_inputs") / "healthy"
    rc, _, err = run("bench", *TINY, "--output", str(folder))
    assert rc == 0, err
    return folder


# ------------------------------------------------------------------------------------------ seeds


def test_seed_beyond_32_bits_is_one_line(tmp_path):
    err = one_line_error(
        "bench", *tiny("--seeds"), "--seeds", "100000000000000000000,1", "--output", str(tmp_path / "o")
    )
    assert "2**32" in err and "100000000000000000000" in err


@pytest.mark.parametrize("seeds", [[-1], [0, 2**32], [2**32 + 5]])
def test_seeds_outside_32_bits_are_refused(seeds):
    # 0 and 2**32 used to give identical arms (the seed is masked to 32 bits): a falsely tight CI.
    from activews.engine.config import BenchConfig

    with pytest.raises(ActivewsError, match=r"0 <= seed < 2\*\*32"):
        BenchConfig.build(seeds=seeds)


def test_seed_count_is_bounded():
    from activews.engine.config import MAX_SEED_COUNT, BenchConfig

    with pytest.raises(ActivewsError, match="at most"):
        BenchConfig.build(seeds=MAX_SEED_COUNT + 1)
    assert BenchConfig.build(seeds=[0, 2**32 - 1]).seeds == (0, 2**32 - 1)


@pytest.mark.parametrize("value", ["-1", "4294967296"])
def test_split_seed_range(value, tmp_path):
    err = one_line_error("bench", *TINY, "--split-seed", value, "--output", str(tmp_path / "o"))
    assert "split_seed" in err


# --------------------------------------------------------------------------------- booleans as numbers


@pytest.mark.parametrize(
    "values",
    [{"rounds": True}, {"lr": False}, {"seeds": [True, 2]}, {"schedule": [True]}, {"n_examples": True}],
)
def test_booleans_are_not_numbers(values):
    from activews.engine.config import BenchConfig

    key = next(iter(values))
    with pytest.raises(ActivewsError, match=f"{key}: must (be a number|hold numbers), got"):
        BenchConfig.build(**values)


def test_booleans_are_not_numbers_in_train_config():
    from pydantic import ValidationError

    from activews.training import TrainConfig

    with pytest.raises(ValidationError, match="boolean"):
        TrainConfig(patience=True)
    assert TrainConfig(lr=1, max_epochs=3).lr == 1.0  # ints still count as floats


def test_rounds_true_in_a_sweep_file(tmp_path):
    (tmp_path / "s.toml").write_text("rounds = true\n")
    err = one_line_error(
        "bench", *tiny("--rounds"), "--config", str(tmp_path / "s.toml"), "--output", str(tmp_path / "o")
    )
    assert "rounds: must be a number, got the boolean true" in err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------- sweep files


def test_binary_config_is_one_line(tmp_path):
    (tmp_path / "bin.toml").write_bytes(bytes(range(256)) * 4)
    err = one_line_error("bench", *TINY, "--config", str(tmp_path / "bin.toml"))
    assert "not a text file" in err


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "sets nothing"),
        ("# only a comment\n", "sets nothing"),
        ("grid = 5\n", "grid must be a table"),
        ("params = 5\n", "params must be a table"),
        ("param_grid = [1]\n", "param_grid must be a table"),
    ],
)
def test_sweep_file_shapes(tmp_path, text, expected):
    (tmp_path / "s.toml").write_text(text)
    err = one_line_error(
        "bench", *TINY, "--config", str(tmp_path / "s.toml"), "--output", str(tmp_path / "o")
    )
    assert expected in err


def test_duplicate_grid_values_are_refused(tmp_path):
    err = one_line_error("bench", *TINY, "--grid", "lr=0.001,0.001", "--output", str(tmp_path / "o"))
    assert "remove duplicate values from --grid" in err
    from activews.engine.sweep import expand

    with pytest.raises(ActivewsError, match="experiments repeat"):
        expand({"grid": {"model": ["mlp", "logreg", "mlp"]}})
    assert len(expand({"grid": {"lr": [0.001, 0.002]}})) == 2


# ----------------------------------------------------------------------------------------- big models


def test_model_too_large_for_memory_is_one_line(tmp_path):
    # 4e12 weights: more than any machine holds, refused before anything is allocated.
    err = one_line_error(
        "bench", *TINY, "--model-param", "hidden=100000000000", "--output", str(tmp_path / "o")
    )
    assert "hidden=100000000000" in err and "use a smaller model" in err


def test_model_size_check_uses_this_machines_memory(monkeypatch):
    from activews.models import base, build_model

    monkeypatch.setattr(base, "_memory_bytes", lambda: 2**30)  # a 1 GiB machine
    with pytest.raises(ActivewsError, match=r"model 'mlp' \(hidden=100000000\) has 5,100,000,010 parameters"):
        build_model("mlp", (40,), 10, {"hidden": 100000000})
    assert sum(p.numel() for p in build_model("mlp", (40,), 10, {"hidden": 64}).parameters()) == 3274


def test_allocation_failure_is_one_line(monkeypatch):
    from activews.models import MODELS, base, build_model

    spec = MODELS.get("mlp")

    def failing(*args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:116] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(base, "_memory_bytes", lambda: None)
    monkeypatch.setitem(MODELS._entries, "mlp", type(spec)(spec.name, failing, spec.Params, spec.doc))
    with pytest.raises(ActivewsError, match="not enough memory for its weights"):
        build_model("mlp", (40,), 10, {"hidden": 7})


# --------------------------------------------------------------------------------------- run stores


@pytest.mark.parametrize("content", [b"", b"garbage \x00\xff" * 300], ids=["empty", "garbage"])
@pytest.mark.parametrize("command", ["runs show", "report", "bench --resume", "runs export"])
def test_damaged_store_is_one_line(tmp_path, content, command):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "store.sqlite").write_bytes(content)
    err = one_line_error(*command.split(), str(folder))
    assert "store.sqlite" in err and "delete the folder" in err
    assert (folder / "store.sqlite").read_bytes() == content  # reading never rewrites it


@pytest.mark.parametrize("command", ["runs show", "runs export", "report"])
def test_never_started_store_is_one_line(tmp_path, command):
    from activews.engine.store import _SCHEMA

    folder = tmp_path / "run"
    folder.mkdir()
    conn = sqlite3.connect(folder / "store.sqlite")  # an older version's failed set-up: tables, no run
    conn.executescript(_SCHEMA)
    conn.close()
    err = one_line_error(*command.split(), str(folder))
    assert "set-up never finished" in err


def test_runs_list_shows_every_folder(tmp_path, healthy_run, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one table line per run
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(healthy_run, root / "b_healthy")
    (root / "a_empty").mkdir()
    (root / "a_empty" / "store.sqlite").write_bytes(b"")
    (root / "c_garbage").mkdir()
    (root / "c_garbage" / "store.sqlite").write_bytes(b"not sqlite \xff" * 100)
    (root / "d_setup_failed").mkdir()  # an older version's failed set-up: tables, no config
    conn = sqlite3.connect(root / "d_setup_failed" / "store.sqlite")
    from activews.engine.store import _SCHEMA

    conn.executescript(_SCHEMA)
    conn.close()
    rc, out, err = run("runs", "list", "--root", str(root))
    assert (rc, err) == (0, "")
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 2}
    assert set(lines) >= {"a_empty", "b_healthy", "c_garbage", "d_setup_failed"}
    assert "damaged: empty store" in lines["a_empty"]
    assert "damaged" in lines["c_garbage"]
    assert "not started" in lines["d_setup_failed"]
    assert "3/3" in lines["b_healthy"]


# ------------------------------------------------------------------------------------ report --output


def test_report_output_is_a_file(tmp_path, healthy_run):
    (tmp_path / "a_file").write_text("x")
    err = one_line_error("report", str(healthy_run), "--output", str(tmp_path / "a_file"))
    assert "is a file, not a folder" in err


def _can_write(folder: Path) -> bool:
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _read_only_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if _can_write(folder):  # root writes anyway: use a folder no one can write to (sysfs), if any
        folder = Path("/sys")
        if not folder.is_dir() or _can_write(folder):
            pytest.skip("no read-only folder available to this user")
    return folder


def test_report_output_read_only(tmp_path, healthy_run):
    folder = _read_only_folder(tmp_path)
    try:
        err = one_line_error("report", str(healthy_run), "--output", str(folder))
        assert "cannot write to --output" in err
    finally:
        (tmp_path / "ro").chmod(0o755)


# ------------------------------------------------------------------------------------- rich markup


@pytest.mark.parametrize("name", ["r[/x]", "r[v2]"])
def test_markup_in_run_folder_names(tmp_path, healthy_run, name):
    folder = tmp_path / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(healthy_run, folder)
    for argv in (["runs", "show", str(folder)], ["report", str(folder)]):
        rc, out, err = run(*argv)
        assert (rc, err) == (0, ""), err
        assert name in out.replace("\n", "")
    rc, out, _ = run("runs", "list", "--root", str(folder.parent))
    assert rc == 0 and folder.name in out


# -------------------------------------------------------------------------------------------- data


@pytest.fixture
def Xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5))
    return X, (X[:, 0] > 0).astype(np.int64)


def test_mnist1d_size_is_bounded(tmp_path):
    err = one_line_error(
        "bench", *tiny("--n-examples"), "--n-examples", "100000000", "--output", str(tmp_path / "o")
    )
    assert "mnist1d generates at most 1,000,000 examples" in err


def test_continuous_labels_are_refused(Xy, tmp_path):
    from activews.data import from_arrays

    X, _ = Xy
    y = np.random.default_rng(1).random(len(X))
    with pytest.raises(DataError, match="y must hold integer class labels; got non-integer values such as"):
        from_arrays(X, y)
    np.savez(tmp_path / "reg.npz", X=X, y=y)
    err = one_line_error(
        "bench",
        *tiny("--n-examples"),
        "--dataset",
        str(tmp_path / "reg.npz"),
        "--output",
        str(tmp_path / "o"),
    )
    assert "y must hold integer class labels" in err
    assert from_arrays(X, (X[:, 0] > 0).astype(float)).num_classes == 2  # whole-number floats are labels


def test_complex_features_are_refused(Xy, tmp_path):
    from activews.data import from_arrays

    X, y = Xy
    with pytest.raises(DataError, match="X holds complex numbers"):
        from_arrays(X + 1j, y)
    np.savez(tmp_path / "c.npz", X=X[:100], y=y[:100], X_test=X[100:] * 1j, y_test=y[100:])
    with pytest.raises(DataError, match="X_test holds complex numbers"):
        from activews.data import load_npz

        load_npz(tmp_path / "c.npz")


def test_features_beyond_float32_are_refused(Xy, tmp_path):
    from activews.data import from_arrays

    X, y = Xy
    X = X.copy()
    X[3, 2] = 1e39  # finite in float64, inf in float32
    with pytest.raises(DataError, match=r"X has values beyond the float32 range .* such as 1e\+39; .*scale"):
        from_arrays(X, y)
    np.savez(tmp_path / "big.npz", X=X, y=y)
    err = one_line_error(
        "bench",
        *tiny("--n-examples"),
        "--dataset",
        str(tmp_path / "big.npz"),
        "--output",
        str(tmp_path / "o"),
    )
    assert "float32 range" in err


def test_npz_object_arrays_and_folders(Xy, tmp_path):
    from activews.data import load_npz

    X, y = Xy
    np.savez(tmp_path / "obj.npz", X=X.astype(object), y=y)
    with pytest.raises(DataError, match="holds object arrays"):
        load_npz(tmp_path / "obj.npz")
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(DataError, match="is a folder"):
        load_npz(tmp_path / "dir.npz")


@pytest.mark.parametrize("device", ["cuda:x", "cuda:", "cuda:0:1"])
def test_malformed_cuda_device(device):
    from activews.engine.config import BenchConfig

    with pytest.raises(ActivewsError, match="device must be cpu, cuda, cuda:N, mps or auto"):
        BenchConfig.build(device=device)


def test_sklearn_refuses_features_beyond_float32(Xy):
    from activews.sklearn import WarmStartClassifier

    X, y = Xy
    big = X.copy()
    big[0, 0] = 1e39
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NaN-loss warning: refused before training
        with pytest.raises(ActivewsError, match="float32 range"):
            WarmStartClassifier(max_epochs=2, random_state=0).fit(big, y)
        clf = WarmStartClassifier(max_epochs=2, random_state=0).fit(X, y)
        with pytest.raises(ActivewsError, match="float32 range"):
            clf.predict(big)


# ---------------------------------------------------------------------------------------- progress


class _Event:
    def __init__(self, kind, strategy="", seed=0, round=0, num_rounds=0, record=None):
        self.kind, self.strategy, self.seed, self.round, self.num_rounds = (
            kind,
            strategy,
            seed,
            round,
            num_rounds,
        )
        self.record = record


REC = {"test_accuracy": 0.5, "steps": 3, "seconds": 0.1}


def _restart_events() -> list[_Event]:
    """A 6-round run with 4 rounds stored whose cell restarts from round 0 (unusable checkpoint)."""
    events = [_Event("start", round=4, num_rounds=6), _Event("arm_start", "warm", 0, 0, 3)]
    events += [_Event("round_end", "warm", 0, r, 3, REC) for r in range(3)]
    events += [_Event("arm_end", "warm", 0, 2, 3), _Event("arm_start", "random", 0, 1, 3)]
    events += [_Event("round_end", "random", 0, r, 3, REC) for r in range(1, 3)]
    return events


def test_plain_progress_never_exceeds_total():
    from rich.console import Console

    buf = io.StringIO()
    display = PlainProgress(Console(file=buf, width=200))
    with display:
        for event in _restart_events():
            display.on_event(event)
    counts = [line.split("]")[0] for line in buf.getvalue().splitlines() if line.startswith("[")]
    assert counts and counts[-1] == "[6/6" and "[7/6" not in counts


def test_bar_progress_never_exceeds_total():
    from rich.console import Console

    display = BarProgress(Console(file=io.StringIO(), width=200))
    with display:
        for event in _restart_events():
            display.on_event(event)
        task = display.progress.tasks[display.overall]
        assert task.completed == task.total == 6


# ----------------------------------------------------------------------------------------- figures


def test_unfinished_run_figures_do_not_warn(tmp_path, healthy_run):
    from activews.engine.bench import load_results
    from activews.report import figures

    folder = tmp_path / "partial"
    shutil.copytree(healthy_run, folder)
    conn = sqlite3.connect(folder / "store.sqlite")
    conn.execute("DELETE FROM records WHERE arm = 'random'")  # nothing to pair with random yet
    conn.commit()
    conn.close()
    (result,) = load_results(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figs = figures(result)
    assert {"accuracy.png", "penalty.png"} <= set(figs)
