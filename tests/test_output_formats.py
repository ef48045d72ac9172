"""``--format table|markdown|csv|json`` of bench, reproduce, runs show, strategies and acquisitions; colour
and width as rich users expect (``NO_COLOR``, ``FORCE_COLOR``, a pipe, ``COLUMNS``); and the default
bench's Markdown in the docs, byte for byte."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from activews.cli import main
from activews.cli.output import result_sections, results_json
from activews.engine.bench import load_results
from activews.engine.config import BenchConfig
from activews.files import to_jsonable
from activews.report.formats import csv_document, markdown_document
from activews.report.tables import penalty_table, result_tables
from activews.strategies import list_strategies
from activews.streams import ACQUISITIONS
from tests.test_table_widths import compute_tokens, missing_tokens, penalty_tokens

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "--n-examples",
    "300",
    "--stream",
    "passive",
    "--rounds",
    "2",
    "--initial",
    "60",
    "--query-size",
    "60",
]
TINY += ["--seeds", "2", "--max-epochs", "3", "--no-plot", "--progress", "plain"]
TINY += ["--sweep", "shrink_perturb.shrink=0.6,0.8"]


def csv_blocks(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """``(comment lines, rows)`` of each blank-line-separated block of ``--format csv``."""
    blocks = []
    for block in text.strip("\n").split("\n\n"):
        lines = block.split("\n")
        comments = [line[2:] for line in lines if line.startswith("# ")]
        rows = list(csv.reader(line for line in lines if not line.startswith("# ")))
        blocks.append((comments, rows))
    return blocks


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("formats") / "run"
    assert main(["bench", *TINY, "--output", str(folder)]) == 0
    return folder


def test_bench_markdown_is_the_tables_and_nothing_else(bench_run, capsys):
    capsys.readouterr()
    assert (
        main(["bench", *TINY, "--output", str(bench_run), "--format", "markdown"]) == 0
    )  # resumes: no training
    out, err = capsys.readouterr()
    results = load_results(bench_run)
    assert out == markdown_document(result_sections(results))
    assert "results in" in err and "results in" not in out  # the closing line goes to stderr
    # one table per result table, each with its rows, whole
    for table in result_tables(results[0].summary):
        assert table.markdown() in out
    assert "| shrink_perturb[shrink=0.6] |" in out
    # runs show prints the same bytes for the same run
    assert main(["runs", "show", str(bench_run), "--format", "markdown"]) == 0
    again, status = capsys.readouterr()
    assert again == out and "cells done" in status


def test_bench_csv_and_json(bench_run, capsys, tmp_path):
    capsys.readouterr()
    assert main(["bench", *TINY, "--output", str(bench_run), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    results = load_results(bench_run)
    tables = result_tables(results[0].summary)
    blocks = csv_blocks(out)
    assert len(blocks) == len(tables)
    for (comments, rows), table in zip(blocks, tables, strict=True):
        assert comments[-1] == table.title
        assert rows == table.csv_rows()
    assert blocks[0][0][0].startswith("passive, 60+60/round")  # the section's heading: the protocol
    path = tmp_path / "r.json"
    argv = ["bench", *TINY, "--output", str(bench_run), "--format", "json", "--json", str(path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == json.loads(path.read_text()) == to_jsonable(results_json(results))
    assert main(["runs", "show", str(bench_run), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(out)


@pytest.mark.parametrize("columns", ["60", "80"])
def test_runs_show_of_a_sweep_keeps_every_number_whole(bench_run, capsys, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    capsys.readouterr()
    assert main(["runs", "show", str(bench_run)]) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= int(columns)
    summary = load_results(bench_run)[0].summary
    tokens = penalty_tokens(summary) + compute_tokens(summary)
    assert not missing_tokens(out, tokens)  # every number, CI and sweep label of the summary, whole


def test_reproduce_formats(capsys, tmp_path):
    folder = tmp_path / "two_phase"
    argv = ["reproduce", "two-phase", "--n-examples", "600", "--seeds", "2", "--grid", "model=paper_mlp"]
    argv += ["--grid", "optimizer=adam", "--output", str(folder), "--progress", "none", "--no-plot"]
    assert main([*argv, "--format", "markdown"]) == 0
    out, err = capsys.readouterr()
    protocol_md = (folder / "protocol.md").read_text()
    head, body = out.split("\n\n", 1)
    assert head.startswith("two-phase: ")
    assert body == protocol_md.split("\n\n", 1)[1]  # the tables protocol.md holds, byte for byte
    assert "results in" in err
    assert main([*argv, "--format", "json"]) == 0  # resumes: every round is stored
    assert json.loads(capsys.readouterr().out) == json.loads((folder / "protocol.json").read_text())
    assert main([*argv, "--format", "csv"]) == 0
    ((comments, rows),) = csv_blocks(capsys.readouterr().out)
    assert comments[0].startswith("two-phase: ") and comments[1].startswith("Two-phase")
    assert rows[0][0] == "dataset" and rows[1][0] == "mnist1d" and "(gap " in rows[1][1]


@pytest.mark.parametrize("command", ["strategies", "acquisitions"])
def test_listing_formats(command, capsys):
    names = list_strategies() if command == "strategies" else ACQUISITIONS.names()
    assert main([command, "--json"]) == 0
    legacy = capsys.readouterr().out
    assert main([command, "--format", "json"]) == 0
    assert capsys.readouterr().out == legacy  # --json is --format json
    assert [row["name"] for row in json.loads(legacy)] == list(names)
    assert main([command, "--format", "csv"]) == 0
    ((comments, rows),) = csv_blocks(capsys.readouterr().out)
    assert comments == [f"Registered {'strategies' if command == 'strategies' else 'acquisition functions'}"]
    assert rows[0][0] == "name" and [r[0] for r in rows[1:]] == list(names)
    assert main([command, "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    for name in names:
        assert f"\n| {name} | " in out
    assert "<br>" in out  # multi-line cells stay one Markdown row


def test_bad_format_is_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["strategies", "--format", "html"])
    assert exc.value.code == 2
    assert "invalid choice: 'html'" in capsys.readouterr().err


SUMMARY = [
    {"arm": "random", "final_accuracy": 0.7, "reached_target": 1.0},
    {"arm": "warm", "final_accuracy": 0.6, "penalty": 0.1, "penalty_ci": [0.05, 0.15], "reached_target": 1.0},
]
SGR_COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7]|38;[0-9;]+)m")


def test_colour_follows_rich_conventions(monkeypatch):
    def render(**kwargs) -> str:
        buf = io.StringIO()
        Console(file=buf, width=100, **kwargs).print(penalty_table(SUMMARY))
        return buf.getvalue()

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert "\x1b[" not in render()  # not a terminal (a pipe, a file, a log): plain text
    assert SGR_COLOUR.search(render(force_terminal=True))  # warm's row is red: worse, CI above 0
    monkeypatch.setenv("NO_COLOR", "1")
    coloured = render(force_terminal=True)
    assert not SGR_COLOUR.search(coloured) and "\x1b[1m" in coloured  # no colour, bold kept


def test_cli_colour_and_width_in_a_process():
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "TERM")}
    run = [sys.executable, "-m", "activews", "acquisitions"]
    piped = subprocess.run(run, capture_output=True, text=True, env=env, check=True).stdout
    assert "\x1b[" not in piped and max(map(len, piped.splitlines())) <= 80  # a pipe: 80 columns
    forced = subprocess.run(run, capture_output=True, text=True, env=env | {"FORCE_COLOR": "1"}, check=True)
    assert "\x1b[1m" in forced.stdout
    narrow = subprocess.run(run, capture_output=True, text=True, env=env | {"COLUMNS": "60"}, check=True)
    assert max(map(len, narrow.stdout.splitlines())) <= 60 and "…" not in narrow.stdout


# -------------------------------------------------------------------- the docs show the default bench
DOCS = ROOT / "docs" / "cli.md"
RECORDED = ROOT / "benchmarks" / "results" / "default-active-mnist1d" / "summary.json"


def docs_block(name: str) -> str:
    text = DOCS.read_text()
    block = re.search(rf"<!-- {name}:begin -->\n```markdown\n(.*?)```\n<!-- {name}:end -->", text, re.S)
    assert block, f"docs/cli.md has no {name} block"
    return block.group(1)


def test_docs_show_the_default_bench_markdown_byte_for_byte():
    recorded = json.loads(RECORDED.read_text())
    result = SimpleNamespace(
        config=BenchConfig.from_stored(recorded["config"]), label="", summary=recorded["arms"]
    )
    assert BenchConfig.from_stored(recorded["config"]) == BenchConfig()  # the default bench
    assert docs_block("default-bench-markdown") == markdown_document(result_sections([result]))
    assert csv_document(result_sections([result])).count("\n\n") == len(result_tables(recorded["arms"])) - 1


def test_docs_list_every_short_header():
    from activews.report.layout import SHORT_HEADERS

    text = DOCS.read_text()
    for full, short in SHORT_HEADERS.items():
        assert f"| `{full}` | `{short}` |" in text, full
    assert len(set(SHORT_HEADERS.values())) == len(SHORT_HEADERS)  # one meaning per short name
