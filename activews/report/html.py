"""A self-contained HTML page (figures embedded as data URIs) for one or more experiments."""

from __future__ import annotations

import base64
import html
from typing import Any

from activews.engine.bench import BenchResult
from activews.report.tables import (
    continual_headers,
    continual_rows,
    continual_titles,
    fmt_ci,
    fmt_time_ratio,
    is_continual_summary,
    protocol_title,
)

__all__ = ["html_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1150px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{padding:.3em .7em;border-bottom:1px solid #eee}
th{text-align:left;background:#f6f6f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b00}.good{color:#070}img{max-width:100%;margin:.5em 0}.meta{color:#666;font-size:.85em}
"""


def _td(text: str, cls: str = "n") -> str:
    return f'<td class="{cls}">{html.escape(text)}</td>'


def _summary_html(summary: list[dict[str, Any]], reference: str = "random") -> str:
    head = (
        "<tr><th>arm</th><th>final acc %</th><th>penalty (pts)</th><th>95% CI</th><th>area penalty</th>"
        "<th>step ratio</th><th>time ratio</th><th>steps</th><th>train s</th><th>hit target</th></tr>"
    )
    rows = []
    for r in summary:
        ref = r["arm"] == reference
        ci = r.get("penalty_ci")
        cls = "bad" if ci and ci[0] > 0 and not ref else ("good" if ci and ci[1] < 0 and not ref else "")
        rows.append(
            f'<tr class="{cls}"><td><b>{html.escape(r["arm"])}</b></td>'
            + _td(f"{r['final_accuracy'] * 100:.2f}")
            + _td("ref" if ref else ("n/a" if r.get("penalty") is None else f"{r['penalty'] * 100:+.2f}"))
            + _td("" if ref else fmt_ci(ci, digits=2))
            + _td("" if ref or r.get("auc_penalty") is None else f"{r['auc_penalty'] * 100:+.2f}")
            + _td("n/a" if r.get("compute_ratio") is None else f"{r['compute_ratio']:.2f}")
            + _td(fmt_time_ratio(r))
            + _td(f"{r['steps']:,.0f}")
            + _td("-" if r.get("seconds") is None else f"{r['seconds']:.1f}")
            + _td("-" if r.get("reached_target") is None else f"{r['reached_target']:.0%}")
            + "</tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _continual_html(summary: list[dict[str, Any]], reference: str = "random") -> str:
    """The continual tables of a shifting stream (the cells the console prints); empty otherwise."""
    if not is_continual_summary(summary):
        return ""
    accuracy, stability = continual_rows(summary, reference=reference)
    parts = []
    for title, headers, rows in zip(
        continual_titles(summary, reference=reference),
        continual_headers(reference),
        (accuracy, [(cells, None) for cells in stability]),
        strict=True,
    ):
        head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>"
        body = "".join(
            f'<tr class="{"bad" if style == "red" else ("good" if style == "green" else "")}">'
            f"<td><b>{html.escape(cells[0])}</b></td>" + "".join(_td(c) for c in cells[1:]) + "</tr>"
            for cells, style in rows
        )
        parts.append(f"<p class='meta'>{html.escape(title)}</p><table>{head}{body}</table>")
    return "".join(parts)


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
        parts.append(_summary_html(result.summary, reference))
        if is_continual_summary(result.summary):
            parts.append(_continual_html(result.summary, reference))
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
