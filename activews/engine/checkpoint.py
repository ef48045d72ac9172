"""An arm's checkpoint file: checksummed, tied to its cell, kept in two generations, written safely.

A checkpoint is one ``torch.save`` dict, read back with ``torch.load(path, weights_only=True)`` (no
pickled code runs). Besides the arm's state it holds the identity of its cell (arm label, strategy,
strategy parameters, seed and a SHA-256 of the whole config) and ``checksum``: a SHA-256 over every
other entry's *values* (each tensor's dtype, shape and bytes; numbers, strings, lists and dicts in
order). The checksum is over values rather than file bytes because ``torch.save`` output is not
byte-reproducible (it embeds a random serialization id) and because the values are what a resume
uses: a flipped byte anywhere in a tensor, or in the pickled structure, changes them.

Saving writes a temporary file, ``fsync`` s it, moves the current file to ``<name>.prev<suffix>``
(``e0-warm-s0.prev.pt``) and renames the new one into place. Loading tries the newest file, then the
previous generation; a file that cannot be read, is of another version, fails its checksum or
belongs to another cell is ignored with one warning line, and the arm continues from the newest
good generation (or from round 0). Resumed numbers are those of an uninterrupted run either way.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from activews.engine.store import is_run_folder
from activews.errors import ActivewsError
from activews.files import write_failure

__all__ = ["CHECKPOINT_VERSION", "ArmCheckpoint", "cell_identity", "config_fingerprint", "content_digest"]

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 2
# The entries that name the cell a checkpoint belongs to (all covered by the checksum too).
IDENTITY_KEYS = ("arm", "strategy_name", "strategy_params", "seed", "config_sha256")
# (``strategy`` itself holds the strategy's state dict.)


def config_fingerprint(config: Any) -> str:
    """SHA-256 of a pydantic config's JSON form (keys sorted): equal configs, equal fingerprints.

    A config class with a ``comparable`` method (``BenchConfig``) is hashed in that form, so fields added
    later at their earlier behaviour leave the fingerprint of older checkpoints unchanged.
    """
    values = config.model_dump(mode="json")
    if hasattr(type(config), "comparable"):
        values = type(config).comparable(values)
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def cell_identity(
    config: Any, label: str, strategy: str, params: Mapping[str, Any], seed: int
) -> dict[str, Any]:
    """The entries that tie a checkpoint to one arm of one config for one seed."""
    return {
        "arm": label,
        "strategy_name": strategy,
        "strategy_params": json.dumps(dict(params), sort_keys=True, default=str),
        "seed": int(seed),
        "config_sha256": config_fingerprint(config),
    }


def _feed(h: Any, value: Any) -> None:
    """Feed ``value`` into hash ``h`` unambiguously (every item is tagged and length-prefixed)."""
    if isinstance(value, torch.Tensor):
        t = value.detach()
        if t.layout != torch.strided:
            t = t.to_dense()
        t = t.cpu().resolve_conj().resolve_neg().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(value.shape)}:".encode())
        h.update(t.view(torch.uint8).numpy().data)
    elif isinstance(value, Mapping):
        h.update(f"D{len(value)}:".encode())
        for k, v in value.items():
            _feed(h, k)
            _feed(h, v)
    elif isinstance(value, (list, tuple)):
        h.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}:".encode())
        for v in value:
            _feed(h, v)
    elif isinstance(value, (bytes, bytearray)):
        h.update(f"B{len(value)}:".encode())
        h.update(value)
    else:
        # None, bool, int, float (repr round-trips exactly), complex, str; anything else by its repr.
        if isinstance(value, bool) or value is None:
            tag, text = "N", repr(value)
        elif isinstance(value, int):
            tag, text = "I", int.__repr__(value)
        elif isinstance(value, float):
            tag, text = "F", float.__repr__(value)
        elif isinstance(value, str):
            tag, text = "S", str(value)
        else:
            tag, text = f"O{type(value).__qualname__}", repr(value)
        data = text.encode("utf-8", "surrogatepass")
        h.update(f"{tag}{len(data)}:".encode())
        h.update(data)


def content_digest(state: Mapping[str, Any]) -> str:
    """SHA-256 over the values of every entry of ``state`` except ``checksum``."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != "checksum"})
    return h.hexdigest()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _resume_hint(path: Path) -> str:
    """How to continue after a failed write: a run folder's own resume command, or a re-run."""
    folder = path.parent.parent
    if path.parent.name == "checkpoints" and is_run_folder(folder):
        return f"then resume with 'activews bench --resume {folder}'"
    return "then run the arm again with the same checkpoint path to resume"


class ArmCheckpoint:
    """The checkpoint file of one cell (``path``) and its previous generation.

    Args:
        path: the checkpoint file (``checkpoints/e0-warm-s0.pt`` in a run folder).
        identity: the cell's identity (:func:`cell_identity`); a file naming another cell is refused.
    """

    def __init__(self, path: str | Path, identity: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.previous = self.path.with_name(f"{self.path.stem}.prev{self.path.suffix}")
        self.identity = dict(identity)
        # Whether the file at ``path`` is one this object loaded or wrote. Only such a file is kept as
        # the previous generation: a refused one must not replace a good previous generation.
        self._newest_trusted = False

    # ------------------------------------------------------------------------------------- reading
    def _check(self, path: Path) -> tuple[dict[str, Any] | None, str]:
        """``(state, "")`` for a good file, ``(None, why)`` otherwise (``why`` empty: no file)."""
        if not path.is_file():
            return None, ""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn, truncated or foreign file
            return None, f"unreadable ({_one_line(exc)})"
        if not isinstance(state, dict):
            return None, f"unreadable (holds a {type(state).__name__}, not a checkpoint dict)"
        if state.get("version") != CHECKPOINT_VERSION:
            return None, f"of another version ({state.get('version')!r}, expected {CHECKPOINT_VERSION})"
        try:
            intact = state.get("checksum") == content_digest(state)
        except Exception:  # a value no checkpoint of this version holds
            intact = False
        if not intact:
            return None, "damaged (its content does not match its checksum)"
        for key in IDENTITY_KEYS:
            if state.get(key) != self.identity[key]:
                what = "config" if key == "config_sha256" else key.replace("_", " ")
                return None, (
                    f"of another cell ({what} {_short(state.get(key))}, this cell's is "
                    f"{_short(self.identity[key])})"
                )
        return state, ""

    def load(self) -> dict[str, Any] | None:
        """The newest good checkpoint (newest file first, then the previous one), or None.

        Each refused file is logged as one warning line that names it, says why, and says where the
        arm continues from. Leftover temporary files of this cell (from a killed process) are removed.
        """
        self.remove_stale_tmp()
        refused: list[tuple[Path, str]] = []
        state: dict[str, Any] | None = None
        for i, path in enumerate((self.path, self.previous)):
            state, why = self._check(path)
            if state is not None:
                self._newest_trusted = i == 0
                break
            if why:
                refused.append((path, why))
        outcome = (
            f"the arm resumes after round {int(state['round'])}"
            if state is not None
            else "the arm restarts from round 0"
        )
        for path, why in refused:
            log.warning("ignoring checkpoint %s: %s; %s", path, why, outcome)
        return state

    # ------------------------------------------------------------------------------------- writing
    def _tmp_name(self) -> Path:
        return self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")

    def _is_own_tmp(self, name: str) -> bool:
        prefix = f".{self.path.name}."
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            return False
        return name[len(prefix) : -len(".tmp")].isdigit()

    def remove_stale_tmp(self) -> None:
        """Remove this cell's temporary files left by a killed process (never another cell's)."""
        try:
            entries = list(os.scandir(self.path.parent))
        except OSError:
            return
        for entry in entries:
            if self._is_own_tmp(entry.name):
                try:
                    os.unlink(entry.path)
                    log.info("removed leftover temporary file %s", entry.path)
                except OSError:
                    pass

    def save(self, state: Mapping[str, Any]) -> None:
        """Write ``state`` (plus version, identity and checksum) as the newest generation.

        Raises:
            ActivewsError: if the file cannot be written (disk full, file-size limit, read-only
                folder, ...); the temporary file is removed and the files on disk are unchanged.
        """
        payload = {"version": CHECKPOINT_VERSION, **self.identity, **state}
        payload["checksum"] = content_digest(payload)
        buf = io.BytesIO()
        torch.save(payload, buf)  # in memory first: a failed write is a plain OSError, not torch's
        tmp = self._tmp_name()
        try:
            with open(tmp, "wb") as fh:
                fh.write(buf.getbuffer())
                fh.flush()
                os.fsync(fh.fileno())
            if self._newest_trusted and self.path.is_file():
                os.replace(self.path, self.previous)
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except BaseException as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise ActivewsError(
                    write_failure("checkpoint", self.path, exc, _resume_hint(self.path))
                ) from None
            raise
        self._newest_trusted = True

    def discard_previous(self) -> None:
        """Remove the previous generation (once the arm is finished, the newest one is enough)."""
        try:
            self.previous.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove %s (%s)", self.previous, exc.strerror or exc)


def _short(value: Any) -> str:
    text = repr(value)
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        text = repr(value[:12])  # a fingerprint: a prefix is enough to tell two apart
    return text
