"""One arm: a strategy run through the whole stream for one seed, resumable from per-round checkpoints.

Arms with the same seed share the train/test split, the round-0 model draw, the round-0 labeled set
and (for passive streams) the arrival order, so their differences are paired. In active streams each
arm selects its own examples with its own model, so arms see different data from round 1 on.

After every finished round the arm can save a checkpoint (model weights, labeled set, every random
generator's state, optimizer and strategy state, the records so far). Resuming from it continues with
exactly the numbers an uninterrupted run would have produced (on CPU).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from activews.data import Dataset
from activews.diagnostics import Counterfactual, make_diagnostics
from activews.engine.checkpoint import ArmCheckpoint, cell_identity
from activews.engine.config import ArmSpec, BenchConfig
from activews.engine.setup import derive_seed, make_stream, make_tasks, resolve_device, train_config
from activews.engine.step import RoundStep
from activews.errors import ActivewsError
from activews.strategies import make_strategy
from activews.streams import ModelView, Round
from activews.streams.replay import Replay
from activews.training import autocast, evaluate, make_optimizer

__all__ = ["ProgressEvent", "ProgressFn", "run_arm"]

log = logging.getLogger(__name__)

# Independent random streams derived from one seed; the numbers only name the purpose.
_MODEL0, _STREAM, _TRAIN, _INIT, _COUNTERFACTUAL, _TASKS, _REPLAY = 0, 1, 2, 3, 4, 5, 6


def _generator(seed: int, purpose: int) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, purpose))


@dataclass(frozen=True)
class ProgressEvent:
    """Reported to a ``progress`` callback.

    ``kind`` is ``"start"`` (once per run, after validation: ``round`` = rounds already stored,
    ``num_rounds`` = rounds in the whole run, ``record`` = how the run executes: ``workers``,
    ``threads``, ``devices``, and on an accelerator ``cell_memory`` (bytes) and ``memory`` (text); a
    ``warning`` when the run may oversubscribe the cores or the device's memory), ``"arm_start"``,
    ``"round_end"`` (``record`` holds the round's row) or ``"arm_end"``.
    ``strategy`` is the arm's label (the strategy name, or ``name[key=value]`` for a sweep variant).
    """

    kind: str
    strategy: str
    seed: int
    round: int
    num_rounds: int
    record: dict[str, Any] | None = None


ProgressFn = Callable[[ProgressEvent], None]


def run_arm(
    config: BenchConfig,
    dataset: Dataset,
    strategy: str | ArmSpec,
    seed: int,
    *,
    progress: ProgressFn | None = None,
    checkpoint: str | Path | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run one arm through the whole stream for one seed; one record per round.

    Args:
        config: the bench configuration (stream, model, training).
        dataset: the data (see :func:`load_bench_dataset`).
        strategy: an arm label of ``config`` (e.g. ``"warm"``) or an :class:`ArmSpec`.
        seed: the arm's seed.
        progress: receives :class:`ProgressEvent` s.
        checkpoint: a file path; if it exists the arm resumes after its last finished round, and a
            checkpoint is written there after every round (the one before is kept as
            ``<name>.prev<suffix>`` until the arm ends). A checkpoint that is damaged (fails its checksum),
            unreadable, or of another cell (arm, strategy, seed or config) is ignored with a warning,
            and the arm continues from the previous one, or from round 0.
        on_record: called with each new round's record, after its checkpoint is written.

    Returns:
        All of the arm's records, restored ones included, in round order.

    Raises:
        ActivewsError: if a checkpoint cannot be written (disk full, file-size limit, ...).
    """
    spec = strategy if isinstance(strategy, ArmSpec) else config.arm_spec(strategy)
    device = resolve_device(config.device)
    strat = make_strategy(spec.strategy, spec.params)
    train_cfg = train_config(config, dataset, device)
    amp = autocast(device, train_cfg.precision)
    x_train, y_train = dataset.x_train.to(device), dataset.y_train.to(device)
    x_test, y_test = dataset.x_test.to(device), dataset.y_test.to(device)

    stream_gen, train_gen, init_gen = (
        _generator(seed, _STREAM),
        _generator(seed, _TRAIN),
        _generator(seed, _INIT),
    )
    # The counterfactual models draw from their own generator, so the arm's numbers do not depend on it.
    counter_gen = _generator(seed, _COUNTERFACTUAL)
    # A shifting stream: the pool transformed task by task, one evaluation set per task (same seed, same
    # tasks for every arm: a paired comparison).
    tasks = make_tasks(config, dataset, _generator(seed, _TASKS))
    evals: list[tuple[torch.Tensor, torch.Tensor]] = []
    if tasks is not None:
        x_train, y_train = tasks.x_train.to(device), tasks.y_train.to(device)
        evals = [(ev.x.to(device), ev.y.to(device)) for ev in tasks.evals]
    stream = make_stream(config, len(y_train), stream_gen, tasks)
    replay = Replay(config.replay, _generator(seed, _REPLAY))

    def draw_model(draw: int) -> nn.Module:
        return config.build_model(dataset.input_shape, dataset.num_classes, seed=draw, device=device)

    def fresh_model() -> nn.Module:
        return draw_model(int(torch.randint(0, 2**62, (1,), generator=init_gen)))

    counterfactual = (
        Counterfactual(draw_model, train_cfg, x_test, y_test, counter_gen) if config.counterfactual else None
    )
    # One step for every round; its diagnostics add their fields in a fixed order (see make_diagnostics).
    step = RoundStep(
        strat,
        train_cfg,
        diagnostics=make_diagnostics(
            config.diagnostics, batch_size=train_cfg.eval_batch_size, counterfactual=counterfactual
        ),
        first_round_epochs=config.first_round_epochs,
        name=spec.strategy,
        train_fn=config.train_function,
    )

    model = config.build_model(
        dataset.input_shape, dataset.num_classes, seed=derive_seed(seed, _MODEL0), device=device
    )
    if train_cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    initial_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer: torch.optim.Optimizer | None = None
    records: list[dict[str, Any]] = []
    prev: Round | None = None
    ckpt = (
        ArmCheckpoint(checkpoint, cell_identity(config, spec.label, spec.strategy, spec.params, seed))
        if checkpoint is not None
        else None
    )
    saved = ckpt.load() if ckpt is not None else None
    if saved is not None:
        try:
            model.load_state_dict(saved["model"])
        except RuntimeError as exc:  # same config, other architecture: a factory recorded by name only
            raise ActivewsError(
                f"checkpoint {str(checkpoint)!r} holds another architecture than --model {config.model!r} "
                f"builds ({str(exc).strip().splitlines()[-1].strip()}); resume with the factory the run "
                "used, or choose another --output"
            ) from None
        for gen, key in ((stream_gen, "gen_stream"), (train_gen, "gen_train"), (init_gen, "gen_init")):
            gen.set_state(saved[key])
        if "gen_counter" in saved:
            counter_gen.set_state(saved["gen_counter"])
        if "replay" in saved:
            replay.load_state_dict(saved["replay"])
        strat.load_state_dict(saved["strategy"])
        records = list(saved["records"])
        prev = Round(int(saved["round"]), saved["labeled"], saved["new"])
        if saved["optimizer"] is not None:
            optimizer = make_optimizer(model, train_cfg)
            optimizer.load_state_dict(saved["optimizer"])
        log.info("%s seed %d: resumed after round %d", spec.label, seed, prev.index)

    if progress:
        progress(ProgressEvent("arm_start", spec.label, seed, len(records), stream.num_rounds))
    cum_steps = records[-1]["cumulative_steps"] if records else 0
    cum_seconds = records[-1]["cumulative_seconds"] if records else 0.0
    for r in range(len(records), stream.num_rounds):
        t_select = time.perf_counter()
        if prev is None:
            rnd = stream.first()
        else:
            with amp:
                rnd = stream.next(prev, ModelView(model, x_train, batch_size=train_cfg.eval_batch_size))
        select_seconds = time.perf_counter() - t_select if prev is not None else 0.0
        continual: dict[str, Any] = {}
        if tasks is not None:
            continual["task"] = stream.task_of_round(r)  # type: ignore[attr-defined]
            # Average online accuracy (Kumar et al.): the previous round's model on the examples that
            # just arrived, before the strategy or training touches it.
            new = rnd.new.to(device)
            with amp:
                continual["online_accuracy"] = (
                    evaluate(model, x_train[new], y_train[new], train_cfg.eval_batch_size)[0]
                    if prev is not None
                    else None
                )
        train_idx, new_mask = replay.train_set(rnd)
        if replay.capacity is not None:
            continual["n_train"] = len(train_idx)
        train_idx = train_idx.to(device)
        x_l, y_l = x_train[train_idx], y_train[train_idx]
        result = step.run(
            model,
            x_l,
            y_l,
            round_index=r,
            fresh_model=fresh_model,
            initial_state=initial_state,
            init_generator=init_gen,
            train_generator=train_gen,
            device=device,
            new_mask=new_mask.to(device),
            optimizer=optimizer,
        )
        model, optimizer, stats = result.model, result.optimizer, result.stats
        diag = dict(result.fields)
        if config.stream != "passive":  # arms select their own data: keep what each round added
            diag["new_indices"] = rnd.new.tolist()
        with amp:
            if tasks is None:
                test_acc, test_loss = evaluate(model, x_test, y_test, train_cfg.eval_batch_size)
            else:
                test_acc, test_loss, scores = _task_scores(
                    model, evals, continual["task"], train_cfg.eval_batch_size
                )
                continual |= scores
        cum_steps += stats.steps
        cum_seconds += stats.seconds
        record = {
            "arm": spec.label,
            "strategy": spec.strategy,
            "seed": seed,
            "round": r,
            "n_labeled": rnd.n_labeled,
            "n_new": rnd.n_new,
            **continual,
            "test_accuracy": test_acc,
            "test_loss": test_loss,
            "train_accuracy": stats.train_accuracy,
            "train_loss": stats.train_loss,
            "stop_reason": stats.stop_reason,
            "steps": stats.steps,
            "epochs": stats.epochs,
            "seconds": stats.seconds,
            "init_seconds": result.init_seconds,
            "select_seconds": select_seconds,
            "cumulative_steps": cum_steps,
            "cumulative_seconds": cum_seconds,
        } | diag
        records.append(record)
        prev = rnd
        if ckpt is not None:
            ckpt.save(
                {
                    "round": r,
                    "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "optimizer": optimizer.state_dict() if train_cfg.keep_optimizer_state else None,
                    "labeled": rnd.labeled.cpu(),
                    "new": rnd.new.cpu(),
                    "gen_stream": stream_gen.get_state(),
                    "gen_train": train_gen.get_state(),
                    "gen_init": init_gen.get_state(),
                    "gen_counter": counter_gen.get_state(),
                    "replay": replay.state_dict(),
                    "strategy": strat.state_dict(),
                    "records": records,
                },
            )
        if on_record is not None:
            on_record(record)
        log.info("%s seed %d round %d: acc %.4f, %d steps", spec.label, seed, r, test_acc, stats.steps)
        if progress:
            progress(ProgressEvent("round_end", spec.label, seed, r, stream.num_rounds, record))
    if ckpt is not None:
        ckpt.discard_previous()  # the newest checkpoint holds every round now
    if progress:
        progress(ProgressEvent("arm_end", spec.label, seed, stream.num_rounds - 1, stream.num_rounds))
    return records


def _task_scores(
    model: nn.Module, evals: list[tuple[torch.Tensor, torch.Tensor]], task: int, batch_size: int
) -> tuple[float, float, dict[str, Any]]:
    """A shifting stream's scores after a round: accuracy and loss on the pooled evaluation sets of the
    tasks seen so far (the round's ``test_accuracy``/``test_loss``), and the continual fields: accuracy
    on each task's set (``task_accuracies``, every task, unseen ones too), on the current task
    (``task_accuracy``) and their mean over the tasks seen (``seen_accuracy``)."""
    per_task = [evaluate(model, x, y, batch_size) for x, y in evals]
    sizes = [len(y) for _, y in evals[: task + 1]]
    seen = per_task[: task + 1]
    total = max(1, sum(sizes))
    accuracy = sum(acc * n for (acc, _), n in zip(seen, sizes, strict=True)) / total
    loss = sum(ls * n for (_, ls), n in zip(seen, sizes, strict=True)) / total
    accuracies = [acc for acc, _ in per_task]
    fields = {
        "task_accuracy": accuracies[task],
        "seen_accuracy": sum(accuracies[: task + 1]) / (task + 1),
        "task_accuracies": accuracies,
    }
    return accuracy, loss, fields
