"""Batch selectors (bald, badge, coreset), the ModelView they read the model through, and pool subsampling.

The pure functions are pinned on cases small enough to compute by hand; the selectors then run on a
small MLP with dropout trained on MNIST-1D-shaped data (40 features, 10 classes).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from activews import data
from activews.errors import ActivewsError
from activews.models import build_model
from activews.streams import ActiveStream, ModelView, Round, make_acquisition
from activews.streams import selectors as sel
from activews.streams.selectors import (
    badge_factors,
    badge_seeding,
    bald_scores,
    gradient_sq_distances,
    k_center_greedy,
    min_sq_distances,
)
from activews.training import TrainConfig, predict_proba, train_to_criterion
from tests.helpers import assert_one_line


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def entropy(*p: float) -> float:
    return -sum(q * math.log(q) for q in p if q > 0)


# ------------------------------------------------------------------------------------------------- BALD


def test_bald_two_samples_two_classes_by_hand():
    # (samples=2, examples=4, classes=2)
    mc = torch.tensor(
        [
            [[1.0, 0.0], [0.5, 0.5], [0.9, 0.1], [0.8, 0.2]],
            [[0.0, 1.0], [0.5, 0.5], [0.1, 0.9], [0.6, 0.4]],
        ],
        dtype=torch.float64,
    )
    expected = [
        math.log(2) - 0.0,  # confident samples that disagree completely: the most wanted
        math.log(2) - math.log(2),  # uncertain but in agreement: nothing to learn about the weights
        math.log(2) - entropy(0.9, 0.1),  # mean (0.5, 0.5); each sample has entropy H(0.9, 0.1)
        entropy(0.7, 0.3) - (entropy(0.8, 0.2) + entropy(0.6, 0.4)) / 2,  # mean (0.7, 0.3)
    ]
    scores = bald_scores(mc)
    torch.testing.assert_close(scores, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    assert scores.argsort(descending=True).tolist() == [0, 2, 3, 1]


def test_bald_scores_are_row_wise_and_never_negative():
    mc = torch.softmax(torch.randn(5, 30, 4, generator=gen()), dim=2)
    whole = bald_scores(mc)
    torch.testing.assert_close(torch.cat([bald_scores(mc[:, i : i + 7]) for i in range(0, 30, 7)]), whole)
    assert (whole >= 0).all()
    identical = mc[:1].expand(5, -1, -1)  # every sample the same: no disagreement at all
    assert bald_scores(identical).abs().max() < 1e-6
    with pytest.raises(ActivewsError, match=r"expects \(samples, N, C\)"):
        bald_scores(mc[0])


# ------------------------------------------------------------------------------------------------ BADGE


def outer_embeddings(h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The gradient embeddings BADGE describes, materialized: row i is vec(a_i h_i^T), of size C * D."""
    return (a[:, :, None] * h[:, None, :]).reshape(len(h), -1)


def test_badge_factors_are_the_logit_gradient_at_the_predicted_label():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=torch.float64)
    expected = torch.tensor([[-0.3, 0.2, 0.1], [0.1, 0.3, -0.4]], dtype=torch.float64)
    torch.testing.assert_close(badge_factors(probs), expected)
    # the cross-entropy gradient w.r.t. the last layer's weights, at the predicted label, is a h^T
    h = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)
    head = nn.Linear(2, 3, bias=False).double()
    for i in range(2):
        logits = head(h[i : i + 1])
        logits.retain_grad()
        F.cross_entropy(logits, logits.argmax(1)).backward()
        a = badge_factors(torch.softmax(logits.detach(), 1))[0]
        torch.testing.assert_close(head.weight.grad, torch.outer(a, h[i]))
        head.weight.grad = None


def test_gradient_distance_identity_matches_the_materialized_outer_products():
    g = gen(3)
    h = torch.randn(7, 5, generator=g, dtype=torch.float64)
    a = badge_factors(torch.softmax(torch.randn(7, 3, generator=g, dtype=torch.float64), dim=1))
    emb = outer_embeddings(h, a)
    for center in range(7):
        expected = ((emb - emb[center]) ** 2).sum(dim=1)
        torch.testing.assert_close(gradient_sq_distances(h, a, center), expected, rtol=1e-10, atol=1e-12)
    assert gradient_sq_distances(h, a, 2)[2] == pytest.approx(0.0, abs=1e-12)


# Four 1-D features with 2-class logit gradients, small enough to follow by hand:
#   g0 = [0.5, -0.5] (||g||^2 0.5), g1 = g2 = [1, -1] (2, the largest: g1 is the first maximum),
#   g3 = [-0.5, 0.5] (0.5). From center g1 the squared distances are 0.5, 0, 0, 4.5 (sum 5).
H4 = torch.tensor([[1.0], [2.0], [2.0], [1.0]], dtype=torch.float64)
A4 = torch.tensor([[0.5, -0.5], [0.5, -0.5], [0.5, -0.5], [-0.5, 0.5]], dtype=torch.float64)


def test_badge_hand_case_distances():
    emb = outer_embeddings(H4, A4)
    assert emb.tolist() == [[0.5, -0.5], [1.0, -1.0], [1.0, -1.0], [-0.5, 0.5]]
    torch.testing.assert_close(gradient_sq_distances(H4, A4, 1), torch.tensor([0.5, 0.0, 0.0, 4.5]).double())


@pytest.mark.parametrize("seed", range(12))
def test_badge_seeding_by_hand(seed):
    # first: g1 (largest norm, first of the tie with g2). Second: drawn with probabilities 0.1 (g0) and
    # 0.9 (g3) from one uniform u of the generator: g0 when u * 5 falls in the first 0.5 of the running
    # sum, i.e. u < 0.1. Third: the other of g0/g3 (g2 sits on a center: weight 0). Fourth: every
    # distance is 0, so the last free example, g2.
    u = float(torch.rand((), generator=gen(seed), dtype=torch.float64))
    second = 0 if u < 0.1 else 3
    picks = badge_seeding(H4, A4, 4, gen(seed)).tolist()
    assert picks == [1, second, 3 - second, 2]
    assert badge_seeding(H4, A4, 2, gen(seed)).tolist() == [1, second]


def test_badge_seeding_draws_in_proportion_to_squared_distance():
    seconds = [int(badge_seeding(H4, A4, 2, gen(s))[1]) for s in range(1000)]
    assert set(seconds) == {0, 3}  # never g2, a duplicate of the first center
    assert 0.07 < seconds.count(0) / 1000 < 0.13  # probability 0.5 / 5


def test_badge_seeding_is_exact_greedy_and_deterministic():
    g = gen(5)
    h = torch.randn(40, 6, generator=g)
    a = badge_factors(torch.softmax(3 * torch.randn(40, 4, generator=g), dim=1))
    picks = badge_seeding(h, a, 12, gen(1))
    assert len(set(picks.tolist())) == 12
    assert torch.equal(picks, badge_seeding(h, a, 12, gen(1)))
    assert not torch.equal(picks, badge_seeding(h, a, 12, gen(2)))
    assert int(picks[0]) == int(((h * h).sum(1) * (a * a).sum(1)).argmax())
    assert badge_seeding(h, a, 40, gen(1)).sort().values.tolist() == list(range(40))
    with pytest.raises(ActivewsError, match="cannot choose 41 centers from 40"):
        badge_seeding(h, a, 41, gen(1))


# ---------------------------------------------------------------------------------------------- core-set

POINTS = torch.tensor([[0.0], [1.0], [2.0], [6.0], [10.0]], dtype=torch.float64)


def test_k_center_on_1d_points_by_hand():
    # labeled center at 0: squared distances 0, 1, 4, 36, 100 -> take 10; then 6 (16 from 10, 36 from 0);
    # then 2 (4 from 0, 16 from 6), and 1 last.
    min_d2 = min_sq_distances(POINTS, torch.tensor([[0.0]], dtype=torch.float64))
    assert min_d2.tolist() == [0.0, 1.0, 4.0, 36.0, 100.0]
    assert k_center_greedy(POINTS, 3, min_d2).tolist() == [4, 3, 2]
    assert k_center_greedy(POINTS, 5, min_d2).tolist() == [4, 3, 2, 1, 0]
    # no labeled center: the first point starts, then the farthest from it (10), then 6
    assert k_center_greedy(POINTS, 3).tolist() == [0, 4, 3]
    # centers at 1 and 6: distances 1, 0, 1, 0, 16 -> 10, then the first of the ties at distance 1
    two = min_sq_distances(POINTS, torch.tensor([[1.0], [6.0]], dtype=torch.float64))
    assert two.tolist() == [1.0, 0.0, 1.0, 0.0, 16.0]
    assert k_center_greedy(POINTS, 2, two).tolist() == [4, 0]


def test_min_sq_distances_in_blocks_match_cdist(monkeypatch):
    g = gen(7)
    x, centers = torch.randn(50, 4, generator=g, dtype=torch.float64), torch.randn(9, 4, generator=g).double()
    expected = torch.cdist(x, centers).pow(2).amin(dim=1)
    torch.testing.assert_close(min_sq_distances(x, centers), expected)
    monkeypatch.setattr(sel, "_BLOCK_ELEMENTS", 20)  # blocks of 2 rows x 9 centers
    torch.testing.assert_close(min_sq_distances(x, centers), expected)
    running = min_sq_distances(x, centers[:4])
    torch.testing.assert_close(min_sq_distances(x, centers[4:], running), expected)


# ---------------------------------------------------------------------------- a real model: ModelView


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST-1D-shaped data: 40 features, 10 classes, overlapping Gaussian clusters."""
    g = gen(seed)
    means = torch.randn(10, 40, generator=gen(99)) * 1.5
    y = torch.randint(0, 10, (n,), generator=g)
    return means[y] + torch.randn(n, 40, generator=g), y


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor]:
    """An MLP 40-32-32-10 with dropout 0.2 trained on 100 examples; the pool is 600 examples."""
    x, y = blobs(600, 0)
    model = build_model("mlp", (40,), 10, {"hidden": [32, 32], "dropout": 0.2}, seed=0)
    cfg = TrainConfig(max_epochs=200, target_accuracy=0.95, lr=3e-3)
    train_to_criterion(model, x[:100], y[:100], cfg, gen(1))
    return model, x


def test_model_view_probabilities_and_embeddings(trained):
    model, x = trained
    view = ModelView(model, x, batch_size=64)
    idx = torch.tensor([5, 300, 2, 599])
    torch.testing.assert_close(view(idx), predict_proba(model, x[idx]))
    torch.testing.assert_close(view(slice(10, 20)), predict_proba(model, x[10:20]))
    model.eval()
    penultimate = model[:-1](x[idx]).detach()  # the input of the last nn.Linear
    model.train()
    h, p = view.embed_proba(idx)
    torch.testing.assert_close(h, penultimate)
    torch.testing.assert_close(p, predict_proba(model, x[idx]))
    torch.testing.assert_close(
        view.embed(torch.arange(0, 200)), ModelView(model, x, batch_size=7).embed(slice(0, 200))
    )
    assert model.training  # the view leaves the model's mode as it found it


def test_mc_proba_uses_dropout_only_and_only_the_generator():
    model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    with torch.no_grad():
        model[1].running_mean.fill_(0.3)
    x = torch.randn(10, 4, generator=gen())
    view = ModelView(model, x, batch_size=4)
    bn_before = model[1].running_mean.clone()
    global_state = torch.get_rng_state()
    mc = view.mc_proba(slice(0, 10), 6, gen(1))
    assert torch.equal(torch.get_rng_state(), global_state)  # the global RNG is left as it was
    assert torch.equal(model[1].running_mean, bn_before)  # BatchNorm in eval mode: statistics untouched
    assert model.training and model[3].training
    assert mc.shape == (6, 10, 3)
    torch.testing.assert_close(mc.sum(dim=2), torch.ones(6, 10))
    assert not torch.allclose(mc[0], mc[1])  # the samples differ: dropout is active
    assert torch.equal(mc, view.mc_proba(slice(0, 10), 6, gen(1)))
    assert not torch.equal(mc, view.mc_proba(slice(0, 10), 6, gen(2)))
    # with dropout off, every sample would be the eval-mode prediction: check it on a p=0 copy
    model[3].p = 0.0
    with pytest.raises(ActivewsError, match="needs a model with dropout; add --model-param dropout=0.2"):
        view.mc_proba(slice(0, 10), 2, gen(1))


def select(name: str, model: nn.Module, x: torch.Tensor, seed: int = 0, k: int = 20, **kw) -> torch.Tensor:
    stream = ActiveStream(len(x), gen(seed), initial=100, query_size=k, rounds=2, acquisition=name, **kw)
    first = Round(0, torch.arange(100), torch.arange(100))
    return stream.next(first, ModelView(model, x, batch_size=256)).new


@pytest.mark.parametrize("name", ["bald", "badge", "coreset"])
def test_selectors_pick_other_batches_than_margin(trained, name):
    model, x = trained
    margin = set(select("margin", model, x).tolist())
    picked = select(name, model, x, score_batch=128)
    assert len(set(picked.tolist())) == 20 and (picked >= 100).all()  # distinct and unlabeled
    assert len(margin & set(picked.tolist())) < 15, f"{name} picked nearly margin's batch"


@pytest.mark.parametrize("name", ["margin", "bald", "badge", "coreset"])
def test_selection_is_deterministic_under_a_fixed_seed(trained, name):
    model, x = trained
    assert torch.equal(select(name, model, x, seed=3), select(name, model, x, seed=3))
    if name in ("bald", "badge"):  # coreset and margin use no randomness
        assert not torch.equal(select(name, model, x, seed=3), select(name, model, x, seed=4))


def test_coreset_takes_the_farthest_candidate_first(trained):
    model, x = trained
    view = ModelView(model, x)
    feats = view.embed(torch.arange(600))
    farthest = 100 + int(min_sq_distances(feats[100:], feats[:100]).argmax())
    assert int(select("coreset", model, x, score_batch=64)[0]) == farthest
    assert torch.equal(
        select("coreset", model, x, score_batch=64), select("coreset", model, x, score_batch=9999)
    )


def test_bald_parameters(trained):
    model, x = trained
    assert torch.equal(
        select("bald", model, x, acquisition_params={"samples": 20}), select("bald", model, x)
    )  # 20 is the default
    assert not torch.equal(
        select("bald", model, x, acquisition_params={"samples": 3}), select("bald", model, x)
    )


# ------------------------------------------------------------------------------------------ pool subsample


class Recorder:
    """A ModelView that records which pool examples it was asked about."""

    def __init__(self, view: ModelView) -> None:
        self.view, self.asked = view, []

    def _note(self, idx):
        self.asked += list(range(idx.start, idx.stop)) if isinstance(idx, slice) else idx.tolist()

    def __call__(self, idx):
        self._note(idx)
        return self.view(idx)

    def embed_proba(self, idx):
        self._note(idx)
        return self.view.embed_proba(idx)

    def embed(self, idx):
        return self.view.embed(idx)  # the labeled set, for coreset

    def mc_proba(self, idx, samples, generator):
        self._note(idx)
        return self.view.mc_proba(idx, samples, generator)


@pytest.mark.parametrize("name", ["margin", "bald", "badge", "coreset"])
def test_pool_subsample_restricts_the_candidates(trained, name):
    model, x = trained
    first = Round(0, torch.arange(100), torch.arange(100))

    def run(seed: int, subsample: int | None) -> tuple[torch.Tensor, list[int]]:
        stream = ActiveStream(
            600, gen(seed), initial=100, query_size=20, rounds=2, acquisition=name, pool_subsample=subsample
        )
        rec = Recorder(ModelView(model, x))
        return stream.next(first, rec).new, rec.asked

    new, asked = run(0, 50)
    assert len(asked) == len(set(asked)) == 50  # each candidate looked at once, and only candidates
    assert min(asked) >= 100 and set(new.tolist()) <= set(asked)
    expected = 100 + torch.randperm(500, generator=gen(0))[:50]  # the stream's first draw: its candidates
    assert sorted(asked) == sorted(expected.tolist())
    new_again, asked_again = run(0, 50)
    assert torch.equal(new, new_again) and asked == asked_again
    assert set(run(1, 50)[1]) != set(asked)  # another seed, other candidates
    # a subsample at least as large as the unlabeled pool is the whole pool
    assert torch.equal(run(0, 500)[0], run(0, None)[0])


def test_pool_subsample_draws_new_candidates_every_round(trained):
    model, x = trained
    stream = ActiveStream(600, gen(0), initial=100, query_size=20, rounds=3, pool_subsample=40)
    rec = Recorder(ModelView(model, x))
    rounds = list(stream.rounds(lambda _prev: rec))
    assert len(rec.asked) == 80 and set(rec.asked[:40]) != set(rec.asked[40:])
    assert rounds[-1].n_labeled == 140


# ---------------------------------------------------------------------------------------------- errors


def test_bald_needs_dropout():
    no_dropout = build_model("mlp", (40,), 10, {"hidden": [8]})
    stream = ActiveStream(300, gen(), initial=100, query_size=10, rounds=2, acquisition="bald")
    with pytest.raises(
        ActivewsError, match=r"^bald needs a model with dropout; add --model-param dropout=0.2$"
    ):
        stream.check_model(no_dropout)
    stream.check_model(build_model("mlp", (40,), 10, {"hidden": [8], "dropout": 0.1}))


def test_badge_and_coreset_need_a_linear_head():
    conv_only = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten())
    for name in ("badge", "coreset"):
        with pytest.raises(ActivewsError, match=f"^{name} needs penultimate features") as exc:
            make_acquisition(name).check(conv_only)
        assert_one_line(str(exc.value))


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("bald", {"sampels": 20}, r"acquisition 'bald': unknown parameter 'sampels' \(known: samples\)"),
        ("bald", {"samples": 1}, "acquisition 'bald': samples: Input should be greater than or equal to 2"),
        ("badge", {"samples": 20}, r"acquisition 'badge': unknown parameter 'samples' \(known: none\)"),
        (
            "margin",
            {"samples": 20},
            "acquisition 'margin' takes no parameters; drop --acquisition-param samples",
        ),
    ],
)
def test_bad_acquisition_parameters(name, params, match):
    with pytest.raises(ActivewsError, match=match) as exc:
        make_acquisition(name, params)
    assert_one_line(str(exc.value))


@pytest.mark.parametrize("name", ["margin", "bald", "badge", "coreset"])
def test_k_larger_than_the_candidates(trained, name):
    model, x = trained
    with pytest.raises(
        ActivewsError, match=f"acquisition '{name}': asked for 30 examples from 25 candidates"
    ):
        make_acquisition(name).select(
            ModelView(model, x), torch.arange(100, 125), torch.arange(100), 30, gen()
        )


def test_pool_subsample_smaller_than_a_round():
    with pytest.raises(
        ActivewsError, match="--pool-subsample 10 is smaller than the 20 examples a round labels"
    ):
        ActiveStream(300, gen(), initial=100, query_size=20, rounds=2, pool_subsample=10)


@pytest.mark.parametrize("name", ["bald", "badge", "coreset"])
def test_selectors_that_need_the_model_refuse_a_plain_function(trained, name):
    model, x = trained
    stream = ActiveStream(600, gen(), initial=100, query_size=10, rounds=2, acquisition=name)
    with pytest.raises(ActivewsError, match=f"acquisition '{name}' needs the model itself .*ModelView"):
        stream.next(stream.first(), lambda idx: predict_proba(model, x[idx]))


# ------------------------------------------------------------------------------ config and command line


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (dict(acquisition="bald", acquisition_params={"sampels": 3}), "unknown parameter 'sampels'"),
        (dict(acquisition="margin", acquisition_params={"samples": 3}), "takes no parameters"),
        (dict(stream="passive", pool_subsample=500), "--pool-subsample applies to the active stream"),
        (dict(pool_subsample=500, query_size=1000), "--pool-subsample 500 is smaller than --query-size 1000"),
        (dict(pool_subsample=0), "pool_subsample: Input should be greater than or equal to 1"),
    ],
)
def test_config_checks_acquisition_settings_before_any_data(values, match, monkeypatch):
    from activews.engine.config import BenchConfig

    monkeypatch.setattr(data, "load_dataset", lambda *a, **k: pytest.fail("data loaded before validation"))
    with pytest.raises(ActivewsError, match=match) as exc:
        BenchConfig.build(**values)
    assert_one_line(str(exc.value))


def test_config_takes_acquisition_params_and_pool_subsample():
    from activews.engine.config import BenchConfig

    cfg = BenchConfig.build(acquisition="bald", acquisition_params={"samples": 5}, pool_subsample=3000)
    assert cfg.acquisition_params == {"samples": 5} and cfg.pool_subsample == 3000


def test_cli_bench_with_badge(tmp_path, capsys):
    import json

    from activews.cli import main

    argv = [
        "bench",
        *("--acquisition", "badge", "--pool-subsample", "300", "--strategy", "warm"),
        *("--n-examples", "600", "--rounds", "3", "--initial", "60", "--query-size", "30", "--seeds", "1"),
        *("--model-param", "hidden=32,32", "--max-epochs", "30", "--quiet", "--no-plot"),
        *("--output", str(tmp_path / "run"), "--json", str(tmp_path / "r.json")),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["config"]["acquisition"] == "badge" and result["config"]["pool_subsample"] == 300
    assert {a["arm"] for a in result["arms"]} == {"random", "warm"}
    for arm in result["arms"]:
        assert [p["n_labeled"] for p in arm["per_round"]] == [60, 90, 120]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--acquisition", "bald"], "bald needs a model with dropout; add --model-param dropout=0.2"),
        (["--acquisition", "bald", "--acquisition-param", "sampels=3"], "unknown parameter 'sampels'"),
        (
            ["--acquisition-param", "samples"],
            "--acquisition-param 'samples': expected KEY=VALUE, e.g. samples=20",
        ),
    ],
)
def test_cli_acquisition_errors_are_one_line(tmp_path, capsys, flags, message):
    from activews.cli import main

    argv = [
        "bench",
        "--n-examples",
        "600",
        "--initial",
        "60",
        "--query-size",
        "30",
        "--rounds",
        "2",
        "--quiet",
    ]
    rc = main([*argv, "--output", str(tmp_path / "run"), *flags])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "run").exists()
