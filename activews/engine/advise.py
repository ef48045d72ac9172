"""``advise``: search the strategies' declared spaces for the best way to start each round of a user's
own bench within a compute budget, then confirm the winner on fresh seeds.

The search is Optuna's (TPE sampler with the budget as a constraint, a median pruner over the per-round
accuracy, SQLite storage); every trial is a bench of one arm run by the engine's executors into its own
run folder, so trials run with ``workers``/``executor="ray"`` and an interrupted search resumes. See
``docs/advise.md``.

An advise folder holds:

- ``search.json``: the search's settings (a re-run into the folder must match them; ``trials`` may grow);
- ``references/``: a run folder with ``random`` and ``warm`` on the search seeds, run once and shared by
  every trial (each trial's penalty is paired with ``random`` by seed, its step ratio too);
- ``study.sqlite``: the Optuna study (trials, parameters, per-step values, states);
- ``trials/NNNN/``: a run folder per trial: its arm alone on the search seeds;
- ``confirm-A-B/``: a run folder with the best setting within the budget (trial A), the runner-up
  (trial B), ``random`` and ``warm`` on seeds the search never saw.

Determinism: trials run one after another, each trial's sampler is seeded from ``sampler_seed`` and the
trial's number, and a pruning decision is taken only once every earlier (seed, round) step of the trial
is known, in a fixed order. The history the sampler and the pruner see is therefore the same with any
``workers`` count, and so is the search (a ``time_budget`` is the exception: timings vary between runs).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from activews.data import Dataset
from activews.engine.arm import ProgressEvent
from activews.engine.bench import BenchResult, config_diff, load_results, run_experiments
from activews.engine.config import REFERENCE_ARMS, SEED_LIMIT, BenchConfig
from activews.engine.resources import Workers
from activews.engine.runlock import LOCK_FILE, RunLock
from activews.engine.setup import check_fits, derive_seed, load_bench_dataset
from activews.engine.store import is_run_folder
from activews.engine.summary import summarize
from activews.errors import ActivewsError
from activews.files import PROBE_PREFIX, atomic_write, prepare_output_dir
from activews.params import Tune, search_space
from activews.strategies import STRATEGIES, get_strategy

__all__ = [
    "Advice",
    "AdviseEvent",
    "DEFAULT_CONFIRM_SEEDS",
    "DEFAULT_TRIALS",
    "SEARCH_FILE",
    "TrialResult",
    "advise",
    "pareto_front",
    "tunable_strategies",
]

DEFAULT_TRIALS = 30
"""Trials of a search when ``trials`` is not given (the default active MNIST-1D bench runs them, the
references and the confirmation in under 30 minutes on 2 cores: docs/advise.md)."""

DEFAULT_CONFIRM_SEEDS = 5
"""Fresh seeds of the confirmation when ``confirm_seeds`` is not given: the 5 seeds after the largest
search seed."""

SEARCH_FILE = "search.json"
STUDY_FILE = "study.sqlite"
REFERENCES = "references"
STARTUP_TRIALS = 6
"""Trials the sampler draws at random before TPE models the history (Optuna's default is 10; a search
of 20 trials over several strategies needs its model sooner)."""
PRUNE_AFTER = 4
"""Completed trials before the median pruner may stop a trial."""
PROJECTED_MARGIN = 1.2
"""A trial whose finished seeds average more than ``PROJECTED_MARGIN`` times the budget is stopped as
projected over budget (a step ratio varies little between seeds; the exact bound comes later)."""


@dataclass
class TrialResult:
    """One trial of the search.

    Attributes:
        number: the trial's number (0, 1, ...; its run folder is ``trials/NNNN``).
        strategy: the registered strategy.
        params: the strategy's parameters (tuned ones shortened to their space's resolution, fixed ones as
            given).
        label: ``strategy[key=value,...]`` over the tuned parameters (the confirmation's arm label).
        state: ``"complete"``, ``"pruned"`` or ``"failed"``.
        gain: mean paired final-accuracy gain over ``random`` on the search seeds (a fraction; complete
            trials), i.e. minus the penalty.
        accuracy: mean final accuracy on the search seeds (complete trials).
        compute_ratio: mean paired ratio of training steps to ``random``'s (complete trials).
        time_ratio: mean paired ratio of training seconds to ``random``'s (complete trials).
        within_budget: complete, and its ratios within the budget.
        note: why a trial was pruned or failed.
    """

    number: int
    strategy: str
    params: dict[str, Any]
    label: str
    state: str
    gain: float | None = None
    accuracy: float | None = None
    compute_ratio: float | None = None
    time_ratio: float | None = None
    within_budget: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Advice:
    """What :func:`advise` returns.

    Attributes:
        config: the bench that was searched (on ``search_seeds``).
        budget: the step-ratio budget; ``time_budget`` the time-ratio budget (or None).
        search_seeds, confirm_seeds: the seeds of the search and of the confirmation (disjoint).
        trials: every trial, in order.
        references: the summary rows of ``random`` and ``warm`` on the search seeds.
        frontier: the accuracy-vs-compute frontier of the complete trials and the reference arms (no point
            has both a lower step ratio and a higher accuracy than another), by step ratio: dicts with
            ``label``, ``strategy``, ``params``, ``trial`` (None for a reference), ``accuracy``, ``gain``,
            ``compute_ratio``, ``time_ratio``, ``within_budget``.
        recommendation, runner_up: the best complete trial within the budget and the best within it from
            another strategy (else the next best), as dicts with the trial's fields plus ``confirmed`` (its
            summary row on the confirmation seeds), ``beats_random`` (its confirmed penalty's 95% CI lies
            below zero), ``confirmed_within_budget`` and ``command`` (the ``activews bench`` command that
            reproduces its confirmed numbers); None when no trial met the budget.
        confirmation: the confirmation's summary rows (the picks, ``random`` and ``warm``).
        verdict: one sentence saying what the confirmation shows.
        folder: the advise folder (None for a temporary one).
        seconds: wall time of this call.
    """

    config: BenchConfig
    budget: float
    time_budget: float | None
    search_seeds: list[int]
    confirm_seeds: list[int]
    trials: list[TrialResult]
    references: list[dict[str, Any]]
    frontier: list[dict[str, Any]]
    recommendation: dict[str, Any] | None
    runner_up: dict[str, Any] | None
    confirmation: list[dict[str, Any]]
    verdict: str
    folder: Path | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: settings, trials, frontier, recommendation, runner-up, confirmation, verdict."""
        return {
            "config": self.config.model_dump(mode="json"),
            "budget": self.budget,
            "time_budget": self.time_budget,
            "search_seeds": self.search_seeds,
            "confirm_seeds": self.confirm_seeds,
            "trials": [t.to_dict() for t in self.trials],
            "references": self.references,
            "frontier": self.frontier,
            "recommendation": self.recommendation,
            "runner_up": self.runner_up,
            "confirmation": self.confirmation,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class AdviseEvent:
    """Reported to ``advise``'s ``progress`` callback.

    ``kind`` is ``"start"`` (``detail`` holds the plan: trials, strategies, seeds), ``"references"``,
    ``"trial_start"``, ``"trial_end"`` (``result`` holds the :class:`TrialResult`), ``"confirm"`` (the
    confirmation starts; ``label`` names the picks) or ``"round"`` (``event`` is the engine's
    :class:`ProgressEvent` for a round of the phase under way). ``trial`` is the trial's number (-1 outside
    trials) and ``trials`` the search's trial count.
    """

    kind: str
    trial: int
    trials: int
    label: str = ""
    event: ProgressEvent | None = None
    result: TrialResult | None = None
    detail: dict[str, Any] | None = None


AdviseFn = Callable[[AdviseEvent], None]


class _Pruned(Exception):
    """Raised from a trial's progress callback to stop it: the run store keeps the rounds it finished."""

    def __init__(self, reason: str, bound: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.bound = reason, bound


# ------------------------------------------------------------------------------------------ checks


def tunable_strategies() -> list[str]:
    """Registered strategies that declare a search space (``Tune`` metadata on a ``Params`` field)."""
    return [name for name in STRATEGIES.names() if search_space(get_strategy(name).Params)]


def _check_ratio(value: float | None, flag: str) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ActivewsError(
            f"{flag} must be a number > 0 (the largest ratio to random's training cost, e.g. 0.5); got {value!r}"
        )


def _seed_list(value: int | Sequence[int], flag: str) -> list[int]:
    if isinstance(value, bool):
        raise ActivewsError(f"{flag}: give a count (5) or a list of seeds (10,11,12)")
    seeds = list(value) if isinstance(value, (list, tuple)) else None
    if seeds is None:
        if not isinstance(value, int) or value < 2:
            raise ActivewsError(
                f"{flag} needs at least 2 seeds (a confidence interval needs two); got {value!r}"
            )
        return list(range(value))
    if len(seeds) < 2:
        raise ActivewsError(f"{flag} needs at least 2 seeds (a confidence interval needs two); got {seeds}")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < SEED_LIMIT]
    if bad:
        raise ActivewsError(f"{flag}: seed {bad[0]!r} is not an integer in 0 <= seed < 2**32")
    if len(set(seeds)) != len(seeds):
        raise ActivewsError(f"{flag} lists a seed twice; give distinct seeds")
    return seeds


def _spaces(config: BenchConfig, strategies: Sequence[str] | None) -> dict[str, dict[str, Tune]]:
    """The space searched per strategy: its declared space less the parameters ``config.params`` fixes."""
    names = list(dict.fromkeys(strategies)) if strategies else tunable_strategies()
    if not names:
        raise ActivewsError(
            "no tunable strategy: no registered strategy declares a search space (Tune metadata on a "
            "Params field; see docs/extending.md)"
        )
    tunable = tunable_strategies()
    spaces = {}
    for name in names:
        cls = get_strategy(name)  # unknown names: a close-match error
        fixed = dict(config.params.get(name, {}))
        cls.parse_params(fixed)  # fixed parameters must be valid
        space = {k: t for k, t in search_space(cls.Params).items() if k not in fixed}
        if not space:
            why = (
                "declares no search space"
                if not search_space(cls.Params)
                else "has every tunable parameter fixed by --param"
            )
            raise ActivewsError(
                f"strategy {name!r} {why}, so advise has nothing to tune; tunable strategies: "
                f"{', '.join(tunable) or 'none'} (or leave --strategy out to search them all)"
            )
        spaces[name] = space
    return spaces


@dataclass
class _Settings:
    config: BenchConfig
    spaces: dict[str, dict[str, Tune]]
    budget: float
    time_budget: float | None
    trials: int
    search_seeds: list[int]
    confirm_seeds: list[int]
    sampler_seed: int

    def stored(self) -> dict[str, Any]:
        return {
            "config": BenchConfig.comparable(self.config.model_dump(mode="json")),
            "strategies": list(self.spaces),
            "spaces": {n: {k: t.to_dict() for k, t in s.items()} for n, s in self.spaces.items()},
            "budget": self.budget,
            "time_budget": self.time_budget,
            "search_seeds": self.search_seeds,
            "confirm_seeds": self.confirm_seeds,
            "sampler_seed": self.sampler_seed,
        }


def _settings(
    config: BenchConfig,
    budget: float,
    time_budget: float | None,
    trials: int,
    strategies: Sequence[str] | None,
    confirm_seeds: int | Sequence[int] | None,
    sampler_seed: int,
) -> _Settings:
    """Every check of advise's own inputs, before any data loads."""
    _check_ratio(budget, "--budget")
    _check_ratio(time_budget, "--time-budget")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ActivewsError(f"--trials must be a whole number >= 1; got {trials!r}")
    if (
        isinstance(sampler_seed, bool)
        or not isinstance(sampler_seed, int)
        or not 0 <= sampler_seed < SEED_LIMIT
    ):
        raise ActivewsError(f"--sampler-seed must be an integer in 0 <= seed < 2**32; got {sampler_seed!r}")
    if config.param_grid:
        raise ActivewsError(
            "advise searches strategy parameters itself; drop --sweep (fix a parameter with --param instead)"
        )
    search = list(config.seeds)
    if len(search) < 2:
        raise ActivewsError(
            f"--seeds: advise needs at least 2 search seeds to pair with random; got {search}"
        )
    if confirm_seeds is None:
        start = max(search) + 1
        confirm = list(range(start, start + DEFAULT_CONFIRM_SEEDS))
    elif isinstance(confirm_seeds, int) and not isinstance(confirm_seeds, bool):
        count = len(_seed_list(confirm_seeds, "--confirm-seeds"))
        confirm = list(range(max(search) + 1, max(search) + 1 + count))
    else:
        confirm = _seed_list(confirm_seeds, "--confirm-seeds")
    overlap = sorted(set(confirm) & set(search))
    if overlap:
        fresh = ",".join(str(max(search) + 1 + i) for i in range(len(confirm)))
        raise ActivewsError(
            f"--confirm-seeds {','.join(map(str, confirm))} overlap the search seeds ({', '.join(map(str, overlap))}): "
            f"the confirmation must use seeds the search never saw, e.g. --confirm-seeds {fresh}"
        )
    if max(confirm) >= SEED_LIMIT:
        raise ActivewsError("--confirm-seeds: seeds must lie below 2**32; give a list of smaller seeds")
    if config.counterfactual:
        raise ActivewsError(
            "advise does not split the gap; drop --counterfactual (run activews bench for it)"
        )
    return _Settings(
        config, _spaces(config, strategies), float(budget), time_budget, trials, search, confirm, sampler_seed
    )


# ------------------------------------------------------------------------------------------ the folder


def _is_advise_folder(folder: Path) -> bool:
    return (folder / SEARCH_FILE).is_file()


def _prepare(folder: Path) -> None:
    """Create the folder, or accept an advise folder, an empty one, or one an interrupted start left."""
    if _is_advise_folder(folder):
        return
    if is_run_folder(folder):
        raise ActivewsError(
            f"{str(folder)!r} is a bench run folder, not an advise folder; choose another --output"
        )
    leftovers = folder.is_dir() and all(
        p.name == LOCK_FILE or p.name.startswith(PROBE_PREFIX) for p in folder.iterdir()
    )
    if not leftovers:
        prepare_output_dir(folder)  # one-line errors: a file, a non-empty folder, not writable


def _claim(folder: Path, settings: _Settings) -> None:
    """Record the search's settings, or check that the folder holds this search (with the run lock
    held); ``trials`` may differ: a longer search continues the shorter one."""
    new = json.loads(json.dumps(settings.stored()))
    if not _is_advise_folder(folder):
        atomic_write(folder / SEARCH_FILE, json.dumps(new, indent=2))
        return
    try:
        old = json.loads((folder / SEARCH_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ActivewsError(
            f"cannot read {str(folder / SEARCH_FILE)!r} ({exc}); choose another --output"
        ) from None
    if old != new:
        diffs = [
            f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
            for k in sorted(set(old) | set(new))
            if k != "config" and old.get(k) != new.get(k)
        ] + config_diff(old.get("config", {}), new.get("config", {}))
        raise ActivewsError(
            f"advise folder {str(folder)!r} holds a search with other settings ({'; '.join(diffs[:3])}"
            f"{'; ...' if len(diffs) > 3 else ''}); give the same settings to resume it (--trials may "
            "grow) or choose another --output"
        )


# ------------------------------------------------------------------------------------------ the search


def _suggest(trial: Any, key: str, tune: Tune) -> Any:
    if tune.choices is not None:
        return trial.suggest_categorical(key, list(tune.choices))
    if tune.integer:
        return trial.suggest_int(key, int(tune.low), int(tune.high), log=tune.log)  # type: ignore[arg-type]
    return trial.suggest_float(key, float(tune.low), float(tune.high), log=tune.log)  # type: ignore[arg-type]


def _rounded(value: Any, tune: Tune) -> Any:
    """A float shortened so labels and commands stay readable, kept within the space: a log space to 2
    significant digits; a uniform one to 1% of its width (``[0, 1]``: 0.53; ``[0.999, 1]``: 0.99953)."""
    if tune.choices is not None or tune.integer or not isinstance(value, float):
        return value
    low, high = float(tune.low), float(tune.high)  # type: ignore[arg-type]
    if tune.log:
        short = float(f"{value:.2g}")
    else:
        short = round(value, max(0, math.ceil(-math.log10((high - low) / 100))))
    return min(max(short, low), high)


def arm_label(strategy: str, params: dict[str, Any], keys: Sequence[str]) -> str:
    """``strategy[key=value,...]`` over ``keys``: the label a ``param_grid`` arm gets."""
    return f"{strategy}[{','.join(f'{k}={params[k]}' for k in keys)}]"


class _Watcher:
    """Turns a trial's rounds into pruning decisions, in a fixed (seed, round) order.

    Step ``i * R + r`` is round ``r`` of the ``i``-th search seed. Its value is the trial's estimate of its
    final gain over ``random``: the final gains of the seeds before, and this seed's gain at round ``r``,
    averaged. A step is judged only when every earlier step is known, so the decisions do not depend on
    which cells ran at once. A trial stops when its steps so far already exceed the budget (a bound: the
    unfinished seeds count as free), when its finished seeds average more than
    :data:`PROJECTED_MARGIN` times the budget, or when the median pruner says so.
    """

    def __init__(
        self,
        trial: Any,
        settings: _Settings,
        rounds: int,
        ref: dict[int, list[dict[str, Any]]],
        forward: Callable[[ProgressEvent], None] | None,
        reported: set[int],
    ) -> None:
        self.trial, self.settings, self.rounds, self.ref, self.forward = trial, settings, rounds, ref, forward
        self.rows: dict[tuple[int, int], dict[str, Any]] = {}
        self.next = 0
        self.reported = set(reported)  # steps an interrupted run of this trial already reported
        self.finals: list[float] = []
        self.ratios: list[float] = []

    def on_event(self, event: ProgressEvent) -> None:
        if self.forward:
            self.forward(event)
        if event.kind == "round_end" and event.record is not None:
            self.feed(event.record)

    def feed(self, record: dict[str, Any]) -> None:
        self.rows[(record["seed"], record["round"])] = record
        seeds = self.settings.search_seeds
        while self.next < len(seeds) * self.rounds:
            i, r = divmod(self.next, self.rounds)
            row = self.rows.get((seeds[i], r))
            if row is None:
                return
            self._judge(self.next, i, r, row)
            self.next += 1

    def _judge(self, step: int, i: int, r: int, row: dict[str, Any]) -> None:
        seed = self.settings.search_seeds[i]
        ref = self.ref[seed]
        gain = row["test_accuracy"] - ref[r]["test_accuracy"]
        ratio = row["cumulative_steps"] / max(1, ref[-1]["cumulative_steps"])
        value = (sum(self.finals) + gain) / (len(self.finals) + 1)
        bound = (sum(self.ratios) + ratio) / len(self.settings.search_seeds)
        if r == self.rounds - 1:
            self.finals.append(gain)
            self.ratios.append(ratio)
        if step not in self.reported:
            self.trial.report(value, step)
            self.reported.add(step)
        if step == len(self.settings.search_seeds) * self.rounds - 1:
            return  # every round has run: the trial is complete, over budget or not (a frontier point)
        where = f"seed {seed}, round {r}"
        if bound > self.settings.budget:
            raise _Pruned(f"over budget: step ratio already {bound:.2f} at {where}", bound)
        if self.ratios and r == self.rounds - 1 and len(self.ratios) < len(self.settings.search_seeds):
            projected = sum(self.ratios) / len(self.ratios)
            if projected > self.settings.budget * PROJECTED_MARGIN:
                raise _Pruned(
                    f"projected over budget: step ratio {projected:.2f} on {len(self.ratios)} of "
                    f"{len(self.settings.search_seeds)} seeds",
                    projected,
                )
        if self.trial.should_prune():
            raise _Pruned(f"below the median of earlier trials at {where}", bound)


def _study(folder: Path, rounds: int) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{(folder / STUDY_FILE).resolve().as_posix()}"
    pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNE_AFTER, n_warmup_steps=max(0, rounds - 1))
    return optuna.create_study(
        study_name="advise", storage=storage, direction="maximize", pruner=pruner, load_if_exists=True
    )


def _sampler(settings: _Settings, number: int) -> Any:
    """TPE, seeded per trial (a resumed search draws what an uninterrupted one would). The budget reaches
    it as the trial's constraints (``Trial.set_constraint``: feasible when ``<= 0``)."""
    import optuna

    return optuna.samplers.TPESampler(
        seed=derive_seed(settings.sampler_seed, number) % SEED_LIMIT, n_startup_trials=STARTUP_TRIALS
    )


def _repeat(trial: Any, same: Any, settings: _Settings) -> TrialResult:
    """Trial ``trial`` drew the setting of the finished trial ``same``: its result, per-step values and
    constraints are copied, and nothing runs (the numbers would be the same)."""
    for step, value in sorted(same.intermediate_values.items()):
        trial.report(value, step)
    attrs = same.user_attrs
    for key in ("gain", "accuracy", "compute_ratio", "time_ratio", "within_budget"):
        if key in attrs:
            trial.set_user_attr(key, attrs[key])
    note = f"same setting as trial {same.number}: its result, not run again"
    trial.set_user_attr("note", note)
    bound = attrs.get("compute_ratio", attrs.get("ratio_bound"))
    _set_constraints(trial, bound, attrs.get("time_ratio"), settings)
    return dataclasses.replace(_result_of(same), number=trial.number, note=note)


def _set_constraints(trial: Any, ratio: float | None, t_ratio: float | None, settings: _Settings) -> None:
    """The budget as the sampler's constraints: step ratio (and time ratio) minus their budgets."""
    values = {"step_ratio": (ratio if ratio is not None else math.inf) - settings.budget}
    if settings.time_budget is not None:
        values["time_ratio"] = (t_ratio if t_ratio is not None else math.inf) - settings.time_budget
    with warnings.catch_warnings():  # a resumed trial may have set them before it was interrupted
        warnings.simplefilter("ignore")
        for key, value in values.items():
            trial.set_constraint(key, value if math.isfinite(value) else 1e9)


def _states() -> dict[str, Any]:
    """A trial's state by name, as Optuna's ``TrialState`` (anything else is ``FAIL``)."""
    import optuna

    return {"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED}


def _result_of(frozen: Any) -> TrialResult:
    """A finished trial's result, from what the study stored."""
    attrs = frozen.user_attrs
    state = {v: k for k, v in _states().items()}.get(frozen.state, "failed")
    return TrialResult(
        number=frozen.number,
        strategy=attrs.get("strategy", ""),
        params=attrs.get("params", {}),
        label=attrs.get("label", ""),
        state=state,
        gain=attrs.get("gain"),
        accuracy=attrs.get("accuracy"),
        compute_ratio=attrs.get("compute_ratio"),
        time_ratio=attrs.get("time_ratio"),
        within_budget=bool(attrs.get("within_budget", False)),
        note=attrs.get("note", ""),
    )


def _within(row: dict[str, Any], settings: _Settings) -> bool:
    ratio, t_ratio = row.get("compute_ratio"), row.get("time_ratio")
    if ratio is None or ratio > settings.budget:
        return False
    return settings.time_budget is None or (t_ratio is not None and t_ratio <= settings.time_budget)


def _run_trial(
    trial: Any,
    settings: _Settings,
    folder: Path,
    rounds: int,
    ref_records: list[dict[str, Any]],
    run: Callable[..., list[BenchResult]],
    emit: Callable[..., None],
    reported: set[int],
    given: dict[int, Dataset] | None,
    previous: dict[str, Any],
) -> TrialResult:
    """Suggest a setting, run its arm on the search seeds, and score it against the references (a setting
    an earlier trial ran is not run again: its result is reused)."""
    names = list(settings.spaces)
    strategy = trial.suggest_categorical("strategy", names)
    space = settings.spaces[strategy]
    fixed = dict(settings.config.params.get(strategy, {}))
    tuned = {key: _rounded(_suggest(trial, f"{strategy}.{key}", tune), tune) for key, tune in space.items()}
    params = fixed | tuned
    label = arm_label(strategy, tuned, list(space))
    for key, value in (("strategy", strategy), ("params", params), ("label", label)):
        trial.set_user_attr(key, value)
    emit("trial_start", trial.number, label=label)
    same = previous.get(label)
    if same is not None and same.user_attrs.get("params") == params:
        return _repeat(trial, same, settings)
    base = TrialResult(trial.number, strategy, params, label, "failed")
    ref: dict[int, list[dict[str, Any]]] = {}
    for rec in sorted(ref_records, key=lambda r: r["round"]):
        if rec["arm"] == "random":
            ref.setdefault(rec["seed"], []).append(rec)
    forward = lambda ev: emit("round", trial.number, label=label, event=ev)  # noqa: E731
    watcher = _Watcher(trial, settings, rounds, ref, forward, reported)
    out = folder / "trials" / f"{trial.number:04d}"
    try:
        cfg = settings.config.replace(
            strategies=(strategy,), params={**settings.config.params, strategy: params}
        )
        if is_run_folder(out):  # a trial interrupted earlier: judge its stored rounds first
            stored = load_results(out)[0].records
            for rec in sorted(stored, key=lambda r: (settings.search_seeds.index(r["seed"]), r["round"])):
                watcher.feed(rec)
        result = run([("", cfg)], output=out, datasets=given, progress=watcher.on_event, arms=[strategy])
    except _Pruned as pruned:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        base.state, base.note = "pruned", pruned.reason
        trial.set_user_attr("note", pruned.reason)
        trial.set_user_attr("ratio_bound", pruned.bound)
        _set_constraints(trial, pruned.bound, None, settings)
        return base
    except ActivewsError as exc:
        base.note = str(exc)
        trial.set_user_attr("note", str(exc))
        _set_constraints(trial, None, None, settings)
        return base
    arms = [*REFERENCE_ARMS, strategy]
    row = next(r for r in summarize(ref_records + result[0].records, arms) if r["arm"] == strategy)
    base.state = "complete"
    base.gain = -row["penalty"] if row.get("penalty") is not None else None
    base.accuracy = row["final_accuracy"]
    base.compute_ratio, base.time_ratio = row.get("compute_ratio"), row.get("time_ratio")
    base.within_budget = _within(row, settings)
    for key in ("gain", "accuracy", "compute_ratio", "time_ratio", "within_budget"):
        trial.set_user_attr(key, getattr(base, key))
    _set_constraints(trial, base.compute_ratio, base.time_ratio, settings)
    return base


# ------------------------------------------------------------------------------------------ frontier


def pareto_front(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points no other point beats on both ``compute_ratio`` (lower) and ``accuracy`` (higher), by
    step ratio (ties on both keep the first)."""
    ranked = sorted(
        (p for p in points if p.get("compute_ratio") is not None and p.get("accuracy") is not None),
        key=lambda p: (p["compute_ratio"], -p["accuracy"]),
    )
    front: list[dict[str, Any]] = []
    for p in ranked:
        if not front or p["accuracy"] > front[-1]["accuracy"]:
            front.append(p)
    return front


def _point(row: dict[str, Any], settings: _Settings) -> dict[str, Any]:
    return {
        "label": row["arm"],
        "strategy": row["strategy"],
        "params": {},
        "trial": None,
        "accuracy": row["final_accuracy"],
        "gain": -row["penalty"] if row.get("penalty") is not None else 0.0,
        "compute_ratio": row.get("compute_ratio"),
        "time_ratio": row.get("time_ratio"),
        "within_budget": _within(row, settings),
    }


def _trial_point(t: TrialResult) -> dict[str, Any]:
    return {
        "label": t.label,
        "strategy": t.strategy,
        "params": t.params,
        "trial": t.number,
        "accuracy": t.accuracy,
        "gain": t.gain,
        "compute_ratio": t.compute_ratio,
        "time_ratio": t.time_ratio,
        "within_budget": t.within_budget,
    }


def _picks(trials: Sequence[TrialResult]) -> tuple[TrialResult | None, TrialResult | None]:
    """The best complete trial within the budget, and the best within it from another strategy (else the
    next best setting)."""
    ok = sorted(
        (t for t in trials if t.state == "complete" and t.within_budget and t.gain is not None),
        key=lambda t: (-t.gain, t.number),  # type: ignore[operator]
    )
    if not ok:
        return None, None
    best = ok[0]
    others = [t for t in ok[1:] if t.strategy != best.strategy] or [
        t for t in ok[1:] if t.label != best.label
    ]
    return best, (others[0] if others else None)


# ------------------------------------------------------------------------------------------ confirmation


def _confirm_config(settings: _Settings, picks: Sequence[TrialResult]) -> tuple[BenchConfig, list[str]]:
    """The bench of the confirmation (the picks as ``param_grid`` arms) and the arm labels it runs."""
    grid: dict[str, dict[str, list[Any]]] = {}
    for pick in picks:
        keys = settings.spaces[pick.strategy]
        for key in keys:
            values = grid.setdefault(pick.strategy, {}).setdefault(key, [])
            if pick.params[key] not in values:
                values.append(pick.params[key])
    cfg = settings.config.replace(
        strategies=tuple(grid), param_grid=grid, seeds=tuple(settings.confirm_seeds)
    )
    return cfg, [*REFERENCE_ARMS, *(p.label for p in picks)]


def _pick_dict(pick: TrialResult, rows: dict[str, dict[str, Any]], settings: _Settings) -> dict[str, Any]:
    row = rows.get(pick.label)
    ci = (row or {}).get("penalty_ci")
    command_cfg = settings.config.replace(
        strategies=(pick.strategy,),
        params={**settings.config.params, pick.strategy: pick.params},
        seeds=tuple(settings.confirm_seeds),
    )
    return _trial_point(pick) | {
        "confirmed": row,
        "beats_random": bool(ci and ci[1] < 0),
        "confirmed_within_budget": bool(row and _within(row, settings)),
        "command": command_cfg.command(),
    }


def _verdict(rec: dict[str, Any] | None, settings: _Settings) -> str:
    budget = f"step ratio <= {settings.budget:g}"
    if rec is None:
        return f"no setting met the budget ({budget}) in the search; raise --budget or --trials"
    row = rec["confirmed"]
    pen, ci = row.get("penalty"), row.get("penalty_ci")
    gain = f"{-pen * 100:+.2f} points vs random" if pen is not None else "no paired gain"
    span = f" [95% CI {-ci[1] * 100:+.2f}, {-ci[0] * 100:+.2f}]" if ci else ""
    ratio = row.get("compute_ratio")
    cost = f"step ratio {ratio:.2f}" if ratio is not None else "step ratio n/a"
    where = f"{gain}{span} at {cost} on {len(settings.confirm_seeds)} fresh seeds"
    if rec["beats_random"] and rec["confirmed_within_budget"]:
        return f"{rec['label']} beats random within the budget: {where}"
    if not rec["confirmed_within_budget"]:
        return f"{rec['label']} exceeds the budget on the fresh seeds: {where}"
    if ci and ci[0] > 0:
        return f"{rec['label']} is worse than random on the fresh seeds: {where}"
    return f"{rec['label']} is not distinguishable from random on the fresh seeds: {where}"


# ------------------------------------------------------------------------------------------ advise


def advise(
    config: BenchConfig,
    *,
    budget: float = 0.5,
    time_budget: float | None = None,
    trials: int = DEFAULT_TRIALS,
    strategies: Sequence[str] | None = None,
    confirm_seeds: int | Sequence[int] | None = None,
    sampler_seed: int = 0,
    output: str | Path | None = None,
    dataset: Dataset | None = None,
    progress: AdviseFn | None = None,
    workers: Workers = 1,
    executor: str = "local",
    address: str | None = None,
    threads: int | None = None,
    gpus_per_cell: float | None = None,
) -> Advice:
    """Search for the best initialization strategy and parameters of ``config``'s bench within a compute
    budget, then confirm the best setting (and a runner-up) on fresh seeds next to ``random`` and ``warm``.

    Args:
        config: the bench to advise on (stream, data, model, training, ...); ``config.seeds`` are the
            search seeds. Its ``strategies`` are ignored (give ``strategies``); its ``params`` fix
            parameters that the search then leaves alone.
        budget: the largest mean ratio of training steps to ``random``'s (a from-scratch retrain each
            round) that a recommendation may cost, e.g. 0.5.
        time_budget: also the largest ratio of training seconds (timings vary between runs, so a search
            with it may differ between runs).
        trials: settings to try (a re-run into the same ``output`` continues up to this many).
        strategies: the strategies to search (default: every registered one that declares a search space).
        confirm_seeds: the confirmation's seeds: a list, or a count of seeds after the largest search seed
            (default 5); they must not overlap the search seeds.
        sampler_seed: seed of the sampler (same seed, same search).
        output: the advise folder; re-running into it resumes (finished trials are kept). None: a
            temporary folder.
        dataset: tensors to use instead of loading ``config.dataset`` (e.g. from ``from_arrays``).
        progress: receives :class:`AdviseEvent` s.
        workers, executor, address, threads, gpus_per_cell: how each trial's cells run (see
            :func:`~activews.engine.bench.run_experiments`); the search is the same with any count.

    Returns:
        An :class:`Advice`: trials, frontier, recommendation, runner-up and confirmation.

    Raises:
        ActivewsError: bad input (a budget <= 0, no tunable strategy, confirmation seeds that overlap the
            search seeds, ...), before any data loads.
    """
    settings = _settings(config, budget, time_budget, trials, strategies, confirm_seeds, sampler_seed)
    start = time.perf_counter()
    if output is None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="activews-advise-") as tmp:
            advice = _advise(
                settings, Path(tmp), dataset, progress, workers, executor, address, threads, gpus_per_cell
            )
        advice.folder = None
    else:
        advice = _advise(
            settings, Path(output), dataset, progress, workers, executor, address, threads, gpus_per_cell
        )
    advice.seconds = time.perf_counter() - start
    return advice


def _advise(
    settings: _Settings,
    folder: Path,
    dataset: Dataset | None,
    progress: AdviseFn | None,
    workers: Workers,
    executor: str,
    address: str | None,
    threads: int | None,
    gpus_per_cell: float | None,
) -> Advice:
    config = settings.config
    data = dataset if dataset is not None else load_bench_dataset(config)
    rounds = check_fits(config, data).num_rounds
    # A user's tensors travel to the workers; a built-in or .npz dataset is loaded there (as bench does).
    given = {0: dataset} if dataset is not None else None
    _prepare(folder)
    n = settings.trials

    def emit(kind: str, trial: int = -1, **kw: Any) -> None:
        if progress:
            progress(AdviseEvent(kind, trial, n, **kw))

    def run(experiments: Any, **kw: Any) -> list[BenchResult]:
        return run_experiments(
            experiments,
            workers=workers,
            executor=executor,
            address=address,
            threads=threads,
            gpus_per_cell=gpus_per_cell,
            **kw,
        )

    def forward(trial: int, label: str) -> Callable[[ProgressEvent], None]:
        return lambda ev: emit("round", trial, label=label, event=ev)

    with RunLock(folder):
        _claim(folder, settings)
        emit(
            "start",
            detail={
                "strategies": list(settings.spaces),
                "search_seeds": settings.search_seeds,
                "confirm_seeds": settings.confirm_seeds,
                "rounds": rounds,
                "budget": settings.budget,
            },
        )
        emit("references", label="random, warm")
        refs = run(
            [("", config)],
            output=folder / REFERENCES,
            datasets=given,
            progress=forward(-1, "references"),
            arms=list(REFERENCE_ARMS),
        )[0]
        ref_summary = summarize(refs.records, list(REFERENCE_ARMS))
        study = _study(folder, rounds)
        results: list[TrialResult] = []
        import optuna

        for number in range(n):
            stored = {t.number: t for t in study.get_trials(deepcopy=False)}
            frozen = stored.get(number)
            if frozen is not None and frozen.state.is_finished():
                results.append(_result_of(frozen))
                continue
            if frozen is not None:  # interrupted while running: continue it with the same parameters
                trial = optuna.trial.Trial(study, frozen._trial_id)  # (FrozenTrial keeps its id private)
                reported = set(frozen.intermediate_values)
            else:
                study.sampler = _sampler(settings, number)
                trial, reported = study.ask(), set()
            previous = {t.user_attrs.get("label"): t for t in stored.values() if t.state.is_finished()}
            result = _run_trial(
                trial, settings, folder, rounds, refs.records, run, emit, reported, given, previous
            )
            state = _states().get(result.state, optuna.trial.TrialState.FAIL)
            value = result.gain if result.state == "complete" else None
            if result.state == "complete" and value is None:
                state = optuna.trial.TrialState.FAIL
            study.tell(trial, value, state=state)
            results.append(result)
            emit("trial_end", number, label=result.label, result=result)
        points = [_point(r, settings) for r in ref_summary] + [
            _trial_point(t) for t in results if t.state == "complete"
        ]
        frontier = pareto_front(points)
        best, runner = _picks(results)
        picks = [p for p in (best, runner) if p is not None]
        confirmation: list[dict[str, Any]] = []
        rec = run_up = None
        if picks:
            confirm_cfg, arms = _confirm_config(settings, picks)
            emit("confirm", label=", ".join(p.label for p in picks))
            name = "confirm-" + "-".join(str(p.number) for p in picks)
            confirmed = run(
                [("", confirm_cfg)],
                output=folder / name,
                datasets=given,
                progress=forward(-1, "confirm"),
                arms=arms,
            )[0]
            confirmation = summarize(confirmed.records, arms)
            rows = {r["arm"]: r for r in confirmation}
            rec = _pick_dict(best, rows, settings) if best else None
            run_up = _pick_dict(runner, rows, settings) if runner else None
    return Advice(
        config=config,
        budget=settings.budget,
        time_budget=settings.time_budget,
        search_seeds=settings.search_seeds,
        confirm_seeds=settings.confirm_seeds,
        trials=results,
        references=ref_summary,
        frontier=frontier,
        recommendation=rec,
        runner_up=run_up,
        confirmation=confirmation,
        verdict=_verdict(rec, settings),
        folder=folder,
    )
