"""The thread policy, worker counts, Ray resources, cell memory, and the GPU path's settings tested on CPU."""

from __future__ import annotations

import logging

import pytest
import torch

from activews import BenchConfig
from activews.cli import main
from activews.engine.resources import (
    cell_memory,
    cgroup_cpu_limit,
    check_gpus_per_cell,
    oversubscription,
    parse_workers,
    ray_resources,
    resolve_workers,
    usable_cpus,
)
from activews.engine.store import RunStore
from activews.errors import ActivewsError
from activews.models import build_model
from activews.training import TrainConfig, compile_problem, predict_proba, train_to_criterion

from .run_helpers import TINY

# ----------------------------------------------------------------------------------------- usable cores


def _fake_root(tmp_path, cgroup: str, files: dict[str, str]):
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    for rel, text in files.items():
        path = tmp_path / "sys/fs/cgroup" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_cgroup_v2_quota_is_read_and_the_smallest_on_the_path_wins(tmp_path):
    root = _fake_root(
        tmp_path,
        "0::/user.slice/job\n",
        {
            "cpu.max": "max 100000\n",
            "user.slice/cpu.max": "150000 100000\n",
            "user.slice/job/cpu.max": "400000 100000\n",
        },
    )
    assert cgroup_cpu_limit(root) == 1.5


def test_cgroup_v2_without_a_quota_is_unlimited(tmp_path):
    root = _fake_root(tmp_path, "0::/\n", {"cpu.max": "max 100000\n"})
    assert cgroup_cpu_limit(root) is None


def test_cgroup_v1_quota(tmp_path):
    root = _fake_root(
        tmp_path,
        "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n",
        {
            "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000\n",
            "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cgroup_cpu_limit(root) == 2.0
    unlimited = _fake_root(
        tmp_path / "u",
        "3:cpu,cpuacct:/\n",
        {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
    )
    assert cgroup_cpu_limit(unlimited) is None


def test_usable_cpus_takes_the_affinity_mask_and_the_cgroup_quota(monkeypatch):
    import activews.engine.resources as resources

    monkeypatch.setattr(resources.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(resources, "cgroup_cpu_limit", lambda: None)
    assert usable_cpus() == 8
    monkeypatch.setattr(resources, "cgroup_cpu_limit", lambda: 2.5)  # 250 ms per 100 ms: 3 cores busy at most
    assert usable_cpus() == 3
    monkeypatch.setattr(resources.os, "sched_getaffinity", lambda pid: {3})
    assert usable_cpus() == 1


# ----------------------------------------------------------------------------------------- workers


def test_auto_workers_fill_the_usable_cores_and_never_exceed_the_cells():
    cpu = ["cpu"]
    assert resolve_workers("auto", 12, devices=cpu, threads=1, cpus=4) == 4
    assert resolve_workers("auto", 12, devices=cpu, threads=2, cpus=4) == 2  # 2 x 2 threads = 4 cores
    assert resolve_workers("auto", 3, devices=cpu, threads=1, cpus=64) == 3
    assert resolve_workers("auto", 12, devices=cpu, threads=4, cpus=2) == 1
    assert resolve_workers(5, 3, devices=cpu) == 3  # a count is capped by the cells only
    assert resolve_workers(5, 12, devices=cpu, cpus=2) == 5


def test_auto_workers_on_cuda_share_the_device_only_when_asked():
    assert resolve_workers("auto", 12, devices=["cuda"]) == 1
    assert resolve_workers("auto", 12, devices=["cuda:0"], gpus_per_cell=0.25) == 4
    assert resolve_workers("auto", 2, devices=["cuda"], gpus_per_cell=0.25) == 2
    assert resolve_workers("auto", 12, devices=["cuda"], gpus_per_cell=1 / 3) == 3
    assert resolve_workers(4, 12, devices=["cuda"]) == 4  # --workers N puts N cells on the device
    assert resolve_workers("auto", 12, devices=["mps"]) == 1


def test_oversubscription_is_named():
    assert oversubscription(2, 1, cpus=2) is None
    warning = oversubscription(4, 2, cpus=2)
    assert warning is not None and "8 threads on 2 usable core" in warning and "--workers auto" in warning


@pytest.mark.parametrize("bad", [0, -1, "x", "1.5", 2.0, True])
def test_bad_worker_counts(bad):
    with pytest.raises(ActivewsError, match="--workers"):
        parse_workers(bad)
    assert parse_workers("3") == 3 and parse_workers("auto") == "auto"


def test_ray_tasks_ask_for_their_threads_and_their_share_of_a_gpu():
    assert ray_resources("cpu", threads=1) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert ray_resources("cpu", threads=3) == {"num_cpus": 3.0, "num_gpus": 0.0}
    assert ray_resources("cuda", threads=1) == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert ray_resources("cuda:1", threads=2, gpus_per_cell=0.25) == {"num_cpus": 2.0, "num_gpus": 0.25}


def test_gpus_per_cell_is_a_fraction_for_cuda_cells():
    check_gpus_per_cell(None, ["cpu"])
    check_gpus_per_cell(0.5, ["cuda", "cuda:1"])
    for bad in (0, 1.5, -0.25):
        with pytest.raises(ActivewsError, match="0 < F <= 1"):
            check_gpus_per_cell(bad, ["cuda"])
    with pytest.raises(ActivewsError, match="add --device cuda"):
        check_gpus_per_cell(0.5, ["cpu"])
    with pytest.raises(ActivewsError, match="add --device cuda"):
        check_gpus_per_cell(0.5, ["cuda", "cpu"])


# ----------------------------------------------------------------------------------------- cell memory


class _Images:
    def __init__(self, n: int, shape=(3, 32, 32), classes: int = 10) -> None:
        self.x_train = torch.zeros(n, *shape)
        self.y_train = torch.zeros(n, dtype=torch.long)
        self.x_test = torch.zeros(n // 2, *shape)
        self.y_test = torch.zeros(n // 2, dtype=torch.long)
        self.input_shape = shape
        self.num_classes = classes


def test_cell_memory_counts_data_model_and_activations():
    data = _Images(1000)
    base = dict(dataset="digits", model="resnet18", seeds=1)
    fp32 = cell_memory(BenchConfig.build(**base), data)
    assert fp32 is not None
    assert fp32.data == (1000 + 500) * 3 * 32 * 32 * 4 + 1500 * 8
    weights = sum(p.numel() for p in build_model("resnet18", (3, 32, 32), 10, seed=0).parameters())
    assert fp32.model == weights * 4 * 6  # weights, gradients, Adam's two moments, round-0 copy, one model
    assert fp32.activations > 0 and fp32.total == fp32.data + fp32.model + fp32.activations
    bf16 = cell_memory(BenchConfig.build(**base, precision="bf16"), data)
    sgd = cell_memory(BenchConfig.build(**base, optimizer="sgd"), data)
    bigger_batch = cell_memory(BenchConfig.build(**base, batch_size=256), data)
    assert bf16.activations < fp32.activations and sgd.model < fp32.model
    assert bigger_batch.activations > fp32.activations
    assert "MiB per cell" in fp32.describe()


# ----------------------------------------------------------------------------------------- training path


def _toy(n: int = 256, shape=(40,)):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, *shape, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def test_bf16_autocast_trains_on_cpu_and_outputs_stay_float32():
    x, y = _toy()
    runs = {}
    for precision in ("fp32", "bf16"):
        model = build_model("mlp", (40,), 10, seed=0)
        stats, _ = train_to_criterion(
            model, x, y, TrainConfig(precision=precision, max_epochs=3), torch.Generator().manual_seed(1)
        )
        runs[precision] = stats.train_loss
        assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay float32
    assert runs["bf16"] != runs["fp32"]  # the forward really ran in bfloat16
    assert abs(runs["bf16"] - runs["fp32"]) < 0.05
    from activews.training import autocast

    with autocast("cpu", "bf16"):
        probs = predict_proba(model, x)
    assert probs.dtype == torch.float32 and torch.allclose(probs.sum(1), torch.ones(len(x)))


def test_fp16_scales_the_loss(monkeypatch):
    calls = []
    real = torch.amp.GradScaler

    class Spy(real):
        def step(self, optimizer, *args, **kwargs):
            calls.append(self.get_scale())
            return super().step(optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.amp, "GradScaler", Spy)
    x, y = _toy()
    model = build_model("mlp", (40,), 10, seed=0)
    stats, _ = train_to_criterion(
        model, x, y, TrainConfig(precision="fp16", max_epochs=2), torch.Generator().manual_seed(1)
    )
    assert len(calls) == stats.steps and calls[0] > 1  # every step went through the scaler
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_channels_last_trains_an_image_model_in_that_layout_with_the_same_predictions():
    # Width 8: with 1 thread, torch's CPU channels-last backward of a strided 1x1 convolution corrupts
    # memory when its input channels are not a multiple of 8 (why the bench refuses --channels-last on CPU).
    x, y = _toy(64, (3, 16, 16))
    params = {"width": 8}
    results = {}
    for layout in (False, True):
        model = build_model("resnet18", (3, 16, 16), 10, params, seed=0)
        train_to_criterion(
            model, x, y, TrainConfig(channels_last=layout, max_epochs=1), torch.Generator().manual_seed(1)
        )
        convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs) == layout
        results[layout] = predict_proba(model, x)
    assert torch.allclose(results[False], results[True], atol=1e-4)


def test_channels_last_is_automatic_only_for_image_models_on_cuda():
    from activews.engine.setup import train_config

    images, vectors = _Images(10, (3, 8, 8)), _Images(10, (40,))
    cnn = BenchConfig.build(dataset="digits", model="cnn", seeds=1)
    mlp = BenchConfig.build(dataset="digits", model="mlp", seeds=1)
    assert train_config(cnn, images, torch.device("cuda")).channels_last is True
    assert train_config(cnn, images, torch.device("cpu")).channels_last is False
    assert train_config(mlp, vectors, torch.device("cuda")).channels_last is False
    forced = cnn.model_copy(update={"channels_last": True})
    assert train_config(forced, images, torch.device("cpu")).channels_last is True
    off = cnn.model_copy(update={"channels_last": False})
    assert train_config(off, images, torch.device("cuda")).channels_last is False
    assert (
        train_config(
            mlp.model_copy(update={"channels_last": True}), vectors, torch.device("cpu")
        ).channels_last
        is False
    )


def test_a_model_that_fails_to_compile_trains_eagerly_with_one_warning(monkeypatch, caplog):
    import activews.training as training

    class Broken:
        def __init__(self, model):
            pass

        def __call__(self, x):
            raise RuntimeError("backend compiler failed\nlong traceback")

    monkeypatch.setattr(training.torch, "compile", Broken)
    monkeypatch.setattr(training, "_COMPILE_FAILED", set())
    x, y = _toy()
    eager = build_model("mlp", (40,), 10, seed=0)
    train_to_criterion(eager, x, y, TrainConfig(max_epochs=2), torch.Generator().manual_seed(1))
    compiled = build_model("mlp", (40,), 10, seed=0)
    with caplog.at_level(logging.WARNING, logger="activews.training"):
        train_to_criterion(
            compiled, x, y, TrainConfig(max_epochs=2, compile=True), torch.Generator().manual_seed(1)
        )
        train_to_criterion(
            compiled, x, y, TrainConfig(max_epochs=1, compile=True), torch.Generator().manual_seed(1)
        )
    warnings = [r.getMessage() for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert len(warnings) == 1 and "backend compiler failed" in warnings[0] and "\n" not in warnings[0]
    eager_after = build_model("mlp", (40,), 10, seed=0)
    train_to_criterion(eager_after, x, y, TrainConfig(max_epochs=2), torch.Generator().manual_seed(1))
    train_to_criterion(eager_after, x, y, TrainConfig(max_epochs=1), torch.Generator().manual_seed(1))
    for a, b in zip(compiled.parameters(), eager_after.parameters(), strict=True):
        assert torch.equal(a, b)  # the fallback is plain eager training


def test_compile_problem_names_a_missing_compiler(monkeypatch):
    import shutil

    import torch.utils._triton as triton

    monkeypatch.setattr(shutil, "which", lambda name: None)
    problem = compile_problem("cpu")
    assert problem is not None and "C++ compiler" in problem and "drop --compile" in problem
    monkeypatch.setattr(triton, "has_triton", lambda: False)
    problem = compile_problem("cuda")
    assert problem is not None and "Triton" in problem and "\n" not in problem


# ----------------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--threads", "0"], "--threads must be a count >= 1"),
        (["--workers", "0"], "--workers must be a count >= 1"),
        (["--workers", "many"], "--workers takes a count or auto"),
        (["--precision", "fp16"], "--precision fp16 needs a CUDA device"),
        (["--precision", "fp16", "--device", "auto"], "--precision fp16 needs a CUDA device"),
        (["--gpus-per-cell", "0.5"], "--gpus-per-cell applies to cells on CUDA"),
        (["--compile"], "needs a C++ compiler"),
        (["--channels-last"], "--channels-last applies to CUDA devices"),
    ],
)
def test_bad_run_settings_are_one_line_and_exit_2(flags, message, tmp_path, capsys, monkeypatch):
    if "--device" in flags and torch.cuda.is_available():
        pytest.skip("auto resolves to CUDA here")
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)  # no C++ compiler on this "machine"
    folder = tmp_path / "run"
    assert main(["bench", "--output", str(folder), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not folder.exists()  # refused before anything was created


def test_the_cli_runs_cells_in_parallel_by_default_and_says_how(tmp_path, capsys, monkeypatch):
    import activews.engine.resources as resources

    monkeypatch.setattr(resources, "usable_cpus", lambda: 2)
    folder = tmp_path / "run"
    flags = [
        "--n-examples",
        "600",
        "--rounds",
        "2",
        "--initial",
        "100",
        "--query-size",
        "100",
        "--seeds",
        "1",
    ]
    assert main(["bench", *flags, "--output", str(folder), "--progress", "plain", "--no-plot"]) == 0
    err = capsys.readouterr().err
    assert "2 workers x 1 thread on cpu" in err
    with RunStore(folder) as store:
        assert store.meta()["threads"] == "1"


def test_a_resume_keeps_the_runs_thread_count(tmp_path):
    from activews.engine.bench import run_experiments

    folder = tmp_path / "run"
    config = BenchConfig.build(**(TINY | {"seeds": 1, "rounds": 1}))
    run_experiments([("", config)], output=folder, threads=2)
    with RunStore(folder) as store:
        assert store.meta()["threads"] == "2"
    events = []
    run_experiments([("", config)], output=folder, progress=events.append)  # threads left out: the run's 2
    assert events[0].kind == "start" and events[0].record["threads"] == 2
    with pytest.raises(ActivewsError, match="resume with --threads 2"):
        run_experiments([("", config)], output=folder, threads=1)


def test_a_run_stored_before_the_gpu_settings_existed_still_resumes(tmp_path):
    import json
    import sqlite3

    from activews.engine.bench import run_experiments
    from activews.engine.store import STORE_FILE

    folder = tmp_path / "run"
    config = BenchConfig.build(**(TINY | {"seeds": 1, "rounds": 1}))
    run_experiments([("", config)], output=folder)
    conn = sqlite3.connect(folder / STORE_FILE)
    with conn:  # as an earlier activews wrote it: no precision, channels_last or compile
        (text,) = conn.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        stored = json.loads(text)
        for e in stored["experiments"]:
            for key in BenchConfig.LATER_FIELDS:
                e["config"].pop(key)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(stored),))
    conn.close()
    results = run_experiments([("", config)], output=folder)
    assert len(results[0].records) == 3  # 3 arms x 1 seed x 1 round: nothing re-run, nothing refused
    with pytest.raises(ActivewsError, match="precision"):
        run_experiments([("", config.model_copy(update={"precision": "bf16"}))], output=folder)
