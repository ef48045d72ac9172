"""The prepared GPU check: one command on a machine with one CUDA GPU, no network, under 8 minutes.

    python benchmarks/gpu/check.py                           # every stage; writes benchmarks/gpu/results.json
    python benchmarks/gpu/check.py --only epoch_time,memory  # some stages
    python benchmarks/gpu/check.py --dry-run --json /tmp/x.json  # every stage on CPU at tiny sizes (tests)

Stages (each is timed, and one that fails records its error and lets the others run):

1. ``cuda_tests``: ``pytest -m cuda tests/test_cuda.py`` in a subprocess; passed / failed / skipped.
2. ``determinism``: two identical small benches (MNIST-1D, MLP, 2 seeds, 3 rounds) on CUDA in one
   process, fp32 and bf16: are all record fields but wall times identical?
3. ``kill_resume``: a CLI bench on the device killed with SIGKILL after some rounds, resumed with
   ``activews bench --resume``, compared with an uninterrupted run (helpers of
   ``benchmarks/robustness/kills.py``).
4. ``epoch_time``: seconds per epoch of ``train_to_criterion`` vs a minimal PyTorch loop on
   CIFAR-shaped data on the device, ``resnet18`` and ``resnet18_wide``, fp32 and bf16, channels-last
   (target: at most 1.05x).
5. ``reproduce_online``: ``activews reproduce online`` on synthetic CIFAR-10-format files.
6. ``several_cells``: one small bench with ``--workers 1`` and ``--workers 3`` on one device.
7. ``memory``: ``activews.engine.resources.cell_memory`` vs the measured peak of a real cell (resnet18,
   batch 128, CIFAR-shaped data).

Exit codes: 0 every stage passed, 1 some stage failed, 2 no CUDA without ``--dry-run`` (or bad options).
All randomness comes from explicitly seeded generators. ``--dry-run`` runs every stage on the CPU with
tiny sizes (under a minute on 2 cores) and writes ``benchmarks/gpu/results-dry-run.json`` unless
``--json`` says otherwise, so that it never overwrites the GPU's figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``benchmarks.robustness.kills`` importable
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.robustness import kills  # noqa: E402

STAGES = (
    "cuda_tests",
    "determinism",
    "kill_resume",
    "epoch_time",
    "reproduce_online",
    "several_cells",
    "memory",
)
# Seconds each stage may take on the GPU machine (what the sizes below were picked for; the sum stays
# under 8 minutes). A stage that runs over still finishes; the summary flags it. A stage is not started
# once less than a minute of the 8 is left.
BUDGET_S = {
    "cuda_tests": 120,
    "determinism": 45,
    "kill_resume": 60,
    "epoch_time": 90,
    "reproduce_online": 60,
    "several_cells": 45,
    "memory": 20,
}
TOTAL_BUDGET_S = 480
TIMING = kills.TIMING  # wall-time record fields: the only ones allowed to differ between runs
CHECKSUM_BYPASS = (
    "import sys\n"
    "import torchvision.datasets.utils as u\n"
    "u.check_md5 = lambda *a, **k: True  # synthetic files cannot match the real archives' md5 sums\n"
    "from activews.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


class StageError(RuntimeError):
    """A stage's failure, with the figures it had gathered so far."""

    def __init__(self, message: str, figures: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.figures = figures or {}


@dataclasses.dataclass
class Ctx:
    dry: bool
    device: str
    tmp: Path
    deadline: float
    cache: dict[str, Any] = dataclasses.field(default_factory=dict)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self, stage: str, factor: float = 2.0) -> float:
        """A subprocess limit: twice the stage's budget, never past the overall deadline (+30 s)."""
        base = 60.0 if self.dry else BUDGET_S[stage] * factor
        return max(10.0, min(base, self.left() + 30.0))


# ---------------------------------------------------------------------------------------------- helpers


def one_line(exc: BaseException | str) -> str:
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_cmd(cmd: list[str], timeout: float, **kw: Any) -> tuple[int, str, str, float]:
    """Run ``cmd`` in its own process group from the repository root; kill the whole group on timeout."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kw
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise StageError(f"timed out after {timeout:.0f} s: {shlex.join(cmd[:6])} ...") from None
    return proc.returncode, out, err, time.perf_counter() - start


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def communicate(proc: subprocess.Popen, timeout: float, what: str) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise StageError(f"{what} timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise StageError(f"{what} exited {proc.returncode}: {last_line(err) or last_line(out)}")
    return out, err


def keyed(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Records by ``arm/seed/round``, without the wall-time fields (as ``kills.records`` gives them)."""
    return {
        f"{r['arm']}/{r['seed']}/{r['round']}": {k: v for k, v in r.items() if k not in TIMING}
        for r in records
    }


def compare(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Whether two keyed record sets are identical, which fields differ, and the largest differences."""
    out: dict[str, Any] = {"records": len(a), "identical": a == b}
    if a.keys() != b.keys():
        out["missing_records"] = sorted(set(a) ^ set(b))[:10]
    common = sorted(set(a) & set(b))
    out["fields_that_differ"] = sorted(
        {f for k in common for f in set(a[k]) | set(b[k]) if a[k].get(f) != b[k].get(f)}
    )
    for field in ("test_accuracy", "train_loss", "test_loss"):
        diffs = [
            abs(a[k][field] - b[k][field])
            for k in common
            if isinstance(a[k].get(field), (int, float)) and isinstance(b[k].get(field), (int, float))
        ]
        out[f"max_abs_diff_{field}"] = max(diffs) if diffs else None
    return out


def stages_from(text: str | None) -> list[str]:
    if not text:
        return list(STAGES)
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in STAGES]
    if unknown or not chosen:
        raise ValueError(
            f"--only {text}: unknown stage(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(STAGES)}"
        )
    return [s for s in STAGES if s in chosen]


# ---------------------------------------------------------------------------------------------- 1. cuda_tests


def stage_cuda_tests(ctx: Ctx) -> dict[str, Any]:
    junit = ctx.tmp / "cuda-tests.xml"
    cmd = [
        sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-q",
        "-p", "no:cacheprovider", f"--junitxml={junit}",
    ]  # fmt: skip
    code, out, err, seconds = run_cmd(cmd, ctx.timeout("cuda_tests", 1.5))
    figures: dict[str, Any] = {"command": "python -m pytest -m cuda tests/test_cuda.py -q", "exit_code": code}
    if not junit.is_file():
        raise StageError(f"pytest wrote no report (exit {code}): {last_line(out) or last_line(err)}", figures)
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    failed, skipped, reasons = [], [], set()
    for case in cases:
        name = case.get("name", "?")
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skip = case.find("skipped")
        if bad is not None:
            failed.append(f"{name}: {one_line(bad.get('message') or 'failed')}")
        elif skip is not None:
            skipped.append(name)
            reasons.add(one_line(skip.get("message") or ""))
    figures |= {
        "tests": len(cases),
        "passed": len(cases) - len(failed) - len(skipped),
        "failed": len(failed),
        "skipped": len(skipped),
        "failures": failed,
        "skip_reasons": sorted(reasons),
        "pytest_seconds": round(seconds, 1),
        "summary_line": last_line(out),
    }
    if failed or code not in (0, 5) or not cases:
        raise StageError(f"{len(failed)} of {len(cases)} CUDA tests failed (pytest exit {code})", figures)
    return figures


# ---------------------------------------------------------------------------------------------- 2. determinism


def small_bench(ctx: Ctx, **overrides: Any):
    from activews.engine.config import BenchConfig

    sizes = (
        dict(n_examples=400, seeds=1, rounds=2, initial=50, query_size=50, strategies=[], max_epochs=5)
        if ctx.dry
        else dict(n_examples=2000, seeds=2, rounds=3, initial=200, query_size=200)
    )
    return BenchConfig.build(dataset="mnist1d", model="mlp", device=ctx.device, **(sizes | overrides))


def stage_determinism(ctx: Ctx) -> dict[str, Any]:
    from activews.engine.bench import run_bench

    figures: dict[str, Any] = {}
    runs: dict[str, list[dict[str, Any]]] = {}
    for precision in ("fp32", "bf16"):
        config = small_bench(ctx, precision=precision)
        seconds = []
        for rep in ("a", "b"):
            t = time.perf_counter()
            result = run_bench(config, output=ctx.tmp / f"determinism-{precision}-{rep}", workers=1)
            seconds.append(round(time.perf_counter() - t, 2))
            runs[f"{precision}-{rep}"] = result.records
        figures[precision] = compare(keyed(runs[f"{precision}-a"]), keyed(runs[f"{precision}-b"])) | {
            "run_seconds": seconds,
            "final_accuracy_mean": statistics.fmean(
                r["test_accuracy"] for r in runs[f"{precision}-a"] if r["round"] == config.rounds - 1
            ),
        }
    figures["setup"] = (
        f"mnist1d n_examples={config.n_examples}, mlp, seeds={len(config.seeds)}, rounds={config.rounds}, "
        f"arms {', '.join(config.arms)}, device {ctx.device}, run_bench(workers=1) twice per precision"
    )
    bf16_vs_fp32 = compare(keyed(runs["fp32-a"]), keyed(runs["bf16-a"]))
    figures["bf16_vs_fp32"] = {
        k: bf16_vs_fp32[k] for k in ("max_abs_diff_test_accuracy", "max_abs_diff_train_loss")
    }
    figures["identical"] = figures["fp32"]["identical"] and figures["bf16"]["identical"]
    if not figures["identical"]:
        raise StageError(
            "repeated runs differ: "
            + ", ".join(
                f"{p} {figures[p]['fields_that_differ']}"
                for p in ("fp32", "bf16")
                if not figures[p]["identical"]
            ),
            figures,
        )
    return figures


# ---------------------------------------------------------------------------------------------- 3. kill_resume


def bench_flags(ctx: Ctx) -> list[str]:
    """The small CLI bench of ``kill_resume`` and ``several_cells``: ``kills.FLAGS`` (1,000 MNIST-1D
    examples, 100 + 100 per round, 3 rounds, 2 seeds, arms random, warm, shrink_perturb), then these
    flags, which override it."""
    return ["--device", ctx.device] + (["--seeds", "1", "--rounds", "2"] if ctx.dry else ["--rounds", "4"])


def uninterrupted(ctx: Ctx, limit: float) -> tuple[float, dict[str, dict[str, Any]]]:
    """Wall seconds and records of ``bench_flags`` with ``--workers 1``: run once, then shared by
    ``kill_resume`` (its reference) and ``several_cells`` (its serial run)."""
    if "workers_1" not in ctx.cache:
        folder = ctx.tmp / "bench-w1"
        t = time.perf_counter()
        communicate(kills.bench(folder, *bench_flags(ctx), "--workers", "1"), limit, "the --workers 1 run")
        ctx.cache["workers_1"] = (time.perf_counter() - t, kills.records(folder))
    return ctx.cache["workers_1"]


def stage_kill_resume(ctx: Ctx) -> dict[str, Any]:
    extra = [*bench_flags(ctx), "--workers", "1"]
    limit = ctx.timeout("kill_resume", 1.0)
    ref_seconds, reference = uninterrupted(ctx, limit)
    total = len(reference)
    kill_at = max(1, round(0.4 * total))
    folder = ctx.tmp / "killed"
    proc = kills.bench(folder, *extra)
    end = time.monotonic() + limit
    while kills.stored(folder) < kill_at and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.02)  # kills.wait_rounds, with a deadline
    finished_first = proc.poll() is not None
    proc.kill()  # SIGKILL
    proc.communicate()
    at_kill = kills.stored(folder)
    checkpoints = sorted(p.name for p in (folder / "checkpoints").glob("*.pt"))
    t = time.perf_counter()
    # kills.resume, with --workers 1 (the CLI's default, auto, would start worker processes) and a
    # time limit that fits the budget
    code, _, err, _ = run_cmd(
        [
            sys.executable,
            "-m",
            "activews",
            "bench",
            "--resume",
            str(folder),
            "--workers",
            "1",
            "--quiet",
            "--no-plot",
        ],
        limit,
    )
    resume_seconds = time.perf_counter() - t
    figures: dict[str, Any] = {
        "command": shlex.join(["activews", "bench", *kills.FLAGS, *extra, "--output", "DIR", "--quiet"]),
        "rounds_total": total,
        "kill_after_rounds": kill_at,
        "stored_at_kill": at_kill,
        "finished_before_kill": finished_first,
        "checkpoints_at_kill": checkpoints,
        "resume_exit_code": code,
        "uninterrupted_seconds": round(ref_seconds, 2),
        "resume_seconds": round(resume_seconds, 2),
    }
    if code != 0:
        raise StageError(f"resume exited {code}: {last_line(err)}", figures)
    if finished_first or at_kill >= total:
        raise StageError(
            f"the run finished before the kill ({at_kill} of {total} rounds stored): nothing was tested",
            figures,
        )
    result = compare(reference, kills.records(folder))
    figures |= {
        "resumed_identical": result["identical"],
        "fields_that_differ": result["fields_that_differ"],
        "integrity": kills.integrity(folder),
    }
    if not result["identical"] or figures["integrity"] != "ok":
        raise StageError(
            f"resumed run differs from the uninterrupted one: {result['fields_that_differ']}", figures
        )
    return figures


# ---------------------------------------------------------------------------------------------- 4. epoch_time


def epoch_pair(
    name: str,
    precision: str,
    n: int,
    side: int,
    bs: int,
    device: str,
    repeats: int | None,
    per_config_s: float,
    channels_last: bool | None = None,
) -> dict[str, Any]:
    """Seconds per epoch of ``train_to_criterion`` vs a minimal loop (same model and optimizer),
    interleaved, medians (the method of ``benchmarks/perf/perf.py bench_epoch``)."""
    from activews.models import build_model
    from activews.training import TrainConfig, make_optimizer, train_to_criterion

    cuda = device.startswith("cuda")
    layout = cuda if channels_last is None else channels_last  # channels-last on CUDA, as activews does
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, side, side, generator=gen).to(device)
    y = torch.randint(0, 10, (n,), generator=gen).to(device)
    model = build_model(name, (3, side, side), 10, seed=0, device=device)
    if layout:
        model = model.to(memory_format=torch.channels_last)
    cfg = TrainConfig(
        max_epochs=1, target_accuracy=1.0, precision=precision, channels_last=layout, batch_size=bs
    )
    opt = make_optimizer(model, cfg)  # the same (fused) Adam for both loops
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def activews_epoch() -> None:
        train_to_criterion(model, x, y, cfg, torch.Generator().manual_seed(1), optimizer=opt)

    def minimal_epoch() -> None:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(1)).to(device)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            xb = x[idx]
            if layout:
                xb = xb.contiguous(memory_format=torch.channels_last)
            if dtype is None:
                loss = F.cross_entropy(model(xb), y[idx])
            else:
                with torch.autocast(torch.device(device).type, dtype=dtype):
                    loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    fns: dict[str, Callable[[], None]] = {"minimal": minimal_epoch, "activews": activews_epoch}

    def timed(fn: Callable[[], None]) -> float:
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        return time.perf_counter() - t

    warm = {k: timed(fn) for k, fn in fns.items()}  # warm-up (cuDNN plans, allocator, fused kernels)
    if repeats is None:  # as many interleaved pairs as fit the time given to this configuration
        again = {k: timed(fn) for k, fn in fns.items()}
        repeats = int(max(3, min(9, per_config_s / max(1e-3, sum(again.values())))))
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            samples[k].append(timed(fn))
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "seconds_per_epoch": {k: round(v, 5) for k, v in med.items()},
        "activews_vs_minimal": round(med["activews"] / med["minimal"], 4),
        "activews_vs_minimal_best": round(min(samples["activews"]) / min(samples["minimal"]), 4),
        "repeats": repeats,
        "first_epoch_seconds": {k: round(v, 4) for k, v in warm.items()},
        "steps_per_epoch": -(-n // bs),
    }


def stage_epoch_time(ctx: Ctx) -> dict[str, Any]:
    if ctx.dry:  # 8x8 images (the smallest a ResNet-18 takes) in batches of 16: on a CPU without bf16
        # units, a bf16 backward pass of a batch of 128 takes 10-20 s (measured on the 2-core machine)
        models, n, side, bs, repeats = ("resnet18",), 32, 8, 16, 1
    else:
        models, n, side, bs, repeats = ("resnet18", "resnet18_wide"), 10_000, 32, 128, None
    precisions = ("fp32", "bf16")
    per_config = BUDGET_S["epoch_time"] * 0.8 / (len(models) * len(precisions))
    figures: dict[str, Any] = {
        "setup": f"{n} x 3x{side}x{side} synthetic images on {ctx.device}, 10 classes, batch {bs}, Adam via make_optimizer, "
        f"{'channels-last' if ctx.device.startswith('cuda') else 'contiguous'}; bf16: TrainConfig(precision='bf16') "
        "vs torch.autocast around forward+loss; interleaved samples of one epoch, medians",
        "target": "activews_vs_minimal <= 1.05",
        "results": {},
    }
    for name in models:
        for precision in precisions:
            key = f"{name}/{precision}"
            figures["results"][key] = epoch_pair(
                name, precision, n, side, bs, ctx.device, repeats, per_config
            )
            r = figures["results"][key]
            print(
                f"    {key}: activews {r['seconds_per_epoch']['activews'] * 1e3:.1f} ms, minimal "
                f"{r['seconds_per_epoch']['minimal'] * 1e3:.1f} ms per epoch ({r['activews_vs_minimal']:.3f}x)",
                flush=True,
            )
    ratios = [r["activews_vs_minimal"] for r in figures["results"].values()]
    figures["worst_ratio"] = max(ratios)
    figures["meets_target"] = max(ratios) <= 1.05
    return figures


# ---------------------------------------------------------------------------------------------- 5. reproduce_online


def _pickle(path: Path, obj: dict[str, Any]) -> None:
    # As torchvision reads them: Python 2 pickles (protocol 2) with str keys (see tests/data/test_vision.py).
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def write_cifar10(root: Path, per_batch: int, n_test: int, seed: int = 0) -> None:
    """``root/cifar-10-batches-py/`` in CIFAR-10's on-disk format (the layout of ``tests/data/test_vision.py``'s
    ``write_cifar10``), holding synthetic images from a seeded generator: each class a fixed random
    pattern under stronger pixel noise (linearly separable only in many pixels at once: a ResNet
    needs several epochs to reach 99% running training accuracy)."""
    rng = np.random.default_rng(seed)
    templates = rng.normal(0.0, 1.0, size=(10, 3072))

    def images(n: int) -> tuple[np.ndarray, list[int]]:
        labels = rng.integers(0, 10, size=n)
        pixels = 128 + 2 * templates[labels] + 50 * rng.normal(0.0, 1.0, size=(n, 3072))
        return np.clip(pixels, 0, 255).astype(np.uint8), labels.tolist()

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b in range(5):
        data, labels = images(per_batch)
        _pickle(
            folder / f"data_batch_{b + 1}",
            {"batch_label": f"training batch {b + 1} of 5", "labels": labels, "data": data,
             "filenames": [f"img_{i}.png" for i in range(per_batch)]},
        )  # fmt: skip
    data, labels = images(n_test)
    _pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": labels, "data": data})
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072})


def stage_reproduce_online(ctx: Ctx) -> dict[str, Any]:
    from activews.engine.bench import load_results

    data, out = ctx.tmp / "cifar", ctx.tmp / "online"
    if ctx.dry:
        per_batch, n_test = 32, 32
        sizes = ["--n-examples", "128", "--initial", "32", "--query-size", "32", "--rounds", "2", "--max-epochs", "1",
                 "--batch-size", "32"]  # fmt: skip
    else:  # the protocol's 1,000 + 1,000 per round; the epoch cap only guards the budget
        per_batch, n_test = 1000, 1000
        sizes = ["--n-examples", "4000", "--rounds", "3", "--max-epochs", "40"]
    write_cifar10(data, per_batch, n_test)
    args = [
        "reproduce", "online", "--dataset", "cifar10", "--data-dir", str(data), "--model", "resnet18",
        "--device", ctx.device, "--seeds", "1", *sizes, "--workers", "1", "--output", str(out), "--progress", "none", "--no-plot",
    ]  # fmt: skip
    code, stdout, err, seconds = run_cmd(
        [sys.executable, "-c", CHECKSUM_BYPASS, *args], ctx.timeout("reproduce_online")
    )
    figures: dict[str, Any] = {
        "command": shlex.join(["activews", *args]).replace(str(ctx.tmp), "TMP"),
        "data": f"synthetic CIFAR-10-format files: 5 x {per_batch} training, {n_test} test images "
        "(torchvision's md5 check bypassed in the subprocess, as tests/data/test_vision.py does)",
        "exit_code": code,
        "total_seconds": round(seconds, 2),
    }
    if code != 0:
        raise StageError(f"reproduce online exited {code}: {last_line(err) or last_line(stdout)}", figures)
    (result,) = load_results(out)
    rounds = []
    for r in result.records:
        rounds.append({k: r.get(k) for k in ("arm", "seed", "round", "n_labeled", "test_accuracy", "steps", "epochs", "stop_reason")}
                      | {"train_seconds": round(r["seconds"], 3), "seconds_per_step": round(r["seconds"] / max(1, r["steps"]), 5)})  # fmt: skip
    figures["rounds"] = rounds
    figures["train_seconds_by_arm"] = {
        arm: round(sum(r["train_seconds"] for r in rounds if r["arm"] == arm), 2)
        for arm in result.config.arms
    }
    figures["steps_by_arm"] = {
        arm: sum(r["steps"] for r in rounds if r["arm"] == arm) for arm in result.config.arms
    }
    return figures


# ---------------------------------------------------------------------------------------------- 6. several_cells


def stage_several_cells(ctx: Ctx) -> dict[str, Any]:
    many = 2 if ctx.dry else 3  # two in the dry run: each worker process imports torch (seconds on 2 cores)
    limit = ctx.timeout("several_cells", 1.5)
    figures: dict[str, Any] = {
        "command": shlex.join(
            [
                "activews",
                "bench",
                *kills.FLAGS,
                *bench_flags(ctx),
                "--workers",
                "N",
                "--output",
                "DIR",
                "--quiet",
            ]
        ),
        "workers": [1, many],
    }
    serial_seconds, serial = uninterrupted(ctx, limit)
    folder = ctx.tmp / f"bench-w{many}"
    t = time.perf_counter()
    communicate(kills.bench(folder, *bench_flags(ctx), "--workers", str(many)), limit, f"--workers {many}")
    figures["workers_1_seconds"] = round(serial_seconds, 2)
    figures[f"workers_{many}_seconds"] = round(time.perf_counter() - t, 2)
    figures["cells"] = len({k.rsplit("/", 1)[0] for k in serial})
    figures["speedup"] = round(serial_seconds / figures[f"workers_{many}_seconds"], 3)
    result = compare(serial, kills.records(folder))
    figures["identical"] = result["identical"]
    figures["fields_that_differ"] = result["fields_that_differ"]
    if not result["identical"]:
        raise StageError(
            f"--workers {many} records differ from --workers 1: {result['fields_that_differ']}", figures
        )
    return figures


# ---------------------------------------------------------------------------------------------- 7. memory


def stage_memory(ctx: Ctx) -> dict[str, Any]:
    from activews.data.base import Dataset
    from activews.engine.config import BenchConfig

    n_train, n_test, initial = (256, 64, 128) if ctx.dry else (5000, 1000, 1000)
    gen = torch.Generator().manual_seed(0)
    dataset = Dataset(
        "synthetic-cifar",
        torch.randn(n_train, 3, 32, 32, generator=gen),
        torch.randint(0, 10, (n_train,), generator=gen),
        torch.randn(n_test, 3, 32, 32, generator=gen),
        torch.randint(0, 10, (n_test,), generator=gen),
        10,
    )
    figures: dict[str, Any] = {
        "setup": f"resnet18, batch 128, {n_train} + {n_test} CIFAR-shaped examples on the device, one seed, "
        f"one round of {initial} labeled examples (arms random and warm), max 3 epochs",
    }
    try:
        from activews.engine.resources import cell_memory
    except ImportError:
        figures["estimate"] = "not available"
        return figures
    cuda = ctx.device.startswith("cuda")
    for precision in ("fp32", "bf16"):
        config = BenchConfig.build(
            dataset="mnist1d", model="resnet18", stream="passive", strategies=[], seeds=1, rounds=1,
            initial=initial, query_size=initial, max_epochs=3, batch_size=128, precision=precision,
            device=ctx.device,
        )  # fmt: skip
        estimate = cell_memory(config, dataset)
        row: dict[str, Any] = {
            "estimate_bytes": None if estimate is None else estimate.total,
            "estimate": None if estimate is None else dataclasses.asdict(estimate),
        }
        if cuda:
            from activews.engine.bench import run_bench

            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            run_bench(config, dataset=dataset, workers=1)
            row["measured_peak_bytes"] = torch.cuda.max_memory_allocated() - base
            row["measured_reserved_bytes"] = torch.cuda.max_memory_reserved()
            if estimate is not None and row["measured_peak_bytes"] > 0:
                row["estimate_vs_measured"] = round(estimate.total / row["measured_peak_bytes"], 3)
                row["within_2x"] = 0.5 <= row["estimate_vs_measured"] <= 2.0
        figures[precision] = row
    if cuda and not all(figures[p].get("within_2x", False) for p in ("fp32", "bf16")):
        raise StageError("the memory estimate is not within 2x of the measured peak", figures)
    return figures


# ---------------------------------------------------------------------------------------------- main


def machine(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        info |= {
            "device_name": props.name,
            "device_memory_gib": round(props.total_memory / 2**30, 1),
            "capability": f"{props.major}.{props.minor}",
        }
    else:
        info["device_name"] = platform.processor() or "cpu"
    return info


def summary_lines(out: dict[str, Any]) -> list[str]:
    lines = []
    for name, row in out["stages"].items():
        f = row.get("figures", {})
        head = f"{name:<17} {row['status']:<6} {row['seconds']:6.1f} s"
        if row.get("over_budget"):
            head += f" (budget {row['budget_s']} s)"
        detail = ""
        if name == "cuda_tests" and "tests" in f:
            detail = f"{f['passed']} passed, {f['failed']} failed, {f['skipped']} skipped"
        elif name == "determinism" and "fp32" in f:
            detail = f"identical fp32 {f['fp32']['identical']}, bf16 {f['bf16']['identical']}"
        elif name == "kill_resume" and "resumed_identical" in f:
            detail = f"killed at {f['stored_at_kill']}/{f['rounds_total']} rounds, resumed identical {f['resumed_identical']}"
        elif name == "epoch_time" and "results" in f:
            detail = ", ".join(f"{k} {v['activews_vs_minimal']:.3f}x" for k, v in f["results"].items())
            if "meets_target" in f and not f["meets_target"]:
                detail += " (target: at most 1.05x; missed)"
        elif name == "reproduce_online" and "train_seconds_by_arm" in f:
            detail = f"{f['total_seconds']:.1f} s in all; training s " + ", ".join(
                f"{a} {s:.1f}" for a, s in f["train_seconds_by_arm"].items()
            )
        elif name == "several_cells" and "speedup" in f:
            many = f["workers"][-1]
            detail = f"w1 {f['workers_1_seconds']:.1f} s, w{many} {f[f'workers_{many}_seconds']:.1f} s, identical {f['identical']}"
        elif name == "memory":
            parts = []
            for p in ("fp32", "bf16"):
                if p in f and f[p].get("estimate_bytes"):
                    part = f"{p} est. {f[p]['estimate_bytes'] / 2**20:.0f} MiB"
                    if "measured_peak_bytes" in f[p]:
                        part += f" vs {f[p]['measured_peak_bytes'] / 2**20:.0f} MiB measured"
                    parts.append(part)
            detail = ", ".join(parts) or str(f.get("estimate", ""))
        if row.get("error"):
            detail = (detail + "; " if detail else "") + row["error"]
        lines.append(f"{head}  {detail}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="every stage on the CPU with tiny sizes")
    parser.add_argument("--only", metavar="STAGE[,STAGE]", help=f"run only these stages: {', '.join(STAGES)}")
    parser.add_argument(
        "--json", metavar="PATH", help="where to write the figures (default benchmarks/gpu/results.json)"
    )
    args = parser.parse_args(argv)
    try:
        chosen = stages_from(args.only)
    except ValueError as exc:
        sys.stderr.write(f"check.py: error: {exc}\n")
        return 2
    if not args.dry_run and not torch.cuda.is_available():
        sys.stderr.write("check.py: error: CUDA is not available on this machine; run it on the GPU machine, or pass --dry-run for the CPU check with tiny sizes\n")  # fmt: skip
        return 2
    target = (
        Path(args.json) if args.json else HERE / ("results-dry-run.json" if args.dry_run else "results.json")
    )
    device = "cpu" if args.dry_run else "cuda"
    threads = torch.get_num_threads()
    if args.dry_run:  # a shared CPU: two spinning intra-op threads made a ResNet step 30x slower at times
        torch.set_num_threads(1)
    try:
        return run_stages(args, chosen, device, target, argv)
    finally:
        torch.set_num_threads(threads)


def run_stages(
    args: argparse.Namespace, chosen: list[str], device: str, target: Path, argv: list[str] | None
) -> int:
    start = time.monotonic()
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": shlex.join(
            ["python", "benchmarks/gpu/check.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "dry_run": args.dry_run,
        "machine": machine(device),
        "budget_s": {s: BUDGET_S[s] for s in chosen} | {"total": TOTAL_BUDGET_S},
        "stages": {},
    }
    print(f"GPU check on {out['machine']['device_name']} ({device}); stages: {', '.join(chosen)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="activews-gpu-check-") as tmp:
        ctx = Ctx(args.dry_run, device, Path(tmp), start + TOTAL_BUDGET_S)
        for name in chosen:
            row: dict[str, Any] = {"budget_s": BUDGET_S[name]}
            print(f"[{name}] ...", flush=True)
            t = time.perf_counter()
            if ctx.left() < 60 and not args.dry_run:
                row |= {
                    "status": "failed",
                    "error": f"not started: {TOTAL_BUDGET_S - ctx.left():.0f} s of {TOTAL_BUDGET_S} s spent",
                }
            else:
                try:
                    row["figures"] = globals()[f"stage_{name}"](ctx)
                    row["status"] = "ok"
                except Exception as exc:  # one failing stage must not stop the others
                    row["status"] = "failed"
                    row["error"] = one_line(exc)
                    row["figures"] = getattr(exc, "figures", {})
                    if not isinstance(exc, StageError) and exc.__traceback__ is not None:
                        frame = traceback.extract_tb(exc.__traceback__)[-1]
                        row["where"] = f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"
            row["seconds"] = round(time.perf_counter() - t, 2)
            row["over_budget"] = not args.dry_run and row["seconds"] > BUDGET_S[name]
            if ctx.device.startswith("cuda"):
                torch.cuda.empty_cache()
            out["stages"][name] = row
            print(f"[{name}] {row['status']} in {row['seconds']:.1f} s (elapsed {time.monotonic() - start:.1f} s)"
                  + (f": {row['error']}" if row.get("error") else ""), flush=True)  # fmt: skip
    out["total_seconds"] = round(time.monotonic() - start, 2)
    out["failed"] = [n for n, r in out["stages"].items() if r["status"] != "ok"]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=2) + "\n")
    print("\nSummary" + (" (dry run: CPU, tiny sizes; the figures mean nothing)" if args.dry_run else ""))
    for line in summary_lines(out):
        print("  " + line)
    print(f"{out['total_seconds']:.1f} s in all; {len(out['failed'])} stage(s) failed; wrote {target}")
    return 1 if out["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
