"""Worker processes that stop when the run stops: Ctrl-C, SIGTERM, or the death of their parent.

:class:`WorkerPool` runs tasks in ``spawn`` processes and differs from ``concurrent.futures`` in how it
ends:

- Workers ignore SIGINT. A Ctrl-C reaches every process of the terminal's process group; only the
  parent acts on it, so a worker never runs the next queued task nor prints a traceback.
- When the parent is interrupted (``KeyboardInterrupt`` or :class:`Terminated`) or a task fails, it sends
  SIGTERM to every worker, waits up to :data:`STOP_GRACE` seconds, then kills what is left. In a worker,
  SIGTERM raises :class:`Terminated`, so the task unwinds: an open store transaction is rolled back and
  temporary files are removed. What a task already committed stays committed.
- Workers watch their parent: if it dies (``kill -9``, or SIGTERM to the parent alone with no handler),
  they stop within about a second (``PR_SET_PDEATHSIG`` on Linux, and a polling thread everywhere).

:func:`sigterm_as_exception` turns SIGTERM into :class:`Terminated` in the main process, so that a
``kill PID`` or a container stop takes the same path as Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from activews.errors import ActivewsError

__all__ = ["WorkerPool", "Terminated", "sigterm_as_exception", "stop_when_gone", "as_received", "STOP_GRACE"]

log = logging.getLogger(__name__)

STOP_GRACE = 3.0
"""Seconds a worker has to finish unwinding after SIGTERM before it is killed."""

_POLL = 0.5


class Terminated(KeyboardInterrupt):
    """SIGTERM received: handled like Ctrl-C (a ``KeyboardInterrupt``), but reported as a termination."""


_SIGTERM_RECEIVED = threading.Event()


def _raise_terminated(signum: int, frame: Any) -> None:
    # Once: a second SIGTERM (the group's, then the parent's) must not interrupt the clean-up it started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _SIGTERM_RECEIVED.set()
    raise Terminated(signum)


def as_received(exc: KeyboardInterrupt) -> KeyboardInterrupt:
    """``exc``, or :class:`Terminated` where a library (Ray) re-raised our SIGTERM as a plain interrupt."""
    if _SIGTERM_RECEIVED.is_set() and not isinstance(exc, Terminated):
        return Terminated(signal.SIGTERM)
    return exc


@contextmanager
def sigterm_as_exception() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _SIGTERM_RECEIVED.clear()
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class WorkerTraceback(Exception):
    """The formatted traceback of an error raised in a worker process (set as the error's cause)."""


def _die_with_parent(parent_pid: int) -> None:
    """Send ourselves SIGTERM when the parent process goes away."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # the polling thread below still covers it
            pass
    _watch(lambda: os.getppid() == parent_pid)


def stop_when_gone(pid: int) -> None:
    """In a process that ``pid`` did not start (a Ray task): SIGTERM ourselves once ``pid`` has ended."""

    def alive() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    _watch(alive)


def _watch(alive: Callable[[], bool]) -> None:
    def watch() -> None:
        while alive():
            time.sleep(_POLL)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STOP_GRACE)  # the handler did not get to run (stuck in native code): leave hard
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=watch, name="activews-parent-watch", daemon=True).start()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it pickles, else a RuntimeError carrying its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _worker_main(
    tasks: Any,
    results: Any,
    fn: Callable[..., Any],
    init: Callable[..., None] | None,
    init_args: Sequence[Any],
    parent_pid: int,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C for the whole run
    signal.signal(signal.SIGTERM, _raise_terminated)
    _die_with_parent(parent_pid)
    index: int | None = None
    try:
        if init is not None:
            init(*init_args)
        while (item := tasks.get()) is not None:
            index, args = item
            try:
                results.put((index, True, fn(*args)))
            except Terminated:
                raise
            except BaseException as exc:
                results.put((index, False, (_portable(exc), traceback.format_exc())))
    except Terminated:
        # Nobody may read what is still queued: do not wait at exit to flush it.
        tasks.cancel_join_thread()
        results.cancel_join_thread()
        # Every finished round is already committed; skip the interpreter's exit handlers (torch's
        # finalizers), which a second SIGTERM from a stopping pool would interrupt with a traceback.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signal.SIGTERM)
    except BaseException as exc:  # the initializer failed (e.g. a plugin that no longer imports)
        results.put((index, False, (_portable(exc), traceback.format_exc())))


class WorkerPool:
    """``n`` spawn processes running ``fn(*task)`` for each task; see the module docstring for stopping.

    Use as a context manager; leaving the block by an exception stops every worker. ``init(*init_args)``
    runs once in each worker before its first task.
    """

    def __init__(
        self,
        n: int,
        fn: Callable[..., Any],
        init: Callable[..., None] | None = None,
        init_args: Sequence[Any] = (),
    ) -> None:
        import multiprocessing

        # spawn, not fork: forking a process that already ran torch's thread pools can deadlock.
        self._ctx = multiprocessing.get_context("spawn")
        self.n, self.fn, self.init, self.init_args = n, fn, init, tuple(init_args)
        self.processes: list[Any] = []

    def __enter__(self) -> WorkerPool:
        self._tasks, self._results = self._ctx.Queue(), self._ctx.Queue()
        for k in range(self.n):
            p = self._ctx.Process(
                target=_worker_main,
                args=(self._tasks, self._results, self.fn, self.init, self.init_args, os.getpid()),
                name=f"activews-worker-{k}",
                daemon=True,  # never outlive a parent that exits normally
            )
            p.start()
            self.processes.append(p)
        return self

    def run(self, tasks: Sequence[Sequence[Any]], on_wait: Callable[[], None] | None = None) -> list[Any]:
        """Run every task; results in task order. A task's error is re-raised here (the rest are stopped).

        ``on_wait`` is called after each finished task and every :data:`_POLL` seconds in between (the
        progress display reads the store there).
        """
        for i, args in enumerate(tasks):
            self._tasks.put((i, tuple(args)))
        for _ in self.processes:
            self._tasks.put(None)
        out: dict[int, Any] = {}
        while len(out) < len(tasks):
            try:
                index, ok, payload = self._results.get(timeout=_POLL)
            except queue.Empty:
                self._check_alive()
            else:
                if not ok:
                    exc, tb = payload
                    if isinstance(exc, ActivewsError):
                        raise exc
                    raise exc from WorkerTraceback(tb)
                out[index] = payload
            if on_wait is not None:  # every half second at least, not only when a task ends
                on_wait()
        return [out[i] for i in range(len(tasks))]

    def _check_alive(self) -> None:
        for p in self.processes:
            if p.exitcode not in (None, 0):
                code = p.exitcode
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                if code < 0 and -code == signal.SIGKILL:
                    how += " (SIGKILL: out of memory?)"
                raise ActivewsError(
                    f"a worker process {how}; the rounds it finished are stored: run the same command "
                    "again to continue"
                )
        if all(p.exitcode is not None for p in self.processes) and self._results.empty():
            raise ActivewsError(
                "every worker process ended before its tasks were done; run the same command again"
            )

    def stop(self) -> None:
        """SIGTERM every worker, wait up to :data:`STOP_GRACE` seconds, then kill the rest."""
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None  # a 2nd Ctrl-C waits too
        try:
            for p in self.processes:
                if p.exitcode is None:
                    p.terminate()
            deadline = time.monotonic() + STOP_GRACE
            for p in self.processes:
                p.join(max(0.0, deadline - time.monotonic()))
            for p in self.processes:
                if p.exitcode is None:
                    log.warning("worker %s did not stop within %.0f s; killing it", p.pid, STOP_GRACE)
                    p.kill()
                    p.join()
        finally:
            self._close_queues()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _close_queues(self) -> None:
        for q in (self._tasks, self._results):
            q.cancel_join_thread()
            q.close()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.stop()
            return
        for p in self.processes:  # every worker got its end-of-tasks marker
            p.join()
        self._close_queues()
