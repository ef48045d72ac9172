"""The settings flags of ``activews bench`` and ``activews reproduce``, built from ``BenchConfig``'s fields,
and the parsers of their values.

A setting's flag is ``--`` + its field's name with dashes (``query_size`` -> ``--query-size``); its help is
the field's ``description`` (the one text the Python API, the config and the CLI share), followed by what
only the command line adds: the names a registry holds (read when the parser is built, after ``--plugin``
modules registered theirs), an example of the flag's syntax, and the default. :data:`FLAGS` holds only
what a field cannot say itself; the type, bounds, default and description come from the field.
"""

from __future__ import annotations

import argparse
import json
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic.fields import FieldInfo

from activews.data import DATASETS
from activews.diagnostics import DIAGNOSTIC_GROUPS, DIAGNOSTICS
from activews.engine.config import BenchConfig, flag_name
from activews.errors import ActivewsError
from activews.models import MODELS
from activews.strategies import list_strategies
from activews.streams import ACQUISITIONS, STREAMS
from activews.streams.shifts import list_shifts

__all__ = [
    "FLAGS",
    "GROUPS",
    "Flag",
    "add_settings",
    "flag_name",
    "parse_assignments",
    "parse_grid",
    "parse_schedule",
    "parse_seeds",
    "parse_value",
    "settings_from_args",
    "setting_flags",
]

# ----------------------------------------------------------------------------------------- value parsing


def parse_value(text: str) -> Any:
    """Parse a parameter value: JSON when it parses (``0.4``, ``true``, ``[1,2]``), a comma list, or a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if "," in text:
        return [parse_value(part) for part in text.split(",") if part]
    return text


def parse_assignments(
    items: Sequence[str], flag: str, dotted: bool, example: str | None = None
) -> dict[str, Any]:
    """``["shrink_perturb.shrink=0.6"]`` -> ``{"shrink_perturb": {"shrink": 0.6}}`` (or flat if not dotted)."""
    out: dict[str, Any] = {}
    example = example or (
        "STRATEGY.KEY=VALUE, e.g. shrink_perturb.shrink=0.6" if dotted else "KEY=VALUE, e.g. hidden=128,128"
    )
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ActivewsError(f"{flag} {item!r}: expected {example}")
        if dotted:
            owner, dot, name = key.partition(".")
            if not dot or not owner or not name:
                raise ActivewsError(f"{flag} {item!r}: expected {example}")
            out.setdefault(owner, {})[name] = parse_value(value)
        else:
            out[key] = parse_value(value)
    return out


def parse_seeds(text: str) -> int | list[int]:
    try:
        if "," in text:
            return [int(s) for s in text.split(",") if s.strip()]
        return int(text)
    except ValueError:
        raise ActivewsError(f"--seeds {text!r}: give a count (4) or a list (0,1,2)") from None


def parse_grid(items: Sequence[str] | None) -> dict[str, list[Any]]:
    """``["model=mlp,logreg"]`` -> ``{"model": ["mlp", "logreg"]}`` (one experiment per value)."""
    out: dict[str, list[Any]] = {}
    example = "FIELD=V1,V2 with a bench setting as FIELD, e.g. model=mlp,logreg"
    for key, value in parse_assignments(items or [], "--grid", dotted=False, example=example).items():
        out[key] = value if isinstance(value, list) else [value]
    return out


def parse_schedule(text: str) -> list[float]:
    try:
        return [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ActivewsError(f"--schedule {text!r}: give increasing fractions, e.g. 0.5,1.0") from None


def _sweep(items: Sequence[str]) -> dict[str, dict[str, list[Any]]]:
    return {
        strategy: {key: (value if isinstance(value, list) else [value]) for key, value in values.items()}
        for strategy, values in parse_assignments(items, "--sweep", dotted=True).items()
    }


def _diagnostic_names() -> list[str]:
    groups = [f"{group} (= {','.join(members)})" for group, members in DIAGNOSTIC_GROUPS.items()]
    return [*DIAGNOSTICS, *groups, "all"]


# ------------------------------------------------------------------------------------------------- flags


@dataclass(frozen=True)
class Flag:
    """What a settings flag needs beyond its field; every part is optional.

    Attributes:
        metavar: the placeholder in the help (argparse's default: the field's name in capitals).
        repeat: the flag may be given several times; ``parse`` then gets the list of values.
        parse: turns the typed text (or list of texts) into the field's value.
        names: the names the value may take (a registry's, read when the parser is built).
        example: the flag's syntax, shown as "e.g. ...".
        see: where more is said: a command or a doc.
        choices: argparse checks the value against the field's ``Literal`` values.
    """

    metavar: str | None = None
    repeat: bool = False
    parse: Callable[[Any], Any] | None = None
    names: Callable[[], Sequence[str]] | None = None
    example: str | None = None
    see: str | None = None
    choices: bool = False


FLAGS: dict[str, Flag] = {
    "strategies": Flag(
        metavar="NAME",
        repeat=True,
        parse=tuple,
        names=list_strategies,
        see="'activews strategies'",
    ),
    "params": Flag(
        metavar="STRATEGY.KEY=VALUE",
        repeat=True,
        parse=lambda items: parse_assignments(items, "--param", dotted=True),
        example="shrink_perturb.shrink=0.6",
    ),
    "param_grid": Flag(
        metavar="STRATEGY.KEY=V1,V2",
        repeat=True,
        parse=_sweep,
        example="shrink_perturb.shrink=0.2,0.4,0.6",
    ),
    "seeds": Flag(parse=parse_seeds),
    "dataset": Flag(names=lambda: [*DATASETS.names(), "PATH.npz"]),
    "data_dir": Flag(metavar="DIR"),
    "model": Flag(names=lambda: [*MODELS.names(), "MODULE:FACTORY"], example="mypkg.nets:make_cnn"),
    "train_fn": Flag(metavar="MODULE:FUNCTION", example="mypkg.train:fit"),
    "model_params": Flag(
        metavar="KEY=VALUE",
        repeat=True,
        parse=lambda items: parse_assignments(items, "--model-param", dotted=False),
        example="hidden=128,128",
    ),
    "stream": Flag(names=STREAMS.names),
    "schedule": Flag(parse=parse_schedule),
    "acquisition": Flag(names=ACQUISITIONS.names, see="'activews acquisitions'"),
    "acquisition_params": Flag(
        metavar="KEY=VALUE",
        repeat=True,
        parse=lambda items: parse_assignments(
            items, "--acquisition-param", dotted=False, example="KEY=VALUE, e.g. samples=20"
        ),
        example="samples=20 for bald",
    ),
    "pool_subsample": Flag(metavar="N"),
    "label_fraction": Flag(metavar="F"),
    "label_threshold": Flag(metavar="T"),
    "label_budget": Flag(metavar="N"),
    "first_round_epochs": Flag(metavar="N"),
    "diagnostics": Flag(
        metavar="NAME,...",
        parse=lambda text: [d for d in text.split(",") if d],
        names=_diagnostic_names,
        see="docs/concepts.md",
    ),
    "precision": Flag(choices=True),
    "shift": Flag(names=lambda: list_shifts(), see="docs/concepts.md"),
    "tasks": Flag(metavar="N"),
    "classes_per_task": Flag(metavar="N"),
    "replay": Flag(metavar="all|none|buffer:N", example="buffer:500"),
}
"""Per field, only what its declaration cannot say (fields not named here need nothing)."""

GROUPS: dict[str, tuple[str, ...]] = {
    "what to compare": ("strategies", "params", "param_grid", "seeds"),
    "data and model": (
        "dataset",
        "data_dir",
        "download",
        "val_split",
        "n_examples",
        "test_fraction",
        "split_seed",
        "model",
        "model_params",
    ),
    "stream": (
        "stream",
        "rounds",
        "initial",
        "query_size",
        "schedule",
        "acquisition",
        "acquisition_params",
        "pool_subsample",
        "label_fraction",
        "label_threshold",
        "label_budget",
        "score_batch",
    ),
    "continual streams (data that shift between tasks)": ("shift", "tasks", "classes_per_task", "replay"),
    "training (each round trains to the target accuracy)": (
        "optimizer",
        "lr",
        "momentum",
        "weight_decay",
        "batch_size",
        "target_accuracy",
        "patience",
        "min_delta",
        "max_epochs",
        "keep_optimizer_state",
        "augment",
        "first_round_epochs",
        "eval_batch_size",
        "train_fn",
    ),
    "device": ("device", "precision", "channels_last", "compile"),
    "diagnostics": ("counterfactual", "diagnostics"),
}
"""The help's groups and their order; a field in none of them is listed under "other settings"."""


def setting_flags() -> list[tuple[str, str]]:
    """``(group, field)`` for every ``BenchConfig`` field, in the order of the help."""
    grouped = [(group, field) for group, fields in GROUPS.items() for field in fields]
    listed = {field for _, field in grouped}
    return grouped + [("other settings", f) for f in BenchConfig.model_fields if f not in listed]


def _parts(annotation: Any) -> tuple[Any, bool]:
    """``int | None`` -> ``(int, True)``: the type a flag's value has, and whether None is allowed."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else annotation), len(args) < len(typing.get_args(annotation))
    return annotation, False


def _argparse_options(info: FieldInfo, spec: Flag) -> dict[str, Any]:
    """``add_argument`` keywords from the field's type: numbers are typed, booleans are switches."""
    kind, optional = _parts(info.annotation)
    options: dict[str, Any] = {}
    if spec.repeat:
        options["action"] = "append"
    elif kind is bool:
        # None (automatic) can be overridden either way; a plain switch only turns a setting on.
        options["action"] = argparse.BooleanOptionalAction if optional else "store_const"
        if not optional:
            options["const"] = True
    elif kind in (int, float) and spec.parse is None:
        options["type"] = kind
    if spec.choices:
        options["choices"] = typing.get_args(kind)
    if spec.metavar:
        options["metavar"] = spec.metavar
    return options


def _default_text(field: str) -> str:
    """The default as the help shows it: nothing for an empty, off or zero one (the field says it)."""
    default = BenchConfig.model_fields[field].get_default(call_default_factory=True)
    if field == "strategies":
        return ",".join(default)
    if field == "seeds":
        return str(len(default))
    if default in (None, {}, False, ()):
        return ""
    return str(default)


_FIELD_WORD = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")


def _help(field: str, info: FieldInfo, spec: Flag, *, default: bool) -> str:
    """The field's description (other settings named by their flags), then the command line's additions."""
    fields = BenchConfig.model_fields
    text = _FIELD_WORD.sub(lambda m: flag_name(m[0]) if m[0] in fields else m[0], info.description or "")
    kind, _ = _parts(info.annotation)
    names = list(spec.names()) if spec.names else []
    if not names and typing.get_origin(kind) is Literal and not spec.choices:
        names = [str(v) for v in typing.get_args(kind)]
    if names:
        text += ": " + " | ".join(names)
    if spec.example:
        text += f", e.g. {spec.example}"
    notes = ["repeatable"] * spec.repeat + ([f"see {spec.see}"] if spec.see else [])
    if notes:
        text += f" ({'; '.join(notes)})"
    shown = _default_text(field) if default else ""
    if shown:
        text += f" (default: {shown})"
    return text.replace("%", "%%")  # argparse formats help with %


def add_settings(parser: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    """The bench settings (the fields of ``BenchConfig``), grouped as in the help.

    Every flag defaults to None here, so that the flags the user typed can override a ``--config`` file
    or be compared with a resumed run; the real defaults live in ``BenchConfig`` (and are shown in the
    help unless ``defaults=False``: a protocol sets its own, see ``activews reproduce --list``).
    """
    groups: dict[str, Any] = {}
    for group, field in setting_flags():
        if group not in groups:
            groups[group] = parser.add_argument_group(group)
        info, spec = BenchConfig.model_fields[field], FLAGS.get(field, Flag())
        groups[group].add_argument(
            flag_name(field),
            dest=field,
            default=None,
            help=_help(field, info, spec, default=defaults),
            **_argparse_options(info, spec),
        )


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The bench settings the user typed (flags left out are absent, not defaults)."""
    out = {}
    for _, field in setting_flags():
        value = getattr(args, field, None)
        if value is not None:
            spec = FLAGS.get(field)
            out[field] = spec.parse(value) if spec is not None and spec.parse else value
    return out
