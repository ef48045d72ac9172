"""Passive and active streams: sizes, seeded orders, selection by a controlled model."""

from __future__ import annotations

import pytest
import torch

from activews.errors import ActivewsError
from activews.streams import ActiveStream, PassiveStream, Round
from activews.streams.base import round_sizes
from tests.helpers import assert_one_line


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def all_rounds(stream, predict_proba_for=None) -> list[Round]:
    return list(stream.rounds(predict_proba_for))


# --------------------------------------------------------------------------------------------- passive


def test_passive_increments():
    rounds = all_rounds(PassiveStream(100, gen(), initial=10, query_size=20, rounds=4))
    assert [r.index for r in rounds] == [0, 1, 2, 3]
    assert [r.n_labeled for r in rounds] == [10, 30, 50, 70]
    assert [r.n_new for r in rounds] == [10, 20, 20, 20]
    assert torch.equal(rounds[0].new, rounds[0].labeled)
    for prev, cur in zip(rounds, rounds[1:], strict=False):
        assert torch.equal(cur.labeled[: prev.n_labeled], prev.labeled)  # labeled sets only grow, in order
        assert set(cur.new.tolist()) == set(cur.labeled.tolist()) - set(prev.labeled.tolist())
    final = rounds[-1].labeled
    assert len(set(final.tolist())) == final.numel()  # no duplicates
    assert ((final >= 0) & (final < 100)).all()


def test_passive_order_is_seeded():
    def order(seed: int) -> torch.Tensor:
        return all_rounds(PassiveStream(100, gen(seed), initial=10, query_size=20, rounds=4))[-1].labeled

    assert torch.equal(order(3), order(3))
    assert not torch.equal(order(3), order(4))
    assert torch.equal(order(3), torch.randperm(100, generator=gen(3))[:70])


def test_passive_schedule():
    stream = PassiveStream(100, gen(), schedule=(0.5, 1.0))
    rounds = all_rounds(stream)
    assert stream.num_rounds == 2 and stream.sizes == [50, 100]
    assert [r.n_labeled for r in rounds] == [50, 100]
    assert sorted(rounds[-1].labeled.tolist()) == list(range(100))
    assert torch.equal(rounds[1].new, rounds[1].labeled[50:])


def test_next_after_the_last_round_raises():
    stream = PassiveStream(10, gen(), initial=5, query_size=5, rounds=2)
    last = all_rounds(stream)[-1]
    with pytest.raises(ActivewsError, match="only 2 rounds"):
        stream.next(last)


@pytest.mark.parametrize(
    ("schedule", "match"),
    [
        ((0.0, 1.0), r"must lie in \(0, 1\]"),
        ((0.5, 1.5), r"must lie in \(0, 1\]"),
        ((0.5, 0.5), "must increase"),
        ((1.0, 0.5), "must increase"),
        ((0.5, 0.6), "adds no example in some round for a pool of 3"),
    ],
)
def test_invalid_schedules(schedule, match):
    with pytest.raises(ActivewsError, match=match) as exc:
        PassiveStream(3, gen(), schedule=schedule)
    assert_one_line(str(exc.value))


@pytest.mark.parametrize("cls", [PassiveStream, ActiveStream])
@pytest.mark.parametrize(
    ("sizes", "match"),
    [
        (dict(initial=0), "initial must be >= 1, got 0"),
        (dict(query_size=0), "query size must be >= 1, got 0"),
        (dict(rounds=-1), r"rounds must be >= 1 \(or 0: until the pool is used up\), got -1"),
        (
            dict(initial=40, query_size=30, rounds=3),
            "= 100 examples, but the training pool has 90; .*at most 2 rounds",
        ),
    ],
)
def test_invalid_sizes(cls, sizes, match):
    with pytest.raises(ActivewsError, match=match) as exc:
        cls(90, gen(), **{"initial": 10, "query_size": 10, "rounds": 3, **sizes})
    assert_one_line(str(exc.value))


def test_sizes_that_fit_exactly_are_accepted():
    assert all_rounds(PassiveStream(30, gen(), initial=10, query_size=10, rounds=3))[-1].n_labeled == 30


# ---------------------------------------------------------------------------------------------- active

POOL = 50
# The fake model's uncertainty about each pool example: distinct values in [0, 0.49], in a seeded order.
UNCERTAINTY = torch.linspace(0.0, 0.49, POOL)[torch.randperm(POOL, generator=gen(42))]


class FakeModel:
    """``predict_proba`` with probabilities ``[1 - u, u]``: least_confidence scores each example ``u``."""

    def __init__(self, uncertainty: torch.Tensor = UNCERTAINTY) -> None:
        self.uncertainty = uncertainty
        self.calls: list[torch.Tensor] = []

    def __call__(self, idx: torch.Tensor | slice) -> torch.Tensor:
        if isinstance(idx, slice):  # a contiguous window of the pool
            idx = torch.arange(idx.start, idx.stop)
        self.calls.append(idx.clone())
        u = self.uncertainty[idx]
        return torch.stack([1 - u, u], dim=1)


def active(**kw) -> ActiveStream:
    return ActiveStream(
        POOL,
        gen(kw.pop("seed", 0)),
        **{"initial": 10, "query_size": 5, "rounds": 3, "acquisition": "least_confidence", **kw},
    )


def test_active_first_round_is_seeded_random():
    first = active(seed=1).first()
    assert first.index == 0 and first.n_labeled == 10 and torch.equal(first.new, first.labeled)
    assert torch.equal(first.labeled, torch.randperm(POOL, generator=gen(1))[:10])
    assert torch.equal(first.labeled, active(seed=1).first().labeled)
    assert not torch.equal(first.labeled, active(seed=2).first().labeled)


def test_active_selects_the_top_query_size_unlabeled_examples():
    stream, model = active(), FakeModel()
    first = stream.first()
    second = stream.next(first, model)
    unlabeled = sorted(set(range(POOL)) - set(first.labeled.tolist()), key=lambda i: -UNCERTAINTY[i])
    assert second.new.tolist() == unlabeled[:5]  # the five most uncertain, most uncertain first
    assert second.index == 1 and second.n_labeled == 15
    assert torch.equal(second.labeled, torch.cat([first.labeled, second.new]))
    # the model was asked only about unlabeled examples, each exactly once
    asked = torch.cat(model.calls).tolist()
    assert sorted(asked) == sorted(unlabeled)


def test_active_never_reselects_labeled_examples():
    # the labeled examples are the ones the model is *most* uncertain about: still never picked again
    first = active().first()
    uncertainty = UNCERTAINTY.clone()
    uncertainty[first.labeled] = 0.5
    rounds = all_rounds(active(rounds=9), lambda _prev: FakeModel(uncertainty))
    final = rounds[-1].labeled.tolist()
    assert len(final) == len(set(final)) == 10 + 8 * 5
    for prev, cur in zip(rounds, rounds[1:], strict=False):
        assert not set(cur.new.tolist()) & set(prev.labeled.tolist())


@pytest.mark.parametrize("score_batch", [1, 3, 7, 40, 10_000])
def test_active_scores_in_batches(score_batch):
    reference = all_rounds(active(), lambda _prev: FakeModel())
    model = FakeModel()
    batched = all_rounds(active(score_batch=score_batch), lambda _prev: model)
    for a, b in zip(reference, batched, strict=True):
        assert torch.equal(a.labeled, b.labeled) and torch.equal(a.new, b.new)
    assert max(c.numel() for c in model.calls) <= score_batch
    # the unlabeled examples (the candidates) are scored in windows of score_batch, each exactly once
    windows = sum(-(-(POOL - r.n_labeled) // score_batch) for r in batched[:-1])
    assert len(model.calls) == windows
    scored = [int(i) for c in model.calls for i in c]
    assert len(scored) == sum(POOL - r.n_labeled for r in batched[:-1])


@pytest.mark.parametrize("score_batch", [1, 3, 7, 40, 10_000])
def test_active_scores_walks_pool_windows(score_batch):
    # ActiveStream.scores (the whole pool, -inf for labeled) asks once per pool window with an unlabeled example
    stream, model = active(score_batch=score_batch), FakeModel()
    labeled = torch.zeros(POOL, dtype=torch.bool)
    labeled[stream.first().labeled] = True
    scores = stream.scores(model, labeled)
    torch.testing.assert_close(scores[~labeled], UNCERTAINTY[~labeled])
    assert (scores[labeled] == float("-inf")).all()
    windows = sum(bool((~labeled[w : w + score_batch]).any()) for w in range(0, POOL, score_batch))
    assert len(model.calls) == windows


def test_active_with_random_acquisition_is_seeded():
    def picks(seed):
        return all_rounds(active(seed=seed, acquisition="random"), lambda _prev: FakeModel())[-1].labeled

    assert torch.equal(picks(0), picks(0))
    assert not torch.equal(picks(0), picks(1))


def test_active_errors():
    stream = active()
    first = stream.first()
    with pytest.raises(ActivewsError, match="needs the current model's predict_proba"):
        stream.next(first)
    last = all_rounds(stream, lambda _prev: FakeModel())[-1]
    with pytest.raises(ActivewsError, match="only 3 rounds"):
        stream.next(last, FakeModel())
    with pytest.raises(ActivewsError, match="score_batch must be >= 1"):
        active(score_batch=0)
    with pytest.raises(ActivewsError, match="did you mean 'margin'"):
        active(acquisition="margn")


def test_round_new_mask():
    rnd = Round(2, torch.tensor([4, 8, 15, 16, 23]), torch.tensor([16, 23]))
    assert rnd.new_mask().tolist() == [False, False, False, True, True]
    assert rnd.new_mask().dtype == torch.bool
    assert (rnd.n_labeled, rnd.n_new) == (5, 2)
    first = Round(0, torch.tensor([1, 2]), torch.tensor([1, 2]))
    assert first.new_mask().all()
    # the mask marks exactly the examples of `new` in a real stream
    stream = active()
    second = stream.next(stream.first(), FakeModel())
    assert torch.equal(second.labeled[second.new_mask()], second.new)


# ------------------------------------------------------------------------ rounds=0: until the pool is used


@pytest.mark.parametrize(
    ("pool", "initial", "query_size", "sizes"),
    [
        (1050, 200, 300, [200, 500, 800, 1050]),  # the last round adds the remainder (250)
        (1100, 200, 300, [200, 500, 800, 1100]),  # the pool divides evenly
        (1101, 200, 300, [200, 500, 800, 1100, 1101]),  # a last round of one example
        (300, 300, 50, [300]),  # round 0 takes the whole pool
        (10, 1, 20, [1, 10]),
    ],
)
def test_round_sizes_until_the_pool_is_used_up(pool, initial, query_size, sizes):
    assert round_sizes(pool, initial, query_size, 0) == sizes
    stream = PassiveStream(pool, gen(), initial=initial, query_size=query_size, rounds=0)
    assert stream.num_rounds == len(sizes) and stream.sizes == sizes
    rounds = all_rounds(stream)
    assert [r.n_labeled for r in rounds] == sizes
    assert [r.n_new for r in rounds] == [sizes[0], *(b - a for a, b in zip(sizes, sizes[1:], strict=False))]
    assert sorted(rounds[-1].labeled.tolist()) == list(range(pool))  # everything labeled, once
    # a fixed round count gives the same first rounds as rounds=0
    if len(sizes) > 1 and sizes[-1] - sizes[-2] == query_size:
        assert round_sizes(pool, initial, query_size, len(sizes)) == sizes


def test_passive_rounds_zero_keeps_the_seeded_order():
    rounds = all_rounds(PassiveStream(1050, gen(5), initial=200, query_size=300, rounds=0))
    assert [r.n_new for r in rounds] == [200, 300, 300, 250]
    assert torch.equal(rounds[-1].labeled, torch.randperm(1050, generator=gen(5)))
    assert torch.equal(rounds[-1].new, rounds[-1].labeled[800:])


def test_active_rounds_zero_labels_the_whole_pool():
    model = FakeModel()
    stream = active(rounds=0, query_size=15)
    assert stream.num_rounds == 4 and stream.sizes == [10, 25, 40, 50]
    rounds = all_rounds(stream, lambda _prev: model)
    assert [r.n_new for r in rounds] == [10, 15, 15, 10]
    final = rounds[-1].labeled.tolist()
    assert sorted(final) == list(range(POOL))  # the whole pool, no duplicates
    for prev, cur in zip(rounds, rounds[1:], strict=False):
        unlabeled = sorted(set(range(POOL)) - set(prev.labeled.tolist()), key=lambda i: -UNCERTAINTY[i])
        assert cur.new.tolist() == unlabeled[: cur.n_new]  # still the most uncertain first
    with pytest.raises(ActivewsError, match="only 4 rounds"):
        stream.next(rounds[-1], model)


@pytest.mark.parametrize("cls", [PassiveStream, ActiveStream])
def test_rounds_zero_with_initial_larger_than_the_pool(cls):
    with pytest.raises(
        ActivewsError, match=r"initial 1100 is larger than the training pool \(1050 examples\)"
    ) as exc:
        cls(1050, gen(), initial=1100, query_size=300, rounds=0)
    assert_one_line(str(exc.value))
    assert "--initial" in str(exc.value)


def test_rounds_zero_error_names_only_the_fix_that_works():
    with pytest.raises(ActivewsError) as exc:
        PassiveStream(1050, gen(), initial=1100, query_size=300, rounds=0)
    message = str(exc.value)
    assert "--rounds" not in message and "at most 0 rounds" not in message


@pytest.mark.parametrize("stream", ["passive", "active"])
def test_rounds_zero_in_a_bench(stream):
    """A real run: rounds from the pool size, the remainder in the last round, progress totals right."""
    from activews.engine.bench import run_bench
    from activews.engine.config import BenchConfig

    cfg = BenchConfig.build(
        n_examples=300,  # a pool of 210 training examples
        stream=stream,
        rounds=0,
        initial=100,
        query_size=60,
        seeds=1,
        strategies=[],
        max_epochs=3,
        lr=0.01,
    )
    assert cfg.num_rounds == 0  # unknown until the pool size is known
    events = []
    result = run_bench(cfg, progress=events.append)
    start = next(e for e in events if e.kind == "start")
    assert start.num_rounds == 2 * 3  # two arms x rounds 100, 160, 210
    for arm in ("random", "warm"):
        rows = sorted((r for r in result.records if r["arm"] == arm), key=lambda r: r["round"])
        assert [r["n_labeled"] for r in rows] == [100, 160, 210]
        assert [r["n_new"] for r in rows] == [100, 60, 50]
    assert [row["rounds"] for row in result.summary] == [3, 3]
