"""Acquisition: how the active stream picks the unlabeled examples to label next.

Two kinds share one registry (:data:`ACQUISITIONS`, entry-point group ``activews.acquisitions``), one
decorator (:func:`register_acquisition`) and one name space (``--acquisition NAME``):

- **row-wise functions** ``f(probs, *, generator=None) -> scores``: ``probs`` of shape ``(N, C)`` (rows sum
  to 1), ``N`` scores back, higher = more wanted. They are applied window by window over the candidates,
  so a score must depend only on its own row. Built in: ``least_confidence``, ``margin``, ``entropy``,
  ``random``.
- **batch selectors**: subclasses of :class:`BatchSelector` that choose a whole batch at once and may use
  more of the model than its probabilities (a :class:`~activews.streams.base.ModelView`: penultimate
  features, Monte Carlo dropout samples). Built in (``activews.streams.selectors``): ``bald``, ``badge``,
  ``coreset``.

:func:`make_acquisition` turns either kind into a :class:`BatchSelector` (a row-wise function is wrapped
in :class:`RowWise`: top ``k`` by score), which is what the active stream calls.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

import torch
from pydantic import BaseModel
from torch import nn

from activews.errors import ActivewsError
from activews.params import Configurable, what_is
from activews.registry import Registry
from activews.streams.base import ProbaFn

__all__ = [
    "Acquisition",
    "ACQUISITIONS",
    "BatchSelector",
    "ScoringSelector",
    "RowWise",
    "register_acquisition",
    "get_acquisition",
    "list_acquisitions",
    "make_acquisition",
    "iter_windows",
    "least_confidence",
    "margin",
    "entropy",
    "random",
]


class Acquisition(Protocol):
    def __call__(self, probs: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor: ...


def iter_windows(candidates: torch.Tensor, size: int) -> Iterator[tuple[int, int, torch.Tensor | slice]]:
    """Walk ``candidates`` (1-D pool indices) in windows of ``size``: ``(start, stop, pool_index)``.

    ``candidates[start:stop]`` is the window; ``pool_index`` is a ``slice`` when the window is a run of
    consecutive pool indices (``x_pool[slice]`` is a view: no gather copy) and the index tensor otherwise.
    """
    for start in range(0, len(candidates), size):
        chunk = candidates[start : start + size]
        first, last = int(chunk[0]), int(chunk[-1])
        if last - first == len(chunk) - 1 and bool((chunk.diff() == 1).all()):
            yield start, start + len(chunk), slice(first, last + 1)
        else:
            yield start, start + len(chunk), chunk


class BatchSelector(Configurable):
    """Base class of acquisitions that choose a batch of examples at once.

    Subclasses set a nested ``Params`` (a frozen pydantic model derived from ``BatchSelector.Params``),
    declare in ``needs`` which views of the model they use, and implement :meth:`select`. Register them
    with :func:`register_acquisition`. ``label()``, ``parse_params()`` and ``describe()`` come from
    :class:`activews.params.Configurable`.

    Class attributes:
        name: the registry name (set by :func:`register_acquisition`).
        needs: the views of the model :meth:`select` calls: ``"proba"`` (``view(idx)``), ``"embed"``
            (``view.embed(idx)``, ``view.embed_proba(idx)``), ``"mc_proba"`` (``view.mc_proba(...)``).
            A plain probability function offers only ``"proba"``; the active stream says so before
            selecting if more is needed.
        reference: the paper the method comes from.

    Args:
        params: a ``Params`` object or a mapping, validated (one-line error naming the fix).
        score_batch: pool examples per forward pass when the selector walks its candidates.
    """

    class Params(Configurable.Params):
        """Parameters of the acquisition; validated, frozen, unknown keys rejected."""

    kind: ClassVar[str] = "acquisition"
    needs: ClassVar[frozenset[str]] = frozenset({"proba"})
    reference: ClassVar[str] = ""

    def __init__(
        self, params: BaseModel | Mapping[str, Any] | None = None, *, score_batch: int = 8192
    ) -> None:
        if score_batch < 1:
            raise ActivewsError(f"score_batch must be >= 1, got {score_batch}")
        self.score_batch = int(score_batch)
        self.params = self.coerce_params(params)

    def check(self, model: nn.Module) -> None:
        """Raise a one-line :class:`ActivewsError` if this acquisition cannot work with ``model``.

        Called before any training (``check_fits``), so a bench fails early; the default accepts any model.
        """
        return None

    def check_batch(self, k: int, candidates: torch.Tensor) -> None:
        """A one-line error unless ``0 <= k <= len(candidates)``."""
        if not 0 <= k <= len(candidates):
            raise ActivewsError(
                f"{self.label()}: asked for {k} examples from {len(candidates)} candidates; lower "
                f"--query-size or raise --pool-subsample"
            )

    def select(
        self,
        view: ProbaFn,
        candidates: torch.Tensor,
        labeled: torch.Tensor,
        k: int,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Choose ``k`` of the ``candidates``.

        Args:
            view: the current model (a :class:`~activews.streams.base.ModelView`, or a plain probability
                function when ``needs`` is ``{"proba"}``).
            candidates: 1-D int64 tensor of distinct pool indices to choose from (sorted, on the CPU).
            labeled: 1-D int64 tensor of the pool indices labeled so far.
            k: how many to choose (``<= len(candidates)``).
            generator: the stream's seeded CPU generator: the only randomness allowed.

        Returns:
            ``k`` distinct pool indices taken from ``candidates``, most wanted (or first chosen) first.
        """
        raise NotImplementedError


class ScoringSelector(BatchSelector):
    """A selector that scores each candidate on its own and takes the top ``k``.

    Implement :meth:`score` for one window of pool indices; the candidates are walked in windows of
    ``score_batch`` (see :func:`iter_windows`), so memory beyond one window is the score vector.
    """

    def score(self, view: ProbaFn, idx: torch.Tensor | slice, generator: torch.Generator) -> torch.Tensor:
        """Scores (higher = more wanted) of the pool examples ``idx`` (an index tensor or a slice)."""
        raise NotImplementedError

    def scores(self, view: ProbaFn, candidates: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """float32 CPU scores of every candidate, in the order of ``candidates``."""
        out = torch.empty(len(candidates), dtype=torch.float32)
        for start, stop, idx in iter_windows(candidates, self.score_batch):
            window = self.score(view, idx, generator)
            if window.shape != (stop - start,):
                raise ActivewsError(
                    f"{self.label()} returned scores of shape {tuple(window.shape)} for {stop - start} "
                    f"examples; it must return one score per example"
                )
            out[start:stop] = window.float().cpu()
        return out

    def select(
        self,
        view: ProbaFn,
        candidates: torch.Tensor,
        labeled: torch.Tensor,
        k: int,
        generator: torch.Generator,
    ) -> torch.Tensor:
        self.check_batch(k, candidates)
        scores = self.scores(view, candidates, generator)
        # Highest score first; equal scores (e.g. saturated probabilities) in candidate order, so the
        # choice and its order never depend on how a top-k kernel breaks ties.
        return candidates[torch.argsort(scores, descending=True, stable=True)[:k]]


class RowWise(ScoringSelector):
    """A row-wise acquisition function ``f(probs, *, generator)`` as a selector: top ``k`` by score."""

    def __init__(
        self,
        fn: Acquisition,
        name: str = "",
        params: BaseModel | Mapping[str, Any] | None = None,
        *,
        score_batch: int = 8192,
    ) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "")
        if params:  # a function has no parameters to validate
            keys = ", ".join(params.model_dump() if isinstance(params, BaseModel) else params)
            raise ActivewsError(f"{self.label()} takes no parameters; drop --acquisition-param {keys}")
        super().__init__(None, score_batch=score_batch)

    def score(self, view: ProbaFn, idx: torch.Tensor | slice, generator: torch.Generator) -> torch.Tensor:
        return self.fn(view(idx), generator=generator)

    def describe(self) -> str:
        return self.name


Entry = Acquisition | type[BatchSelector]
E = TypeVar("E", bound=Callable[..., Any])


def _check_entry_point(name: str, obj: Any) -> Entry:
    """What an ``activews.acquisitions`` entry point may load, with the checks of
    :func:`register_acquisition`: a row-wise function that can be called as ``f(probs, *, generator=None)``,
    or a :class:`BatchSelector` subclass (not a :class:`RowWise`) that implements ``select`` (``score``
    for a :class:`ScoringSelector`). A class's ``name`` becomes the entry point's name. Raises a one-line
    :class:`ActivewsError` saying what is wrong otherwise (the registry adds which plugin it was).
    """
    if inspect.isclass(obj):
        if not issubclass(obj, BatchSelector) or issubclass(obj, RowWise):
            raise ActivewsError(
                f"it is {what_is(obj)}, not a BatchSelector subclass or a function f(probs, *, generator)"
            )
        if (
            issubclass(obj, ScoringSelector)
            and obj.select is ScoringSelector.select
            and obj.score is ScoringSelector.score
        ):
            raise ActivewsError(f"class {obj.__qualname__} does not implement score")
        BatchSelector.check_implements(obj, "select")
        return BatchSelector.admit(obj, name, claim=True)
    if not callable(obj) or inspect.ismodule(obj):
        raise ActivewsError(f"it is {what_is(obj)}, not a function f(probs, *, generator) or a BatchSelector")
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # some builtins have none: accept, as @register_acquisition does
        return obj
    try:
        signature.bind(None, generator=None)
    except TypeError:
        raise ActivewsError(
            f"{what_is(obj)}{signature} cannot be called as f(probs, *, generator=None)"
        ) from None
    return obj


ACQUISITIONS: Registry[Entry] = Registry(
    "acquisition", entry_point_group="activews.acquisitions", check=_check_entry_point
)


def register_acquisition(name: str, *, overwrite: bool = False) -> Callable[[E], E]:
    """Decorator: register a row-wise function or a :class:`BatchSelector` subclass under ``name``.

    Example:
        >>> @register_acquisition("top2_ratio")
        ... def top2_ratio(probs, *, generator=None):
        ...     top2 = probs.topk(2, dim=1).values
        ...     return top2[:, 1] / top2[:, 0]
    """

    def decorate(obj: E) -> E:
        if inspect.isclass(obj):
            if not issubclass(obj, BatchSelector):
                raise ActivewsError(
                    f"@register_acquisition({name!r}) must decorate a function f(probs, *, generator) or a "
                    f"BatchSelector subclass, got class {obj.__name__}"
                )
            BatchSelector.admit(obj, name)
        elif not callable(obj):
            raise ActivewsError(f"@register_acquisition({name!r}) must decorate a function or a class")
        ACQUISITIONS.register(name, obj, overwrite=overwrite)
        return obj

    return decorate


def get_acquisition(name: str) -> Entry:
    """What is registered under ``name``: a row-wise function or a :class:`BatchSelector` subclass."""
    return ACQUISITIONS.get(name)


def list_acquisitions() -> list[str]:
    return ACQUISITIONS.names()


def make_acquisition(
    name: str, params: Mapping[str, Any] | None = None, *, score_batch: int = 8192
) -> BatchSelector:
    """The acquisition ``name`` as a :class:`BatchSelector`, with validated ``params``.

    A row-wise function becomes a :class:`RowWise` selector (it takes no parameters).
    """
    entry = get_acquisition(name)
    if inspect.isclass(entry) and issubclass(entry, BatchSelector):
        return entry(params, score_batch=score_batch)
    return RowWise(entry, name, params, score_batch=score_batch)


@register_acquisition("least_confidence")
def least_confidence(probs: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``1 - max_c p(c|x)``.

    References:
        Lewis & Gale, "A Sequential Algorithm for Training Text Classifiers", SIGIR 1994.
    """
    return 1.0 - probs.max(dim=1).values


@register_acquisition("margin")
def margin(probs: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``-(p_top1 - p_top2)``: a small gap between the two likeliest classes scores high.

    References:
        Scheffer, Decomain & Wrobel, "Active Hidden Markov Models for Information Extraction", IDA 2001.
    """
    if probs.shape[1] < 2:
        return torch.zeros(probs.shape[0], dtype=probs.dtype, device=probs.device)
    top2 = probs.topk(2, dim=1).values
    return -(top2[:, 0] - top2[:, 1])


@register_acquisition("entropy")
def entropy(probs: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Predictive entropy ``-sum_c p log p`` (``0 log 0 = 0``).

    References:
        Shannon, 1948; for active learning, Settles, "Active Learning Literature Survey", 2009.
    """
    return -(torch.special.xlogy(probs, probs)).sum(dim=1)


@register_acquisition("random")
def random(probs: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform random scores (passive random sampling as an acquisition baseline), from ``generator``."""
    return torch.rand(probs.shape[0], generator=generator).to(probs.device, probs.dtype)
