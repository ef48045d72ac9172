"""The model registry and seeded model construction."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from activews.errors import ActivewsError
from activews.params import FrozenParams, validate_params
from activews.registry import Registry

__all__ = [
    "ModelParams",
    "ModelSpec",
    "MODELS",
    "register_model",
    "build_model",
    "model_params",
    "meta_model",
    "draw_seeded",
    "build_from_factory",
    "same_architecture",
]


class ModelParams(FrozenParams):
    """Base of every model's parameters: frozen, unknown keys rejected."""


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its builder ``f(input_shape, num_classes, params) -> nn.Module`` and params."""

    name: str
    builder: Callable[[tuple[int, ...], int, Any], nn.Module]
    Params: type[ModelParams]
    doc: str = ""


MODELS: Registry[ModelSpec] = Registry("model", entry_point_group="activews.models")


def register_model(name: str, params: type[ModelParams] = ModelParams) -> Callable[[Callable], Callable]:
    """Decorator: register ``builder(input_shape, num_classes, params)`` under ``name``."""

    def decorate(builder: Callable) -> Callable:
        MODELS.register(name, ModelSpec(name, builder, params, (builder.__doc__ or "").strip()))
        return builder

    return decorate


def model_params(name: str, values: Mapping[str, Any] | None = None) -> ModelParams:
    """Validate ``values`` for model ``name``; one-line :class:`ActivewsError` if invalid."""
    spec = MODELS.get(name)
    return validate_params(spec.Params, values or {}, f"model {name!r}")


def build_model(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    params: ModelParams | Mapping[str, Any] | None = None,
    *,
    seed: int | None = None,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """Build model ``name`` with its default initializers, seeded by ``seed``.

    The draw happens on the CPU under a forked global RNG, so it is reproducible and leaves the
    caller's random state untouched; the model is then moved to ``device``.

    First the builder runs once on PyTorch's ``meta`` device (no memory, no random draws) to count the
    parameters: a model whose training (weights, gradients and two optimizer moments, float32) would not
    fit in this machine's memory is refused before anything is allocated, and an allocation failure
    while building is one line too.

    Raises:
        ActivewsError: invalid ``params``, or a model too large for this machine's memory.
    """
    spec = MODELS.get(name)
    if not isinstance(params, ModelParams):
        params = model_params(name, params)
    shape, classes = tuple(input_shape), int(num_classes)
    _check_size(name, spec, shape, classes, params)
    try:
        if seed is None:
            model = spec.builder(shape, classes, params)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                model = spec.builder(shape, classes, params)
        if not isinstance(model, nn.Module):
            raise ActivewsError(
                f"model {name!r}: builder returned {type(model).__name__}, expected a torch.nn.Module"
            )
        return model.to(device)
    except (MemoryError, RuntimeError) as exc:
        if not isinstance(exc, MemoryError) and "alloc" not in str(exc).lower():
            raise
        raise ActivewsError(
            f"model {name!r}{_given(params)}: not enough memory for its weights on {device} "
            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); {_smaller(params)}"
        ) from None


def draw_seeded(factory: Callable[[], Any], seed: int | None, *, who: str | None = None) -> nn.Module:
    """Call ``factory()`` with torch's global CPU RNG seeded by ``seed`` (forked: the caller's random
    state is left as it was), so that a user's own ``nn.Module`` class or function draws reproducible
    weights. ``seed=None`` calls it unseeded.

    The factory should build its model on the CPU (move it afterwards): a CUDA RNG is not seeded here.
    ``who`` names the factory in errors (default: ``model factory 'NAME'``).

    Raises:
        ActivewsError: the factory returned something else than an ``nn.Module``.
    """
    if seed is None:
        model = factory()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = factory()
    if not isinstance(model, nn.Module):
        who = who or f"model factory {_callable_name(factory)}"
        raise ActivewsError(
            f"{who} returned {type(model).__name__}; it must return a torch.nn.Module (a new one each call)"
        )
    return model


def build_from_factory(
    factory: Callable[..., Any],
    input_shape: tuple[int, ...],
    num_classes: int,
    params: Mapping[str, Any],
    *,
    seed: int | None,
    device: torch.device | str = "cpu",
    who: str | None = None,
    fix: str = "check the factory and model_params",
) -> nn.Module:
    """A user's ``factory(input_shape, num_classes, **params)``, drawn as :func:`draw_seeded` draws (the
    same draw a registered model gets for ``seed``), then moved to ``device``. The estimator and the
    bench build user models through this.

    Raises:
        ActivewsError: the factory raised (its error in one line, with the call and ``fix``), or
            returned something else than an ``nn.Module``.
    """
    who = who or f"model factory {_callable_name(factory)}"
    shape, classes = tuple(input_shape), int(num_classes)
    try:
        model = draw_seeded(functools.partial(factory, shape, classes, **params), seed, who=who)
    except ActivewsError:
        raise
    except Exception as exc:  # the user's code: say which call failed, and with what
        shown = "".join(f", {k}={v!r}" for k, v in params.items())
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ActivewsError(
            f"{who} failed when called as factory({shape}, {classes}{shown}): "
            f"{type(exc).__name__}: {first}; {fix}"
        ) from exc
    return model.to(device)


def _callable_name(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    return repr(name) if name else repr(obj)


def same_architecture(model: nn.Module, reference: nn.Module) -> str | None:
    """Why ``model`` cannot stand in for ``reference`` (one line), or None when every parameter and
    buffer of the two has the same name, shape and dtype."""
    mine = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    theirs = {k: (tuple(v.shape), v.dtype) for k, v in reference.state_dict().items()}
    if mine == theirs:
        return None
    missing = [k for k in theirs if k not in mine]
    extra = [k for k in mine if k not in theirs]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if extra:
            parts.append(f"has extra {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
        return " and ".join(parts)
    name = next(k for k in theirs if mine[k] != theirs[k])
    (shape, dtype), (ref_shape, ref_dtype) = mine[name], theirs[name]
    if shape != ref_shape:
        return f"{name} has shape {list(shape)} where the model has {list(ref_shape)}"
    return f"{name} is {dtype} where the model's is {ref_dtype}"


_TRAINING_COPIES = 4
"""float32 copies of the weights that training holds at least: weights, gradients, Adam's two moments."""


def _given(params: ModelParams) -> str:
    """`` (hidden=100000000)``: the parameters the user set, as they typed them."""
    values = params.model_dump(exclude_defaults=True)
    shown = [f"{k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}" for k, v in values.items()]
    return f" ({', '.join(shown)})" if shown else ""


def _smaller(params: ModelParams) -> str:
    names = list(params.model_dump(exclude_defaults=True))
    return "use a smaller model" + (f" (lower {', '.join(names)} in --model-param)" if names else "")


def _memory_bytes() -> int | None:
    """Physical memory of this machine, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _on_meta(
    builder: Callable[..., Any], shape: tuple[int, ...], classes: int, params: Any
) -> nn.Module | None:
    """What ``builder`` builds, on the meta device (no memory, no random draws); None when it cannot run
    there (it reads values, say) or builds no ``nn.Module``."""
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            model = builder(shape, classes, params)
    except Exception:
        return None
    return model if isinstance(model, nn.Module) else None


def meta_model(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    params: Mapping[str, Any] | ModelParams | None = None,
) -> nn.Module | None:
    """The registered model ``name`` built on PyTorch's meta device, for its structure and sizes only
    (no memory, no random draws); None when its builder cannot run there."""
    spec = MODELS.get(name)
    given = params if isinstance(params, ModelParams) else model_params(name, params)
    return _on_meta(spec.builder, tuple(input_shape), num_classes, given)


def _parameter_count(
    builder: Callable[..., Any], shape: tuple[int, ...], classes: int, params: Any
) -> int | None:
    """Parameters of the model, counted on the meta device; None when the builder cannot run there."""
    model = _on_meta(builder, shape, classes, params)
    return None if model is None else sum(p.numel() for p in model.parameters())


_cached_count = functools.lru_cache(maxsize=64)(_parameter_count)


def _check_size(
    name: str, spec: ModelSpec, shape: tuple[int, ...], classes: int, params: ModelParams
) -> None:
    """Refuse, before allocating anything, a model whose training cannot fit in this machine's memory
    (``--model-param hidden=100000000`` would otherwise fail deep inside torch, or swap for hours)."""
    memory = _memory_bytes()
    if memory is None:
        return
    try:
        count = _cached_count(spec.builder, shape, classes, params)
    except TypeError:  # unhashable parameters (a plugin's dict field): count without the cache
        count = _parameter_count(spec.builder, shape, classes, params)
    if count is None:
        return
    need = count * 4 * _TRAINING_COPIES
    if need > memory:
        raise ActivewsError(
            f"model {name!r}{_given(params)} has {count:,} parameters: training it needs at least "
            f"{need / 2**30:,.0f} GiB, more than this machine's {memory / 2**30:,.0f} GiB of memory; "
            f"{_smaller(params)}"
        )
