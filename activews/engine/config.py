"""``BenchConfig``: everything a bench run needs, validated before any data loads.

Its fields mirror the CLI flags of ``activews bench`` one to one (``--query-size`` is ``query_size``),
so a user never learns two vocabularies.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from torch import nn

from activews.data import DATASETS
from activews.diagnostics import check_diagnostics
from activews.errors import ActivewsError, format_validation_error
from activews.models import MODELS, build_from_factory, build_model, meta_model, model_params
from activews.plugins import import_reference, is_reference, reference_of
from activews.strategies import get_strategy
from activews.streams import ACQUISITIONS, STREAMS, make_acquisition
from activews.streams.passive import schedule_sizes
from activews.streams.replay import check_buffer
from activews.streams.selective import NEEDS_BUDGET
from activews.streams.shifts import SHIFTS, get_shift, rounds_per_task
from activews.training import TrainConfig
from activews.validation import Settings

__all__ = [
    "ArmSpec",
    "BenchConfig",
    "CALLABLE_FIELDS",
    "FLAG_NAMES",
    "REFERENCE_ARMS",
    "SEED_LIMIT",
    "MAX_SEED_COUNT",
    "flag_name",
]

REFERENCE_ARMS = ("random", "warm")
"""Always run: ``random`` is the accuracy reference, ``warm`` the compute reference."""

SEED_LIMIT = 2**32
"""Seeds (and ``split_seed``) lie in ``0 <= seed < 2**32``: an arm's random streams are derived from the
seed's low 32 bits, so two seeds that differ only above them would give identical arms (and a falsely
tight confidence interval)."""

FP16_ON_CPU = (
    "--precision fp16 needs a CUDA device (on CPU, fp16 arithmetic is emulated and slow); use --precision "
    "bf16 or fp32 on CPU, or --device cuda"
)

CHANNELS_LAST_ON_CPU = (
    "--channels-last applies to CUDA devices (on CPU, torch's channels-last convolution backward "
    "corrupts memory for some channel counts); drop --channels-last or use --device cuda"
)

MAX_SEED_COUNT = 10_000
"""The largest seed count ``seeds=N`` accepts (every seed runs every arm through every round)."""

CALLABLE_FIELDS = ("model", "train_fn")
"""Fields that take a user's callable: stored as its ``"package.module:qualname"`` reference (a string,
so that run folders stay JSON), with the object itself kept beside the config in this process."""

_STORED = "stored"
"""Validation context key: the values come from a run store or a worker's task, so a reference is not
imported while validating (it may name a lambda of the process that made the run); it is imported when
the run needs it (:attr:`BenchConfig.model_factory`, :attr:`BenchConfig.train_function`)."""


@dataclass(frozen=True)
class ArmSpec:
    """One arm's strategy: a display ``label``, the registered ``strategy`` name and its ``params``.

    The label is the strategy name, or ``name[key=value,...]`` for a variant from ``param_grid``.
    """

    label: str
    strategy: str
    params: dict[str, Any] = field(default_factory=dict)


class _BenchSettings(Settings):
    """The fields of :class:`BenchConfig` besides the training ones: what is compared, the data and model,
    the stream, per-round measurements and the device (one declaration each, as for the training fields
    in :class:`~activews.training.TrainConfig`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    # what is compared
    stream: str = Field("active", description="what decides which examples are labeled each round")
    strategies: tuple[str, ...] = Field(
        ("shrink_perturb",), description="strategies to compare besides the reference arms random and warm"
    )
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-strategy parameters")
    param_grid: dict[str, dict[str, list[Any]]] = Field(
        default_factory=dict,
        description="per-strategy parameter lists, one arm per combination of values (labeled like "
        "shrink_perturb[shrink=0.2])",
    )
    seeds: tuple[int, ...] = Field(
        (0, 1, 2, 3),
        description=f"number of seeds N (seeds 0..N-1, at most {MAX_SEED_COUNT}) or a list of seeds such as "
        "0,1,2, each in 0 <= seed < 2**32",
    )
    # data
    dataset: str = Field(
        "mnist1d", description="a registered dataset, or a path to an .npz file with arrays X and y"
    )
    data_dir: str | None = Field(
        None,
        description="folder with the files of a torchvision dataset (cifar10, svhn, mnist, ...; see "
        "docs/datasets.md)",
    )
    download: bool = Field(False, description="let torchvision download the dataset into data_dir")
    val_split: bool = Field(
        False,
        description="evaluate on a seeded 1/3 of the official training set (the paper's validation split) "
        "instead of the official test set",
    )
    n_examples: int | None = Field(None, ge=2, description="examples to use (default: the dataset's own)")
    test_fraction: float = Field(
        0.3, gt=0, lt=1, description="held-out test fraction of datasets without an official test split"
    )
    split_seed: int = Field(
        0,
        ge=0,
        lt=SEED_LIMIT,
        description="seed of the train/test split (shared by all arms), 0 <= seed < 2**32",
    )
    # model
    model: str = Field(
        "mlp",
        description="the network trained each round: a registered model, or a factory of your own as "
        "package.module:function (in Python, also the callable), called as factory(input_shape, "
        "num_classes, **params) -> torch.nn.Module",
    )
    model_params: dict[str, Any] = Field(
        default_factory=dict,
        description="parameters of the model (a factory gets them as keyword arguments, unchecked)",
    )
    train_fn: str | None = Field(
        None,
        description="a training function of your own instead of training to the target accuracy, as "
        "package.module:function (in Python, also the callable), called each round with (model, x, y, "
        "hooks) (see docs/cli.md)",
    )
    # stream
    rounds: int = Field(7, ge=0, description="number of rounds; 0 = until the pool is used up")
    initial: int = Field(1000, ge=1, description="examples labeled in round 0")
    query_size: int = Field(1000, ge=1, description="examples added per round")
    schedule: tuple[float, ...] | None = Field(
        None, description="passive: labeled fractions per round, e.g. 0.5,1.0"
    )
    acquisition: str = Field(
        "margin", description="how the active and selective streams score unlabeled examples"
    )
    acquisition_params: dict[str, Any] = Field(
        default_factory=dict, description="parameters of the acquisition"
    )
    pool_subsample: int | None = Field(
        None,
        ge=1,
        description="active: choose among a seeded random subset of this many unlabeled examples each round",
    )
    label_fraction: float | None = Field(
        None, gt=0, le=1, description="selective: label this top fraction of each arriving chunk"
    )
    label_threshold: float | None = Field(
        None, description="selective: label arrivals whose acquisition score is at least this"
    )
    label_budget: int | None = Field(
        None, ge=0, description="selective: at most this many labels after round 0, over the whole stream"
    )
    shift: str = Field(
        "none",
        description="how the data change between tasks (none: a stationary stream)",
    )
    tasks: int | None = Field(
        None,
        ge=1,
        description="number of tasks of a shifting stream; --rounds is split evenly between them (default: "
        "one task per round; class_incremental: classes / classes per task)",
    )
    classes_per_task: int | None = Field(
        None, ge=1, description="class_incremental: classes per task (default 2)"
    )
    replay: str = Field(
        "all",
        description="what each round trains on: all (every labeled example, the default), none (only the "
        "round's new examples) or buffer:N (a seeded reservoir of N earlier examples plus the new ones)",
    )
    counterfactual: bool = Field(
        False,
        description="active/selective: also train a fresh model on each round's labeled set, to split the "
        "gap to random into an initialization part and a selection part",
    )
    score_batch: int = Field(8192, ge=1, description="pool examples scored per forward pass")
    # measurements and device
    first_round_epochs: int | None = Field(
        None,
        ge=0,
        description="train round 0 for exactly this many epochs instead of to the target (early-damage protocol)",
    )
    diagnostics: tuple[str, ...] = Field((), description="per-round measurements to record")
    device: str = Field("cpu", description="cpu | cuda | cuda:N | mps | auto (CUDA when present)")


class BenchConfig(TrainConfig, _BenchSettings):
    """Configuration of a warm-start benchmark.

    The defaults are the built-in benchmark: active margin sampling on MNIST-1D with an MLP
    (40-256-256-10), 1,000 initial labels + 1,000 per round for 7 rounds, Adam lr 1e-3, batch 128,
    each round trained to 99% running training accuracy.

    Its fields are those of ``_BenchSettings`` (stream, data, model, ...) followed by those of
    :class:`~activews.training.TrainConfig`, each declared once there; :attr:`train` is a round's
    ``TrainConfig``. Only ``channels_last`` is declared again: here ``None`` means "automatic".
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    LATER_FIELDS: ClassVar[dict[str, Any]] = {
        "precision": "fp32",
        "channels_last": None,
        "compile": False,
        "train_fn": None,
        "shift": "none",
        "tasks": None,
        "classes_per_task": None,
        "replay": "all",
    }
    """Fields added after runs were first stored, with the value that behaves as runs did before them.

    A stored config without such a field is the same run as one with this value: see :meth:`comparable`.
    """

    channels_last: bool | None = Field(  # a TrainConfig's bool, or None: decided per model and device
        None,
        description="channels-last memory format for image models (default: on for image models on CUDA)",
    )

    _callables: dict[str, tuple[str, Callable[..., Any]]] = PrivateAttr(default_factory=dict)
    """Per field of :data:`CALLABLE_FIELDS`: ``(reference, object)`` given or imported in this process."""

    @model_validator(mode="wrap")
    @classmethod
    def _user_callables(
        cls, data: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> BenchConfig:
        """A callable ``model`` or ``train_fn`` becomes its reference (the field's value) and is kept
        beside the config; a reference string is imported here, so a bad one fails before anything runs
        (not when the values come from a run store: see :data:`_STORED`)."""
        given: dict[str, tuple[str, Callable[..., Any]]] = {}
        if isinstance(data, Mapping):
            data = dict(data)
            stored = bool((info.context or {}).get(_STORED))
            for name in CALLABLE_FIELDS:
                value = data.get(name)
                if callable(value):
                    data[name] = reference_of(value)
                    given[name] = (data[name], value)
                elif isinstance(value, str) and not stored and _is_user_reference(name, value):
                    given[name] = (value, import_reference(value, _flag(name), _EXAMPLES[name]))
        config = handler(data)
        if given:
            config._callables = given
        return config

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError("seeds must be a positive count or a list of seeds")
            if value > MAX_SEED_COUNT:
                raise ValueError(
                    f"a count of at most {MAX_SEED_COUNT} seeds, got {value}; give fewer seeds "
                    f"(or a list such as 0,1,2)"
                )
            return tuple(range(value))
        if isinstance(value, (list, tuple)) and not value:
            raise ValueError("give at least one seed")
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [s for s in value if not 0 <= s < SEED_LIMIT]
        if bad:
            raise ValueError(
                f"each seed must be in 0 <= seed < 2**32 (0..{SEED_LIMIT - 1}), got {bad[0]}; pick seeds in that range"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"seeds must be distinct, got {list(value)}")
        return value

    @field_validator("diagnostics", mode="before")
    @classmethod
    def _diagnostic_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        return check_diagnostics(value) if isinstance(value, (list, tuple)) else value

    @field_validator("strategies", mode="before")
    @classmethod
    def _one_strategy(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if value not in ("cpu", "cuda", "auto", "mps") and not re.fullmatch(r"cuda:\d+", value):
            raise ValueError("device must be cpu, cuda, cuda:N, mps or auto")
        return value

    @model_validator(mode="after")
    def _precision(self) -> BenchConfig:
        if self.precision == "fp16" and self.device == "cpu":
            raise ActivewsError(FP16_ON_CPU)
        return self

    @model_validator(mode="after")
    def _names(self) -> BenchConfig:
        for registry, name in ((STREAMS, self.stream), (ACQUISITIONS, self.acquisition)):
            if name not in registry:
                raise ActivewsError(registry.unknown_message(name))
        if not _is_user_reference("model", self.model) and self.model not in MODELS:
            raise ActivewsError(
                MODELS.unknown_message(self.model) + " (or give your own factory as package.module:function)"
            )
        if self.train_fn is not None and self.counterfactual:
            raise ActivewsError(
                "--counterfactual trains its fresh models with activews' own loop, not --train-fn; drop "
                "one of them"
            )
        if self.train_fn is not None and "grad_norms" in self.diagnostics:
            raise ActivewsError(
                "--diagnostics grad_norms watches the steps of activews' own training, not a --train-fn; "
                "drop one of them"
            )
        self._check_acquisition()
        if not self.dataset.endswith(".npz") and self.dataset not in DATASETS:
            raise ActivewsError(
                DATASETS.unknown_message(self.dataset)
                + " (or pass a path to an .npz file with arrays X and y)"
            )
        for name in self.strategy_names:
            get_strategy(name)  # raises with close matches
        for what, table in (("parameters", self.params), ("sweep values", self.param_grid)):
            for name in table:
                if name not in self.strategy_names:
                    raise ActivewsError(
                        f"{what} given for strategy {name!r}, which is not in this run; add --strategy {name}"
                    )
        for name, values in self.param_grid.items():
            for key, options in values.items():
                if not isinstance(options, list) or not options:
                    raise ActivewsError(
                        f"--sweep {name}.{key}: give a non-empty list of values, e.g. 0.2,0.4"
                    )
        for arm in self.arm_specs:
            get_strategy(arm.strategy).parse_params(arm.params)
        labels = [a.label for a in self.arm_specs]
        if len(set(labels)) != len(labels):
            raise ActivewsError(f"arms repeat: {labels}; remove duplicate values from --sweep")
        if self.model in MODELS:  # a factory gets its parameters unchecked
            model_params(self.model, self.model_params)
        fields = type(self).model_fields
        given = [k for k in ("rounds", "initial", "query_size") if getattr(self, k) != fields[k].default]
        if self.schedule is not None and given:
            raise ActivewsError(
                f"--schedule sets the labeled set of every round; drop "
                f"{', '.join('--' + g.replace('_', '-') for g in given)}"
            )
        budget = [
            k for k in ("label_fraction", "label_threshold", "label_budget") if getattr(self, k) is not None
        ]
        if budget and self.stream != "selective":
            raise ActivewsError(
                f"{', '.join('--' + k.replace('_', '-') for k in budget)} applies to the selective stream; "
                f"use --stream selective or drop it"
            )
        if self.stream == "selective" and self.label_fraction is None and self.label_threshold is None:
            raise ActivewsError(NEEDS_BUDGET)
        if self.counterfactual and self.stream == "passive":
            raise ActivewsError(
                "--counterfactual splits the gap of streams that select their data (active, selective); "
                "in a passive stream every arm sees the same data, so the whole gap is initialization"
            )
        if self.schedule is not None and self.stream != "passive":
            raise ActivewsError(
                "--schedule applies to the passive stream; use --stream passive or drop --schedule"
            )
        if self.schedule is not None:
            schedule_sizes(self.schedule, 10**9)  # checks range and order; sizes are checked on the real pool
        self._check_continual()
        return self

    def _check_continual(self) -> None:
        """Shift, tasks and replay, checked before any data loads (what depends on the data: at setup)."""
        if self.shift not in SHIFTS:
            raise ActivewsError(SHIFTS.unknown_message(self.shift))
        shift = get_shift(self.shift)
        if self.classes_per_task is not None and not shift.splits_classes:
            raise ActivewsError(
                f"--classes-per-task applies to shifts that split the classes (class_incremental), not "
                f"{self.shift!r}; drop --classes-per-task"
            )
        if self.shift == "none" and self.tasks not in (None, 1):
            raise ActivewsError(
                f"--tasks {self.tasks} needs a shift between tasks; add --shift permuted_inputs (or another "
                "shift) or drop --tasks"
            )
        if self.shift != "none":
            if self.schedule is not None:
                raise ActivewsError(
                    "--schedule does not apply to a shifting stream; give --rounds, --initial and --query-size"
                )
            if self.stream == "selective":
                raise ActivewsError(
                    "--shift works with the passive and active streams (the selective stream's arrivals span "
                    "the whole pool); use --stream passive or active"
                )
            if self.counterfactual:
                raise ActivewsError(
                    "--counterfactual is not measured on shifting streams yet; drop --counterfactual or --shift"
                )
            if self.tasks is not None:
                rounds_per_task(self.rounds, self.tasks)
            elif self.rounds < 1:
                rounds_per_task(self.rounds, 1)
        check_buffer(self.replay, self._labeled_total())  # also: a one-line error on bad syntax

    def _labeled_total(self) -> int | None:
        """Examples the whole stream labels, when the settings alone say (else None: known at setup)."""
        if self.schedule is not None or self.rounds < 1:
            return None
        if self.shift == "none":
            return self.initial + (self.rounds - 1) * self.query_size
        tasks = self.tasks
        if tasks is None:
            if get_shift(self.shift).splits_classes:
                return None
            tasks = self.rounds  # one task per round
        return tasks * self.initial + (self.rounds - tasks) * self.query_size

    def _check_acquisition(self) -> None:
        """Acquisition parameters and pool subsampling, checked before any data loads."""
        make_acquisition(self.acquisition, self.acquisition_params)  # one-line error on a bad parameter
        if self.pool_subsample is not None and self.stream != "active":
            raise ActivewsError(
                "--pool-subsample applies to the active stream; use --stream active or drop --pool-subsample"
            )
        if self.pool_subsample is not None and self.pool_subsample < self.query_size:
            raise ActivewsError(
                f"--pool-subsample {self.pool_subsample} is smaller than --query-size {self.query_size}; "
                f"raise it to at least {self.query_size}"
            )

    @property
    def strategy_names(self) -> list[str]:
        """The strategies run: the reference arms first, then the requested ones (no duplicates)."""
        return list(dict.fromkeys([*REFERENCE_ARMS, *self.strategies]))

    @property
    def arm_specs(self) -> list[ArmSpec]:
        """Every arm: one per strategy, or one per combination of its ``param_grid`` values."""
        specs = []
        for name in self.strategy_names:
            base = dict(self.params.get(name, {}))
            grid = self.param_grid.get(name, {})
            if not grid:
                specs.append(ArmSpec(name, name, base))
                continue
            keys = list(grid)
            for combo in itertools.product(*(grid[k] for k in keys)):
                label = f"{name}[{','.join(f'{k}={v}' for k, v in zip(keys, combo, strict=True))}]"
                specs.append(ArmSpec(label, name, base | dict(zip(keys, combo, strict=True))))
        return specs

    @property
    def arms(self) -> list[str]:
        """Labels of every arm, reference arms first."""
        return [a.label for a in self.arm_specs]

    def arm_spec(self, label: str) -> ArmSpec:
        for spec in self.arm_specs:
            if spec.label == label:
                return spec
        raise ActivewsError(f"no arm {label!r} in this config; arms: {', '.join(self.arms)}")

    @property
    def num_rounds(self) -> int:
        """Rounds per arm: ``len(schedule)`` or ``rounds`` (0 for "until the pool is used up"; the stream
        knows the count once the pool size is known)."""
        return len(self.schedule) if self.schedule else self.rounds

    @property
    def train(self) -> TrainConfig:
        """How each round of this run trains (``channels_last`` unresolved counts as off; the engine
        resolves it per model and device)."""
        values = {name: getattr(self, name) for name in TrainConfig.model_fields}
        return TrainConfig(**values | {"channels_last": bool(self.channels_last)})

    @classmethod
    def comparable(cls, values: dict[str, Any]) -> dict[str, Any]:
        """A config dict (JSON form) without the :attr:`LATER_FIELDS` that hold their earlier behaviour.

        Stored runs and checkpoints compare configs in this form, so a run stored before a field existed
        still resumes.
        """
        return {k: v for k, v in values.items() if k not in cls.LATER_FIELDS or v != cls.LATER_FIELDS[k]}

    @classmethod
    def from_stored(cls, values: dict[str, Any]) -> BenchConfig:
        """Rebuild a config saved in a run store; a one-line error if it no longer validates.

        A ``model`` or ``train_fn`` reference is not imported here (a run's results load without the
        user's code); :attr:`model_factory` and :attr:`train_function` import it when a run needs it.
        """
        try:
            return cls._validate(values, {_STORED: True})
        except ActivewsError as exc:
            raise ActivewsError(
                f"the stored run config does not load: {exc} (if the run used --plugin, pass the same --plugin)"
            ) from None

    @classmethod
    def build(cls, **values: Any) -> BenchConfig:
        """Like ``BenchConfig(**values)`` but raises a one-line :class:`ActivewsError` on invalid input."""
        return cls._validate(values, None)

    @classmethod
    def _validate(cls, values: dict[str, Any], context: dict[str, Any] | None) -> BenchConfig:
        try:
            return cls.model_validate(values, context=context)
        except ValidationError as exc:
            raise ActivewsError(format_validation_error(exc, cls.model_fields)) from None

    # ------------------------------------------------------------------ a user's model and training

    @property
    def model_factory(self) -> Callable[..., nn.Module] | None:
        """The model factory this config names, or None for a registered model (imported on first use
        when the config came from a store; a one-line error if that import fails)."""
        return self._callable("model")

    @property
    def train_function(self) -> Callable[..., Any] | None:
        """The training function of ``train_fn``, or None: each round trains to the target."""
        return self._callable("train_fn")

    def _callable(self, name: str) -> Callable[..., Any] | None:
        value = getattr(self, name)
        if value is None or not _is_user_reference(name, value):
            return None
        kept = self._callables.get(name)
        if kept is not None and kept[0] == value:  # (a model_copy may have changed the field)
            return kept[1]
        if "<" in value or "(" in value or value.startswith("__main__:"):
            try:
                return import_reference(value, _flag(name), _EXAMPLES[name])  # __main__ of this process
            except ActivewsError:
                raise ActivewsError(
                    f"{_flag(name)} {value!r} is recorded by name only (a lambda, a function defined inside "
                    "another or in a script's __main__, a partial): pass the object itself again, "
                    f"BenchConfig({name}=...) in Python, or use a module-level function of an importable "
                    "module"
                ) from None
        return import_reference(value, _flag(name), _EXAMPLES[name])

    def callables(self) -> dict[str, Callable[..., Any]]:
        """The user's callables of this config by field (empty for a registered model and no ``train_fn``):
        what worker processes need besides the config's JSON (see :meth:`with_callables`)."""
        return {name: fn for name in CALLABLE_FIELDS if (fn := self._callable(name)) is not None}

    def with_callables(self, callables: Mapping[str, Callable[..., Any]]) -> BenchConfig:
        """This config with ``callables`` (from :meth:`callables`) kept beside it, by their field."""
        if not callables:
            return self
        copy = self.model_copy()
        copy._callables = {name: (getattr(self, name), fn) for name, fn in callables.items()}
        return copy

    def command(self, program: str = "activews bench") -> str:
        """The command line that runs this config: ``program`` plus its ``--strategy`` flags and a flag for
        every other setting that differs from its default (shell-quoted; parsing it gives this config back).

        A user's callable appears as its ``package.module:function`` reference.
        """
        return " ".join([program, *(shlex.quote(a) for a in _command_args(self))])

    def replace(self, **changes: Any) -> BenchConfig:
        """A validated copy with ``changes`` (one-line error if invalid); the user's callables carry over."""
        values = self.model_dump()
        for name, (ref, fn) in self._callables.items():
            if values.get(name) == ref:
                values[name] = fn
        return type(self).build(**(values | changes))

    def build_model(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        seed: int | None = None,
        device: torch.device | str = "cpu",
    ) -> nn.Module:
        """A draw of this config's model, seeded by ``seed``, on ``device``.

        A registered model is built by :func:`~activews.models.build_model`; a factory by
        :func:`~activews.models.build_from_factory` (``factory(input_shape, num_classes,
        **model_params)`` on the CPU under torch's global RNG forked and seeded by ``seed``, the same
        draw as a registered model's), then moved to ``device``.

        Raises:
            ActivewsError: the factory raised (its error in one line, with the call), or returned
                something else than an ``nn.Module``.
        """
        factory = self.model_factory
        if factory is None:
            return build_model(
                self.model, input_shape, num_classes, self.model_params, seed=seed, device=device
            )
        return build_from_factory(
            factory,
            input_shape,
            num_classes,
            self.model_params,
            seed=seed,
            device=device,
            who=f"--model {self.model!r}",
            fix="check the factory and --model-param",
        )

    def meta_model(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module | None:
        """This config's model built on PyTorch's meta device, for its structure and sizes only (no
        memory, no random draws); None when it cannot be built there."""
        factory = self.model_factory
        if factory is None:
            return meta_model(self.model, input_shape, num_classes, self.model_params)
        try:
            with torch.random.fork_rng(devices=[]), torch.device("meta"):
                model = factory(tuple(input_shape), int(num_classes), **self.model_params)
        except Exception:
            return None
        return model if isinstance(model, nn.Module) else None


def _is_user_reference(name: str, value: str) -> bool:
    """Whether field ``name``'s string value names a user's callable (a registered model name does not)."""
    return name != "model" or (value not in MODELS and is_reference(value))


_EXAMPLES = {"model": "mypkg.nets:make_net", "train_fn": "mypkg.train:fit"}


FLAG_NAMES = {
    "strategies": "--strategy",
    "params": "--param",
    "param_grid": "--sweep",
    "model_params": "--model-param",
    "acquisition_params": "--acquisition-param",
}
"""The ``activews bench`` flags whose name is not ``--`` + the field's name with dashes (repeatable ones)."""


def flag_name(field: str) -> str:
    """The ``activews bench`` flag of a field: ``query_size`` -> ``--query-size``, ``strategies`` ->
    ``--strategy``."""
    return FLAG_NAMES.get(field) or "--" + field.replace("_", "-")


_flag = flag_name


def _flag_value(value: Any) -> str:
    """A value as the flag parsers read it back (``parse_value``: JSON, or a comma list, or a string)."""
    if isinstance(value, (list, tuple)):
        return ",".join(_flag_value(v) for v in value)
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _command_args(config: BenchConfig) -> list[str]:
    """The flags that give ``config`` from the defaults (fields at their default are left out)."""
    args: list[str] = []
    defaults = {
        name: info.get_default(call_default_factory=True) for name, info in type(config).model_fields.items()
    }
    for name in type(config).model_fields:
        value = getattr(config, name)
        if name != "strategies" and value == defaults[name]:  # the strategies compared are always named
            continue
        flag = flag_name(name)
        if name == "strategies":
            args += [a for s in value for a in (flag, s)]
        elif name in ("params", "param_grid"):
            for strategy, values in value.items():
                args += [a for k, v in values.items() for a in (flag, f"{strategy}.{k}={_flag_value(v)}")]
        elif name in ("model_params", "acquisition_params"):
            args += [a for k, v in value.items() for a in (flag, f"{k}={_flag_value(v)}")]
        elif name == "seeds":
            args += [
                flag,
                str(len(value)) if tuple(value) == tuple(range(len(value))) else _flag_value(value),
            ]
        elif isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        elif value is not None:
            args += [flag, _flag_value(value)]
    return args
