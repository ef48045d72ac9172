"""One process per run folder: an exclusive lock held for the whole run.

The lock is ``run.lock`` in the run folder, locked with ``flock`` (POSIX). The operating system
releases it when the holding process ends, however it ends (``kill -9`` included), so a lock file
left behind by a killed run is never in the way: the next run takes it over. The file records who
holds it (pid, host, start time) so that the refusal can name the holder.

Workers (``--workers``) and Ray tasks of the run do not take the lock: the process that started
them holds it for them, and they stop when it does.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from activews.errors import ActivewsError

__all__ = ["RunLock", "LOCK_FILE"]

LOCK_FILE = "run.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


class RunLock:
    """An exclusive lock on a run folder; use as a context manager or with :meth:`acquire` / :meth:`release`.

    Raises:
        ActivewsError: (from :meth:`acquire`) another live process holds the folder; the message names its
            pid and how to proceed.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ActivewsError(
                f"cannot create the run lock {str(self.path)!r} ({exc.strerror or exc}); "
                "choose a writable --output folder"
            ) from None
        if not self._lock(fd):
            os.close(fd)
            raise ActivewsError(self._busy_message())
        # Ours now (a file left by a killed run is simply taken over): say who holds it.
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError:
            pass  # the lock holds without the note; the note only improves the refusal message
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # an empty file = nobody holds the folder
        except OSError:
            pass
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)  # closing also releases a Windows lock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # ------------------------------------------------------------------------------------------- helpers
    def _lock(self, fd: int) -> bool:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True
        try:  # pragma: no cover - Windows: lock a byte far past the note, which stays readable
            os.lseek(fd, 1 << 20, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _holder(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text() or "null")
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and "pid" in data else None

    def _busy_message(self) -> str:
        holder = self._holder() or {}
        pid = holder.get("pid", "?")
        where = (
            f" on {holder['host']}" if holder.get("host") and holder["host"] != socket.gethostname() else ""
        )
        since = (
            time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(float(holder["since"])))
            if isinstance(holder.get("since"), (int, float))
            else ""
        )
        return (
            f"run folder {str(self.folder)!r} is in use by another activews process (pid {pid}{where}{since}); "
            f"wait for it to finish, stop it (kill {pid}), or choose another --output"
        )
