"""A self-contained HTML page (figures embedded as data URIs) for one or more experiments: the tables every
command prints (:func:`~activews.report.tables.result_tables`, as HTML) and the figures."""

from __future__ import annotations

import base64
import html

from activews.engine.bench import BenchResult
from activews.report.tables import protocol_title, result_tables

__all__ = ["html_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1150px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{padding:.3em .7em;border-bottom:1px solid #eee}
th{text-align:left;background:#f6f6f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.t{text-align:left}
.bad{color:#b00}.good{color:#070}img{max-width:100%;margin:.5em 0}.meta{color:#666;font-size:.85em}
"""


def html_report(
    results: list[BenchResult],
    figs: list[dict[str, bytes]],
    title: str = "activews run",
    *,
    reference: str = "random",
) -> str:
    """One self-contained HTML page (figures embedded as data URIs) for one or more experiments, with
    penalties and ratios measured against the arm ``reference``."""
    ref = f"<code>{html.escape(reference)}</code>"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p class='meta'>Penalty = accuracy of the {ref} arm minus the arm's, paired by seed; "
        f"ratios are cumulative optimizer steps (and training seconds) divided by {ref}'s. "
        "CIs are 95% Student-t over seeds.</p>",
    ]
    for result, fig in zip(results, figs, strict=True):
        name = f"Experiment {result.label}" if result.label else "Results"
        parts.append(
            f"<h2>{html.escape(name)}</h2><p class='meta'>{html.escape(protocol_title(result.config))}</p>"
        )
        # the tables every command prints, with the same cells (report.tables)
        parts += [table.html() for table in result_tables(result.summary, reference=reference)]
        for fname, png in fig.items():
            data = base64.b64encode(png).decode()
            if fname == "diagnostics.png":
                parts.append(
                    "<p class='meta'>Diagnostics (<code>--diagnostics</code>), means over seeds per round: "
                    "gradient norms and weight change at the round's start; dormant units, feature rank "
                    "and weights at the round's end (definitions in docs/concepts.md, Diagnostics).</p>"
                )
            if fname == "continual.png":
                parts.append(
                    "<p class='meta'>Shifting stream: accuracy on each task's evaluation set at the end of "
                    "that task (mean over seeds, 95% CI band), and per round the accuracy averaged over the "
                    "tasks seen so far and on the current task (definitions in docs/concepts.md).</p>"
                )
            parts.append(f"<img alt='{html.escape(fname)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
