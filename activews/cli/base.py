"""What every command module shares: the exit codes and the argparse parser whose errors are one line."""

from __future__ import annotations

import argparse
from typing import NoReturn

from activews.engine.workers import Terminated

__all__ = ["EXIT_INTERRUPTED", "EXIT_TERMINATED", "EXIT_USAGE", "Parser", "interrupt_code"]

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_TERMINATED = 143  # 128 + SIGTERM


def interrupt_code(exc: BaseException) -> int:
    """The exit code of a run stopped by Ctrl-C (130) or by SIGTERM (143)."""
    return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, naming the fix, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"activews: error: {message} (see '{self.prog} --help')\n")
