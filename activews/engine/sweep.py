"""Sweeps: one TOML file describing a grid of experiments and parameter variants.

```toml
stream = "active"                  # any BenchConfig field (the CLI flag's name with underscores)
strategies = ["shrink_perturb"]
seeds = 4

[params.shrink_perturb]            # fixed strategy parameters
perturb = 0.1

[grid]                             # experiments: every combination of these BenchConfig fields
dataset = ["mnist1d", "digits"]
model = ["mlp", "cnn"]

[param_grid.shrink_perturb]        # arms: every value becomes its own arm inside each experiment
shrink = [0.2, 0.4, 0.6]
```

Reference arms are shared by all variants of one experiment, so a parameter sweep costs one `random`
and one `warm` arm per experiment and seed, not one per value.
"""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path
from typing import Any

from activews.engine.config import BenchConfig
from activews.errors import ActivewsError

__all__ = ["load_sweep", "expand", "check_grid_flags"]


def load_sweep(path: str | Path) -> dict[str, Any]:
    """Read a sweep file into a plain dict (``grid`` kept separate from the BenchConfig fields)."""
    path = Path(path)
    if not path.is_file():
        raise ActivewsError(
            f"--config {str(path)!r}: no such file; pass a TOML sweep file (see docs/running.md#sweeps)"
        )
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ActivewsError(f"--config {str(path)!r} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:  # a binary file (TOML is UTF-8 text)
        raise ActivewsError(
            f"--config {str(path)!r} is not a text file (not UTF-8); pass a TOML sweep file "
            f"(see docs/running.md#sweeps)"
        ) from None
    except OSError as exc:
        raise ActivewsError(f"cannot read --config {str(path)!r}: {exc.strerror or exc}") from None
    for key, example in (
        ("grid", '[grid] with lists, e.g. model = ["mlp", "logreg"]'),
        ("params", "[params.STRATEGY] with values, e.g. shrink = 0.6"),
        ("param_grid", "[param_grid.STRATEGY] with lists, e.g. shrink = [0.2, 0.4]"),
    ):
        if key in data and not isinstance(data[key], dict):
            raise ActivewsError(f"--config {str(path)!r}: {key} must be a table; write {example}")
    if not data:  # an empty file (or only comments): most likely the wrong file
        raise ActivewsError(
            f'--config {str(path)!r} sets nothing; add settings such as stream = "passive" or drop --config'
        )
    return data


def expand(values: dict[str, Any]) -> list[tuple[str, BenchConfig]]:
    """Expand BenchConfig values plus an optional ``grid`` table into labelled, validated experiments.

    Returns a single ``("", config)`` pair when there is no grid.
    """
    values = dict(values)
    grid = values.pop("grid", None) or {}
    if not isinstance(grid, dict):
        raise ActivewsError("[grid] must be a table of BenchConfig fields to lists of values")
    fields = BenchConfig.model_fields
    for key, options in grid.items():
        if key not in fields or key in ("param_grid",):
            usable = [f for f in fields if f != "param_grid"]
            raise ActivewsError(
                f"[grid] key {key!r} is not a bench setting; use one of: {', '.join(usable)} "
                f"(strategy parameters go in [param_grid.STRATEGY])"
            )
        if not isinstance(options, list) or not options:
            raise ActivewsError(f"[grid] {key} must be a non-empty list, e.g. {key} = [..., ...]")
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise ActivewsError(
            f"unknown setting(s) {', '.join(map(repr, unknown))} in the sweep; known: {', '.join(fields)}"
        )
    if not grid:
        return [("", BenchConfig.build(**values))]
    keys = list(grid)
    for key in keys:
        shown = [_short(v) for v in grid[key]]
        repeated = list(dict.fromkeys(v for v in shown if shown.count(v) > 1))
        if repeated:
            raise ActivewsError(
                f"experiments repeat: grid {key} lists {', '.join(repeated)} more than once; "
                f"remove duplicate values from --grid (or the [grid] table)"
            )
    experiments = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        label = ",".join(f"{k}={_short(v)}" for k, v in zip(keys, combo, strict=True))
        cfg = values | dict(zip(keys, combo, strict=True))
        try:
            experiments.append((label, BenchConfig.build(**cfg)))
        except ActivewsError as exc:
            raise ActivewsError(f"experiment [{label}]: {exc}") from None
    return experiments


def check_grid_flags(grid: dict[str, Any], flags: dict[str, Any]) -> None:
    """A setting given both as a flag and as a ``--grid`` axis is ambiguous: a one-line error."""
    both = [k for k in grid if k in flags]
    if both:
        k = both[0]
        raise ActivewsError(f"--grid {k}=... and --{k.replace('_', '-')} both set {k}; keep one of them")


def _short(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
