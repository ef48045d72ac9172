"""Protocol presets (``activews reproduce``): settings and grids, overrides, renderers and the CLI.

The renderers are fed hand-made results (records whose accuracies and step counts are chosen so every
cell of a table can be predicted); one tiny real ``reproduce`` run checks the command end to end.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from activews.cli import main
from activews.engine.bench import BenchResult, load_results
from activews.engine.config import BenchConfig
from activews.engine.summary import summarize
from activews.engine.sweep import expand
from activews.errors import ActivewsError
from activews.reproduce import (
    PROTOCOLS,
    ProtocolReport,
    ProtocolTable,
    describe_protocols,
    get_protocol,
    protocol_values,
    render,
)
from tests.helpers import assert_one_line

PAPER = ["early-damage", "online", "regularized", "shrink-perturb-grid", "two-phase"]
CONTINUAL = ["class-incremental", "permuted-inputs", "permuted-labels"]
NAMES = sorted(PAPER + CONTINUAL)
PNG = b"\x89PNG\r\n\x1a\n"


def experiments(name: str, flags: dict[str, Any] | None = None, grid: dict | None = None):
    return expand(protocol_values(get_protocol(name), flags or {}, grid))


# ------------------------------------------------------------------------------------ settings and grids


def test_the_paper_and_continual_protocols_are_registered():
    assert PROTOCOLS.names() == NAMES
    rows = describe_protocols()
    assert sorted(r["name"] for r in rows) == NAMES
    assert all(r["title"] and "Ash & Adams 2020" in r["reference"] for r in rows if r["name"] in PAPER)
    assert all(
        "Dohare" in r["reference"] or "Kumar" in r["reference"] for r in rows if r["name"] in CONTINUAL
    )


@pytest.mark.parametrize("name", CONTINUAL)
def test_continual_presets_shift_the_data_and_validate(name):
    values = protocol_values(get_protocol(name), {})
    config = BenchConfig.build(**{k: v for k, v in values.items() if k != "grid"})
    assert config.shift != "none" and config.stream == "passive"


def test_two_phase_expands_to_model_x_optimizer():
    exps = experiments("two-phase")
    assert [label for label, _ in exps] == [
        "model=paper_mlp,optimizer=sgd",
        "model=paper_mlp,optimizer=adam",
        "model=logreg,optimizer=sgd",
        "model=logreg,optimizer=adam",
    ]
    for _, cfg in exps:
        assert (cfg.stream, cfg.schedule, cfg.num_rounds) == ("passive", (0.5, 1.0), 2)
        assert cfg.arms == ["random", "warm"] and cfg.model_params == {}
        assert cfg.first_round_epochs is None and cfg.dataset == "mnist1d"


def test_online_runs_until_the_pool_is_used_up():
    ((label, cfg),) = experiments("online")
    assert label == ""
    assert (cfg.stream, cfg.initial, cfg.query_size, cfg.rounds, cfg.schedule) == (
        "passive",
        1000,
        1000,
        0,
        None,
    )


def test_shrink_perturb_grid_arms():
    ((_, cfg),) = experiments("shrink-perturb-grid")
    assert cfg.rounds == 0 and cfg.stream == "passive" and cfg.strategies == ("shrink_perturb",)
    assert cfg.arms[:2] == ["random", "warm"] and len(cfg.arms) == 2 + 4 * 3
    grid = {
        (a.params["shrink"], a.params["perturb"]) for a in cfg.arm_specs if a.strategy == "shrink_perturb"
    }
    assert grid == {(s, p) for s in (0.2, 0.4, 0.6, 0.8) for p in (0.0, 0.01, 0.1)}


@pytest.mark.parametrize(
    ("name", "field", "values"),
    [
        ("early-damage", "first_round_epochs", [0, 1, 2, 5, 10, 20, 40, None]),
        ("regularized", "weight_decay", [0.0, 1e-4, 1e-3, 1e-2, 1e-1]),
    ],
)
def test_curve_protocols_vary_one_setting(name, field, values):
    exps = experiments(name)
    assert [getattr(cfg, field) for _, cfg in exps] == values
    assert [label for label, _ in exps] == [f"{field}={v}" for v in values]
    for _, cfg in exps:
        assert (cfg.stream, cfg.schedule, cfg.arms) == ("passive", (0.5, 1.0), ["random", "warm"])


def test_flags_override_settings_and_drop_grid_axes():
    exps = experiments("two-phase", {"model": "mlp", "seeds": 2, "n_examples": 600})
    assert [label for label, _ in exps] == ["optimizer=sgd", "optimizer=adam"]
    assert {(cfg.model, cfg.seeds, cfg.n_examples) for _, cfg in exps} == {("mlp", (0, 1), 600)}
    # a flag for a protocol setting replaces it
    ((_, cfg),) = experiments("online", {"initial": 500, "stream": "active"})
    assert (cfg.initial, cfg.query_size, cfg.stream) == (500, 1000, "active")
    # --sweep replaces the protocol's parameter grid
    ((_, cfg),) = experiments("shrink-perturb-grid", {"param_grid": {"shrink_perturb": {"shrink": [0.5]}}})
    assert cfg.arms == ["random", "warm", "shrink_perturb[shrink=0.5]"]
    # the protocol's own values are not modified by any of this
    assert get_protocol("two-phase").grid == {"model": ["paper_mlp", "logreg"], "optimizer": ["sgd", "adam"]}
    assert get_protocol("online").values["initial"] == 1000


def test_grid_replaces_or_adds_an_axis():
    exps = experiments("two-phase", grid={"model": ["mlp"]})
    assert [(cfg.model, cfg.optimizer) for _, cfg in exps] == [("mlp", "sgd"), ("mlp", "adam")]
    exps = experiments("regularized", grid={"weight_decay": [0.5], "model": ["mlp", "logreg"]})
    assert [(cfg.weight_decay, cfg.model) for _, cfg in exps] == [(0.5, "mlp"), (0.5, "logreg")]
    exps = experiments("online", grid={"dataset": ["mnist1d", "digits"]})
    assert [label for label, _ in exps] == ["dataset=mnist1d", "dataset=digits"]


def test_a_field_set_by_a_flag_and_by_grid_is_an_error():
    with pytest.raises(ActivewsError) as exc:
        protocol_values(get_protocol("two-phase"), {"model": "mlp"}, {"model": ["logreg"]})
    assert_one_line(str(exc.value))
    assert str(exc.value) == "--grid model=... and --model both set model; keep one of them"
    with pytest.raises(ActivewsError, match="--grid first_round_epochs=... and --first-round-epochs"):
        protocol_values(get_protocol("early-damage"), {"first_round_epochs": 1}, {"first_round_epochs": [2]})


def test_a_schedule_drops_the_protocol_round_sizes():
    values = protocol_values(get_protocol("online"), {"schedule": [0.25, 0.5, 1.0]})
    assert not {"rounds", "initial", "query_size"} & set(values)
    ((_, cfg),) = expand(values)
    assert cfg.schedule == (0.25, 0.5, 1.0) and cfg.num_rounds == 3
    # the two-phase protocol's schedule is replaced by the user's
    exps = experiments("two-phase", {"schedule": [0.3, 1.0]})
    assert {cfg.schedule for _, cfg in exps} == {(0.3, 1.0)}


# -------------------------------------------------------------------------------------- hand-made results


def make_result(
    cfg: BenchConfig,
    finals: dict[str, list[float]],
    steps: dict[str, int] | None = None,
    label: str = "",
    rounds: int = 2,
    train_accuracy: float = 1.0,
    drop: tuple[str, ...] = (),
) -> BenchResult:
    """A result whose arm ``a`` ends with test accuracy ``finals[a][i]`` on seed i (earlier rounds 0.5).

    Each round of arm ``a`` costs ``steps[a]`` steps (default 100) and ``steps[a] / 100`` seconds; round 0
    has training accuracy ``train_accuracy``. Arms in ``drop`` have no records (not run yet).
    """
    records = []
    for spec in cfg.arm_specs:
        if spec.label in drop:
            continue
        per_round = (steps or {}).get(spec.label, 100)
        for i, seed in enumerate(cfg.seeds):
            for r in range(rounds):
                records.append(
                    {
                        "arm": spec.label,
                        "strategy": spec.strategy,
                        "seed": seed,
                        "round": r,
                        "n_labeled": 1000 * (r + 1),
                        "n_new": 1000,
                        "test_accuracy": finals[spec.label][i] if r == rounds - 1 else 0.5,
                        "train_accuracy": train_accuracy if r == 0 else 1.0,
                        "stop_reason": "target",
                        "steps": per_round,
                        "epochs": 1,
                        "seconds": per_round / 100,
                        "cumulative_steps": per_round * (r + 1),
                        "cumulative_seconds": per_round / 100 * (r + 1),
                    }
                )
    return BenchResult(cfg, records, summarize(records, cfg.arms), 1.0, label)


def test_two_phase_table_with_confidence_intervals():
    ((label, cfg),) = experiments("two-phase", {"seeds": 2}, {"model": ["mlp"], "optimizer": ["adam"]})
    result = make_result(cfg, {"random": [0.80, 0.82], "warm": [0.74, 0.78]})
    report = render(get_protocol("two-phase"), [result], plot=False)
    assert isinstance(report, ProtocolReport) and report.figures == {}
    (table,) = report.tables
    # gap per seed 6 and 4 points: mean 5, t(0.975, 1) = 12.706 x sd 1.414 / sqrt(2) = 12.7 points
    assert table.rows == [["mnist1d", "81.0 / 76.0 (gap 5.0 [-7.7, +17.7])"]]
    assert table.headers[0] == "dataset"
    assert "Two-phase (0.5,1)" in table.title and "2 seeds" in table.title
    (data,) = report.data
    assert data["random"] == pytest.approx(0.81) and data["warm"] == pytest.approx(0.76)
    assert data["gap"] == pytest.approx(0.05) and data["seeds"] == 2
    assert data["warm_compute_ratio"] == pytest.approx(1.0)


def two_phase_grid(drop_last: bool = False) -> list[BenchResult]:
    """Datasets x model x optimizer with one seed; experiment k has random 50+k %, warm 50 %."""
    exps = experiments("two-phase", {"seeds": 1}, {"dataset": ["mnist1d", "digits"]})
    if drop_last:
        exps = exps[:-1]
    return [
        make_result(cfg, {"random": [0.5 + k / 100], "warm": [0.5]}, label=label)
        for k, (label, cfg) in enumerate(exps)
    ]


def test_two_phase_rows_are_datasets_and_columns_model_optimizer():
    results = two_phase_grid()
    (table,) = render(get_protocol("two-phase"), results, plot=False).tables
    assert table.headers == [
        "dataset",
        "paper_mlp · sgd",
        "paper_mlp · adam",
        "logreg · sgd",
        "logreg · adam",
    ]
    assert [row[0] for row in table.rows] == ["mnist1d", "digits"]
    # experiments run dataset fastest: (paper_mlp, sgd, mnist1d) = 0, (paper_mlp, sgd, digits) = 1, ...
    for col in range(4):
        for row, dataset in enumerate(["mnist1d", "digits"]):
            k = 2 * col + row
            assert results[k].config.dataset == dataset
            assert table.rows[row][col + 1] == f"{50 + k:.1f} / 50.0 (gap {k:.1f})"
    # an experiment without results leaves its cell as "-"
    (table,) = render(get_protocol("two-phase"), two_phase_grid(drop_last=True), plot=False).tables
    assert table.rows[1][-1] == "-" and table.rows[0][-1] == "56.0 / 50.0 (gap 6.0)"


def test_two_phase_single_experiment_names_its_setting():
    ((_, cfg),) = experiments("two-phase", {"seeds": 1}, {"model": ["paper_mlp"], "optimizer": ["adam"]})
    (table,) = render(
        get_protocol("two-phase"), [make_result(cfg, {"random": [0.6], "warm": [0.5]})], plot=False
    ).tables
    assert table.headers == ["dataset", "paper_mlp · adam"]


def test_online_tables():
    ((_, cfg),) = experiments("online", {"seeds": 1, "strategies": []})
    result = make_result(cfg, {"random": [0.9], "warm": [0.8]}, steps={"random": 200, "warm": 50}, rounds=3)
    report = render(get_protocol("online"), [result], plot=False)
    per_round, final = report.tables
    assert per_round.headers == [
        "round",
        "labeled",
        "random acc %",
        "random s/round",
        "warm acc %",
        "warm s/round",
    ]
    assert per_round.rows == [
        ["0", "1000", "50.0", "2.0", "50.0", "0.5"],
        ["1", "2000", "50.0", "2.0", "50.0", "0.5"],
        ["2", "3000", "90.0", "2.0", "80.0", "0.5"],
    ]
    assert final.headers == ["arm", "accuracy %", "penalty", "steps ratio", "time ratio"]
    assert final.rows == [["random", "90.0", "-", "1.00", "1.00"], ["warm", "80.0", "10.0", "0.25", "0.25"]]
    assert [a["arm"] for a in report.data[0]["arms"]] == ["random", "warm"]


SP_GRID = {"shrink_perturb": {"shrink": [0.2, 0.6], "perturb": [0.0, 0.1]}}


def sp_result(drop: tuple[str, ...] = ()) -> BenchResult:
    """Shrink s, perturb p: accuracy 60 + 10 s + 100 p %, steps 50 + 100 s + 100 p per round."""
    ((_, cfg),) = experiments("shrink-perturb-grid", {"seeds": 1, "param_grid": SP_GRID})
    finals, steps = {"random": [0.7], "warm": [0.6]}, {"random": 100, "warm": 40}
    for spec in cfg.arm_specs[2:]:
        s, p = spec.params["shrink"], spec.params["perturb"]
        finals[spec.label] = [0.6 + s / 10 + p]
        steps[spec.label] = round(50 + 100 * s + 100 * p)
    return make_result(cfg, finals, steps, drop=drop)


def test_shrink_perturb_grid_puts_each_arm_in_its_cell():
    report = render(get_protocol("shrink-perturb-grid"), [sp_result()], plot=False)
    accuracy, steps, time = report.tables
    for table in report.tables:
        assert table.headers == ["", "perturb 0", "perturb 0.1"]
        assert [row[0] for row in table.rows] == ["shrink 0.2", "shrink 0.6"]
        assert "reference: random 70.0% (1.00x steps), warm 60.0% (0.40x steps)" in table.title
    assert accuracy.rows == [["shrink 0.2", "62.0", "72.0"], ["shrink 0.6", "66.0", "76.0"]]
    assert steps.rows == [["shrink 0.2", "0.70", "0.80"], ["shrink 0.6", "1.10", "1.20"]]
    assert time.rows == steps.rows  # seconds were made proportional to steps
    (data,) = report.data
    assert [(c["shrink"], c["perturb"]) for c in data["cells"]] == [
        (0.2, 0.0),
        (0.2, 0.1),
        (0.6, 0.0),
        (0.6, 0.1),
    ]
    assert data["cells"][1]["penalty"] == pytest.approx(0.7 - 0.72)
    assert data["reference"]["warm"]["compute_ratio"] == pytest.approx(0.4)


def test_shrink_perturb_grid_missing_cells_and_arms():
    result = sp_result(drop=("shrink_perturb[shrink=0.6,perturb=0.1]",))
    accuracy = render(get_protocol("shrink-perturb-grid"), [result], plot=False).tables[0]
    assert accuracy.rows == [["shrink 0.2", "62.0", "72.0"], ["shrink 0.6", "66.0", "-"]]
    ((_, cfg),) = experiments("two-phase", {"seeds": 1, "model": "mlp", "optimizer": "adam"})
    with pytest.raises(ActivewsError, match="needs shrink_perturb arms") as exc:
        render(get_protocol("shrink-perturb-grid"), [make_result(cfg, {"random": [0.5], "warm": [0.5]})])
    assert_one_line(str(exc.value))


def test_early_damage_rows_are_sorted_by_epochs():
    exps = experiments("early-damage", {"seeds": 1}, {"first_round_epochs": [5, 0, 1]})
    results = [
        make_result(
            cfg,
            {"random": [0.8], "warm": [0.8 - (cfg.first_round_epochs + 1) / 100]},
            {"random": 100, "warm": 50},
            label=label,
            train_accuracy=cfg.first_round_epochs / 10,
        )
        for label, cfg in exps
    ]
    report = render(get_protocol("early-damage"), results, plot=False)
    (table,) = report.tables
    assert table.headers[0] == "phase-1 epochs before warm starting"
    assert table.headers[1:] == [
        "random %",
        "warm %",
        "gap",
        "warm steps vs random",
        "phase-1 train acc %",
        "rounds at target",
    ]
    assert [row[:6] for row in table.rows] == [
        ["0", "80.0", "79.0", "1.0", "0.50", "0.0"],
        ["1", "80.0", "78.0", "2.0", "0.50", "10.0"],
        ["5", "80.0", "74.0", "6.0", "0.50", "50.0"],
    ]
    assert [d["first_round_epochs"] for d in report.data] == [0, 1, 5]


def test_regularized_one_table_per_other_axis():
    exps = experiments("regularized", {"seeds": 1}, {"weight_decay": [0.01, 0.0], "model": ["mlp", "logreg"]})
    results = [
        make_result(cfg, {"random": [0.9 if cfg.model == "mlp" else 0.7], "warm": [0.6]}, label=label)
        for label, cfg in exps
    ]
    report = render(get_protocol("regularized"), results, plot=False)
    mlp, logreg = report.tables
    assert mlp.title.endswith("[mlp]") and logreg.title.endswith("[logreg]")
    assert [row[0] for row in mlp.rows] == ["0", "0.01"]  # sorted by the varied setting
    assert [row[1:4] for row in mlp.rows] == [["90.0", "60.0", "30.0"]] * 2
    assert [row[1:4] for row in logreg.rows] == [["70.0", "60.0", "10.0"]] * 2
    assert [(d["group"], d["weight_decay"]) for d in report.data] == [
        ("mlp", 0.0),
        ("mlp", 0.01),
        ("logreg", 0.0),
        ("logreg", 0.01),
    ]


def test_render_needs_a_finished_round():
    ((_, cfg),) = experiments("online", {"seeds": 1})
    with pytest.raises(ActivewsError, match="no finished round to report yet"):
        render(get_protocol("online"), [BenchResult(cfg, [], [])])


def test_every_renderer_draws_png_figures():
    ((_, online_cfg),) = experiments("online", {"seeds": 1, "strategies": []})
    cases = {
        "two-phase": (two_phase_grid()[:2], {"two_phase.png"}),
        "online": ([make_result(online_cfg, {"random": [0.9], "warm": [0.8]})], {"online.png"}),
        "shrink-perturb-grid": ([sp_result()], {"heatmap_accuracy.png", "heatmap_compute.png"}),
        "early-damage": (
            [
                make_result(cfg, {"random": [0.8], "warm": [0.7]}, label=label)
                for label, cfg in experiments("early-damage", {"seeds": 1}, {"first_round_epochs": [0, 2]})
            ],
            {"early_damage.png"},
        ),
        "regularized": (
            [
                make_result(cfg, {"random": [0.8], "warm": [0.7]}, label=label)
                for label, cfg in experiments("regularized", {"seeds": 1}, {"weight_decay": [0.0, 0.01]})
            ],
            {"regularized.png"},
        ),
    }
    assert set(cases) == set(PAPER)  # the continual renderer: tests/test_continual_report.py
    for name, (results, files) in cases.items():
        report = render(get_protocol(name), results, plot=True)
        assert set(report.figures) == files, name
        assert all(png.startswith(PNG) for png in report.figures.values()), name


def test_table_markdown():
    table = ProtocolTable("T", ["a", "b"], [["1", "2"], ["3", "4"]])
    assert table.markdown() == "**T**\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |"
    report = ProtocolReport([table, ProtocolTable("U", ["x"], [["y"]])])
    assert report.markdown() == table.markdown() + "\n\n**U**\n\n| x |\n|---|\n| y |"


# ------------------------------------------------------------------------------------------------- CLI


def cli_error(capsys, argv: list[str]) -> str:
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 2, captured
    assert captured.out == "" and "Traceback" not in captured.err
    err = captured.err.rstrip("\n")
    assert_one_line(err)
    assert err.startswith("activews: error: ")
    return err


def test_reproduce_list(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        assert f"\n{name}  " in out
    assert "first_round_epochs=0,1,2,5,10,20,40" in out and "shrink_perturb.shrink=0.2,0.4,0.6,0.8" in out


def test_reproduce_errors(capsys, tmp_path):
    err = cli_error(capsys, ["reproduce"])
    assert "name a protocol: " + ", ".join(NAMES) in err
    err = cli_error(capsys, ["reproduce", "two-phas"])
    assert "unknown protocol 'two-phas'; did you mean 'two-phase'?" in err
    out = str(tmp_path / "run")
    err = cli_error(
        capsys, ["reproduce", "two-phase", "--model", "mlp", "--grid", "model=logreg", "--output", out]
    )
    assert "--grid model=... and --model both set model; keep one of them" in err
    err = cli_error(capsys, ["reproduce", "online", "--grid", "colour=red,blue", "--output", out])
    assert "[grid] key 'colour' is not a bench setting" in err
    assert not (tmp_path / "run").exists()


def test_bench_grid_and_augment_errors(capsys, tmp_path):
    out = str(tmp_path / "run")
    err = cli_error(capsys, ["bench", "--grid", "colour=red,blue", "--output", out])
    assert "[grid] key 'colour' is not a bench setting" in err
    err = cli_error(capsys, ["bench", "--grid", "model=logreg", "--model", "mlp", "--output", out])
    assert "--grid model=... and --model both set model" in err
    small = ["--n-examples", "300", "--rounds", "2", "--initial", "50", "--query-size", "50"]
    err = cli_error(capsys, ["bench", *small, "--augment", "--output", out])
    assert "needs image data" in err and "drop --augment" in err
    assert not (tmp_path / "run").exists()


def test_malformed_grid_names_a_grid_example(capsys):
    err = cli_error(capsys, ["bench", "--grid", "model"])
    assert "hidden=128,128" not in err and "FIELD=V1,V2" in err


def test_bench_grid_runs_one_experiment_per_value(capsys, tmp_path):
    folder = tmp_path / "grid"
    argv = ["bench", "--n-examples", "300", "--stream", "passive", "--rounds", "2", "--initial", "60"]
    argv += ["--query-size", "60", "--seeds", "1", "--strategy", "warm", "--max-epochs", "3"]
    argv += ["--grid", "model=mlp,logreg", "--output", str(folder), "--quiet", "--no-plot"]
    assert main(argv) == 0
    capsys.readouterr()
    results = load_results(folder)
    assert [(r.label, r.config.model) for r in results] == [("model=mlp", "mlp"), ("model=logreg", "logreg")]
    for r in results:
        assert len(r.records) == 2 * 2  # arms random and warm, 2 rounds each
        assert r.config.arms == ["random", "warm"]


REPRODUCE = ["reproduce", "two-phase", "--n-examples", "600", "--seeds", "2"]
REPRODUCE += ["--grid", "model=paper_mlp", "--grid", "optimizer=adam"]


def stored_records(folder: Path) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(folder / "store.sqlite")) as conn:
        return conn.execute("SELECT * FROM records ORDER BY seq").fetchall()


def test_reproduce_two_phase_end_to_end(capsys, tmp_path):
    folder = tmp_path / "two_phase"
    assert main([*REPRODUCE, "--output", str(folder), "--progress", "none"]) == 0
    out = capsys.readouterr().out
    for name in ("protocol.md", "protocol.json", "two_phase.png", "records.csv", "summary.json"):
        assert (folder / name).is_file(), name
    assert (folder / "two_phase.png").read_bytes().startswith(PNG)
    markdown = (folder / "protocol.md").read_text()
    assert markdown.startswith("# activews reproduce two-phase\n")
    assert "| dataset |" in markdown and "| mnist1d | " in markdown and "(gap " in markdown
    assert "Two-phase" in out and "mnist1d" in out and "gap" in out
    assert "protocol.md, protocol.json, two_phase.png" in out.replace("\n", "")
    data = json.loads((folder / "protocol.json").read_text())
    assert data["protocol"] == "two-phase" and len(data["results"]) == 1
    (row,) = data["results"]
    assert row["seeds"] == 2 and len(row["gap_ci"]) == 2
    assert row["gap"] == pytest.approx(row["random"] - row["warm"])
    # the table's cell shows the stored numbers
    cell = f"{100 * row['random']:.1f} / {100 * row['warm']:.1f} (gap {100 * row['gap']:.1f}"
    assert cell in markdown
    records = stored_records(folder)
    assert len(records) == 2 * 2 * 2  # arms x seeds x rounds

    # the same command resumes: every round is already stored, nothing is trained again
    assert main([*REPRODUCE, "--output", str(folder), "--progress", "plain"]) == 0
    captured = capsys.readouterr()
    assert "resuming: 8/8 rounds already stored" in captured.err
    assert " round 0: acc" not in captured.err and " round 1: acc" not in captured.err
    assert stored_records(folder) == records
    assert (folder / "protocol.md").read_text() == markdown

    # another setting into the same folder is refused, and the folder is left alone
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    err = cli_error(capsys, [*REPRODUCE[:-2], "--grid", "optimizer=sgd", "--output", str(folder)])
    assert "holds a run with a different config" in err and "optimizer: 'adam' -> 'sgd'" in err
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before

    # 'activews report' recognizes a reproduce run and renders its protocol tables again
    again = tmp_path / "again"
    assert main(["report", str(folder), "--output", str(again)]) == 0
    assert "Two-phase" in capsys.readouterr().out
    assert (again / "protocol.md").read_text() == markdown
    assert json.loads((again / "protocol.json").read_text()) == data
    assert (again / "two_phase.png").read_bytes().startswith(PNG)


def test_rounds_short_of_the_target_are_marked():
    """A two-phase cell whose rounds stopped on the plateau rule is starred, with a note saying why."""
    ((label, cfg),) = experiments("two-phase", {"seeds": 1}, {"model": ["logreg"], "optimizer": ["adam"]})
    result = make_result(cfg, {"random": [0.4], "warm": [0.38]}, label=label)
    (table,) = render(get_protocol("two-phase"), [result], plot=False).tables
    assert not table.rows[0][1].endswith("*") and not table.notes
    for record in result.records:
        if record["arm"] == "warm" and record["round"] == 1:
            record["stop_reason"] = "plateau"
    report = render(get_protocol("two-phase"), [result], plot=False)
    (table,) = report.tables
    assert table.headers == ["dataset", "logreg · adam"]
    assert table.rows[0][1].endswith(" *") and "before the training-accuracy target" in table.notes[0]
    assert report.data[0]["reached_target"] == 0.75  # 3 of the 4 random/warm rounds hit the target
    assert "before the training-accuracy target" in report.markdown()
