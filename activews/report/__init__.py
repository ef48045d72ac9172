"""Rendering results for people: tables (:mod:`.tables`; laid out at any width by :mod:`.layout`, written as
Markdown or CSV by :mod:`.formats`), figures (:mod:`.plots`), an HTML page
(:mod:`.html`) and a run folder's result files (:mod:`.folder`). Nothing here prints or computes
statistics: it renders what :mod:`activews.engine.summary` computed."""

from activews.report.folder import RECORD_FIELDS, records_csv, write_run_folder
from activews.report.html import html_report
from activews.report.plots import FIGURES, continual_figure, figures, plot_accuracy
from activews.report.tables import (
    TextTable,
    acquisitions_table,
    compute_table,
    continual_tables,
    fmt_ci,
    penalty_table,
    protocol_title,
    result_tables,
    selection_table,
    strategies_table,
)

__all__ = [
    "FIGURES",
    "RECORD_FIELDS",
    "TextTable",
    "acquisitions_table",
    "compute_table",
    "continual_figure",
    "continual_tables",
    "figures",
    "fmt_ci",
    "html_report",
    "penalty_table",
    "plot_accuracy",
    "protocol_title",
    "records_csv",
    "result_tables",
    "selection_table",
    "strategies_table",
    "write_run_folder",
]
