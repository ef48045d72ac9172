"""Writing files safely: atomic writes, writable-folder probes and one-line write errors.

Files are written to a temporary name and renamed into place, so an interrupted write never leaves a
half-written file, and a folder that already holds a run is never overwritten. Used by the engine (run
store, checkpoints) and by the report (result files).
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from activews.errors import ActivewsError

__all__ = [
    "prepare_output_dir",
    "probe_writable",
    "check_writable_file",
    "atomic_write",
    "write_failure",
    "to_jsonable",
]

_UMASK = os.umask(0)
os.umask(_UMASK)


def to_jsonable(value: Any) -> Any:
    """Replace NaN/inf by None so the output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


_FIX_BY_ERRNO = {
    errno.ENOSPC: "free space on that disk",
    getattr(errno, "EDQUOT", -1): "free space on that disk (you are over your quota)",
    errno.EFBIG: "raise the file-size limit (ulimit -f) or free space",
    errno.EROFS: "make the folder writable (it is on a read-only file system)",
    errno.EACCES: "make the folder writable",
    errno.EPERM: "make the folder writable",
    errno.ENOENT: "check that the folder exists",
}
# SQLite's primary result codes (the low byte of an extended code).
_FIX_BY_SQLITE_CODE = {
    13: "free space on that disk (or raise the file-size limit, ulimit -f)",  # SQLITE_FULL
    10: "free space on that disk (or raise the file-size limit, ulimit -f) and check the disk",  # SQLITE_IOERR
    8: "make the folder writable",  # SQLITE_READONLY
    14: "make the folder writable",  # SQLITE_CANTOPEN
    5: "stop the other process that writes to it",  # SQLITE_BUSY
    6: "stop the other process that writes to it",  # SQLITE_LOCKED
}


def write_failure(what: str, path: str | Path, exc: BaseException, then: str) -> str:
    """One line for a failed write: what, where, why, and the fix (``then``: how to continue after it).

    ``exc`` is the ``OSError`` or ``sqlite3.Error`` that stopped the write, e.g.
    ``cannot write checkpoint 'runs/x/checkpoints/e0-warm-s0.pt' (No space left on device); free
    space on that disk, then resume with 'activews bench --resume runs/x'``.
    """
    if isinstance(exc, OSError):
        cause = exc.strerror or str(exc) or type(exc).__name__
        fix = _FIX_BY_ERRNO.get(exc.errno or 0, "check the disk and free space on it")
    else:
        cause = " ".join(str(exc).split()) or type(exc).__name__
        code = getattr(exc, "sqlite_errorcode", None)
        fix = _FIX_BY_SQLITE_CODE.get((code or 0) & 0xFF, "check the disk and free space on it")
        if code is None and "full" in cause:
            fix = _FIX_BY_SQLITE_CODE[13]
    return f"cannot write {what} {str(path)!r} ({cause}); {fix}, {then}"


def atomic_write(
    path: Path, data: str | bytes, *, what: str = "file", then: str = "then run the command again"
) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename.

    Raises:
        ActivewsError: if it cannot be written (disk full, read-only folder, ...): one line naming
            ``path``, the cause and the fix (``then`` says how to continue after the fix); no
            temporary file is left behind.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are for sharing
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            try:
                Path(tmp).unlink(missing_ok=True)
            except OSError:
                pass
        if isinstance(exc, OSError):
            raise ActivewsError(write_failure(what, path, exc, then)) from None
        raise


PROBE_PREFIX = ".activews-probe-"
"""Prefix of the short-lived file that checks a folder is writable."""


def probe_writable(folder: Path, what: str, fix: str) -> None:
    """Fail with one line (``cannot write to WHAT 'FOLDER' (cause); FIX``) if ``folder`` takes no new file."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=PROBE_PREFIX)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ActivewsError(
            f"cannot write to {what} {str(folder)!r} ({exc.strerror or exc}); {fix}"
        ) from None


def prepare_output_dir(folder: str | Path) -> Path:
    """Create ``folder`` (or accept an empty existing one) and check it can be written, before any work.

    Raises:
        ActivewsError: if it is a file, is a non-empty folder, or cannot be written.
    """
    folder = Path(folder)
    fix = "choose another --output folder"
    if folder.exists() and not folder.is_dir():
        raise ActivewsError(f"output {str(folder)!r} is a file, not a folder; {fix}")
    if folder.is_dir() and any(folder.iterdir()):
        raise ActivewsError(f"output folder {str(folder)!r} is not empty and holds no activews run; {fix}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ActivewsError(
            f"cannot create output folder {str(folder)!r} ({exc.strerror or exc}); {fix}"
        ) from None
    probe_writable(folder, "output folder", fix)
    return folder


def check_writable_file(path: str | Path, flag: str = "--json") -> Path:
    """Check that ``path`` can be written (its folder exists and is writable; it is not a folder)."""
    path = Path(path)
    if path.is_dir():
        raise ActivewsError(
            f"{flag} {str(path)!r} is a folder; give a file path such as {path / 'result.json'}"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ActivewsError(f"{flag} {str(path)!r}: folder {str(parent)!r} does not exist; create it first")
    probe_writable(parent, f"{flag} folder", f"give {flag} a path in a writable folder")
    return path
