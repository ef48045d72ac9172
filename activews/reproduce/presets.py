"""The experiments of Ash & Adams (NeurIPS 2020), and continual protocols of the loss-of-plasticity
literature, as named presets: ``activews reproduce PROTOCOL``.

A protocol is a set of bench settings plus a grid of experiments (like a sweep file), and a renderer
that lays the results out as the paper does: Table 1 for ``two-phase``, accuracy and time per round
for ``online``, heat maps for ``shrink-perturb-grid``, the gap against the varied setting for
``early-damage`` and ``regularized``. Every setting can be overridden with the usual bench flags, and
every grid axis with ``--grid FIELD=V1,V2``; the defaults run on the built-in ``mnist1d`` data.

The continual protocols (``permuted-inputs``, ``permuted-labels``, ``class-incremental``) shift the data
between tasks (``--shift``) and are sized to run in minutes on two CPU cores; docs/reproduction.md gives
the papers' full-size settings as flags. Their renderer lays out the continual metrics (newest-task
accuracy, forgetting, backward transfer, online accuracy) and the accuracy on each task at its end.

References:
    Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020 (arXiv 1910.08475);
    Dohare et al., "Loss of plasticity in deep continual learning", Nature 2024; Kumar et al.,
    "Maintaining plasticity in continual learning via regenerative regularization", CoLLAs 2024.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from activews.engine.bench import BenchResult
from activews.engine.store import RunStore, is_run_folder
from activews.engine.sweep import check_grid_flags
from activews.errors import ActivewsError
from activews.files import atomic_write, to_jsonable
from activews.registry import Registry
from activews.reproduce.base import Protocol, ProtocolReport
from activews.reproduce.render import (
    _render_continual,
    _render_curve,
    _render_grid,
    _render_online,
    _render_two_phase,
    _value_text,
)

__all__ = [
    "PROTOCOLS",
    "describe_protocols",
    "get_protocol",
    "protocol_of_run",
    "protocol_values",
    "render",
    "write_protocol_report",
]


PROTOCOLS: Registry[Protocol] = Registry("protocol", dashed=True)


def get_protocol(name: str) -> Protocol:
    """The protocol registered under ``name`` (close-match error if unknown)."""
    return PROTOCOLS.get(name)


def protocol_values(
    protocol: Protocol,
    flags: dict[str, Any],
    grid: dict[str, list[Any]] | None = None,
) -> dict[str, Any]:
    """Sweep values (``BenchConfig`` fields plus ``grid``) for ``protocol`` with the user's overrides.

    ``flags`` are bench settings the user typed: each fixes its field (dropping that grid axis).
    ``grid`` replaces or adds axes. ``param_grid`` in ``flags`` replaces the protocol's.
    """
    values: dict[str, Any] = dict(protocol.values)
    if protocol.param_grid:
        values["param_grid"] = dict(protocol.param_grid)
    check_grid_flags(grid or {}, flags)
    axes = {k: v for k, v in protocol.grid.items() if k not in flags} | (grid or {})
    if flags.get("schedule") is not None:  # a schedule replaces the round sizes the protocol set
        for key in ("rounds", "initial", "query_size"):
            values.pop(key, None)
    elif values.get("schedule") is not None:
        sizes = [k for k in ("rounds", "initial", "query_size") if k in flags]
        if sizes:
            raise ActivewsError(
                f"{protocol.name} sets the labeled fraction of each round with a schedule "
                f"({','.join(_value_text(f) for f in values['schedule'])}); give --schedule instead of "
                f"{', '.join('--' + k.replace('_', '-') for k in sizes)}, e.g. --schedule 0.25,0.5,1.0"
            )
    values.update(flags)
    if axes:
        values["grid"] = axes
    return values


def render(protocol: Protocol, results: Sequence[BenchResult], plot: bool = True) -> ProtocolReport:
    """Tables (and figures, unless ``plot`` is False) for ``results`` of a run of ``protocol``."""
    if not any(r.records for r in results):
        raise ActivewsError(f"protocol {protocol.name!r}: no finished round to report yet")
    return protocol.render(protocol, results, plot)


def write_protocol_report(
    protocol: Protocol, results: Sequence[BenchResult], folder: str | Path, *, plot: bool = True
) -> ProtocolReport:
    """Render ``results`` and write ``protocol.md``, ``protocol.json`` and the figures into ``folder``.

    ``activews report RUN`` renders a run of a protocol again (the store records the protocol's name).
    """
    report = render(protocol, results, plot)
    folder = Path(folder)
    atomic_write(folder / "protocol.md", f"# activews reproduce {protocol.name}\n\n{report.markdown()}\n")
    atomic_write(
        folder / "protocol.json",
        json.dumps(to_jsonable({"protocol": protocol.name, "results": report.data}), indent=2),
    )
    for name, png in report.figures.items():
        atomic_write(folder / name, png)
    return report


def protocol_of_run(folder: str | Path) -> Protocol | None:
    """The protocol a run folder was made by (recorded in its store's ``meta`` table), or None."""
    if not is_run_folder(folder):
        return None
    with RunStore(folder) as store:
        name = store.meta().get("protocol")
    return get_protocol(name) if name is not None and name in PROTOCOLS else None


# ---------------------------------------------------------------------------------------- registrations

_TWO_PHASE = {"stream": "passive", "schedule": [0.5, 1.0], "strategies": []}
_ONLINE = {"stream": "passive", "initial": 1000, "query_size": 1000, "rounds": 0, "strategies": []}

PROTOCOLS.register(
    "two-phase",
    Protocol(
        "two-phase",
        "train on 50% of the pool, then on 100%: warm start vs random init, per model and optimizer (Table 1)",
        "Ash & Adams 2020, Sec. 2.1 and Table 1",
        {**_TWO_PHASE, "model_params": {}},
        {"model": ["paper_mlp", "logreg"], "optimizer": ["sgd", "adam"]},
        _render_two_phase,
    ),
)
PROTOCOLS.register(
    "online",
    Protocol(
        "online",
        "+1,000 examples per round until the pool is used up: accuracy and training time per round (Fig. 2)",
        "Ash & Adams 2020, Sec. 2.2 and Fig. 2",
        dict(_ONLINE),
        {},
        _render_online,
    ),
)
PROTOCOLS.register(
    "shrink-perturb-grid",
    Protocol(
        "shrink-perturb-grid",
        "the online protocol over a grid of shrink x perturb values: accuracy and compute heat maps (Fig. 8)",
        "Ash & Adams 2020, Sec. 4 and Fig. 8",
        {**_ONLINE, "strategies": ["shrink_perturb"]},
        {},
        _render_grid,
        {"shrink_perturb": {"shrink": [0.2, 0.4, 0.6, 0.8], "perturb": [0.0, 0.01, 0.1]}},
    ),
)
PROTOCOLS.register(
    "early-damage",
    Protocol(
        "early-damage",
        "warm-start phase 2 from the phase-1 model after different amounts of training (Fig. 4)",
        "Ash & Adams 2020, Sec. 3 and Fig. 4",
        dict(_TWO_PHASE),
        {"first_round_epochs": [0, 1, 2, 5, 10, 20, 40, None]},
        _render_curve("first_round_epochs", "phase-1 epochs before warm starting", "Early damage", False),
    ),
)
PROTOCOLS.register(
    "regularized",
    Protocol(
        "regularized",
        "the two-phase gap with L2 weight decay at several strengths in both phases (Sec. 3.3)",
        "Ash & Adams 2020, Sec. 3.3",
        dict(_TWO_PHASE),
        {"weight_decay": [0.0, 1e-4, 1e-3, 1e-2, 1e-1]},
        _render_curve("weight_decay", "L2 weight decay (both phases)", "Regularized two-phase", True),
    ),
)


# Continual protocols: each round is a new task, trained on its own data only (--replay none) unless said.
_CONTINUAL = {"stream": "passive", "replay": "none", "strategies": []}

PROTOCOLS.register(
    "permuted-inputs",
    Protocol(
        "permuted-inputs",
        "10 tasks, each a fixed permutation of MNIST-1D's 40 inputs (400 examples, trained on alone): "
        "plasticity, forgetting and compute per task",
        "Dohare et al. 2024 (permuted MNIST); Kumar et al. 2024, Sec. 5",
        {**_CONTINUAL, "shift": "permuted_inputs", "rounds": 10, "initial": 400},
        {},
        _render_continual,
    ),
)
PROTOCOLS.register(
    "permuted-labels",
    Protocol(
        "permuted-labels",
        "20 tasks, each a permutation of MNIST-1D's 10 labels (300 examples, trained on alone): "
        "accuracy on the newest task as tasks go by",
        "Elsayed & Mahmood 2024 (UPGD: label-permuted tasks); Kumar et al. 2024",
        {**_CONTINUAL, "shift": "permuted_labels", "rounds": 20, "initial": 300},
        {},
        _render_continual,
    ),
)
PROTOCOLS.register(
    "class-incremental",
    Protocol(
        "class-incremental",
        "digits in 5 tasks of 2 classes; each round trains on every class seen so far: the warm-start "
        "penalty as classes arrive",
        "Dohare et al. 2024 (class-incremental CIFAR-100), scaled to digits",
        {
            **_CONTINUAL,
            "dataset": "digits",
            "shift": "class_incremental",
            "classes_per_task": 2,
            "rounds": 5,
            "initial": 200,
            "replay": "all",
        },
        {},
        _render_continual,
    ),
)


def describe_protocols() -> list[dict[str, Any]]:
    """Name, title, reference, settings and grid of every protocol (for ``activews reproduce --list``)."""
    out = []
    for name, p in PROTOCOLS.items():
        grid = " x ".join(f"{k}={','.join(_value_text(v) for v in vs)}" for k, vs in p.grid.items())
        sweeps = " x ".join(
            f"{s}.{k}={','.join(_value_text(v) for v in vs)}"
            for s, kv in p.param_grid.items()
            for k, vs in kv.items()
        )
        settings = ", ".join(f"{k}={_value_text(v)}" for k, v in p.values.items() if v not in ({}, []))
        out.append(
            {
                "name": name,
                "title": p.title,
                "reference": p.reference,
                "settings": settings,
                "grid": grid,
                "sweep": sweeps,
            }
        )
    return out
