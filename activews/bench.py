"""Run arms (stream x strategy x seed) and measure the warm-start penalty and compute ratios.

An *arm* is one strategy run through the whole stream for one seed. Arms with the same seed share the
train/test split, the round-0 model draw, the round-0 labeled set and (for passive streams) the arrival
order, so their differences are paired. In active streams each arm selects its own examples with its
own model, so arms see different data from round 1 on: the gap then mixes an initialization effect
and a selection effect.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from activews.config import BenchConfig
from activews.data import Dataset, load_dataset
from activews.errors import ActivewsError
from activews.models import build_model, model_params
from activews.strategies import InitContext, make_strategy
from activews.streams import STREAMS, Round, Stream
from activews.training import evaluate, make_optimizer, predict_proba, train_to_criterion

__all__ = ["BenchResult", "ProgressEvent", "run_bench", "run_arm", "summarize", "resolve_device", "make_stream"]

log = logging.getLogger(__name__)

# Independent random streams derived from one seed; the numbers only name the purpose.
_MODEL0, _STREAM, _TRAIN, _INIT = 0, 1, 2, 3


def derive_seed(seed: int, purpose: int) -> int:
    """A 63-bit seed for ``purpose`` derived from the arm seed (independent streams, reproducible)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, purpose]).generate_state(2, np.uint64)[0] >> 1)


def generator(seed: int, purpose: int) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, purpose))


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available, else CPU; a clear error if a requested device is missing."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ActivewsError(f"device {name!r} requested but CUDA is not available; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ActivewsError("device 'mps' requested but MPS is not available; use --device cpu or auto")
    return torch.device(name)


@dataclass(frozen=True)
class ProgressEvent:
    """Reported to the ``progress`` callback of :func:`run_bench` / :func:`run_arm`.

    ``kind`` is ``"arm_start"``, ``"round_end"`` (``record`` holds the round's row) or ``"arm_end"``.
    """

    kind: str
    strategy: str
    seed: int
    round: int
    num_rounds: int
    record: dict[str, Any] | None = None


ProgressFn = Callable[[ProgressEvent], None]


def make_stream(config: BenchConfig, pool_size: int, gen: torch.Generator) -> Stream:
    """The configured stream over a pool of ``pool_size`` examples."""
    cls = STREAMS.get(config.stream)
    if config.stream == "passive":
        return cls(pool_size, gen, initial=config.initial, query_size=config.query_size,
                   rounds=config.rounds, schedule=config.schedule)
    if config.stream == "active":
        return cls(pool_size, gen, initial=config.initial, query_size=config.query_size,
                   rounds=config.rounds, acquisition=config.acquisition, score_batch=config.score_batch)
    return cls(pool_size, gen)


def load_bench_dataset(config: BenchConfig) -> Dataset:
    return load_dataset(config.dataset, n_examples=config.n_examples,
                        test_fraction=config.test_fraction, split_seed=config.split_seed)


def run_arm(
    config: BenchConfig,
    dataset: Dataset,
    strategy_name: str,
    seed: int,
    *,
    progress: ProgressFn | None = None,
) -> list[dict[str, Any]]:
    """Run one strategy through the whole stream for one seed; one record per round."""
    device = resolve_device(config.device)
    strategy = make_strategy(strategy_name, config.params.get(strategy_name))
    mparams = model_params(config.model, config.model_params)
    train_cfg = config.train
    x_train, y_train = dataset.x_train.to(device), dataset.y_train.to(device)
    x_test, y_test = dataset.x_test.to(device), dataset.y_test.to(device)

    stream = make_stream(config, len(y_train), generator(seed, _STREAM))
    train_gen, init_gen = generator(seed, _TRAIN), generator(seed, _INIT)

    def fresh_model() -> nn.Module:
        draw = int(torch.randint(0, 2**62, (1,), generator=init_gen))
        return build_model(config.model, dataset.input_shape, dataset.num_classes, mparams, seed=draw, device=device)

    model = build_model(config.model, dataset.input_shape, dataset.num_classes, mparams,
                        seed=derive_seed(seed, _MODEL0), device=device)
    initial_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    holder = {"model": model}

    def proba_for(_prev: Round) -> Callable[[torch.Tensor], torch.Tensor]:
        current = holder["model"]
        return lambda idx: predict_proba(current, x_train[idx.to(device)], train_cfg.eval_batch_size)

    if progress:
        progress(ProgressEvent("arm_start", strategy_name, seed, 0, stream.num_rounds))
    records: list[dict[str, Any]] = []
    optimizer: torch.optim.Optimizer | None = None
    cum_steps, cum_seconds = 0, 0.0
    rounds = stream.rounds(proba_for)
    while True:
        t_select = time.perf_counter()
        rnd = next(rounds, None)
        select_seconds = time.perf_counter() - t_select
        if rnd is None:
            break
        labeled = rnd.labeled.to(device)
        x_l, y_l = x_train[labeled], y_train[labeled]
        t_init = time.perf_counter()
        if rnd.index > 0:
            ctx = InitContext(rnd.index, fresh_model, initial_state, init_gen, device, x_l, y_l,
                              rnd.new_mask().to(device))
            model = strategy.init_round(holder["model"], ctx)
            if not isinstance(model, nn.Module):
                raise ActivewsError(
                    f"strategy {strategy_name!r}: init_round returned {type(model).__name__}, expected nn.Module"
                )
            holder["model"] = model
        init_seconds = time.perf_counter() - t_init
        model = holder["model"]
        optimizer = _optimizer_for(model, optimizer, train_cfg)
        stats, optimizer = train_to_criterion(model, x_l, y_l, train_cfg, train_gen, optimizer=optimizer)
        test_acc, test_loss = evaluate(model, x_test, y_test, train_cfg.eval_batch_size)
        cum_steps += stats.steps
        cum_seconds += stats.seconds
        record = {
            "strategy": strategy_name,
            "seed": seed,
            "round": rnd.index,
            "n_labeled": rnd.n_labeled,
            "n_new": rnd.n_new,
            "test_accuracy": test_acc,
            "test_loss": test_loss,
            "train_accuracy": stats.train_accuracy,
            "train_loss": stats.train_loss,
            "stop_reason": stats.stop_reason,
            "steps": stats.steps,
            "epochs": stats.epochs,
            "seconds": stats.seconds,
            "init_seconds": init_seconds,
            "select_seconds": select_seconds if rnd.index > 0 else 0.0,
            "cumulative_steps": cum_steps,
            "cumulative_seconds": cum_seconds,
        }
        records.append(record)
        log.info("%s seed %d round %d: acc %.4f, %d steps", strategy_name, seed, rnd.index, test_acc, stats.steps)
        if progress:
            progress(ProgressEvent("round_end", strategy_name, seed, rnd.index, stream.num_rounds, record))
    if progress:
        progress(ProgressEvent("arm_end", strategy_name, seed, stream.num_rounds - 1, stream.num_rounds))
    return records


def _optimizer_for(model: nn.Module, previous: torch.optim.Optimizer | None, cfg) -> torch.optim.Optimizer:
    """A new optimizer each round (the paper's protocol) unless ``keep_optimizer_state`` is set."""
    fresh = make_optimizer(model, cfg)
    if cfg.keep_optimizer_state and previous is not None:
        # Parameters may be new tensors (e.g. a fresh model); the state maps by position.
        fresh.load_state_dict(previous.state_dict())
    return fresh


@dataclass
class BenchResult:
    """What :func:`run_bench` returns.

    Attributes:
        config: the configuration that was run.
        records: one dict per (strategy, seed, round) with accuracy, loss and compute.
        summary: one dict per arm (strategy): ``strategy``, ``final_accuracy``, ``penalty``,
            ``penalty_ci``, ``compute_ratio``, ``time_ratio``, ``seconds``, ... (see ``docs/concepts.md``).
        seconds: wall time of the whole bench.
    """

    config: BenchConfig
    records: list[dict[str, Any]]
    summary: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def arm(self, strategy: str) -> dict[str, Any]:
        """The summary dict of ``strategy``."""
        for row in self.summary:
            if row["strategy"] == strategy:
                return row
        raise KeyError(f"no arm {strategy!r} in this result; arms: {[r['strategy'] for r in self.summary]}")

    def to_dict(self) -> dict[str, Any]:
        """``{"config": ..., "arms": [...summary dicts...]}`` (what ``--json`` writes)."""
        return {"config": self.config.model_dump(mode="json"), "arms": self.summary}


def run_bench(
    config: BenchConfig,
    *,
    dataset: Dataset | None = None,
    progress: ProgressFn | None = None,
) -> BenchResult:
    """Run every arm of ``config`` (the reference arms ``random`` and ``warm`` included) on every seed.

    Args:
        config: what to run; see :class:`BenchConfig`.
        dataset: use these tensors instead of loading ``config.dataset`` (e.g. from :func:`from_arrays`).
        progress: called with a :class:`ProgressEvent` at the start and end of each arm and each round.

    Returns:
        A :class:`BenchResult` with per-round records and the per-arm summary.
    """
    start = time.perf_counter()
    if dataset is None:
        dataset = load_bench_dataset(config)
    check_fits(config, dataset)
    records: list[dict[str, Any]] = []
    for seed in config.seeds:
        for name in config.arms:
            records.extend(run_arm(config, dataset, name, seed, progress=progress))
    return BenchResult(config, records, summarize(records, config.arms), time.perf_counter() - start)


def check_fits(config: BenchConfig, dataset: Dataset) -> None:
    """Fail before training if the stream or the model does not fit the dataset."""
    make_stream(config, len(dataset.y_train), torch.Generator().manual_seed(0))
    build_model(config.model, dataset.input_shape, dataset.num_classes, config.model_params)


# ---------------------------------------------------------------------------------------------- summary


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, list[float] | None]:
    """Mean and two-sided Student-t confidence interval (``None`` with fewer than 2 values)."""
    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean())
    if len(arr) < 2:
        return mean, None
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr)))
    return mean, [mean - half, mean + half]


def _area(accuracies: Sequence[float]) -> float:
    """Area under the accuracy-per-round curve, normalized by the number of intervals (in [0, 1])."""
    a = np.asarray(accuracies, dtype=float)
    return float(a[0]) if len(a) == 1 else float(np.trapezoid(a) / (len(a) - 1))


def summarize(records: Sequence[dict[str, Any]], arms: Sequence[str], reference: str = "random") -> list[dict[str, Any]]:
    """Per-arm summary: accuracy, area, paired penalty vs ``reference`` and compute ratios, with 95% CIs.

    Penalties and ratios are paired by seed (and by round for the per-round penalty); seeds missing
    from either arm are left out of the pairing.
    """
    by_arm: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for rec in records:
        by_arm.setdefault(rec["strategy"], {}).setdefault(rec["seed"], []).append(rec)
    for seeds in by_arm.values():
        for rows in seeds.values():
            rows.sort(key=lambda r: r["round"])
    ref = by_arm.get(reference, {})
    summary = []
    for name in arms:
        seeds = by_arm.get(name)
        if not seeds:
            continue
        paired = [s for s in seeds if s in ref and len(ref[s]) == len(seeds[s])]
        final = [rows[-1]["test_accuracy"] for rows in seeds.values()]
        areas = [_area([r["test_accuracy"] for r in rows]) for rows in seeds.values()]
        acc_mean, acc_ci = mean_ci(final)
        auc_mean, auc_ci = mean_ci(areas)
        pen = [ref[s][-1]["test_accuracy"] - seeds[s][-1]["test_accuracy"] for s in paired]
        pen_auc = [_area([r["test_accuracy"] for r in ref[s]]) - _area([r["test_accuracy"] for r in seeds[s]])
                   for s in paired]
        steps_ratio = [seeds[s][-1]["cumulative_steps"] / max(1, ref[s][-1]["cumulative_steps"]) for s in paired]
        time_ratio = [seeds[s][-1]["cumulative_seconds"] / max(1e-12, ref[s][-1]["cumulative_seconds"])
                      for s in paired]
        n_rounds = min(len(rows) for rows in seeds.values())
        per_round = []
        for r in range(n_rounds):
            diffs = [ref[s][r]["test_accuracy"] - seeds[s][r]["test_accuracy"] for s in paired]
            accs = [rows[r]["test_accuracy"] for rows in seeds.values()]
            p_mean, p_ci = mean_ci(diffs) if diffs else (float("nan"), None)
            a_mean, a_ci = mean_ci(accs)
            per_round.append({
                "round": r,
                "n_labeled": float(np.mean([rows[r]["n_labeled"] for rows in seeds.values()])),
                "accuracy": a_mean, "accuracy_ci": a_ci,
                "penalty": p_mean, "penalty_ci": p_ci,
            })
        all_rows = [row for rows in seeds.values() for row in rows]
        summary.append({
            "strategy": name,
            "seeds": sorted(seeds),
            "final_accuracy": acc_mean,
            "final_accuracy_ci": acc_ci,
            "auc": auc_mean,
            "auc_ci": auc_ci,
            "penalty": mean_ci(pen)[0] if pen else None,
            "penalty_ci": mean_ci(pen)[1] if pen else None,
            "auc_penalty": mean_ci(pen_auc)[0] if pen_auc else None,
            "auc_penalty_ci": mean_ci(pen_auc)[1] if pen_auc else None,
            "compute_ratio": mean_ci(steps_ratio)[0] if steps_ratio else None,
            "compute_ratio_ci": mean_ci(steps_ratio)[1] if steps_ratio else None,
            "time_ratio": mean_ci(time_ratio)[0] if time_ratio else None,
            "time_ratio_ci": mean_ci(time_ratio)[1] if time_ratio else None,
            "steps": float(np.mean([rows[-1]["cumulative_steps"] for rows in seeds.values()])),
            "seconds": float(np.mean([rows[-1]["cumulative_seconds"] for rows in seeds.values()])),
            "reached_target": float(np.mean([row["stop_reason"] == "target" for row in all_rows])),
            "per_round": per_round,
        })
    return summary
