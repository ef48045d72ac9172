"""Setting up a bench before anything trains: seeds, devices, the dataset, the stream and the checks
that a configuration fits its data and device (all of them raise before any training starts)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from activews.data import Dataset, load_dataset
from activews.engine.config import CHANNELS_LAST_ON_CPU, FP16_ON_CPU, BenchConfig
from activews.engine.resources import check_gpus_per_cell
from activews.errors import ActivewsError
from activews.strategies import make_strategy
from activews.streams import STREAMS, Stream
from activews.streams.replay import check_buffer
from activews.streams.shifts import Shift, Tasks, TaskStream, get_shift
from activews.training import TrainConfig, compile_problem, uses_channels_last

__all__ = [
    "check_devices",
    "check_fits",
    "dataset_fingerprint",
    "derive_seed",
    "load_bench_dataset",
    "make_shift",
    "make_stream",
    "make_tasks",
    "resolve_device",
    "train_config",
]


def derive_seed(seed: int, *purpose: int) -> int:
    """A 63-bit seed for ``purpose`` derived from ``seed`` (independent streams, reproducible).

    ``purpose`` is one or more integers naming the stream (an arm uses one: model, stream, training,
    ...; :class:`~activews.sklearn.WarmStartClassifier` two: the fit's index and the stream). Only the
    seed's low 32 bits count (seeds lie in ``0 <= seed < 2**32``).
    """
    entropy = [int(seed) & 0xFFFFFFFF, *(int(p) for p in purpose)]
    return int(np.random.SeedSequence(entropy).generate_state(2, np.uint64)[0] >> np.uint64(1))


def resolve_device(name: Any, fix: str = "use --device cpu or auto") -> torch.device:
    """``auto`` -> CUDA if available, else CPU; a one-line error naming ``fix`` for a bad or missing device.

    ``fix`` is how the caller's user changes the device (the CLI's flag, or an estimator's parameter).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ActivewsError(
            f"device {name!r} is not a torch device (cpu, cuda, cuda:N, mps or auto); {fix}"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ActivewsError(f"device {name!r} requested but CUDA is not available; {fix}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ActivewsError(f"device 'mps' requested but MPS is not available; {fix}")
    return device


def make_stream(
    config: BenchConfig, pool_size: int, gen: torch.Generator, tasks: Tasks | None = None
) -> Stream:
    """The configured stream over a pool of ``pool_size`` examples (see :meth:`Stream.from_config`); with
    ``tasks`` (a shifting stream), the stream run task after task over the tasks' parts."""
    stream = STREAMS.get(config.stream)
    if tasks is None:
        return stream.from_config(config, pool_size, gen)
    return TaskStream(stream, tasks.parts, config, pool_size, gen)


def labeled_total(stream: Stream) -> int | None:
    """Examples the whole stream labels, for the built-in streams (None when the stream does not say)."""
    inner = stream.inner if isinstance(stream, TaskStream) else [stream]
    sizes = [getattr(s, "sizes", None) for s in inner]
    return None if any(not z for z in sizes) else sum(z[-1] for z in sizes)  # type: ignore[index]


def make_shift(config: BenchConfig, num_classes: int) -> Shift | None:
    """The configured shift (None for the stationary stream), its task count resolved: ``--tasks``, else
    ``classes / classes_per_task`` (default 2) for shifts that split the classes, else one per round."""
    if config.shift == "none":
        return None
    cls = get_shift(config.shift)
    if not cls.splits_classes:
        return cls(config.tasks if config.tasks is not None else config.rounds)
    per = config.classes_per_task
    if config.tasks is None:  # neither given: 2 classes per task
        per = per or 2
    tasks = config.tasks if config.tasks is not None else max(1, num_classes // per)  # type: ignore[operator]
    return cls(tasks, classes_per_task=per)


def make_tasks(config: BenchConfig, dataset: Dataset, gen: torch.Generator) -> Tasks | None:
    """The dataset made into the configured task sequence, drawn from ``gen`` (None: no shift)."""
    shift = make_shift(config, dataset.num_classes)
    if shift is None:
        return None
    return shift.build(
        dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test, dataset.num_classes, gen
    )


def load_bench_dataset(config: BenchConfig) -> Dataset:
    return load_dataset(
        config.dataset,
        n_examples=config.n_examples,
        test_fraction=config.test_fraction,
        split_seed=config.split_seed,
        data_dir=config.data_dir,
        download=config.download,
        val_split=config.val_split,
    )


def check_fits(config: BenchConfig, dataset: Dataset) -> Stream:
    """Fail before training if the stream, the shift or the model does not fit the dataset; the stream
    (as an arm builds it, seeded with 0) when they fit."""
    gen = torch.Generator().manual_seed(0)
    tasks = make_tasks(config, dataset, gen)
    stream = make_stream(config, len(dataset.y_train), gen, tasks)
    check_buffer(config.replay, labeled_total(stream))
    if config.augment and dataset.x_train.dim() != 4:
        raise ActivewsError(
            f"--augment (random crop + flip) needs image data (C, H, W); {dataset.name} examples have shape "
            f"{tuple(dataset.input_shape)}; drop --augment"
        )
    model = config.build_model(dataset.input_shape, dataset.num_classes)
    if config.model_factory is not None:
        _check_outputs(config, model, dataset)
    stream.check_model(model)  # e.g. bald needs dropout
    for spec in config.arm_specs:
        make_strategy(spec.strategy, spec.params).check_model(model)
    return stream


def _check_outputs(config: BenchConfig, model: torch.nn.Module, dataset: Dataset) -> None:
    """A user's factory must build a model with one output per class: checked on one example."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(dataset.x_train[:1].to(next(model.parameters(), torch.empty(0)).device))
    except Exception as exc:
        raise ActivewsError(
            f"--model {config.model!r}: the model fails on one {dataset.name} example of shape "
            f"{tuple(dataset.input_shape)}: {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}; "
            "check that the factory builds for input_shape"
        ) from exc
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, dataset.num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ActivewsError(
            f"--model {config.model!r}: the model's output for one example is {got}; it must be logits of "
            f"shape (batch, num_classes) = (1, {dataset.num_classes})"
        )


def train_config(config: BenchConfig, dataset: Dataset, device: torch.device) -> TrainConfig:
    """The round's training settings, with ``channels_last`` resolved: when not set, on for image models
    (input ``(C, H, W)`` and a ``Conv2d``) on CUDA, where it runs convolutions in their fastest layout."""
    cfg = config.train
    if config.channels_last is None:
        auto = device.type == "cuda" and _image_model(config, dataset)
        return cfg.model_copy(update={"channels_last": auto}) if auto else cfg
    if config.channels_last and not _image_model(config, dataset):
        return cfg.model_copy(update={"channels_last": False})  # nothing to lay out: a no-op
    return cfg


def _image_model(config: BenchConfig, dataset: Dataset) -> bool:
    shape = tuple(dataset.input_shape)
    if len(shape) != 3:
        return False
    # A builder that cannot run on the meta device keeps the default layout.
    model = config.meta_model(shape, dataset.num_classes)
    return model is not None and uses_channels_last(model, shape)


def dataset_fingerprint(dataset: Dataset) -> str:
    """SHA-256 over the dataset's tensors: a resumed run must see the same data."""
    h = hashlib.sha256()
    for t in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        h.update(str((tuple(t.shape), str(t.dtype))).encode())
        h.update(t.contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def check_devices(configs: dict[int, BenchConfig], executor: str, gpus_per_cell: float | None) -> list[str]:
    """Each experiment's device (resolved here, before any data loads), checked against its settings.

    Ray tasks may run on GPU nodes this machine is not: with ``executor="ray"`` a device is taken as
    written (``auto`` as what it resolves to here).
    """
    devices = []
    for cfg in configs.values():
        if executor == "ray" and cfg.device != "auto":
            device = torch.device(cfg.device)
        else:
            device = resolve_device(cfg.device)
        if cfg.precision == "fp16" and device.type == "cpu":
            raise ActivewsError(FP16_ON_CPU)
        if cfg.precision == "bf16" and device.type == "cuda" and torch.cuda.is_available():
            if not torch.cuda.is_bf16_supported():
                raise ActivewsError(
                    f"--precision bf16: this GPU ({torch.cuda.get_device_name(device)}) has no bfloat16 "
                    "arithmetic; use --precision fp16 or fp32"
                )
        if cfg.channels_last and device.type == "cpu":
            raise ActivewsError(CHANNELS_LAST_ON_CPU)
        if cfg.compile and (problem := compile_problem(device)):
            raise ActivewsError(problem)
        devices.append(str(device))
    check_gpus_per_cell(gpus_per_cell, devices)
    return devices
