"""Sweep files: a grid of experiments and parameter variants, with flags overriding the file."""

from __future__ import annotations

import pytest

from activews import BenchConfig
from activews.cli.bench import experiments_from_args
from activews.cli.main import build_parser
from activews.engine.sweep import expand, load_sweep
from activews.errors import ActivewsError

from .run_helpers import TINY_FLAGS, cli, read_json

SWEEP = """
stream = "passive"
strategies = ["shrink_perturb"]
seeds = 2
rounds = 2
initial = 60
query_size = 60
n_examples = 600

[params.shrink_perturb]
perturb = 0.05

[grid]
model = ["mlp", "logreg"]

[param_grid.shrink_perturb]
shrink = [0.3, 0.7]
"""


def test_expand_grid_and_variants(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP)
    experiments = expand(load_sweep(path))
    assert [label for label, _ in experiments] == ["model=mlp", "model=logreg"]
    cfg = experiments[1][1]
    assert cfg.model == "logreg" and cfg.stream == "passive"
    assert cfg.arms == ["random", "warm", "shrink_perturb[shrink=0.3]", "shrink_perturb[shrink=0.7]"]
    assert cfg.arm_spec("shrink_perturb[shrink=0.7]").params == {"perturb": 0.05, "shrink": 0.7}


def test_flags_override_the_file(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP)
    args = build_parser().parse_args(["bench", "--config", str(path), "--model", "mlp", "--rounds", "3"])
    experiments, _ = experiments_from_args(args)
    assert len(experiments) == 1  # --model fixes the grid axis
    assert experiments[0][1].model == "mlp" and experiments[0][1].rounds == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rounds = [", "not valid TOML"),
        ("[grid]\nshrink = [0.1]", "not a bench setting"),
        ("[grid]\nmodel = []", "non-empty list"),
        ("lr = -1", "lr"),
        ("[grid]\nmodel = ['mlp', 'mpl']", "did you mean 'mlp'"),
        ("colour = 'red'", "unknown setting"),
    ],
)
def test_bad_sweep_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ActivewsError, match=message) as err:
        expand(load_sweep(path))
    assert "\n" not in str(err.value)


def test_missing_sweep_file(tmp_path):
    with pytest.raises(ActivewsError, match="no such file"):
        load_sweep(tmp_path / "none.toml")


def test_sweep_runs_end_to_end_on_the_cli(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP)
    out = tmp_path / "run"
    done = cli(
        "bench", "--config", str(path), "--output", str(out), "--json", str(tmp_path / "r.json"), "--quiet"
    )
    assert done.returncode == 0, done.stderr
    payload = read_json(tmp_path / "r.json")
    assert [e["experiment"] for e in payload] == ["model=mlp", "model=logreg"]
    assert [a["arm"] for a in payload[0]["arms"]][2:] == [
        "shrink_perturb[shrink=0.3]",
        "shrink_perturb[shrink=0.7]",
    ]
    for i in (0, 1):
        assert (out / f"e{i}" / "frontier.png").is_file()
    assert "model=logreg" in (out / "report.html").read_text()


def test_cli_sweep_flag_adds_variant_arms(tmp_path):
    done = cli(
        "bench",
        *TINY_FLAGS,
        "--sweep",
        "shrink_perturb.shrink=0.2,0.6",
        "--quiet",
        "--no-plot",
        "--output",
        str(tmp_path / "run"),
        "--json",
        str(tmp_path / "r.json"),
    )
    assert done.returncode == 0, done.stderr
    arms = [a["arm"] for a in read_json(tmp_path / "r.json")["arms"]]
    assert arms == ["random", "warm", "shrink_perturb[shrink=0.2]", "shrink_perturb[shrink=0.6]"]
    assert (
        BenchConfig.build(param_grid={"shrink_perturb": {"shrink": [0.2]}}).arms[-1]
        == "shrink_perturb[shrink=0.2]"
    )


def test_progress_modes(tmp_path):
    plain = cli(
        "bench",
        *TINY_FLAGS,
        "--rounds",
        "2",
        "--no-plot",
        "--progress",
        "plain",
        "--output",
        str(tmp_path / "a"),
    )
    assert plain.returncode == 0
    lines = [ln for ln in plain.stderr.splitlines() if ln.startswith("[")]
    assert len(lines) == 3 * 2 * 2 and lines[-1].startswith("[12/12]")
    quiet = cli(
        "bench", *TINY_FLAGS, "--rounds", "2", "--no-plot", "--quiet", "--output", str(tmp_path / "b")
    )
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_a_resume_with_the_sweep_keys_in_another_order_is_refused(tmp_path):
    """Equal configs whose parameter order differs name their arms differently: refuse, don't mix."""
    from activews.engine.bench import load_results, run_bench

    base = dict(
        stream="passive", rounds=1, initial=60, n_examples=300, seeds=1, strategies=["shrink_perturb"]
    )
    first = BenchConfig(**base, param_grid={"shrink_perturb": {"shrink": [0.2, 0.6], "perturb": [0.0, 0.1]}})
    run_bench(first, output=tmp_path / "run")
    swapped = BenchConfig(
        **base, param_grid={"shrink_perturb": {"perturb": [0.0, 0.1], "shrink": [0.2, 0.6]}}
    )
    with pytest.raises(ActivewsError, match="give the --sweep flags in the order the run used"):
        run_bench(swapped, output=tmp_path / "run")
    (result,) = load_results(tmp_path / "run")  # the stored labels still match their records
    assert [row["arm"] for row in result.summary] == first.arms
    assert "shrink_perturb[shrink=0.2,perturb=0.1]" in first.arms
