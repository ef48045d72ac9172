"""activews.testing: the shipped contract checks pass on good code and catch each kind of broken code.

Every broken strategy or acquisition below breaks exactly one rule; ``check_strategy`` /
``check_acquisition`` must fail with a one-line ``ContractError`` naming that rule's check.
"""

from __future__ import annotations

import ast
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest
import torch
from pydantic import ConfigDict, Field
from torch import nn

import activews.testing as testing
from activews.errors import ActivewsError
from activews.params import Tune
from activews.strategies import InitContext, InitStrategy
from activews.streams import BatchSelector
from activews.testing import (
    ACQUISITION_CHECKS,
    STRATEGY_CHECKS,
    ContractError,
    acquisition_checks,
    check_acquisition,
    check_strategy,
    strategy_checks,
)
from tests.helpers import assert_one_line

# ------------------------------------------------------------------------------------------ strategies


class Halve(InitStrategy):
    """Scale every parameter by ``factor`` (a well-behaved test strategy).

    BatchNorm running statistics are kept; the optimizer is re-created by the trainer.
    """

    class Params(InitStrategy.Params):
        factor: float = Field(0.5, gt=0.0, le=1.0)

    reference = "none (a test strategy)"
    batchnorm = "running statistics kept"

    @torch.no_grad()
    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        for p in model.parameters():
            p.mul_(self.params.factor)
        return model


class Noisy(Halve):
    """Halve, then add noise from the context's generator (a well-behaved random strategy).

    References:
        Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020.
    """

    reference = "Ash & Adams, NeurIPS 2020, arXiv:1910.08475 (a variant)"

    def needs(self):
        return frozenset({"generator"})

    @torch.no_grad()
    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        model = super().init_round(model, ctx)
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=ctx.generator))
        return model


class Counting(Halve):
    """Shrink by ``1 / (1 + rounds seen)``: state carried across rounds, saved and restored."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    @torch.no_grad()
    def init_round(self, model, ctx):
        self.calls += 1
        for p in model.parameters():
            p.mul_(1.0 / (1 + self.calls))
        return model

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = int(state["calls"])


class PullToInit(Halve):
    """Halve, and pull the weights toward round 0 during training (a loss term)."""

    def needs(self):
        return frozenset({"initial_state"})

    def loss_term(self, model, ctx):
        return 1e-3 * sum(((p - ctx.initial_state[n]) ** 2).sum() for n, p in model.named_parameters())


@pytest.mark.parametrize("cls", [Halve, Noisy, Counting, PullToInit])
def test_good_strategies_pass(cls):
    check_strategy(cls)


def test_good_strategy_passes_with_parameters_and_on_a_resnet():
    check_strategy(Halve, {"factor": 0.9})
    testing.check_keeps_architecture(Halve, Halve.Params(factor=0.9), models=("resnet18",))


class NotAModule(Halve):
    """Returns the weights, not the model."""

    def init_round(self, model, ctx):
        return model.state_dict()


class GlobalNoise(Halve):
    """Adds noise from torch's global generator, ignoring ctx.generator."""

    @torch.no_grad()
    def init_round(self, model, ctx):
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
        return model


class GlobalNoiseInHook(Halve):
    """Perturbs the weights after every step with torch's global generator."""

    @torch.no_grad()
    def after_step(self, model, step, ctx):
        for p in model.parameters():
            p.add_(1e-3 * torch.randn_like(p))


_clock = itertools.count()


class ClockNoise(Halve):
    """Noise seeded from a counter that differs on every call: not reproducible."""

    @torch.no_grad()
    def init_round(self, model, ctx):
        gen = torch.Generator().manual_seed(next(_clock) + time.perf_counter_ns())
        for p in model.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen))
        return model


class Forgetful(Counting):
    """Keeps a counter across rounds but does not save it."""

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


@dataclass
class When:
    calls: int


class UnsafeState(Counting):
    """Saves its state as an object that torch.load(weights_only=True) refuses."""

    def state_dict(self):
        return {"when": When(self.calls)}

    def load_state_dict(self, state):
        self.calls = state["when"].calls


class RefusesItsOwnState(Counting):
    """Saves state but keeps the base class's load_state_dict (which refuses any state)."""

    load_state_dict = InitStrategy.load_state_dict


class SpaceOutOfBounds(Halve):
    """Declares a search space past its field's bound (registering it would be refused)."""

    class Params(InitStrategy.Params):
        factor: Annotated[float, Tune(0.5, 2.0)] = Field(0.5, gt=0.0, le=1.0)


class BreaksAtTheEndOfItsSpace(Halve):
    """Declares factor in [0.1, 1] as its search space, but cannot take factor=1."""

    class Params(InitStrategy.Params):
        factor: Annotated[float, Tune(0.1, 1.0)] = Field(0.5, gt=0.0, le=1.0)

    def init_round(self, model, ctx):
        if self.params.factor == 1.0:
            raise ZeroDivisionError("1 / (1 - factor)")
        return super().init_round(model, ctx)


class NoReference(Halve):
    """Halve, with no citation."""

    reference = ""


class NoReferencesSection(Halve):
    """Cites a paper in the attribute but not in the docstring."""

    reference = "Someone et al., Somewhere 2024"


class NoDocstring(Halve):
    pass


NoDocstring.__doc__ = None


class NoBatchnormStatement(Halve):
    """Halve, without saying what happens to BatchNorm."""

    batchnorm = ""


class NegativeVariance(Halve):
    """Breaks the BatchNorm running variances."""

    @torch.no_grad()
    def init_round(self, model, ctx):
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_var.fill_(-1.0)
        return model


class ToDouble(Halve):
    """Returns the model in float64."""

    def init_round(self, model, ctx):
        return model.double()


class DropsTheHead(Halve):
    """Returns another architecture."""

    def init_round(self, model, ctx):
        return nn.Sequential(*list(model.children())[:-1])


class MakesNaN(Halve):
    """Divides by a zero norm."""

    @torch.no_grad()
    def init_round(self, model, ctx):
        for p in model.parameters():
            p.div_(torch.zeros(()))
        return model


class SharesInitialState(Halve):
    """Points the parameters at ctx.initial_state's tensors, so training then changes round 0's copy."""

    def needs(self):
        return frozenset({"initial_state"})

    @torch.no_grad()
    def init_round(self, model, ctx):
        for name, p in model.named_parameters():
            p.data = ctx.initial_state[name]
        return model


class UndeclaredNeed(Halve):
    """Reads the round-0 weights without saying so in needs()."""

    @torch.no_grad()
    def init_round(self, model, ctx):
        for name, p in model.named_parameters():
            p.add_(ctx.initial_state[name], alpha=0.1)
        return model


class NeedsSomethingUnknown(Halve):
    """Declares a need that does not exist."""

    def needs(self):
        return frozenset({"gpu"})


class VectorLossTerm(Halve):
    """A loss term that is not a scalar."""

    def loss_term(self, model, ctx):
        return torch.stack([p.sum() for p in model.parameters()])


class HiddenLossTerm(Halve):
    """A loss term that hooks() says is not there (so the trainer never calls it)."""

    def loss_term(self, model, ctx):
        return 1e-3 * sum(p.sum() for p in model.parameters())

    def hooks(self):
        return (False, False)


class RequiredParameter(Halve):
    """A parameter without a default."""

    class Params(InitStrategy.Params):
        factor: float = Field(gt=0.0, le=1.0)


class MutableParams(Halve):
    """Parameters that can be assigned."""

    class Params(InitStrategy.Params):
        model_config = ConfigDict(frozen=False)
        factor: float = Field(0.5, gt=0.0, le=1.0)


class OpenParams(Halve):
    """Parameters that take unknown keys."""

    class Params(InitStrategy.Params):
        model_config = ConfigDict(extra="allow")
        factor: float = Field(0.5, gt=0.0, le=1.0)


class UnvalidatedParams(Halve):
    """Refuses unknown keys but skips validation: out-of-range values pass."""

    @classmethod
    def parse_params(cls, values):
        unknown = sorted(set(values) - set(cls.Params.model_fields))
        if unknown:
            raise ActivewsError(f"{cls.label()}: unknown parameter {unknown[0]!r}")
        return cls.Params.model_construct(**values)


class SwallowsParams(Halve):
    """Ignores what it is given."""

    def __init__(self, params=None, **kwargs):
        super().__init__(None, **kwargs)


class TwoLineDescription(Halve):
    """Describes itself on two lines."""

    def describe(self):
        return f"halve\n(factor={self.params.factor})"


class NotAStrategy:
    """A class that only looks like one."""

    def init_round(self, model, ctx):
        return model


BROKEN_STRATEGIES = [
    (NotAStrategy, "check_strategy_class"),
    (NoDocstring, "check_docstring"),
    (NoReference, "check_reference"),
    (NoReferencesSection, "check_reference"),
    (RequiredParameter, "check_default_params"),
    (MutableParams, "check_params_frozen"),
    (OpenParams, "check_unknown_params_rejected"),
    (UnvalidatedParams, "check_invalid_params_rejected"),
    (SwallowsParams, "check_params_object_or_keywords"),
    (TwoLineDescription, "check_describe"),
    (NotAModule, "check_returns_module"),
    (ToDouble, "check_keeps_architecture"),
    (DropsTheHead, "check_keeps_architecture"),
    (MakesNaN, "check_finite"),
    (NoBatchnormStatement, "check_batchnorm"),
    (NegativeVariance, "check_batchnorm"),
    (VectorLossTerm, "check_training_hooks"),
    (HiddenLossTerm, "check_training_hooks"),
    (ClockNoise, "check_deterministic"),
    (GlobalNoise, "check_randomness_from_ctx"),
    (GlobalNoiseInHook, "check_randomness_from_ctx"),
    (SharesInitialState, "check_initial_state_untouched"),
    (UndeclaredNeed, "check_needs_declared"),
    (NeedsSomethingUnknown, "check_needs_declared"),
    (SpaceOutOfBounds, "check_search_space_valid"),
    (BreaksAtTheEndOfItsSpace, "check_search_space_valid"),
    (Forgetful, "check_state_dict_round_trip"),
    (UnsafeState, "check_state_dict_round_trip"),
    (RefusesItsOwnState, "check_state_dict_round_trip"),
]


@pytest.mark.parametrize(("cls", "check"), BROKEN_STRATEGIES, ids=[c.__name__ for c, _ in BROKEN_STRATEGIES])
def test_broken_strategy_is_caught_by_its_check(cls, check):
    with pytest.raises(ContractError) as exc:
        check_strategy(cls)
    message = str(exc.value)
    assert_one_line(message)
    assert exc.value.check == check, message
    assert message.startswith(f"strategy {cls.__name__} fails {check}: "), message
    assert isinstance(exc.value, AssertionError)
    # the check on its own says the same
    with pytest.raises(ContractError, match=check):
        getattr(testing, check)(cls)


def test_every_strategy_check_catches_something():
    assert {check for _, check in BROKEN_STRATEGIES} == {c.__name__ for c in STRATEGY_CHECKS}


def test_a_registered_name_is_checked_under_its_name():
    from activews.strategies import STRATEGIES, register_strategy

    register_strategy("testing_probe_nan")(MakesNaN)
    try:
        with pytest.raises(
            ContractError, match=r"^strategy 'testing_probe_nan' fails check_finite: on mlp: "
        ):
            check_strategy("testing_probe_nan")
    finally:
        STRATEGIES.unregister("testing_probe_nan")
        MakesNaN.name = ""
    with pytest.raises(
        ActivewsError, match="unknown strategy"
    ):  # a typo is the usual error, not a contract one
        check_strategy("no_such_strategy_anywhere")


def test_strategy_checks_are_pytest_params_one_per_check():
    params = strategy_checks(Halve, {"factor": 0.25})
    assert [p.id for p in params] == [f"Halve[factor=0.25]-{c.__name__}" for c in STRATEGY_CHECKS]
    for p in params:
        (check,) = p.values
        assert check.name in p.id and check.target == "strategy Halve"
        check()
    broken = {p.id.split("-", 1)[1]: p.values[0] for p in strategy_checks(GlobalNoise)}
    broken["check_deterministic"]()  # the other checks pass: only its own fails
    with pytest.raises(ContractError, match="check_randomness_from_ctx"):
        broken["check_randomness_from_ctx"]()


def test_a_check_that_crashes_names_the_exception():
    class Crashes(Halve):
        """Raises inside init_round."""

        def init_round(self, model, ctx):
            raise KeyError("no such layer")

    with pytest.raises(ContractError) as exc:
        check_strategy(Crashes)
    assert exc.value.check == "check_returns_module"
    assert "raised KeyError: 'no such layer'" in str(exc.value)
    assert isinstance(exc.value.__cause__, KeyError)  # the traceback is chained


def test_refusing_every_test_model_is_a_failure_refusing_some_is_not():
    class NoBatchNorm(Halve):
        """Refuses models with BatchNorm."""

        def check_model(self, model):
            if any(isinstance(m, nn.BatchNorm1d) for m in model.modules()):
                raise ActivewsError("no BatchNorm, please")

    check_strategy(NoBatchNorm)  # runs on the MLP only
    with pytest.raises(ContractError, match="check_model refuses every test model .*no BatchNorm, please"):
        check_strategy(NoBatchNorm, models=("cnn_bn",))


# ---------------------------------------------------------------------------------------- acquisitions


def top2_gap(probs: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """p_top2 - p_top1: a small gap between the two likeliest classes scores high."""
    top2 = probs.topk(2, dim=1).values
    return top2[:, 1] - top2[:, 0]


def noisy_gap(probs: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """The gap plus a little noise from the generator."""
    return top2_gap(probs) + 1e-3 * torch.rand(len(probs), generator=generator).to(probs.dtype)


class Likeliest(BatchSelector):
    """Take the candidates whose top class is likeliest, skipping the first ``skip``."""

    class Params(BatchSelector.Params):
        skip: int = Field(0, ge=0)

    reference = "none (a test selector)"

    def select(self, view, candidates, labeled, k, generator):
        self.check_batch(k, candidates)
        order = torch.argsort(view(candidates).max(dim=1).values, descending=True, stable=True).cpu()
        order = torch.cat([order[self.params.skip :], order[: self.params.skip]])
        return candidates[order[:k]]


@pytest.mark.parametrize("acq", [top2_gap, noisy_gap, Likeliest, "margin", "bald"])
def test_good_acquisitions_pass(acq):
    check_acquisition(acq)


def no_generator(probs):
    """No generator keyword."""
    return top2_gap(probs)


def column(probs, *, generator=None):
    """One column, not one score per row."""
    return top2_gap(probs)[:, None]


def naive_entropy(probs, *, generator=None):
    """p log p: NaN where p is exactly 0."""
    return -(probs * probs.log()).sum(dim=1)


def batch_normalized(probs, *, generator=None):
    """Divides by the batch's largest score: depends on the other rows."""
    s = 1.0 - probs.max(dim=1).values
    return s / s.max().clamp_min(1e-12)


def global_random(probs, *, generator=None):
    """Random scores from torch's global generator."""
    return torch.rand(len(probs))


_calls = itertools.count()


def drifting(probs, *, generator=None):
    """Scores that change from call to call."""
    return top2_gap(probs) + next(_calls)


class Duplicates(Likeliest):
    """Returns the first candidate k times."""

    def select(self, view, candidates, labeled, k, generator):
        return candidates[:1].repeat(k)


class UndeclaredEmbed(Likeliest):
    """Uses penultimate features without declaring needs = {"embed"}."""

    def select(self, view, candidates, labeled, k, generator):
        self.check_batch(k, candidates)
        order = view.embed(candidates).norm(dim=1).argsort(descending=True, stable=True).cpu()
        return candidates[order[:k]]


class NoBatchCheck(Likeliest):
    """Returns fewer than asked instead of an error."""

    def select(self, view, candidates, labeled, k, generator):
        return candidates[:k]


class ZeroesTheHead(Likeliest):
    """Changes the model while selecting."""

    def select(self, view, candidates, labeled, k, generator):
        with torch.no_grad():
            [m for m in view.model.modules() if isinstance(m, nn.Linear)][-1].weight.zero_()
        return super().select(view, candidates, labeled, k, generator)


class GlobalShuffle(Likeliest):
    """Shuffles with torch's global generator."""

    def select(self, view, candidates, labeled, k, generator):
        self.check_batch(k, candidates)
        return candidates[torch.randperm(len(candidates))[:k]]


class OpenSelectorParams(Likeliest):
    """Takes unknown keys."""

    class Params(BatchSelector.Params):
        model_config = ConfigDict(extra="allow")
        skip: int = Field(0, ge=0)


class Unscored(BatchSelector):
    """Implements nothing."""

    reference = "none"


class NoSelectorReference(Likeliest):
    """No reference attribute."""

    reference = ""


BROKEN_ACQUISITIONS = [
    (no_generator, "check_acquisition_kind"),
    (Unscored, "check_acquisition_kind"),
    (NotAStrategy, "check_acquisition_kind"),
    (NoSelectorReference, "check_acquisition_docstring"),
    (OpenSelectorParams, "check_acquisition_params"),
    (column, "check_scores"),
    (naive_entropy, "check_scores"),
    (drifting, "check_acquisition_deterministic"),
    (global_random, "check_acquisition_randomness_from_generator"),
    (GlobalShuffle, "check_acquisition_randomness_from_generator"),
    (batch_normalized, "check_row_wise"),
    (Duplicates, "check_selection"),
    (ZeroesTheHead, "check_selection"),
    (UndeclaredEmbed, "check_needs"),
    (NoBatchCheck, "check_too_many_requested"),
]


@pytest.mark.parametrize(
    ("acq", "check"), BROKEN_ACQUISITIONS, ids=[a.__name__ for a, _ in BROKEN_ACQUISITIONS]
)
def test_broken_acquisition_is_caught_by_its_check(acq, check):
    with pytest.raises(ContractError) as exc:
        check_acquisition(acq)
    message = str(exc.value)
    assert_one_line(message)
    assert exc.value.check == check, message
    assert message.startswith(f"acquisition {acq.__name__!r} fails {check}: ") or message.startswith(
        f"acquisition {acq.__name__} fails {check}: "
    ), message


def test_every_acquisition_check_catches_something():
    assert {check for _, check in BROKEN_ACQUISITIONS} == {c.__name__ for c in ACQUISITION_CHECKS}


def test_acquisition_checks_list_what_applies():
    ids = lambda acq: [p.id for p in acquisition_checks(acq)]  # noqa: E731
    function_checks = [
        "check_acquisition_kind",
        "check_acquisition_docstring",
        "check_scores",
        "check_acquisition_deterministic",
        "check_acquisition_randomness_from_generator",
        "check_row_wise",
        "check_selection",
    ]
    assert ids(top2_gap) == [f"top2_gap-{c}" for c in function_checks]
    assert ids("margin") == [f"margin-{c}" for c in function_checks]
    assert ids(Likeliest) == [
        f"Likeliest-{c.__name__}"
        for c in ACQUISITION_CHECKS
        if c.__name__ not in ("check_scores", "check_row_wise")
    ]
    assert ids(Likeliest) == [p.id for p in acquisition_checks(Likeliest)]
    assert [p.id for p in acquisition_checks("bald", {"samples": 3})] == [
        f"bald[samples=3]-{c.__name__}" for c in ACQUISITION_CHECKS
    ]
    for p in acquisition_checks(Likeliest, {"skip": 2}):
        p.values[0]()


def test_a_function_takes_no_parameters():
    with pytest.raises(ContractError, match="check_acquisition_kind: a function takes no parameters"):
        check_acquisition(top2_gap, {"beta": 1})


# ------------------------------------------------------------------------------------------ the module


def test_testing_imports_only_the_domain_layer_and_pytest_lazily():
    tree = ast.parse(Path(testing.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = {a.name for n in top if isinstance(n, ast.Import) for a in n.names} | {
        n.module for n in top if isinstance(n, ast.ImportFrom) and n.module
    }
    ours = {m for m in modules if m.split(".")[0] == "activews"}
    allowed = (
        "activews.strategies",
        "activews.streams",
        "activews.models",
        "activews.training",
        "activews.errors",
        "activews.registry",
        "activews.params",
    )
    assert ours and all(m.startswith(allowed) for m in ours), ours
    assert "pytest" not in modules
    nested = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "pytest" in nested  # imported inside the pytest helpers


def test_contract_error_pickles_and_an_instance_is_refused():
    import pickle

    with pytest.raises(ContractError) as exc:
        check_strategy(MakesNaN)
    again = pickle.loads(pickle.dumps(exc.value))  # e.g. through pytest-xdist
    assert (str(again), again.check, again.target) == (str(exc.value), "check_finite", "strategy MakesNaN")
    with pytest.raises(TypeError, match=r"pass the class, not an instance: check_strategy\(Halve, params\)"):
        check_strategy(Halve())
