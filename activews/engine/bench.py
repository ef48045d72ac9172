"""Benchmarks: run every arm of one or more experiments, then measure penalties and compute ratios.

An *experiment* is one :class:`BenchConfig`; a sweep (``--config FILE``) expands to several. A *cell*
is one arm of one experiment for one seed. Every finished round is committed to the run store
(``store.sqlite`` in the run folder), so a run that is killed resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from activews.data import Dataset
from activews.engine.arm import ProgressEvent, ProgressFn
from activews.engine.config import BenchConfig
from activews.engine.executors import Cell, execute_cells, pack_callables
from activews.engine.resources import (
    CELL_THREADS,
    Workers,
    cell_memory,
    check_threads,
    oversubscription,
    parse_workers,
    resolve_workers,
)
from activews.engine.runlock import LOCK_FILE, RunLock
from activews.engine.setup import (
    check_devices,
    check_fits,
    dataset_fingerprint,
    load_bench_dataset,
)
from activews.engine.step import TrainFn
from activews.engine.store import STORE_FILE, RunStore, is_run_folder
from activews.engine.summary import summarize
from activews.errors import ActivewsError
from activews.files import PROBE_PREFIX, atomic_write, prepare_output_dir, write_failure

log = logging.getLogger(__name__)

__all__ = ["BenchResult", "config_diff", "load_results", "run_bench", "run_experiments"]


@dataclass
class BenchResult:
    """What :func:`run_bench` returns (one per experiment).

    Attributes:
        config: the configuration that was run.
        records: one dict per (arm, seed, round) with accuracy, loss and compute.
        summary: one dict per arm: ``strategy``, ``arm``, ``final_accuracy``, ``penalty``, ``penalty_ci``,
            ``compute_ratio``, ``time_ratio``, ``seconds``, ... (see ``docs/concepts.md``).
        seconds: wall time of the bench (of this call; a resumed run counts only the resumed part).
        label: the experiment's label in a sweep ("" for a single bench).
        folder: the run folder, if the run has one.
    """

    config: BenchConfig
    records: list[dict[str, Any]]
    summary: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    label: str = ""
    folder: Path | None = None

    def arm(self, label: str) -> dict[str, Any]:
        """The summary dict of the arm ``label`` (a strategy name, or a sweep variant's label)."""
        for row in self.summary:
            if row["arm"] == label:
                return row
        raise KeyError(f"no arm {label!r} in this result; arms: {[r['arm'] for r in self.summary]}")

    def to_dict(self) -> dict[str, Any]:
        """``{"config": ..., "arms": [...summary dicts...]}`` (what ``--json`` writes)."""
        out = {"config": self.config.model_dump(mode="json"), "arms": self.summary}
        return ({"experiment": self.label} | out) if self.label else out


def config_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``["rounds: 7 -> 5", ...]`` for the fields that differ between two config dicts."""
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


def run_experiments(
    experiments: Sequence[tuple[str, BenchConfig]],
    *,
    output: str | Path | None = None,
    datasets: dict[int, Dataset] | None = None,
    progress: ProgressFn | None = None,
    workers: Workers = 1,
    executor: str = "local",
    address: str | None = None,
    meta: dict[str, str] | None = None,
    threads: int | None = None,
    gpus_per_cell: float | None = None,
    arms: Sequence[str] | None = None,
) -> list[BenchResult]:
    """Run (or resume) several experiments into one run folder; one :class:`BenchResult` each.

    Args:
        experiments: ``(label, config)`` pairs (labels distinct).
        output: the run folder. If it already holds a run with the same configuration, the run resumes:
            finished rounds are kept and each unfinished arm continues from its last finished round.
            ``None`` uses a temporary folder, removed afterwards.
        datasets: tensors to use instead of loading ``config.dataset``, by experiment index.
        progress: receives :class:`ProgressEvent` s (``"start"`` first, with rounds already done).
        workers: cells run in parallel (local processes, or Ray tasks): a count, or ``"auto"`` for as many
            as fit the usable cores at ``threads`` each (one per GPU on CUDA; see
            :func:`activews.engine.resources.resolve_workers`). Results are identical whatever the count. The
            default is 1, as with scikit-learn's ``n_jobs``: worker processes re-import the caller's main
            module, so a library call does not start them unasked (the CLI's default is ``auto``).
        executor: ``"local"`` or ``"ray"``.
        address: a Ray cluster address (``executor="ray"``); a local Ray starts when omitted.
        meta: extra ``key: value`` strings stored in a new run's ``meta`` table (``activews reproduce``
            records its protocol there).
        threads: torch intra-op threads of every cell, in this process or a worker. Results depend on
            it, so it is recorded with the run and a resume with another value is refused; ``None`` takes
            the run's recorded count when resuming, else :data:`~activews.engine.resources.CELL_THREADS` (1).
        gpus_per_cell: with ``executor="ray"`` on CUDA, the fraction of a GPU each cell's task asks for
            (default 1); with local workers, ``workers="auto"`` runs ``1 / gpus_per_cell`` cells at once.
        arms: run only the arms with these labels (of every experiment that has them); the run folder
            then holds only their cells, and its summaries only their rows (an arm's penalty needs the
            ``random`` arm among them). ``activews advise`` runs the reference arms once and each
            trial's arm alone this way. Recorded with the run: a resume must name the same arms.

    One process at a time runs in a folder: a second one is refused (see :class:`RunLock`). An
    interrupt (``KeyboardInterrupt``; SIGTERM where the caller turns it into
    :class:`~activews.engine.workers.Terminated`) stops every worker and propagates; the run resumes later.
    """
    if not experiments:
        raise ActivewsError("nothing to run: no experiments")
    if arms is not None:
        arms = list(dict.fromkeys(arms))
        known = {label for _, cfg in experiments for label in cfg.arms}
        unknown = [a for a in arms if a not in known]
        if unknown or not arms:
            raise ActivewsError(
                f"arms= names {unknown[0]!r}, which no experiment has; arms: {', '.join(sorted(known))}"
                if unknown
                else "arms= is empty; name at least one arm (or pass None for all)"
            )
    if threads is not None:
        check_threads(threads)
    workers = parse_workers(workers)
    _check_callables([cfg for _, cfg in experiments], workers, executor)
    if output is None:
        with tempfile.TemporaryDirectory(prefix="activews-") as tmp:
            results = run_experiments(
                experiments,
                output=tmp,
                datasets=datasets,
                progress=progress,
                workers=workers,
                executor=executor,
                address=address,
                meta=meta,
                threads=threads,
                gpus_per_cell=gpus_per_cell,
                arms=arms,
            )
            for r in results:
                r.folder = None
            return results
    start = time.perf_counter()
    folder = Path(output)
    # Tensors the caller passed travel to workers; built-in datasets are re-loaded there (cheaper).
    given = set(datasets or {})
    datasets = dict(datasets or {})
    configs = {i: cfg for i, (_, cfg) in enumerate(experiments)}
    if executor == "ray":
        try:
            import ray  # noqa: F401  (fail before any folder is created)
        except ImportError:
            raise ActivewsError("--executor ray needs Ray: pip install 'activews[ray]'") from None
    devices = check_devices(configs, executor, gpus_per_cell)
    # Rounds per arm come from the stream (rounds=0: until the pool is used up).
    num_rounds: dict[int, int] = {}
    for i, cfg in configs.items():
        if i not in datasets:
            datasets[i] = load_bench_dataset(cfg)
        num_rounds[i] = check_fits(cfg, datasets[i]).num_rounds
    run_config = {
        "experiments": [
            {"label": label, "config": cfg.model_dump(mode="json")} for label, cfg in experiments
        ],
        "datasets": [dataset_fingerprint(datasets[i]) for i in range(len(experiments))],
    }
    if arms is not None:
        run_config["arms"] = arms
    with _claim(folder):
        store, threads = _open_store(folder, run_config, experiments, meta, threads, arms)
        try:
            done_rounds = len(store.records())
            todo = [
                Cell(c["experiment"], c["arm"], c["seed"]) for c in store.cells() if c["status"] != "done"
            ]
        finally:
            store.close()
        total = sum(len(_run_arms(cfg, arms)) * len(cfg.seeds) * num_rounds[i] for i, cfg in configs.items())
        n_workers = resolve_workers(
            workers, len(todo), devices=devices, threads=threads, gpus_per_cell=gpus_per_cell
        )
        plan = _plan(configs, datasets, devices, n_workers, threads, executor)
        if progress:
            progress(ProgressEvent("start", "", -1, done_rounds, total, plan))
        execute_cells(
            folder,
            todo,
            configs,
            datasets={i: datasets[i] for i in given},
            workers=n_workers,
            executor=executor,
            address=address,
            progress=progress,
            num_rounds=num_rounds,
            threads=threads,
            gpus_per_cell=gpus_per_cell,
        )
        results = load_results(folder)
    for r, (_, cfg) in zip(results, experiments, strict=True):
        r.seconds = time.perf_counter() - start
        r.config = r.config.with_callables(cfg.callables())  # the objects, where the store has their names
    return results


def _run_arms(config: BenchConfig, arms: Sequence[str] | None) -> list[str]:
    """The labels of ``config``'s arms that run (all when ``arms`` is None)."""
    return config.arms if arms is None else [a for a in config.arms if a in arms]


def _check_callables(configs: Sequence[BenchConfig], workers: Workers, executor: str) -> None:
    """Import every config's model factory and training function (a reference that no longer imports
    fails here, in one line) and, where cells may run in other processes, check that they pickle: all
    before any data loads."""
    how = "--executor ray" if executor == "ray" else f"--workers {workers}"
    for cfg in configs:
        if executor == "ray" or workers != 1:
            pack_callables(cfg, executor, how)
        else:
            cfg.callables()


def _plan(
    configs: dict[int, BenchConfig],
    datasets: dict[int, Dataset],
    devices: list[str],
    workers: int,
    threads: int,
    executor: str,
) -> dict[str, Any]:
    """How the run executes, for the ``"start"`` event: workers, threads, devices and, on an
    accelerator, the memory each cell needs (with a warning when the cells at once may not fit)."""
    plan: dict[str, Any] = {"workers": workers, "threads": threads, "devices": sorted(set(devices))}
    if executor == "local" and (warning := oversubscription(workers, threads)):
        plan["warning"] = warning
    if not any(d != "cpu" for d in devices):
        return plan
    estimates = [m for i, cfg in configs.items() if (m := cell_memory(cfg, datasets[i])) is not None]
    if not estimates:
        return plan
    need = max(estimates, key=lambda m: m.total)
    plan["cell_memory"] = need.total
    plan["memory"] = need.describe()
    cuda = [d for d in devices if d.startswith("cuda")]
    if executor == "local" and cuda and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(torch.device(cuda[0]))
        if workers * need.total > free:
            fit = max(1, free // need.total)
            plan["warning"] = (
                f"{workers} cells at about {need.total / 2**20:,.0f} MiB each may not fit the "
                f"{free / 2**20:,.0f} MiB free on {cuda[0]}; use --workers {fit}"
            )
    return plan


_SETUP_DIR = ".setup"
"""Where a new run's store is built before it is renamed into place (a store in the folder is complete)."""


@contextmanager
def _claim(folder: Path) -> Iterator[RunLock]:
    """Create ``folder`` if needed and hold its run lock; refuse a folder that holds something else."""

    def ours(name: str) -> bool:  # what a run that never finished its set-up (or is starting) leaves
        return name in (LOCK_FILE, _SETUP_DIR) or name.startswith(PROBE_PREFIX)

    if folder.is_dir() and not is_run_folder(folder) and all(ours(p.name) for p in folder.iterdir()):
        pass  # empty, or left by an interrupted set-up: reusable
    elif not is_run_folder(folder):
        prepare_output_dir(folder)  # one-line errors: a file, a non-empty folder, not writable
    with RunLock(folder) as lock:
        yield lock


def _never_started(folder: Path) -> bool:
    """A store without a config and without records: left by a set-up that failed (older versions)."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{folder / STORE_FILE}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "meta" in tables and conn.execute("SELECT 1 FROM meta WHERE key = 'config'").fetchone():
                return False
            return "records" not in tables or not conn.execute("SELECT 1 FROM records LIMIT 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False  # damaged: reading it gives the user a clear error; never delete it


def _remove_store(folder: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (folder / (STORE_FILE + suffix)).unlink(missing_ok=True)


def _open_store(
    folder: Path,
    run_config: dict[str, Any],
    experiments: Sequence[tuple[str, BenchConfig]],
    meta: dict[str, str] | None = None,
    threads: int | None = None,
    arms: Sequence[str] | None = None,
) -> tuple[RunStore, int]:
    """Open the run's store (checking that it holds this run), or create it; call with the run lock held.

    Returns the store and the run's thread count: ``threads``, or when None the count the run recorded
    (:data:`~activews.engine.resources.CELL_THREADS` for a new run or one that recorded none).
    """
    if is_run_folder(folder) and _never_started(folder):
        log.info("%s: replacing the store of a run whose set-up did not finish", folder)
        _remove_store(folder)
    if not is_run_folder(folder):
        _create_store(folder, run_config, experiments, meta, threads or CELL_THREADS, arms)
    store = RunStore(folder)
    try:
        if threads is None:
            threads = int(store.meta().get("threads") or CELL_THREADS)
        _check_same_run(store, folder, run_config, experiments, threads)
        if not (folder / "config.json").exists():
            # For people browsing the folder; the store holds the authoritative copy.
            shown = (
                run_config["experiments"][0]["config"] if len(experiments) == 1 else run_config["experiments"]
            )
            atomic_write(folder / "config.json", json.dumps(shown, indent=2))
    except BaseException:
        store.close()
        raise
    return store, threads


def _check_same_run(
    store: RunStore,
    folder: Path,
    run_config: dict[str, Any],
    experiments: Sequence[tuple[str, BenchConfig]],
    threads: int,
) -> None:
    old = _comparable_run(store.run_config())
    new = _comparable_run(json.loads(json.dumps(run_config)))
    if old != new:
        raise ActivewsError(_mismatch_message(folder, old, new))
    # Equal configs can still name their arms differently: a sweep's parameter order makes the labels.
    for (_, _, stored), (_, cfg) in zip(store.experiments(), experiments, strict=True):
        old_arms = BenchConfig.from_stored(stored).arms
        if old_arms != cfg.arms:
            raise ActivewsError(
                f"run folder {str(folder)!r} names its arms {', '.join(old_arms[2:4])}, ... but this run "
                f"would name them {', '.join(cfg.arms[2:4])}, ...; give the --sweep flags in the order "
                f"the run used, or continue it with 'activews bench --resume {folder}'"
            )
    stored_threads = store.meta().get("threads")
    if stored_threads is None:
        log.warning(
            "%s was started by an older activews that did not record its thread count; resumed rounds "
            "may differ from its earlier ones in the last digits",
            folder,
        )
    elif int(stored_threads) != threads:
        raise ActivewsError(
            f"run folder {str(folder)!r} was run with {stored_threads} torch thread(s) per cell and this "
            f"run would use {threads}; numbers depend on it: resume with --threads {stored_threads} (or "
            "leave --threads out), or choose another --output"
        )


def _comparable_run(run_config: dict[str, Any]) -> dict[str, Any]:
    """A stored run config with each experiment's config in :meth:`BenchConfig.comparable` form."""
    out = dict(run_config)
    out["experiments"] = [
        {**e, "config": BenchConfig.comparable(e["config"])}
        if isinstance(e, dict) and isinstance(e.get("config"), dict)
        else e
        for e in run_config.get("experiments", [])
    ]
    return out


def _create_store(
    folder: Path,
    run_config: dict[str, Any],
    experiments: Sequence[tuple[str, BenchConfig]],
    meta: dict[str, str] | None,
    threads: int,
    arms: Sequence[str] | None = None,
) -> None:
    """Build the store in ``.setup/`` and rename it into place: the folder holds a complete store or none."""
    import shutil
    import sqlite3

    setup = folder / _SETUP_DIR
    shutil.rmtree(setup, ignore_errors=True)
    cells = [
        (i, spec.label, seed, spec.strategy, spec.params)
        for i, (_, cfg) in enumerate(experiments)
        for seed in cfg.seeds
        for spec in cfg.arm_specs
        if arms is None or spec.label in arms
    ]
    try:
        setup.mkdir()
        with RunStore(setup, create=True) as store:
            store.initialize(
                run_config,
                [(label, cfg.model_dump(mode="json")) for label, cfg in experiments],
                cells,
                {"threads": str(threads), **(meta or {})},
            )
        os.replace(setup / STORE_FILE, folder / STORE_FILE)
        shutil.rmtree(setup, ignore_errors=True)
    except (OSError, sqlite3.Error) as exc:
        shutil.rmtree(setup, ignore_errors=True)
        then = "then run the same command again"
        raise ActivewsError(write_failure("a new run store in", folder, exc, then)) from None
    except BaseException:
        shutil.rmtree(setup, ignore_errors=True)
        raise


def _mismatch_message(folder: Path, old: dict[str, Any], new: dict[str, Any]) -> str:
    diffs: list[str] = []
    old_exps, new_exps = old.get("experiments", []), new.get("experiments", [])
    if len(old_exps) != len(new_exps):
        diffs.append(f"{len(old_exps)} experiments -> {len(new_exps)}")
    for a, b in zip(old_exps, new_exps, strict=False):
        prefix = f"[{b['label']}] " if len(new_exps) > 1 else ""
        diffs += [prefix + d for d in config_diff(a["config"], b["config"])]
    if old.get("arms") != new.get("arms"):
        diffs.append(f"arms run: {old.get('arms') or 'all'} -> {new.get('arms') or 'all'}")
    if not diffs and old.get("datasets") != new.get("datasets"):
        return (
            f"run folder {str(folder)!r} was run on different data (the dataset's contents changed); "
            f"restore the original data or choose another --output"
        )
    return (
        f"run folder {str(folder)!r} holds a run with a different config ({'; '.join(diffs[:4])}"
        f"{'; ...' if len(diffs) > 4 else ''}); resume it with 'activews bench --resume {folder}' "
        f"or choose another --output"
    )


def load_results(folder: str | Path) -> list[BenchResult]:
    """Rebuild the :class:`BenchResult` s of a run folder from its store (finished or not)."""
    with RunStore(folder) as store:
        results = []
        for exp, label, cfg_json in store.experiments():
            config = BenchConfig.from_stored(cfg_json)
            records = [
                {k: v for k, v in r.items() if k not in ("seq", "experiment")}
                for r in store.records(experiment=exp)
            ]
            records.sort(
                key=lambda r: (
                    r["seed"],
                    config.arms.index(r["arm"]) if r["arm"] in config.arms else 0,
                    r["round"],
                )
            )
            results.append(
                BenchResult(
                    config,
                    records,
                    summarize(records, config.arms),
                    0.0,
                    label if len(store.experiments()) > 1 else "",
                    Path(folder),
                )
            )
        return results


def run_bench(
    config: BenchConfig,
    *,
    dataset: Dataset | None = None,
    progress: ProgressFn | None = None,
    output: str | Path | None = None,
    workers: Workers = 1,
    executor: str = "local",
    address: str | None = None,
    threads: int | None = None,
    gpus_per_cell: float | None = None,
    train_fn: TrainFn | str | None = None,
) -> BenchResult:
    """Run every arm of ``config`` (the reference arms ``random`` and ``warm`` included) on every seed.

    Args:
        config: what to run; see :class:`BenchConfig`.
        dataset: use these tensors instead of loading ``config.dataset`` (e.g. from :func:`from_arrays`).
        progress: called with a :class:`ProgressEvent` at the start and end of each arm and each round.
        output: run folder for the store, checkpoints and results; re-running into it resumes.
        workers: cells run in parallel processes, a count or ``"auto"`` (results identical to
            ``workers=1``; see :func:`run_experiments`).
        executor: ``"local"`` (processes on this machine) or ``"ray"``.
        address: Ray cluster address for ``executor="ray"``.
        threads: torch intra-op threads of every cell (default 1; recorded with the run; see
            :func:`run_experiments`).
        gpus_per_cell: fraction of a GPU per cell on CUDA (see :func:`run_experiments`).
        train_fn: train each round with this function (or ``"package.module:function"``) instead of
            activews' train-to-target loop: a shortcut for ``config``'s ``train_fn`` field, which then
            holds it (it is part of the run's config: recorded, and compared when resuming). See
            :class:`~activews.engine.step.TrainHooks` for its contract.

    Returns:
        A :class:`BenchResult` with per-round records and the per-arm summary.
    """
    if train_fn is not None:
        config = _with_train_fn(config, train_fn)
    return run_experiments(
        [("", config)],
        output=output,
        datasets={0: dataset} if dataset is not None else None,
        progress=progress,
        workers=workers,
        executor=executor,
        address=address,
        threads=threads,
        gpus_per_cell=gpus_per_cell,
    )[0]


def _with_train_fn(config: BenchConfig, train_fn: TrainFn | str) -> BenchConfig:
    """``config`` with ``train_fn`` set; refused when the config already names another one."""
    new = config.replace(train_fn=train_fn)
    if config.train_fn is not None and (
        new.train_fn != config.train_fn or new.train_function is not config.train_function
    ):
        raise ActivewsError(
            f"run_bench(train_fn=...) gives {new.train_fn!r} but the config already has train_fn="
            f"{config.train_fn!r}; give it in one place"
        )
    return new
