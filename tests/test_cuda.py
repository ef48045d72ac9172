"""What only a CUDA device can show: determinism, reduced precision, channels-last, compile, cells sharing
the device, and the memory estimate. Every test skips without CUDA; on a GPU each takes seconds
(``--compile`` the longest, for its first compilation).

    python -m pytest -m cuda tests/test_cuda.py     # what benchmarks/gpu/check.py runs
"""

from __future__ import annotations

import pytest
import torch

from activews.engine.bench import run_bench
from activews.engine.config import BenchConfig
from activews.models import build_model
from activews.training import TrainConfig, train_to_criterion

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

TIMING = {"seconds", "init_seconds", "select_seconds", "cumulative_seconds"}


def every_field_but_wall_times(records: list[dict]) -> dict:
    return {
        (r["arm"], r["seed"], r["round"]): {k: v for k, v in r.items() if k not in TIMING} for r in records
    }


def small(**overrides) -> BenchConfig:
    values = dict(
        dataset="mnist1d",
        n_examples=600,
        model="mlp",
        seeds=2,
        rounds=2,
        initial=100,
        query_size=100,
        device="cuda",
    )
    return BenchConfig.build(**(values | overrides))


def blobs(n: int = 2000, dim: int = 20, classes: int = 4, seed: int = 0):
    """An easy problem: well separated Gaussian blobs, on the GPU."""
    gen = torch.Generator().manual_seed(seed)
    centers = 4.0 * torch.randn(classes, dim, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    x = centers[y] + torch.randn(n, dim, generator=gen)
    return x.cuda(), y.cuda()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_bench_on_cuda_gives_identical_records_twice(precision, tmp_path):
    config = small(precision=precision)
    first = run_bench(config, output=tmp_path / "a")
    second = run_bench(config, output=tmp_path / "b")
    assert len(first.records) == 3 * 2 * 2
    assert every_field_but_wall_times(first.records) == every_field_but_wall_times(second.records)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_trains_an_easy_problem(precision):
    x, y = blobs()
    model = build_model("mlp", (20,), 4, seed=0, device="cuda")
    cfg = TrainConfig(precision=precision, target_accuracy=0.95, max_epochs=50)
    stats, _ = train_to_criterion(model, x, y, cfg, torch.Generator().manual_seed(0))
    assert stats.stop_reason == "target", stats
    assert stats.train_accuracy >= 0.95
    assert stats.train_loss == stats.train_loss and stats.train_loss < 1.0  # finite and falling
    # autocast leaves the weights (and so the optimizer's state) in float32
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())


def test_fp16_bench_runs_on_cuda(tmp_path):
    result = run_bench(small(precision="fp16", seeds=1), output=tmp_path / "run")
    assert all(
        0.0 <= r["test_accuracy"] <= 1.0 and r["train_loss"] == r["train_loss"] for r in result.records
    )


def test_channels_last_resnet_predicts_like_contiguous():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 32, 32, generator=gen).cuda()
    contiguous = build_model("resnet18", (3, 32, 32), 10, seed=0, device="cuda").eval()
    last = build_model("resnet18", (3, 32, 32), 10, seed=0, device="cuda").eval()
    last = last.to(memory_format=torch.channels_last)
    with torch.no_grad():
        a = torch.softmax(contiguous(x).float(), dim=1)
        b = torch.softmax(last(x.contiguous(memory_format=torch.channels_last)).float(), dim=1)
    # cuDNN picks other kernels for the other layout (TF32 convolutions by default): close, not equal
    assert torch.allclose(a, b, atol=5e-3), (a - b).abs().max()
    assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.95


def test_channels_last_training_matches_contiguous_training():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(256, 3, 32, 32, generator=gen).cuda()
    y = torch.randint(0, 10, (256,), generator=gen).cuda()
    losses = {}
    for layout in (False, True):
        model = build_model("resnet18", (3, 32, 32), 10, seed=0, device="cuda")
        cfg = TrainConfig(channels_last=layout, max_epochs=1, target_accuracy=1.0)
        stats, _ = train_to_criterion(model, x, y, cfg, torch.Generator().manual_seed(0))
        losses[layout] = stats.train_loss
        if layout:
            assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert losses[True] == pytest.approx(losses[False], rel=2e-2)


def test_compile_trains_on_cuda(caplog):
    from activews.training import compile_problem

    problem = compile_problem("cuda")
    if problem is not None:
        pytest.skip(problem)
    x, y = blobs(n=2048, seed=2)  # whole batches of 128: one shape, one compilation
    model = build_model("mlp", (20,), 4, seed=0, device="cuda")
    cfg = TrainConfig(compile=True, target_accuracy=0.95, max_epochs=50)
    with caplog.at_level("WARNING", logger="activews.training"):
        stats, _ = train_to_criterion(model, x, y, cfg, torch.Generator().manual_seed(0))
    assert stats.stop_reason == "target", stats
    # compiled, not the eager fallback (which logs "torch.compile failed ...")
    assert not [r for r in caplog.records if "torch.compile failed" in r.getMessage()]


def test_compile_flag_runs_a_bench_on_cuda(tmp_path):
    from activews.cli import main
    from activews.engine.bench import load_results
    from activews.training import compile_problem

    if compile_problem("cuda") is not None:
        pytest.skip(compile_problem("cuda"))
    # 128 + 128 per round: whole batches of 128, so one shape and one compilation
    args = "--n-examples 600 --rounds 2 --initial 128 --query-size 128 --seeds 1 --strategy warm"
    code = main(["bench", *args.split(), "--device", "cuda", "--compile", "--output", str(tmp_path / "run"),
                 "--quiet", "--no-plot", "--workers", "1"])  # fmt: skip
    assert code == 0
    (result,) = load_results(tmp_path / "run")
    assert result.config.compile
    assert len(result.records) == 2 * 2 and all(r["steps"] > 0 for r in result.records)


def test_workers_2_on_one_device_equals_workers_1(tmp_path):
    config = small()
    serial = run_bench(config, output=tmp_path / "w1", workers=1)
    parallel = run_bench(config, output=tmp_path / "w2", workers=2)
    assert every_field_but_wall_times(parallel.records) == every_field_but_wall_times(serial.records)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_memory_estimate_within_2x_of_the_measured_peak(precision):
    resources = pytest.importorskip("activews.engine.resources")
    from activews.data.base import Dataset

    gen = torch.Generator().manual_seed(0)
    dataset = Dataset(
        "synthetic-cifar",
        torch.randn(3000, 3, 32, 32, generator=gen),
        torch.randint(0, 10, (3000,), generator=gen),
        torch.randn(1000, 3, 32, 32, generator=gen),
        torch.randint(0, 10, (1000,), generator=gen),
        10,
    )
    config = BenchConfig.build(
        model="resnet18", stream="passive", strategies=[], seeds=1, rounds=1, initial=1000, query_size=1000,
        max_epochs=2, batch_size=128, precision=precision, device="cuda",
    )  # fmt: skip
    estimate = resources.cell_memory(config, dataset)
    assert estimate is not None
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    run_bench(config, dataset=dataset, workers=1)
    peak = torch.cuda.max_memory_allocated() - base
    assert 0.5 <= estimate.total / peak <= 2.0, (estimate, peak)
