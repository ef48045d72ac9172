"""What decides which examples are labeled at each round."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from activews.errors import ActivewsError
from activews.registry import Registry
from activews.training import dropout_layers, global_rng_from, softmax
from activews.training import predict_proba as _predict_proba

__all__ = [
    "Round",
    "Stream",
    "STREAMS",
    "register_stream",
    "ProbaFn",
    "ModelView",
    "check_sizes",
    "round_sizes",
]

ProbaFn = Callable[[torch.Tensor | slice], torch.Tensor]
"""Maps pool indices (a 1-D index tensor, or a ``slice`` for a contiguous window) to predicted class
probabilities of shape ``(number of examples, C)``; ``x_pool[indices]`` works for both."""


class ModelView:
    """The current model as an acquisition function sees it: what it predicts for pool examples.

    Callable like a :data:`ProbaFn` (``view(idx)`` -> probabilities in eval mode), so a stream written
    for a plain function works with it. Batch selectors use the two other views:

    - :meth:`embed`: penultimate features, i.e. the input of the model's last ``nn.Linear`` (the last
      one in ``model.modules()`` order: the head, for the built-in models), captured by a forward hook
      in eval mode;
    - :meth:`mc_proba`: Monte Carlo dropout samples, with the dropout layers active and everything else
      (BatchNorm included) in eval mode.

    Every method takes pool indices (a 1-D index tensor, on any device, or a ``slice``), walks them in
    batches of ``batch_size``, runs without autograd, and leaves the model in the mode it found it in.
    Results are on the model's device.

    Args:
        model: the trained model of this round.
        x_pool: the whole training pool, on the model's device.
        batch_size: examples per forward pass.
    """

    def __init__(self, model: nn.Module, x_pool: torch.Tensor, *, batch_size: int = 4096) -> None:
        if batch_size < 1:
            raise ActivewsError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.x_pool = x_pool
        self.batch_size = int(batch_size)

    def _rows(self, idx: torch.Tensor | slice) -> torch.Tensor:
        return self.x_pool[idx if isinstance(idx, slice) else idx.to(self.x_pool.device)]

    def __call__(self, idx: torch.Tensor | slice) -> torch.Tensor:
        """Class probabilities ``(n, C)`` of the examples ``idx``, in eval mode."""
        return _predict_proba(self.model, self._rows(idx), self.batch_size)

    def head(self) -> nn.Linear:
        """The model's last ``nn.Linear``, whose input :meth:`embed` returns; a one-line error if none."""
        linears = [m for m in self.model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ActivewsError(
                f"penultimate features are the input of the model's last nn.Linear, and this model "
                f"({type(self.model).__name__}) has none; use a model with a linear head or another acquisition"
            )
        return linears[-1]

    @torch.no_grad()
    def embed_proba(self, idx: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate features ``(n, D)`` and class probabilities ``(n, C)``, from one eval-mode pass."""
        captured: list[torch.Tensor] = []
        hook = self.head().register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
        was_training = self.model.training
        self.model.eval()
        try:
            x = self._rows(idx)
            feats, probs = [], []
            for i in range(0, len(x), self.batch_size):
                captured.clear()
                probs.append(softmax(self.model(x[i : i + self.batch_size])))
                if not captured:
                    raise ActivewsError(
                        "the model's last nn.Linear is not called by its forward pass, so it has no "
                        "penultimate features; register the head last or use another acquisition"
                    )
                feats.append(captured[-1].reshape(len(probs[-1]), -1).float())  # the head's input, last call
        finally:
            hook.remove()
            self.model.train(was_training)
        if not feats:
            n_classes = self.head().out_features
            empty = self.x_pool.new_empty
            return empty((0, self.head().in_features)), empty((0, n_classes))
        return torch.cat(feats), torch.cat(probs)

    def embed(self, idx: torch.Tensor | slice) -> torch.Tensor:
        """Penultimate features ``(n, D)``: the input of the last ``nn.Linear``, in eval mode."""
        return self.embed_proba(idx)[0]

    @torch.no_grad()
    def mc_proba(self, idx: torch.Tensor | slice, samples: int, generator: torch.Generator) -> torch.Tensor:
        """``samples`` Monte Carlo dropout predictions ``(samples, n, C)`` of the examples ``idx``.

        Dropout layers are in train mode, every other layer in eval mode. The masks come from torch's
        global RNG seeded from one draw of ``generator`` (its state is restored afterwards), so the same
        generator state gives the same samples; each example gets its own masks in each sample.
        """
        if samples < 1:
            raise ActivewsError(f"samples must be >= 1, got {samples}")
        drop = dropout_layers(self.model)
        if not drop:
            raise ActivewsError(
                "Monte Carlo dropout needs a model with dropout; add --model-param dropout=0.2"
            )
        was_training = self.model.training
        self.model.eval()
        for m in drop:
            m.train()
        try:
            x = self._rows(idx)
            out: torch.Tensor | None = None
            with global_rng_from(generator, x.device):
                for s in range(samples):
                    for i in range(0, len(x), self.batch_size):
                        probs = softmax(self.model(x[i : i + self.batch_size]))
                        if out is None:
                            out = probs.new_empty((samples, len(x), probs.shape[1]))
                        out[s, i : i + len(probs)] = probs
        finally:
            self.model.train(was_training)
        if out is None:  # no example
            return self.x_pool.new_empty((samples, 0, self.head().out_features))
        return out


@dataclass(frozen=True)
class Round:
    """One round's labeled set.

    Attributes:
        index: round number, from 0.
        labeled: indices (into the training pool) of every example labeled so far, in labeling order.
        new: the indices that were added in this round (all of ``labeled`` in round 0).
    """

    index: int
    labeled: torch.Tensor
    new: torch.Tensor

    @property
    def n_labeled(self) -> int:
        return int(self.labeled.numel())

    @property
    def n_new(self) -> int:
        return int(self.new.numel())

    def new_mask(self) -> torch.Tensor:
        """Boolean mask over ``labeled``: True where the example is new this round."""
        mask = torch.zeros(self.n_labeled, dtype=torch.bool)
        mask[self.n_labeled - self.n_new :] = True
        return mask


class Stream(ABC):
    """A sequence of rounds over a pool of ``pool_size`` training examples.

    Subclasses implement :meth:`first` and :meth:`next`. ``num_rounds`` is fixed at construction so
    that a bench can show progress and validate sizes before any training.
    """

    name: str = ""

    def __init__(self, pool_size: int, generator: torch.Generator) -> None:
        self.pool_size = int(pool_size)
        self.generator = generator

    @property
    @abstractmethod
    def num_rounds(self) -> int: ...

    @abstractmethod
    def first(self) -> Round:
        """The round-0 labeled set."""

    @abstractmethod
    def next(self, prev: Round, predict_proba: ProbaFn | None = None) -> Round:
        """The round after ``prev``; active streams query ``predict_proba`` on unlabeled examples.

        ``predict_proba`` is a :class:`ModelView` when the stream runs inside a bench (acquisitions that
        need features or dropout samples use it), or any :data:`ProbaFn`.
        """

    @classmethod
    def from_config(cls, config: object, pool_size: int, generator: torch.Generator) -> Stream:
        """This stream as a bench configures it: each keyword-only parameter of ``__init__`` takes the
        config's attribute of the same name (``initial``, ``query_size``, ``rounds``, ``acquisition``, ...),
        when the config has one; the others keep their defaults.

        ``config`` is a :class:`~activews.engine.config.BenchConfig` (or any object with its fields). A
        registered stream whose parameters are named after bench settings needs nothing more to run in
        ``activews bench --stream NAME``; one that needs other values overrides this method.
        """
        params = inspect.signature(cls.__init__).parameters.values()
        kwargs = {
            p.name: getattr(config, p.name)
            for p in params
            if p.kind is inspect.Parameter.KEYWORD_ONLY and hasattr(config, p.name)
        }
        return cls(pool_size, generator, **kwargs)

    def check_model(self, model: nn.Module) -> None:
        """Raise a one-line :class:`ActivewsError` if the stream cannot select with ``model`` (called
        before any training); streams that do not look at the model accept any."""
        return None

    def rounds(self, predict_proba_for: Callable[[Round], ProbaFn | None] | None = None):
        """Iterate over all rounds (``predict_proba_for(prev)`` supplies the model after each round)."""
        current = self.first()
        yield current
        for _ in range(1, self.num_rounds):
            current = self.next(current, predict_proba_for(current) if predict_proba_for else None)
            yield current


STREAMS: Registry[type[Stream]] = Registry("stream")


def register_stream(name: str) -> Callable[[type[Stream]], type[Stream]]:
    """Class decorator: register a :class:`Stream` subclass under ``name`` (``--stream NAME``).

    A bench builds it with :meth:`Stream.from_config`: keyword-only ``__init__`` parameters named after
    bench settings receive them.
    """

    def decorate(cls: type[Stream]) -> type[Stream]:
        cls.name = name
        STREAMS.register(name, cls)
        return cls

    return decorate


def check_sizes(pool_size: int, initial: int, query_size: int, rounds: int) -> None:
    """Raise a one-line error unless ``initial + (rounds-1) * query_size`` examples fit in the pool.

    ``rounds=0`` means "until the pool is used up" and only needs ``initial`` to fit.
    """
    if rounds < 0:
        raise ActivewsError(f"rounds must be >= 1 (or 0: until the pool is used up), got {rounds}")
    if initial < 1:
        raise ActivewsError(f"initial must be >= 1, got {initial}")
    if query_size < 1:
        raise ActivewsError(f"query size must be >= 1, got {query_size}")
    if rounds == 0 and initial > pool_size:
        raise ActivewsError(
            f"initial {initial} is larger than the training pool ({pool_size} examples); lower --initial"
        )
    need = initial + (max(rounds, 1) - 1) * query_size
    if need > pool_size:
        most = (pool_size - initial) // query_size + 1 if initial <= pool_size else 0
        raise ActivewsError(
            f"initial {initial} + {max(rounds, 1) - 1} rounds x query size {query_size} = {need} examples, but the "
            f"training pool has {pool_size}; lower --initial, --query-size or --rounds (at most {most} round{'s' if most != 1 else ''})"
        )


def round_sizes(pool_size: int, initial: int, query_size: int, rounds: int) -> list[int]:
    """Labeled-set size of every round: ``initial + r * query_size``.

    ``rounds=0`` runs until the pool is used up (the paper's online protocol); the last round then adds
    the remainder, which may be smaller than ``query_size``.
    """
    check_sizes(pool_size, initial, query_size, rounds)
    if rounds == 0:
        rounds = -(-(pool_size - initial) // query_size) + 1
    return [min(initial + r * query_size, pool_size) for r in range(rounds)]
