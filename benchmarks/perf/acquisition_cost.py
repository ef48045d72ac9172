"""Wall time and peak memory of one active-learning selection, per acquisition (see docs/performance.md).

    python benchmarks/perf/acquisition_cost.py --json benchmarks/perf/acquisition_cost.json

One selection of a ``--batch`` (default 1,000) examples from a pool of ``--pool`` (default 100,000)
random MNIST-1D-shaped examples (40 features, 10 classes) with ``--labeled`` (default 1,000) of them
labeled, by the default MLP (40-256-256-10, here with dropout 0.2 so that ``bald`` can run; dropout is
the identity in eval mode, so the other acquisitions see the same network). What is timed is
``ActiveStream.next`` with a ``ModelView``: what a bench round spends selecting (``select_seconds``).

Each acquisition runs in a fresh process, so its peak resident memory is its own: the number reported
is the growth of the peak over the resident memory once data and model exist (after one warm-up
forward pass), i.e. what the selection itself added at its highest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

ACQUISITIONS = ("margin", "bald", "badge", "coreset")


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_one(name: str, pool: int, batch: int, labeled: int, samples: int, score_batch: int) -> dict:
    """Time and peak-memory growth of one selection by ``name`` (call in a fresh process)."""
    import ctypes

    from activews.models import build_model
    from activews.streams import ActiveStream, ModelView

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(pool, 40, generator=gen)
    model = build_model("mlp", (40,), 10, {"dropout": 0.2}, seed=0)
    params = {"samples": samples} if name == "bald" else {}
    stream = ActiveStream(
        pool,
        torch.Generator().manual_seed(0),
        initial=labeled,
        query_size=batch,
        rounds=2,
        acquisition=name,
        acquisition_params=params,
        score_batch=score_batch,
    )
    first = stream.first()
    view = ModelView(model, x)
    with torch.no_grad():
        model.eval()(x[:score_batch])  # warm the allocator with one window, as any forward pass would
        model.train()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc free lists would otherwise count as resident
    base = _rss_mb()
    t = time.perf_counter()
    second = stream.next(first, view)
    seconds = time.perf_counter() - t
    if second.n_new != batch:
        raise RuntimeError(f"{name} selected {second.n_new} examples, expected {batch}")
    return {"seconds": round(seconds, 3), "peak_growth_mb": round(max(0.0, _peak_mb() - base), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pool", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--labeled", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=20, help="bald: Monte Carlo dropout samples")
    parser.add_argument("--score-batch", type=int, default=8192)
    parser.add_argument("--only", choices=ACQUISITIONS, help="measure one acquisition in this process")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    sizes = (args.pool, args.batch, args.labeled, args.samples, args.score_batch)
    if args.only:
        print(json.dumps(measure_one(args.only, *sizes)))
        return
    # The thread setting shapes the timings on a shared machine: record it as part of the command.
    threads = [f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"] if "OMP_NUM_THREADS" in os.environ else []
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
        },
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": " ".join([*threads, "python benchmarks/perf/acquisition_cost.py", *sys.argv[1:]]),
        "setup": {
            "pool": args.pool,
            "batch": args.batch,
            "labeled": args.labeled,
            "bald_samples": args.samples,
            "score_batch": args.score_batch,
            "model": "mlp 40-256-256-10, dropout 0.2",
        },
        "acquisitions": {},
    }
    root = Path(__file__).resolve().parents[2]
    for name in ACQUISITIONS:
        flags = ["--pool", args.pool, "--batch", args.batch, "--labeled", args.labeled]
        flags += ["--samples", args.samples, "--score-batch", args.score_batch, "--only", name]
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), *map(str, flags)],
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
        )
        results["acquisitions"][name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(name, results["acquisitions"][name], flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
