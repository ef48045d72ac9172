"""Running cells (experiment x arm x seed) one after another, in local processes, or as Ray tasks.

Every executor runs the same function, :func:`run_cell`, which resumes the cell from its checkpoint,
commits each finished round to the run store and marks the cell done. Results are therefore the same
whichever executor ran them. Progress of cells running elsewhere is read back from the store.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from activews.data import Dataset
from activews.engine.arm import ProgressEvent, ProgressFn, run_arm
from activews.engine.config import BenchConfig
from activews.engine.resources import CELL_THREADS, ray_resources
from activews.engine.setup import load_bench_dataset
from activews.engine.store import RunStore
from activews.engine.workers import WorkerPool, as_received, stop_when_gone
from activews.errors import ActivewsError
from activews.files import write_failure
from activews.plugins import load_plugin, loaded_plugins

__all__ = [
    "Cell",
    "run_cell",
    "execute_cells",
    "checkpoint_path",
    "pack_callables",
    "EXECUTORS",
    "CELL_THREADS",
]

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Cell:
    """One arm of one experiment for one seed."""

    experiment: int
    arm: str
    seed: int


def checkpoint_path(folder: Path, cell: Cell) -> Path:
    """``checkpoints/e<experiment>-<arm>-s<seed>.pt`` (arm labels are made file-safe)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", cell.arm).strip("_")
    if safe != cell.arm:
        safe += "-" + hashlib.sha1(cell.arm.encode()).hexdigest()[:8]
    return folder / "checkpoints" / f"e{cell.experiment}-{safe}-s{cell.seed}.pt"


_DATASETS: dict[str, Dataset] = {}


def _dataset_for(config: BenchConfig) -> Dataset:
    """Load (once per process) the dataset a config names."""
    key = repr((config.dataset, config.n_examples, config.test_fraction, config.split_seed))
    if key not in _DATASETS:
        _DATASETS[key] = load_bench_dataset(config)
    return _DATASETS[key]


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def _deterministic_cuda(device: str) -> Iterator[None]:
    """On CUDA, the deterministic kernel choices that make two runs of a cell give the same numbers.

    cuDNN's autotuner (``benchmark``) picks kernels by timing them, so two runs can pick different ones;
    it is turned off and cuDNN restricted to deterministic kernels for the cell. cuBLAS needs a fixed
    workspace for reproducible reductions (``CUBLAS_WORKSPACE_CONFIG``), which only takes effect before
    the process first uses cuBLAS: worker processes get it at their start, a caller's process that already
    used CUDA keeps its own. On CPU this does nothing.
    """
    if not (device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())):
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    cudnn = torch.backends.cudnn
    before = (cudnn.benchmark, cudnn.deterministic)
    cudnn.benchmark, cudnn.deterministic = False, True
    try:
        yield
    finally:
        cudnn.benchmark, cudnn.deterministic = before


def run_cell(
    folder: str | Path,
    cell: Cell,
    config: BenchConfig,
    dataset: Dataset | None = None,
    progress: ProgressFn | None = None,
    threads: int = CELL_THREADS,
) -> int:
    """Run (or resume) one cell, committing every round to the store in ``folder``; returns rounds run.

    The cell trains with ``threads`` torch intra-op threads, whichever process runs it, so a serial
    run and parallel workers produce identical records.
    """
    folder = Path(folder)
    store = RunStore(folder)
    try:
        ckpt = checkpoint_path(folder, cell)
        try:
            ckpt.parent.mkdir(exist_ok=True)
        except OSError as exc:
            then = f"then resume with 'activews bench --resume {folder}'"
            raise ActivewsError(write_failure("checkpoint folder", ckpt.parent, exc, then)) from None
        with _torch_threads(threads), _deterministic_cuda(config.device):
            records = run_arm(
                config,
                dataset if dataset is not None else _dataset_for(config),
                cell.arm,
                cell.seed,
                progress=progress,
                checkpoint=ckpt,
                on_record=lambda rec: store.commit_round(cell.experiment, rec),
            )
        # A crash between a checkpoint and its commit leaves rounds only in the checkpoint: commit them.
        if store.done_rounds(cell.experiment, cell.arm, cell.seed) < len(records):
            for rec in records:
                store.commit_round(cell.experiment, rec)
        store.mark_done(cell.experiment, cell.arm, cell.seed)
        ckpt.unlink(missing_ok=True)
        return len(records)
    finally:
        store.close()


class _StorePoller:
    """Turns rows newly committed by other processes into progress events."""

    def __init__(self, folder: Path, progress: ProgressFn | None, num_rounds: dict[int, int]) -> None:
        self.store = RunStore(folder) if progress else None
        self.progress, self.num_rounds = progress, num_rounds
        self.seq = (
            self.store.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM records").fetchone()[0]
            if self.store
            else 0
        )
        self.started: set[tuple[int, str, int]] = set()

    def poll(self) -> None:
        if not self.store or not self.progress:
            return
        for rec in self.store.records(since_seq=self.seq):
            self.seq = rec["seq"]
            key = (rec["experiment"], rec["arm"], rec["seed"])
            n = self.num_rounds[rec["experiment"]]
            if key not in self.started:
                self.started.add(key)
                self.progress(ProgressEvent("arm_start", rec["arm"], rec["seed"], rec["round"], n))
            self.progress(ProgressEvent("round_end", rec["arm"], rec["seed"], rec["round"], n, rec))
            if rec["round"] == n - 1:
                self.progress(ProgressEvent("arm_end", rec["arm"], rec["seed"], rec["round"], n))

    def close(self) -> None:
        if self.store:
            self.store.close()


def execute_cells(
    folder: Path,
    cells: Sequence[Cell],
    configs: dict[int, BenchConfig],
    *,
    datasets: dict[int, Dataset] | None = None,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    progress: ProgressFn | None = None,
    num_rounds: dict[int, int] | None = None,
    threads: int = CELL_THREADS,
    gpus_per_cell: float | None = None,
) -> None:
    """Run ``cells`` with the chosen executor; every round lands in the store in ``folder``.

    ``num_rounds`` (rounds per arm, by experiment) sizes the progress display; it defaults to
    ``config.num_rounds``, which is unknown (0) for ``rounds=0`` until the pool size is known.
    ``threads`` is every cell's torch thread count (see :data:`~activews.engine.resources.CELL_THREADS`);
    ``gpus_per_cell`` the fraction of a GPU each Ray task asks for on CUDA (default 1).

    An interrupt (``KeyboardInterrupt``, or :class:`~activews.engine.workers.Terminated` from a SIGTERM
    handler) stops every worker process within seconds and is re-raised; the rounds already committed
    stay in the store and the run resumes from them.
    """
    datasets = datasets or {}
    if workers < 1:
        raise ActivewsError(f"--workers must be >= 1, got {workers}")
    if executor not in EXECUTORS:
        raise ActivewsError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}")
    if not cells:
        return
    if executor == "local" and workers == 1:
        for cell in cells:
            run_cell(folder, cell, configs[cell.experiment], datasets.get(cell.experiment), progress, threads)
        return
    # Cheapest last: warm arms train far fewer steps, so they fill the gaps at the end (better balance).
    cells = sorted(cells, key=lambda c: c.arm == "warm")
    # A user's model factory and training function travel pickled beside the config's JSON.
    callables = {e: pack_callables(cfg, executor) for e, cfg in configs.items()}
    poller = _StorePoller(folder, progress, num_rounds or {e: c.num_rounds for e, c in configs.items()})
    try:
        if executor == "ray":
            _execute_ray(
                folder, cells, configs, datasets, callables, workers, address, poller, threads, gpus_per_cell
            )
        else:
            tasks = [
                (
                    str(folder),
                    cell,
                    configs[cell.experiment].model_dump(mode="json"),
                    datasets.get(cell.experiment),
                    threads,
                    callables[cell.experiment],
                )
                for cell in cells
            ]
            n = min(workers, len(cells))
            with WorkerPool(n, _worker_cell, load_plugins, (loaded_plugins(),)) as pool:
                pool.run(tasks, on_wait=poller.poll)
        poller.poll()
    finally:
        poller.close()


def load_plugins(plugins: Sequence[str]) -> None:
    """Import the plugins of the parent process (in a worker or a Ray task, before its first cell)."""
    for spec in plugins:
        load_plugin(spec)


def _worker_cell(
    folder: str,
    cell: Cell,
    config_json: dict[str, Any],
    dataset: Dataset | None,
    threads: int,
    callables: dict[str, bytes] | None = None,
) -> int:
    config = BenchConfig.from_stored(config_json)
    config = config.with_callables(_unpack(callables or {}, config))
    return run_cell(folder, cell, config, dataset, threads=threads)


def pack_callables(config: BenchConfig, executor: str, how: str = "--workers") -> dict[str, bytes]:
    """A config's callables (:meth:`BenchConfig.callables`) pickled one by one, for a worker to unpickle
    itself (so that a module it cannot import is a one-line error there). For Ray with Ray's cloudpickle,
    which sends what plain pickle cannot (a lambda, a function of the caller's script) by value.

    Raises:
        ActivewsError: one does not pickle (a lambda or a local function for local worker processes);
            ``how`` is how the user asked for other processes (``--workers 2``).
    """
    if executor == "ray":
        from ray import cloudpickle as pickler
    else:
        pickler = pickle
    out = {}
    for name, fn in config.callables().items():
        try:
            out[name] = pickler.dumps(fn)
        except Exception as exc:
            short = getattr(fn, "__name__", "")
            if not short.isidentifier():
                short = "make_net" if name == "model" else "train"
            raise ActivewsError(
                f"--{name.replace('_', '-')} {getattr(config, name)!r} cannot be sent to worker processes "
                f"({how}): {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}; define "
                f"{short} at module level in an importable module, not as a lambda or inside a function "
                "(or run every cell in this process: --workers 1)"
            ) from None
    return out


def _unpack(packed: dict[str, bytes], config: BenchConfig) -> dict[str, Any]:
    out = {}
    for name, blob in packed.items():
        try:
            out[name] = pickle.loads(blob)
        except (ImportError, AttributeError) as exc:
            raise ActivewsError(
                f"a worker process cannot load --{name.replace('_', '-')} {getattr(config, name)!r} "
                f"({type(exc).__name__}: {exc}); make its module importable where cells run: put its "
                "folder on PYTHONPATH (or install it) on every machine that runs them"
            ) from None
    return out


def _execute_ray(
    folder: Path,
    cells: Sequence[Cell],
    configs: dict[int, BenchConfig],
    datasets: dict[int, Dataset],
    callables: dict[int, dict[str, bytes]],
    workers: int,
    address: str | None,
    poller: _StorePoller,
    threads: int,
    gpus_per_cell: float | None = None,
) -> None:
    try:
        import ray
    except ImportError:
        raise ActivewsError("--executor ray needs Ray: pip install 'activews[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        main = threading.current_thread() is threading.main_thread()
        sigterm = signal.getsignal(signal.SIGTERM) if main else None
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            _start_local_ray(ray, workers * threads)
        if sigterm is not None:  # Ray installs its own SIGTERM handler; keep the caller's clean stop
            signal.signal(signal.SIGTERM, sigterm)
    # Tasks of a local Ray stop when this process ends, however it ends (Ray's own processes follow
    # the raylet at their own pace).
    driver = os.getpid() if started_here and not address else None
    try:
        # Each task asks for its cell's threads and, on CUDA, its share of a GPU (--gpus-per-cell), so
        # Ray places as many cells on a node as its cores and GPUs hold.
        remotes = {
            e: ray.remote(**ray_resources(cfg.device, threads, gpus_per_cell))(_ray_cell)
            for e, cfg in configs.items()
        }
        plugins = loaded_plugins()
        refs = [
            remotes[cell.experiment].remote(
                str(folder),
                cell,
                configs[cell.experiment].model_dump(mode="json"),
                datasets.get(cell.experiment),
                plugins,
                threads,
                driver,
                callables[cell.experiment],
            )
            for cell in cells
        ]
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
            poller.poll()
            try:
                ray.get(done)  # re-raise a task's error here
            except ray.exceptions.RayTaskError as exc:
                if isinstance(exc.cause, ActivewsError):  # one line, as from a local worker
                    raise exc.cause from None
                raise
    except BaseException as exc:
        for ref in locals().get("pending", []):
            ray.cancel(ref, force=True)
        if isinstance(exc, KeyboardInterrupt) and as_received(exc) is not exc:
            raise as_received(exc) from None
        raise
    finally:
        if started_here:
            ray.shutdown()


def _start_local_ray(ray: Any, cpus: int) -> None:
    """A private Ray instance for this run whose servers listen on the loopback interface only.

    On Linux Ray binds its servers to every interface unless its node address is the loopback one, and
    it picks the loopback address only where it treats the machine as a single node (its
    ``ENABLE_RAY_CLUSTER`` switch, off by default on macOS and Windows). activews turns that switch off
    while it starts its own instance; joining a cluster goes through ``--address`` instead.
    """
    try:
        from ray._private import ray_constants
    except ImportError:  # pragma: no cover - a Ray without the switch: start it as Ray would
        ray_constants = None
    if ray_constants is None or not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        log.warning(
            "this Ray version offers no loopback-only start; its servers may listen on every interface"
        )
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        return
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def _ray_cell(
    folder: str,
    cell: Cell,
    config_json: dict[str, Any],
    dataset: Dataset | None,
    plugins: list[str],
    threads: int,
    driver: int | None = None,
    callables: dict[str, bytes] | None = None,
) -> int:
    if driver is not None:
        stop_when_gone(driver)
    load_plugins(plugins)
    return _worker_cell(folder, cell, config_json, dataset, threads, callables)
