"""The ``activews`` command line: ``main`` parses the arguments and runs one command."""

from activews.cli.main import main

__all__ = ["main"]
