"""Shifts: data whose distribution changes between rounds (continual streams).

A :class:`Shift` turns a dataset into a sequence of *tasks*. It splits the training pool into one
disjoint part per task, transforms each part as its task says (a fixed permutation of the input
features, a permutation of the labels, random labels, or a subset of the classes), and gives each task
an evaluation set. A :class:`TaskStream` then runs any registered stream (``passive``, ``active``) task
after task, each round labeling examples of its own task only.

Built-in shifts (``--shift NAME``):

- ``none``: the stationary stream (one task; nothing here runs).
- ``permuted_inputs``: task ``t`` permutes the input features with its own seeded permutation (task 0
  keeps the original order); evaluated on the test set under the same permutation.
- ``permuted_labels``: task ``t`` relabels class ``c`` as ``pi_t(c)`` with its own seeded permutation
  (task 0 keeps the labels); evaluated on the test set relabeled the same way.
- ``random_labels``: task ``t`` gives each of its examples a seeded random label; there is nothing to
  generalize to, so each task is evaluated on its own training examples (memorization, as in Kumar et
  al.'s random-label tasks).
- ``class_incremental``: the classes are split, in a seeded order, into groups of ``classes_per_task``;
  task ``t`` holds the examples of group ``t`` and is evaluated on the test examples of those classes.
  The model keeps one output per class of the whole dataset (a single head).

Your own task sequence: subclass :class:`Shift`, implement :meth:`Shift.transform` (and
:meth:`Shift.parts` / :meth:`Shift.check` if the split differs), and register it with
:func:`register_shift`; ``--shift NAME`` and ``BenchConfig(shift=NAME)`` then use it.

References:
    Goodfellow et al., "An empirical investigation of catastrophic forgetting in gradient-based neural
    networks", 2013 (permuted inputs); Dohare et al., "Loss of plasticity in deep continual learning",
    Nature 2024; Kumar et al., "Maintaining plasticity in continual learning via regenerative
    regularization", CoLLAs 2024 (permuted inputs, random labels); van de Ven & Tolias, "Three scenarios
    for continual learning", 2019 (class-incremental).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from activews.errors import ActivewsError
from activews.registry import Registry
from activews.streams.base import ModelView, ProbaFn, Round, Stream

__all__ = [
    "SHIFTS",
    "Shift",
    "TaskData",
    "TaskStream",
    "Tasks",
    "get_shift",
    "list_shifts",
    "register_shift",
]


@dataclass(frozen=True)
class TaskData:
    """One task's evaluation set (features and labels)."""

    x: torch.Tensor
    y: torch.Tensor


@dataclass(frozen=True)
class Tasks:
    """A dataset made into a task sequence by a :class:`Shift`.

    Attributes:
        x_train, y_train: the training pool, each example transformed by its own task (same size and
            order as the original pool).
        parts: per task, the sorted pool indices that belong to it (disjoint).
        evals: per task, its evaluation set.
        task_of: per pool example, its task (``-1`` for examples of no task).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    parts: list[torch.Tensor]
    evals: list[TaskData]
    task_of: torch.Tensor

    @property
    def num_tasks(self) -> int:
        return len(self.parts)


class Shift:
    """How the data change from task to task.

    Args:
        tasks: number of tasks (``>= 1``).
        classes_per_task: classes per task, for shifts that split the classes (``class_incremental``).

    Subclasses set :attr:`name` (the registry does) and implement :meth:`transform`; the default
    :meth:`parts` splits the pool into ``tasks`` seeded, disjoint, equal parts.
    """

    name: str = ""
    evaluate_on: str = "test"
    """``"test"``: each task is scored on the test set under its transform; ``"train"``: on its own
    training examples (for tasks with nothing to generalize to, such as random labels)."""
    splits_classes: bool = False
    """True for shifts whose tasks are class subsets (they take ``classes_per_task``)."""

    def __init__(self, tasks: int, *, classes_per_task: int | None = None) -> None:
        if tasks < 1:
            raise ActivewsError(f"--tasks must be >= 1, got {tasks}")
        if classes_per_task is not None and not self.splits_classes:
            raise ActivewsError(
                f"--classes-per-task applies to shifts that split the classes (class_incremental), not "
                f"{self.name or type(self).__name__!r}; drop --classes-per-task"
            )
        self.tasks = int(tasks)
        self.classes_per_task = classes_per_task

    def check(self, num_classes: int, input_shape: tuple[int, ...], pool_size: int) -> None:
        """Raise a one-line :class:`ActivewsError` if the data cannot take this shift (before training)."""
        if pool_size < self.tasks:
            raise ActivewsError(
                f"--tasks {self.tasks} needs at least one training example per task; the pool has {pool_size}"
            )

    def parts(self, y: torch.Tensor, num_classes: int, generator: torch.Generator) -> list[torch.Tensor]:
        """Per task, the sorted pool indices that belong to it: ``tasks`` seeded equal parts (the
        remainder of the division belongs to no task)."""
        order = torch.randperm(len(y), generator=generator)
        size = len(y) // self.tasks
        return [order[t * size : (t + 1) * size].sort().values for t in range(self.tasks)]

    def transform(
        self, task: int, x: torch.Tensor, y: torch.Tensor, num_classes: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Task ``task``'s version of examples ``(x, y)``. ``generator`` is the task's own (seeded from the
        task sequence and the task's index): draw the task's permutation from it, the same way for the
        training part and the evaluation set."""
        raise NotImplementedError

    def evaluation(
        self,
        task: int,
        part: torch.Tensor,
        x_test: torch.Tensor,
        y_test: torch.Tensor,
        pool: tuple[torch.Tensor, torch.Tensor],
        num_classes: int,
        generator: Callable[[], torch.Generator],
    ) -> TaskData:
        """Task ``task``'s evaluation set: the test set under its transform, or (``evaluate_on="train"``)
        its own transformed training examples ``pool`` holds at ``part``."""
        if self.evaluate_on == "train":
            return TaskData(pool[0][part], pool[1][part])
        x, y = self.transform(task, x_test, y_test, num_classes, generator())
        return TaskData(x, y)

    def build(
        self,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        x_test: torch.Tensor,
        y_test: torch.Tensor,
        num_classes: int,
        generator: torch.Generator,
    ) -> Tasks:
        """The task sequence of this data, drawn from ``generator`` (the same seed, the same tasks)."""
        self.check(num_classes, tuple(x_train.shape[1:]), len(y_train))
        parts = self.parts(y_train, num_classes, generator)
        # Each task draws from its own generator, seeded once from the sequence's: the training part and
        # the evaluation set see the same permutation.
        seeds = torch.randint(0, 2**62, (len(parts),), generator=generator).tolist()

        def task_gen(t: int) -> Callable[[], torch.Generator]:
            return lambda: torch.Generator().manual_seed(int(seeds[t]))

        x_new, y_new = x_train.clone(), y_train.clone()
        task_of = torch.full((len(y_train),), -1, dtype=torch.long)
        for t, part in enumerate(parts):
            x_t, y_t = self.transform(t, x_train[part], y_train[part], num_classes, task_gen(t)())
            x_new[part], y_new[part] = x_t, y_t
            task_of[part] = t
        evals = [
            self.evaluation(t, part, x_test, y_test, (x_new, y_new), num_classes, task_gen(t))
            for t, part in enumerate(parts)
        ]
        return Tasks(x_new, y_new, parts, evals, task_of)


def _check_entry_point(name: str, obj: object) -> type[Shift]:
    """An ``activews.shifts`` entry point must name a :class:`Shift` subclass; it gets the entry point's name."""
    if not (isinstance(obj, type) and issubclass(obj, Shift)):
        raise ActivewsError(f"{obj!r} is not a Shift subclass")
    if obj.transform is Shift.transform:
        raise ActivewsError(
            f"{obj.__name__} does not implement transform(task, x, y, num_classes, generator)"
        )
    obj.name = name
    return obj


SHIFTS: Registry[type[Shift]] = Registry("shift", "activews.shifts", check=_check_entry_point)


def register_shift(name: str) -> Callable[[type[Shift]], type[Shift]]:
    """Class decorator: register a :class:`Shift` subclass under ``name`` (``--shift NAME``)."""

    def decorate(cls: type[Shift]) -> type[Shift]:
        cls.name = name
        SHIFTS.register(name, cls)
        return cls

    return decorate


def get_shift(name: str) -> type[Shift]:
    """The registered shift ``name`` (a one-line error with close matches if unknown)."""
    return SHIFTS.get(name)


def list_shifts() -> list[str]:
    return SHIFTS.names()


@register_shift("none")
class NoShift(Shift):
    """The stationary stream: one task, the data as they are."""

    def parts(self, y: torch.Tensor, num_classes: int, generator: torch.Generator) -> list[torch.Tensor]:
        return [torch.arange(len(y))]

    def transform(self, task, x, y, num_classes, generator):  # type: ignore[no-untyped-def]
        return x, y


@register_shift("permuted_inputs")
class PermutedInputs(Shift):
    """Each task permutes the input features (all of an example's values, flattened) with its own seeded
    permutation; task 0 keeps the original order."""

    def check(self, num_classes: int, input_shape: tuple[int, ...], pool_size: int) -> None:
        super().check(num_classes, input_shape, pool_size)
        features = int(torch.tensor(input_shape).prod()) if input_shape else 1
        if features < 2 and self.tasks > 1:
            raise ActivewsError(
                f"--shift permuted_inputs permutes the input features, and these examples have {features}; "
                "use --shift permuted_labels"
            )

    def transform(self, task, x, y, num_classes, generator):  # type: ignore[no-untyped-def]
        if task == 0:
            return x, y
        flat = x.reshape(len(x), -1)
        perm = torch.randperm(flat.shape[1], generator=generator)
        return flat[:, perm].reshape(x.shape), y


class _LabelShift(Shift):
    """A shift of the labels: the data need two classes or more."""

    def check(self, num_classes: int, input_shape: tuple[int, ...], pool_size: int) -> None:
        super().check(num_classes, input_shape, pool_size)
        if num_classes < 2:
            raise ActivewsError(
                f"--shift {self.name} changes the labels, and the data have {num_classes} class; use "
                "--shift permuted_inputs"
            )


@register_shift("permuted_labels")
class PermutedLabels(_LabelShift):
    """Each task relabels the classes with its own seeded permutation; task 0 keeps the labels."""

    def transform(self, task, x, y, num_classes, generator):  # type: ignore[no-untyped-def]
        if task == 0:
            return x, y
        perm = torch.randperm(num_classes, generator=generator)
        return x, perm.to(y.device)[y]


@register_shift("random_labels")
class RandomLabels(_LabelShift):
    """Each task gives its examples seeded random labels (uniform over the classes) and is scored on
    them: how well the network still memorizes (Kumar et al., CoLLAs 2024)."""

    evaluate_on = "train"

    def transform(self, task, x, y, num_classes, generator):  # type: ignore[no-untyped-def]
        return x, torch.randint(0, num_classes, y.shape, generator=generator).to(y.device)


@register_shift("class_incremental")
class ClassIncremental(Shift):
    """Task ``t`` holds the classes of group ``t`` (groups of ``classes_per_task`` in a seeded class
    order); the model keeps one output per class of the dataset."""

    splits_classes = True

    def __init__(self, tasks: int, *, classes_per_task: int | None = None) -> None:
        super().__init__(tasks, classes_per_task=classes_per_task)
        if classes_per_task is not None and classes_per_task < 1:
            raise ActivewsError(f"--classes-per-task must be >= 1, got {classes_per_task}")

    def check(self, num_classes: int, input_shape: tuple[int, ...], pool_size: int) -> None:
        per = self.per_task(num_classes)
        if num_classes % per:
            raise ActivewsError(
                f"--classes-per-task {per} does not divide the {num_classes} classes; use a divisor of "
                f"{num_classes} (e.g. {_divisor(num_classes)})"
            )
        if self.tasks != num_classes // per:
            raise ActivewsError(
                f"--tasks {self.tasks} with --classes-per-task {per} needs {self.tasks * per} classes, the "
                f"data have {num_classes}; use --tasks {num_classes // per}"
            )

    def per_task(self, num_classes: int) -> int:
        """Classes per task: as given, or ``num_classes / tasks``."""
        if self.classes_per_task is not None:
            return self.classes_per_task
        if num_classes % self.tasks:
            raise ActivewsError(
                f"--tasks {self.tasks} does not divide the {num_classes} classes; give --classes-per-task "
                f"(e.g. {_divisor(num_classes)}) or --tasks {num_classes // _divisor(num_classes)}"
            )
        return num_classes // self.tasks

    def groups(self, num_classes: int, generator: torch.Generator) -> list[list[int]]:
        per = self.per_task(num_classes)
        order = torch.randperm(num_classes, generator=generator).tolist()
        return [sorted(order[i : i + per]) for i in range(0, num_classes, per)]

    def parts(self, y: torch.Tensor, num_classes: int, generator: torch.Generator) -> list[torch.Tensor]:
        self._groups = self.groups(num_classes, generator)
        return [
            torch.isin(y, torch.tensor(g, device=y.device)).nonzero().squeeze(1).cpu() for g in self._groups
        ]

    def transform(self, task, x, y, num_classes, generator):  # type: ignore[no-untyped-def]
        return x, y

    def evaluation(self, task, part, x_test, y_test, pool, num_classes, generator):  # type: ignore[no-untyped-def]
        keep = torch.isin(y_test, torch.tensor(self._groups[task], device=y_test.device))
        return TaskData(x_test[keep], y_test[keep])


def _divisor(n: int) -> int:
    """The smallest divisor of ``n`` above 1 (``n`` itself when prime)."""
    return next(d for d in range(2, n + 1) if n % d == 0) if n > 1 else 1


class _Overrides:
    """A config seen with some attributes replaced (each task's inner stream has its own round count)."""

    def __init__(self, config: object, **values: Any) -> None:
        self._config, self._values = config, values

    def __getattr__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        return getattr(self._config, name)


class TaskStream(Stream):
    """Any stream run task after task: each task gets its own rounds of the inner stream over its part.

    Round ``r`` belongs to task ``r // rounds_per_task``. A task's first round labels ``initial`` examples
    of its part (the inner stream's round 0: a seeded random draw), each next round ``query_size`` more
    of its part, chosen as the inner stream chooses (arrival order, or the acquisition of the active
    stream over the task's unlabeled examples only). Labeled examples of earlier tasks stay labeled (what
    a round trains on is the bench's ``replay`` setting).

    Args:
        stream: the registered stream class run inside each task.
        parts: per task, its pool indices (see :class:`Tasks`).
        config: the bench settings the inner streams read (:meth:`Stream.from_config`); ``rounds`` counts
            the rounds of the whole sequence and must be a multiple of the number of tasks.
        pool_size: the whole pool's size.
        generator: every inner stream's generator (one, shared: used in round order).
    """

    def __init__(
        self,
        stream: type[Stream],
        parts: list[torch.Tensor],
        config: object,
        pool_size: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__(pool_size, generator)
        tasks = len(parts)
        rounds = int(getattr(config, "rounds", 0))
        per_task = rounds_per_task(rounds, tasks)
        self.parts = parts
        self.per_task = per_task
        self.name = stream.name
        self.local = torch.full((pool_size,), -1, dtype=torch.long)
        self.task_of = torch.full((pool_size,), -1, dtype=torch.long)
        for t, part in enumerate(parts):
            self.local[part] = torch.arange(len(part))
            self.task_of[part] = t
        inner_config = _Overrides(config, rounds=per_task)
        self.inner: list[Stream] = []
        for t, part in enumerate(parts):
            try:
                self.inner.append(stream.from_config(inner_config, len(part), generator))
            except ActivewsError as exc:
                raise ActivewsError(f"task {t} ({len(part)} examples): {exc}") from None

    @property
    def num_rounds(self) -> int:
        return self.per_task * len(self.parts)

    def task_of_round(self, r: int) -> int:
        """The task round ``r`` belongs to."""
        return r // self.per_task

    def check_model(self, model: torch.nn.Module) -> None:
        self.inner[0].check_model(model)

    def _global(self, task: int, rnd: Round, prev: Round | None) -> Round:
        new = self.parts[task][rnd.new]
        labeled = new if prev is None else torch.cat([prev.labeled, new])
        return Round(0 if prev is None else prev.index + 1, labeled, new)

    def first(self) -> Round:
        return self._global(0, self.inner[0].first(), None)

    def next(self, prev: Round, predict_proba: ProbaFn | None = None) -> Round:
        r = prev.index + 1
        if r >= self.num_rounds:
            raise ActivewsError(f"the stream has only {self.num_rounds} rounds")
        task, local_round = divmod(r, self.per_task)
        inner = self.inner[task]
        if local_round == 0:
            return self._global(task, inner.first(), prev)
        mine = prev.labeled[self.task_of[prev.labeled] == task]
        local_prev = Round(local_round - 1, self.local[mine], self.local[prev.new])
        return self._global(task, inner.next(local_prev, self._view(task, predict_proba)), prev)

    def _view(self, task: int, view: ProbaFn | None) -> ProbaFn | None:
        """The model's view of the task's part only (local index ``i`` is pool index ``part[i]``)."""
        if view is None:
            return None
        part = self.parts[task]
        if isinstance(view, ModelView):
            return ModelView(view.model, view.x_pool[part.to(view.x_pool.device)], batch_size=view.batch_size)
        return lambda idx: view(part[idx])


def rounds_per_task(rounds: int, tasks: int) -> int:
    """``rounds / tasks``; a one-line error unless it divides evenly."""
    if rounds < 1:
        raise ActivewsError(
            "a shifting stream needs a fixed number of rounds; give --rounds N (a multiple of --tasks)"
        )
    if rounds % tasks:
        raise ActivewsError(
            f"--rounds {rounds} is not a multiple of the {tasks} tasks; use --rounds "
            f"{' or '.join(str(n) for n in dict.fromkeys([max(1, rounds // tasks) * tasks, (rounds // tasks + 1) * tasks]))}"
            " (or another --tasks)"
        )
    return rounds // tasks
