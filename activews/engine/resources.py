"""What a run may use: usable CPU cores, worker counts, Ray resources, and the memory of one cell.

The thread policy (docs/running.md#threads-and-workers):

- Every cell trains with a fixed number of torch intra-op threads, :data:`CELL_THREADS` (1) unless the
  user says otherwise (``--threads N``, ``threads=N``). Numbers depend on the thread count, so it never
  comes from the machine: the same command gives the same numbers on a 2-core laptop and a 64-core
  server. It is recorded with the run (``meta.threads``) and a resume with another count is refused.
- ``--workers auto`` (the CLI default) runs as many cell processes as fit the usable cores at that
  thread count (:func:`usable_cpus`: the CPU affinity mask and any cgroup CPU quota, not the machine's
  core count), never more than there are cells. On CUDA it runs one cell at a time per device
  (``--gpus-per-cell F`` lets ``1/F`` cells share it); ``--workers N`` puts N cells on the device.

One-thread cells do not oversubscribe: a busy process next to a run takes its share of one core, where a
multi-threaded cell would wait at every small matrix product for the thread the scheduler put aside.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from activews.data import Dataset
from activews.engine.config import BenchConfig
from activews.errors import ActivewsError

__all__ = [
    "CELL_THREADS",
    "Workers",
    "usable_cpus",
    "cgroup_cpu_limit",
    "resolve_workers",
    "parse_workers",
    "check_threads",
    "check_gpus_per_cell",
    "ray_resources",
    "CellMemory",
    "cell_memory",
]

log = logging.getLogger(__name__)

CELL_THREADS = 1
"""Torch intra-op threads of every cell, serial or in a worker, unless the run says otherwise: results
depend on the thread count, so it is fixed (and recorded with the run) rather than taken from the
machine's cores."""

Workers = int | Literal["auto"]


def cgroup_cpu_limit(root: str | Path = "/") -> float | None:
    """The CPU quota of this process's cgroup in cores (``1.5`` for 150 ms per 100 ms), or None if unlimited.

    Reads cgroup v2 (``cpu.max`` of the process's cgroup and each parent, the smallest quota wins) and
    cgroup v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``). ``root`` is the file system root (tests
    point it at a fake tree).
    """
    root = Path(root)
    limits: list[float] = []
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        rel = path.lstrip("/")
        if controllers == "":  # cgroup v2: walk from the process's group up to the root
            base = root / "sys/fs/cgroup"
            here = Path(rel)
            while True:
                limit = _v2_limit(base / here / "cpu.max")
                if limit is not None:
                    limits.append(limit)
                if here == Path("."):
                    break
                here = here.parent
        elif "cpu" in controllers.split(","):  # cgroup v1
            for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                folder = root / "sys/fs/cgroup" / mount
                for candidate in (folder / rel, folder):
                    limit = _v1_limit(candidate)
                    if limit is not None:
                        limits.append(limit)
                        break
    return min(limits) if limits else None


def _v2_limit(path: Path) -> float | None:
    try:
        quota, *period = path.read_text().split()
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period[0] if period else 100_000)
    except (ValueError, ZeroDivisionError):
        return None


def _v1_limit(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def usable_cpus() -> int:
    """CPU cores this process may use: its affinity mask, capped by its cgroup's CPU quota (at least 1).

    A container limited to 2 CPUs on a 64-core host gets 2 here, where ``os.cpu_count()`` says 64.
    """
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        count = min(count, math.ceil(limit))
    return max(1, count)


def parse_workers(value: Any) -> Workers:
    """``"auto"`` or a count >= 1 (an int, or a string of one, as the CLI passes it)."""
    if value == "auto":
        return "auto"
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise ActivewsError(f"--workers takes a count or auto, got {value!r}; e.g. --workers 2") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ActivewsError(f"--workers must be a count >= 1 or auto, got {value!r}; e.g. --workers auto")
    return value


def check_threads(threads: Any) -> int:
    """A thread count >= 1, or a one-line error naming the fix."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ActivewsError(f"--threads must be a count >= 1, got {threads!r}; e.g. --threads 1")
    return threads


def check_gpus_per_cell(gpus_per_cell: float | None, devices: list[str]) -> None:
    """``--gpus-per-cell`` is a fraction ``0 < F <= 1`` and applies only when every cell runs on CUDA."""
    if gpus_per_cell is None:
        return
    if isinstance(gpus_per_cell, bool) or not 0 < gpus_per_cell <= 1:
        raise ActivewsError(
            f"--gpus-per-cell is the fraction of one GPU a cell takes, 0 < F <= 1, got {gpus_per_cell!r}; "
            "e.g. --gpus-per-cell 0.25 to run 4 cells per GPU"
        )
    if not devices or any(not _is_cuda(d) for d in devices):
        raise ActivewsError(
            "--gpus-per-cell applies to cells on CUDA; add --device cuda (or auto on a machine with a GPU) "
            "or drop --gpus-per-cell"
        )


def _is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def resolve_workers(
    workers: Workers,
    cells: int,
    *,
    devices: list[str],
    threads: int = CELL_THREADS,
    gpus_per_cell: float | None = None,
    cpus: int | None = None,
) -> int:
    """How many cells run at once (at least 1, at most ``cells``).

    ``auto``: on CPU, as many one-``threads`` processes as fit the usable cores (``cpus``, default
    :func:`usable_cpus`); on CUDA (any of ``devices``, the resolved device of each experiment), one cell
    per device, or ``1 / gpus_per_cell`` when given; on MPS, one. A count is taken as it is.
    """
    cells = max(1, cells)
    if workers != "auto":
        return max(1, min(int(workers), cells))
    if any(_is_cuda(d) for d in devices):
        per_device = math.floor(1 / gpus_per_cell + 1e-9) if gpus_per_cell else 1
        return max(1, min(per_device, cells))
    if any(d == "mps" for d in devices):
        return 1
    available = usable_cpus() if cpus is None else cpus
    return max(1, min(available // threads, cells))


def oversubscription(workers: int, threads: int, cpus: int | None = None) -> str | None:
    """A warning when ``workers x threads`` exceeds the usable cores, else None."""
    available = usable_cpus() if cpus is None else cpus
    if workers * threads <= available:
        return None
    return (
        f"{workers} workers x {threads} thread(s) = {workers * threads} threads on {available} usable "
        f"core(s): cells will wait for each other; --workers auto fits the cores"
    )


def ray_resources(
    device: str, threads: int = CELL_THREADS, gpus_per_cell: float | None = None
) -> dict[str, float]:
    """What one cell's Ray task asks for: ``threads`` CPUs, and on CUDA ``gpus_per_cell`` of a GPU (default 1).

    Ray places as many tasks on a node as its resources allow, so ``--gpus-per-cell 0.25`` runs four
    cells on each GPU of the cluster.
    """
    gpus = (gpus_per_cell if gpus_per_cell is not None else 1.0) if _is_cuda(device) else 0.0
    return {"num_cpus": float(threads), "num_gpus": float(gpus)}


# ---------------------------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class CellMemory:
    """An estimate of the memory one cell holds on its device, in bytes.

    Attributes:
        data: the training pool and the test set (moved to the device once per cell).
        model: weights, gradients, optimizer state, the round-0 weights kept for strategies, and one more
            model (a fresh model or a copy that a strategy makes during a round).
        activations: the larger of one training minibatch's saved activations and one evaluation window's
            largest layer output.
    """

    data: int
    model: int
    activations: int

    @property
    def total(self) -> int:
        return self.data + self.model + self.activations

    def describe(self) -> str:
        mib = 2**20
        return (
            f"about {self.total / mib:,.0f} MiB per cell (data {self.data / mib:,.0f}, model and optimizer "
            f"{self.model / mib:,.0f}, activations {self.activations / mib:,.0f})"
        )


def cell_memory(config: BenchConfig, dataset: Dataset) -> CellMemory | None:
    """Estimate what one cell of ``config`` holds on its device; None where the model cannot be traced.

    The model is traced on PyTorch's ``meta`` device (no memory, no random draws): the output sizes of
    its leaf modules for one training minibatch give the activations kept for the backward pass. The
    estimate leaves out the framework's own workspace (cuDNN, the CUDA context: a few hundred MiB per
    process on a GPU).
    """
    import torch

    data = sum(
        t.numel() * t.element_size()
        for t in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)
    )
    shape = tuple(dataset.input_shape)
    model = config.meta_model(shape, dataset.num_classes)
    if model is None:
        return None
    sizes: list[int] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel() if torch.is_tensor(out) else 0))
        for m in model.modules()
        if not list(m.children())
    ]
    try:
        with torch.device("meta"):
            model(torch.empty((config.batch_size, *shape)))
    except Exception:
        return None
    finally:
        for h in hooks:
            h.remove()
    weights = sum(p.numel() for p in model.parameters())
    act_bytes = 2 if config.precision != "fp32" else 4
    states = 2 if config.optimizer == "adam" else (1 if config.momentum else 0)
    model_bytes = weights * 4 * (2 + states + 2)  # weights, grads, states, round-0 copy, one more model
    per_example = [s // config.batch_size for s in sizes] or [0]
    train_act = config.batch_size * sum(per_example) * act_bytes * 2  # outputs and their gradients
    eval_act = min(config.eval_batch_size, len(dataset.y_train)) * max(per_example) * act_bytes * 2
    return CellMemory(data, model_bytes, max(train_act, eval_act))
