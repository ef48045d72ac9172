"""The base of every activews settings model: numbers are numbers, never ``true``/``false``.

pydantic reads a boolean as 1 or 0 where a number is expected, so ``rounds = true`` in a sweep file,
``--model-param hidden=true`` or ``--param shrink_perturb.shrink=true`` would silently run with 1.
:class:`Settings` refuses them, with the field's name in pydantic's error (which activews renders as one
line). ``BenchConfig``, ``TrainConfig``, model parameters, strategy and acquisition parameters derive
from it.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationInfo, field_validator

__all__ = ["Settings", "is_numeric", "reject_bool"]


def is_numeric(annotation: Any) -> bool:
    """Whether a field's type holds ints or floats (``int``, ``float | None``, ``tuple[int, ...]``)."""
    if annotation in (int, float):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, tuple, list, typing.Annotated):
        return any(is_numeric(a) for a in typing.get_args(annotation) if a is not Ellipsis)
    return False


def reject_bool(value: Any, numeric: bool) -> Any:
    """Refuse ``true``/``false`` for a number (or in a list of numbers); other values pass unchanged."""
    if not numeric:
        return value
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got the boolean {str(value).lower()}; write a number instead")
    if isinstance(value, (list, tuple)) and any(isinstance(v, bool) for v in value):
        raise ValueError(f"must hold numbers, got a boolean in {list(value)!r}; write numbers instead")
    return value


class Settings(BaseModel):
    """A pydantic model whose number fields refuse booleans (see the module docstring)."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        return reject_bool(value, field is not None and is_numeric(field.annotation))
