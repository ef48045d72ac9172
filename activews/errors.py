"""Errors raised at activews' boundaries.

Every error caused by user input derives from :class:`ActivewsError`. Its message is one line that says
what was wrong and how to fix it; the CLI prints it and exits with code 2.
"""

from __future__ import annotations


class ActivewsError(ValueError):
    """A problem with the user's input or environment, with a message that names the fix."""


class UnknownNameError(ActivewsError, KeyError):
    """A name (strategy, dataset, model, stream, acquisition) that is not registered."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class DataError(ActivewsError):
    """A dataset that cannot be read or does not have the expected shape."""


def format_validation_error(exc: object, fields: object = ()) -> str:
    """Render a pydantic ``ValidationError`` as one line ("lr: must be > 0 (got -1); ...").

    Args:
        exc: the ``pydantic.ValidationError``.
        fields: the known field names, listed when an unknown key was given.
    """
    parts = []
    for err in exc.errors():  # type: ignore[attr-defined]
        loc = ".".join(str(p) for p in err["loc"]) or "value"
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, ActivewsError):  # our own checks already speak in one clean line
            parts.append(str(cause))
        elif err["type"] == "extra_forbidden":
            parts.append(f"unknown parameter {loc!r} (known: {', '.join(fields) or 'none'})")  # type: ignore[arg-type]
        else:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}" + ("" if "got" in msg else f" (got {err.get('input')!r})"))
    return "; ".join(parts)
