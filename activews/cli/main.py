"""The ``activews`` command line: the top-level parser and the entry point :func:`main`.

Every error caused by the user's input is one line on stderr and exit code 2; no traceback. The commands
live in their own modules: :mod:`~activews.cli.bench` (bench, reproduce), :mod:`~activews.cli.advise` (advise), :mod:`~activews.cli.listing`
(strategies, acquisitions) and :mod:`~activews.cli.runs` (runs, report).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from activews.cli.advise import add_commands as add_advise_commands
from activews.cli.base import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, Parser, interrupt_code
from activews.cli.bench import add_commands as add_bench_commands
from activews.cli.listing import add_commands as add_listing_commands
from activews.cli.runs import add_commands as add_runs_commands
from activews.engine.workers import Terminated, sigterm_as_exception
from activews.errors import ActivewsError
from activews.plugins import load_plugin
from activews.version import __version__

__all__ = ["EXIT_INTERRUPTED", "EXIT_TERMINATED", "EXIT_USAGE", "build_parser", "main", "plugin_specs"]


def _add_plugin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE|FILE.py",
        help="import a module or .py file that registers strategies, models, datasets or "
        "acquisition functions (repeatable)",
    )


class _Unparsable(Exception):
    """The arguments do not parse: the real parser says why."""


class _PluginScan(argparse.ArgumentParser):
    """Reads only the ``--plugin`` options before the command; leaves every error to the real parser."""

    def error(self, message: str) -> NoReturn:
        raise _Unparsable(message)


def plugin_specs(argv: Sequence[str]) -> list[str]:
    """The ``--plugin`` values given before the command (where the top-level parser takes them)."""
    scan = _PluginScan(prog="activews", add_help=False)
    _add_plugin_option(scan)
    scan.add_argument("rest", nargs=argparse.REMAINDER)  # the command and its own arguments
    try:
        return list(scan.parse_known_args(list(argv))[0].plugin)
    except _Unparsable:
        return []


def build_parser() -> argparse.ArgumentParser:
    """The ``activews`` parser. Name lists in the help (strategies, models, ...) are read from the
    registries now, so load ``--plugin`` modules first (as :func:`main` does) for theirs to show."""
    parser = Parser(
        prog="activews",
        description="Measure the warm-start penalty in continual and active learning, and compare ways "
        "to initialize each round on accuracy and compute.",
    )
    parser.add_argument("--version", action="version", version=f"activews {__version__}")
    _add_plugin_option(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    parser.commands = sub.choices  # type: ignore[attr-defined]  (for errors that name the subcommand)
    add_bench_commands(sub)  # bench, reproduce
    add_advise_commands(sub)  # advise
    add_listing_commands(sub)  # strategies, acquisitions
    add_runs_commands(sub)  # runs, report
    return parser


def _fail(exc: ActivewsError) -> int:
    sys.stderr.write(f"activews: error: {exc}\n")
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        # Before the parser is built: its help lists the names these modules register.
        for spec in plugin_specs(argv):
            load_plugin(spec)
    except ActivewsError as exc:
        return _fail(exc)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # report unknown flags against the subcommand's own help, not the top level's
        owner = parser.commands.get(args.command, parser) if args.command else parser  # type: ignore[attr-defined]
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        with sigterm_as_exception():  # 'kill PID' or a container stop: the same clean stop as Ctrl-C
            return int(args.handler(args))
    except ActivewsError as exc:
        return _fail(exc)
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        sys.stderr.write(f"activews: {what}; results already stored are intact\n")
        return interrupt_code(exc)


if __name__ == "__main__":
    sys.exit(main())
