"""``activews strategies`` and ``activews acquisitions``: what the registries hold, with parameters and
references, as a table or as JSON. A plugin that fails to load is a row saying why, not a crash."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any

from rich.console import Console

from activews.cli.output import add_format_option, emit
from activews.params import search_space
from activews.registry import Registry
from activews.report.formats import Section
from activews.report.tables import TextTable, acquisitions_table, strategies_table
from activews.strategies import STRATEGIES
from activews.streams import ACQUISITIONS
from activews.streams.acquisition import BatchSelector

__all__ = ["add_commands", "cmd_acquisitions", "cmd_strategies"]


def add_commands(sub: Any) -> None:
    """The ``strategies`` and ``acquisitions`` subcommands."""
    s = sub.add_parser(
        "strategies",
        help="list registered strategies with their parameters, search spaces (what advise tunes) and references",
    )
    _add_format(s)
    s.set_defaults(handler=cmd_strategies)
    a = sub.add_parser(
        "acquisitions", help="list registered acquisition functions with their parameters and references"
    )
    _add_format(a)
    a.set_defaults(handler=cmd_acquisitions)


def _add_format(parser: argparse.ArgumentParser) -> None:
    add_format_option(parser, "every entry with its parameters, defaults, bounds and search space as data")
    parser.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )


def _bound(meta: Any) -> str:
    """``Ge(ge=0.0)`` -> ``>= 0.0`` (annotated-types constraints as people write them)."""
    for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
        if hasattr(meta, attr):
            return f"{sym} {getattr(meta, attr)}"
    return ""


def _param_rows(params_cls: Any) -> tuple[list[str], dict[str, Any]]:
    """A Params class as table lines (``key=default (bounds)``) and as a JSON-ready dict."""
    fields, params = [], {}
    for key, f in params_cls.model_fields.items():
        bounds = [_bound(m) for m in f.metadata if _bound(m)]
        fields.append(f"{key}={f.default!r}" + (f" ({', '.join(bounds)})" if bounds else ""))
        params[key] = {"default": f.default, "description": f.description, "constraints": bounds}
    return fields, params


def _doc_parts(obj: Any) -> tuple[str, str]:
    """The first docstring line, and the text of its ``References:`` section (joined into one line)."""
    lines = [line.strip() for line in (getattr(obj, "__doc__", None) or "").strip().splitlines()]
    refs = []
    if "References:" in lines:
        for line in lines[lines.index("References:") + 1 :]:
            if not line:
                break
            refs.append(line)
    return (lines[0].replace("``", "") if lines else ""), " ".join(refs)


def _registry_rows(
    registry: Registry[Any], describe: Callable[[Any], dict[str, Any]], blank: dict[str, Any]
) -> list[dict[str, Any]]:
    """One row per name of ``registry``: ``describe(entry)`` and the plugin package it comes from (None
    if built in or loaded in-process); a plugin that fails to load is a row saying why (``blank`` fills
    the other columns), not a crash."""
    rows = []
    for name, obj, error in registry.entries():
        source = registry.plugin_source(name)
        origin = f"\nfrom plugin package {source}" if source else ""
        if error is not None:
            rows.append(
                {"name": name, **blank, "summary": f"failed to load: {error}"}
                | {"plugin": source, "error": str(error)}
            )
            continue
        row = describe(obj)
        row["summary"] += origin
        rows.append({"name": name, **row, "plugin": source})
    return rows


def _print_rows(rows: list[dict[str, Any]], fmt: str, table: TextTable) -> None:
    if fmt == "table":
        Console().print(table)
        return
    # "params" and "space" are the table's text; JSON has "parameters" and "search_space" instead.
    data = [{k: v for k, v in r.items() if k not in ("params", "space")} for r in rows]
    emit(fmt, [Section("", [table])], data)


def _describe_strategy(cls: Any) -> dict[str, Any]:
    fields, params = _param_rows(cls.Params)
    summary = _doc_parts(cls)[0] + (f"\nBatchNorm: {cls.batchnorm}" if cls.batchnorm else "")
    space = search_space(cls.Params)
    return {
        "params": "\n".join(fields) or "-",
        "parameters": params,
        "space": "\n".join(f"{key}: {tune.describe()}" for key, tune in space.items()) or "-",
        "search_space": {key: tune.to_dict() for key, tune in space.items()},
        "summary": summary,
        "reference": cls.reference,
    }


def cmd_strategies(args: argparse.Namespace) -> int:
    blank = {"params": "-", "parameters": {}, "space": "-", "search_space": {}, "reference": ""}
    rows = _registry_rows(STRATEGIES, _describe_strategy, blank)
    _print_rows(rows, args.format, strategies_table(rows))
    return 0


def _describe_acquisition(entry: Any) -> dict[str, Any]:
    summary, reference = _doc_parts(entry)
    if inspect.isclass(entry) and issubclass(entry, BatchSelector):
        fields, params = _param_rows(entry.Params)
        return {
            "kind": "selector",
            "params": "\n".join(fields) or "-",
            "parameters": params,
            "summary": summary + f"\nneeds: {', '.join(sorted(entry.needs))}",
            "reference": entry.reference or reference,
        }
    return {"kind": "function", "params": "-", "parameters": {}, "summary": summary, "reference": reference}


def cmd_acquisitions(args: argparse.Namespace) -> int:
    blank = {"kind": "-", "params": "-", "parameters": {}, "reference": ""}
    rows = _registry_rows(ACQUISITIONS, _describe_acquisition, blank)
    _print_rows(rows, args.format, acquisitions_table(rows))
    return 0
