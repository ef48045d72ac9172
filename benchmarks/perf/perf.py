"""Performance checks for activews, side by side in one run (see docs/performance.md).

    python benchmarks/perf/perf.py                 # all three measurements
    python benchmarks/perf/perf.py --only epoch    # one of: epoch, scoring, workers, busy, imports (repeatable)

1. epoch:   one training epoch of the activews learner vs a minimal hand-written PyTorch loop over the same
            in-memory tensors, and vs a DataLoader(TensorDataset) loop. Target: activews <= 1.05x minimal.
2. scoring: acquisition scores for a pool of 1,000,000 MNIST-1D-sized examples through ActiveStream.scores
            vs the bare batched forward pass. Target: <= 1.2x, and peak memory that does not grow with the
            pool beyond the score vector.
3. workers: the README's bench command with --workers auto (the default) vs --workers 1, on a quiet
            machine. Target: at most 0.65x the time.
4. busy:    the same command (--workers auto) beside one busy single-threaded process of normal priority,
            started and stopped by the benchmark, vs on a quiet machine. Target: at most 1.6x the time.
5. imports: fresh interpreters importing activews (``import activews``, ``from activews import run_bench``,
            ``activews --help``) from this tree and from the git revision ``--before`` (default a05204f, the
            layout before engine/ and cli/), interleaved; medians. Target: ``import activews`` loads
            neither torch nor numpy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from activews.models import build_model
from activews.streams import ActiveStream
from activews.training import TrainConfig, make_optimizer, predict_proba, train_to_criterion


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_epoch(n: int = 7000, repeats: int = 21, epochs_per_sample: int = 5) -> dict:
    """Seconds per epoch (median of interleaved repeats) for the three loops, same model and optimizer."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 40, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    cfg = TrainConfig(max_epochs=1, target_accuracy=1.0)
    model = build_model("mlp", (40,), 10, seed=0)

    def activews_epoch():
        train_to_criterion(model, x, y, cfg, torch.Generator().manual_seed(1), optimizer=opt)

    def minimal_epoch():
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(1))
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y),
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(1),
    )

    def dataloader_epoch():
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    opt = make_optimizer(model, cfg)  # the same (fused) Adam for every loop
    fns = {"minimal": minimal_epoch, "activews": activews_epoch, "dataloader": dataloader_epoch}
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):  # interleaved, so drift on a shared machine hits all loops alike
        for name, fn in fns.items():
            t = time.perf_counter()
            for _ in range(epochs_per_sample):
                fn()
            samples[name].append((time.perf_counter() - t) / epochs_per_sample)
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "examples": n,
        "batch_size": cfg.batch_size,
        "repeats": repeats,
        "epochs_per_sample": epochs_per_sample,
        "seconds_per_epoch": med,
        "activews_vs_minimal": med["activews"] / med["minimal"],
        "dataloader_vs_minimal": med["dataloader"] / med["minimal"],
        # the fastest sample of each loop: the estimate least disturbed by other work on a shared machine
        "activews_vs_minimal_best": min(samples["activews"]) / min(samples["minimal"]),
        "dataloader_vs_minimal_best": min(samples["dataloader"]) / min(samples["minimal"]),
        "target": "activews_vs_minimal <= 1.05",
    }


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _scoring_setup(pool: int, batch: int):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(pool, 40, generator=gen)
    model = build_model("mlp", (40,), 10, seed=0).eval()
    stream = ActiveStream(
        pool,
        torch.Generator().manual_seed(0),
        initial=1,
        query_size=1,
        rounds=2,
        acquisition="margin",
        score_batch=batch,
    )
    return x, model, stream


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def scoring_memory(pool: int, batch: int = 8192) -> tuple[float, float]:
    """Peak- and resident-memory growth (MB) of one scoring pass, in a fresh process, after the data exist.

    A tenth of the pool is marked labeled, so the path that gathers unlabeled examples runs too.
    """
    import ctypes

    # glibc keeps freed blocks in its free lists (resident but not live); trim them before each reading
    # so the difference is memory still held by the scoring pass.
    trim = ctypes.CDLL("libc.so.6").malloc_trim
    x, model, stream = _scoring_setup(pool, batch)
    labeled = torch.zeros(pool, dtype=torch.bool)
    labeled[::10] = True
    with torch.no_grad():
        model(x[:batch])  # warm the allocator with one batch, as any forward pass would
    trim(0)
    peak, rss = _peak_rss_mb(), _rss_mb()
    scores = stream.scores(lambda idx: predict_proba(model, x[idx], batch), labeled)
    trim(0)
    held = _rss_mb() - rss
    del scores
    return _peak_rss_mb() - peak, held


def bench_scoring(pool: int = 1_000_000, batch: int = 8192, repeats: int = 5) -> dict:
    """Scoring a pool through the active stream vs a bare forward pass over the same tensor."""
    x, model, stream = _scoring_setup(pool, batch)

    @torch.no_grad()
    def bare():
        for i in range(0, pool, batch):
            model(x[i : i + batch])

    def activews_scores():
        return stream.scores(lambda idx: predict_proba(model, x[idx], batch))

    samples: dict[str, list[float]] = {"bare_forward": [], "activews_scores": []}
    bare(), activews_scores()  # warm-up
    for _ in range(repeats):  # interleaved
        for name, fn in (("bare_forward", bare), ("activews_scores", activews_scores)):
            t = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in samples.items()}
    # Memory: a fresh process per pool size, so each peak is its own.
    growth = {}
    for size in (pool // 4, pool):
        code = f"import benchmarks.perf.perf as p; print(*p.scoring_memory({size}, {batch}))"
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        growth[size] = [float(v) for v in out.stdout.strip().splitlines()[-1].split()]
    small, large = pool // 4, pool
    per_example = (growth[large][1] - growth[small][1]) * 2**20 / (large - small)
    return {
        "pool": pool,
        "batch": batch,
        "repeats": repeats,
        "seconds": med,
        "activews_vs_bare": med["activews_scores"] / med["bare_forward"],
        "peak_rss_growth_mb": {str(k): round(v[0], 1) for k, v in growth.items()},
        "live_growth_mb": {str(k): round(v[1], 1) for k, v in growth.items()},
        "live_bytes_per_pool_example": round(per_example, 2),
        "kept_per_example": "the 4-byte score (the labeled mask, 1 byte, is the caller's)",
        "target": "activews_vs_bare <= 1.2; live growth per pool example ~4 bytes (the score vector)",
    }


def _default_bench(*flags: str) -> tuple[float, list[dict]]:
    """Wall time and per-arm results of the README's bench command (CLI, a fresh process) with ``flags``."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-m", "activews", "bench", "--stream", "active", "--strategy", "shrink_perturb",
            "--quiet", "--no-plot", *flags,
            "--output", str(Path(tmp) / "run"), "--json", str(Path(tmp) / "r.json"),
        ]  # fmt: skip
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - t
        arms = [
            {k: a[k] for k in ("arm", "final_accuracy", "steps")}
            for a in json.loads((Path(tmp) / "r.json").read_text())["arms"]
        ]
    return seconds, arms


def bench_workers() -> dict:
    """The default bench with --workers auto (the default) and with --workers 1, on a quiet machine."""
    from activews.engine.resources import resolve_workers, usable_cpus

    auto_seconds, auto_arms = _default_bench("--workers", "auto")
    one_seconds, one_arms = _default_bench("--workers", "1")
    return {
        "usable_cpus": usable_cpus(),
        "auto_workers": resolve_workers("auto", 12, devices=["cpu"]),
        "auto_seconds": auto_seconds,
        "workers_1_seconds": one_seconds,
        "ratio": auto_seconds / one_seconds,
        "identical_results": auto_arms == one_arms,
        "arms": auto_arms,
        "target": "ratio <= 0.65",
    }


def bench_busy() -> dict:
    """The default bench beside one busy single-threaded process of normal priority vs on a quiet machine.

    The busy process (``python3 -c 'while True: pass'``) is started just before the busy run and stopped
    right after it; the quiet run goes first.
    """
    quiet_seconds, quiet_arms = _default_bench()
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)  # let the scheduler see it
        busy_seconds, busy_arms = _default_bench()
    finally:
        hog.kill()
        hog.wait()
    return {
        "quiet_seconds": quiet_seconds,
        "busy_seconds": busy_seconds,
        "ratio": busy_seconds / quiet_seconds,
        "identical_results": quiet_arms == busy_arms,
        "target": "ratio <= 1.6",
    }


IMPORT_CASES = {
    "import activews": [
        "-c",
        "import sys, activews; assert not {'torch', 'numpy'} & set(sys.modules), 'heavy import'",
    ],
    "from activews import run_bench": ["-c", "from activews import run_bench"],
    "activews --help": ["-m", "activews", "--help"],
}


def bench_imports(before: str = "a05204f", repeats: int = 9) -> dict:
    """Import times of this tree vs the revision ``before`` (checked out in a temporary git worktree),
    each case in a fresh interpreter, the two trees interleaved; medians in milliseconds."""
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="activews-before-") as tmp:
        old = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(root), "worktree", "add", "--detach", str(old), before],
            check=True,
            capture_output=True,
        )
        try:
            trees = {"before": old, "after": root}
            times: dict[tuple[str, str], list[float]] = {}
            for _ in range(repeats):
                for case, argv in IMPORT_CASES.items():
                    for tree, path in trees.items():
                        env = dict(os.environ, PYTHONPATH=str(path))
                        t = time.perf_counter()
                        # cwd too: sys.path[0] is the working directory, ahead of PYTHONPATH
                        done = subprocess.run(
                            [sys.executable, *argv], env=env, cwd=path, capture_output=True, text=True
                        )
                        times.setdefault((case, tree), []).append(time.perf_counter() - t)
                        times.setdefault((case, tree + " ok"), []).append(float(done.returncode == 0))
                t = time.perf_counter()
                subprocess.run([sys.executable, "-c", "pass"], check=True)
                times.setdefault(("bare interpreter", "-"), []).append(time.perf_counter() - t)
        finally:
            subprocess.run(
                ["git", "-C", str(root), "worktree", "remove", "--force", str(old)],
                check=False,
                capture_output=True,
            )
    out: dict = {
        "before": before,
        "repeats": repeats,
        "bare_interpreter_ms": 1000 * statistics.median(times[("bare interpreter", "-")]),
    }
    for case in IMPORT_CASES:
        out[case] = {
            tree: {
                "median_ms": 1000 * statistics.median(times[(case, tree)]),
                "succeeded": all(times[(case, tree + " ok")]),
            }
            for tree in ("before", "after")
        }
    out["target"] = "'import activews' succeeds (it asserts that torch and numpy stay unloaded) after"
    return out


SECTIONS = ("epoch", "scoring", "workers", "busy", "imports")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", help="run only this section (repeatable)"
    )
    parser.add_argument("--before", default="a05204f", help="imports: the git revision to compare with")
    parser.add_argument(
        "--json", help="also write the results to this file (sections not run keep their earlier figures)"
    )
    args = parser.parse_args()
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
        },
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    fns = {
        "epoch": bench_epoch,
        "scoring": bench_scoring,
        "workers": bench_workers,
        "busy": bench_busy,
        "imports": lambda: bench_imports(args.before),
    }
    for name in SECTIONS:
        if not args.only or name in args.only:
            results[name] = fns[name]()
            results[name]["date"] = results["date"]
            results[name]["machine"] = results["machine"]
            print(f"== {name}\n{json.dumps(results[name], indent=2)}", flush=True)
    if args.json:
        path = Path(args.json)
        earlier = json.loads(path.read_text()) if path.exists() else {}
        for name in SECTIONS:  # a section kept from an earlier run keeps that run's date and machine
            if isinstance(earlier.get(name), dict):
                earlier[name].setdefault("date", earlier.get("date"))
                earlier[name].setdefault("machine", earlier.get("machine"))
        path.write_text(json.dumps(earlier | results, indent=2))


if __name__ == "__main__":
    main()
