"""Shifts (task sequences), the task stream and replay: seeded, disjoint, consistent between train and eval."""

from __future__ import annotations

import pytest
import torch

from activews.errors import ActivewsError
from activews.streams import ActiveStream, PassiveStream, Round
from activews.streams.replay import Replay, check_buffer, replay_buffer
from activews.streams.shifts import SHIFTS, Shift, TaskStream, get_shift, register_shift, rounds_per_task


def data(n=120, features=6, classes=4, test=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = torch.arange(n) % classes
    xt = torch.randn(test, features, generator=g)
    yt = torch.arange(test) % classes
    return x, y, xt, yt, classes


def build(name, tasks, seed=0, **kw):
    x, y, xt, yt, c = data(**kw.pop("data", {}))
    return get_shift(name)(tasks, **kw).build(x, y, xt, yt, c, torch.Generator().manual_seed(seed)), (
        x,
        y,
        xt,
        yt,
    )


@pytest.mark.parametrize("name", ["permuted_inputs", "permuted_labels", "random_labels", "class_incremental"])
def test_task_sequences_are_seeded_and_reproducible(name):
    kw = {"classes_per_task": 2} if name == "class_incremental" else {}
    tasks = 2 if name == "class_incremental" else 3
    a, _ = build(name, tasks, seed=5, **kw)
    b, _ = build(name, tasks, seed=5, **kw)
    c, _ = build(name, tasks, seed=6, **kw)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert all(torch.equal(p, q) for p, q in zip(a.parts, b.parts, strict=True))
    assert all(torch.equal(e.x, f.x) and torch.equal(e.y, f.y) for e, f in zip(a.evals, b.evals, strict=True))
    differs = not torch.equal(a.x_train, c.x_train) or not torch.equal(a.y_train, c.y_train)
    differs = differs or any(not torch.equal(p, q) for p, q in zip(a.parts, c.parts, strict=True))
    assert differs  # another seed, another task sequence


def test_parts_are_disjoint_equal_and_mark_their_task():
    tasks, _ = build("permuted_inputs", 3)
    sizes = {len(p) for p in tasks.parts}
    assert sizes == {40}
    joined = torch.cat(tasks.parts)
    assert len(joined.unique()) == len(joined) == 120
    for t, part in enumerate(tasks.parts):
        assert (tasks.task_of[part] == t).all()


def test_permuted_inputs_applies_one_permutation_per_task_to_train_and_test():
    tasks, (x, y, xt, yt) = build("permuted_inputs", 3)
    p0 = tasks.parts[0]
    assert torch.equal(tasks.x_train[p0], x[p0]) and torch.equal(
        tasks.evals[0].x, xt
    )  # task 0: original order
    for t in (1, 2):
        part = tasks.parts[t]
        # Find the permutation from one test example, then check it holds for every train and test example.
        perm = [int((xt[0] == v).nonzero()[0]) for v in tasks.evals[t].x[0]]
        assert sorted(perm) == list(range(6)) and perm != list(range(6))
        assert torch.equal(tasks.evals[t].x, xt[:, perm])
        assert torch.equal(tasks.x_train[part], x[part][:, perm])
        assert torch.equal(tasks.y_train[part], y[part]) and torch.equal(tasks.evals[t].y, yt)


def test_permuted_labels_relabels_train_and_test_alike():
    tasks, (x, y, xt, yt) = build("permuted_labels", 3)
    for t, part in enumerate(tasks.parts):
        assert torch.equal(tasks.x_train[part], x[part])
        mapping = {int(a): int(b) for a, b in zip(y[part], tasks.y_train[part], strict=True)}
        assert sorted(mapping.values()) == [0, 1, 2, 3]  # a permutation of the classes
        assert all(mapping[int(a)] == int(b) for a, b in zip(yt, tasks.evals[t].y, strict=True))
        if t == 0:
            assert all(k == v for k, v in mapping.items())


def test_random_labels_are_scored_on_their_own_training_examples():
    tasks, (x, _, _, _) = build("random_labels", 2)
    for t, part in enumerate(tasks.parts):
        assert torch.equal(tasks.evals[t].x, x[part])
        assert torch.equal(tasks.evals[t].y, tasks.y_train[part])
    assert tasks.y_train.min() >= 0 and tasks.y_train.max() < 4


def test_class_incremental_splits_classes_in_a_seeded_order():
    tasks, (_, y, _, yt) = build("class_incremental", 2, classes_per_task=2)
    groups = [set(tasks.y_train[p].tolist()) for p in tasks.parts]
    assert set().union(*groups) == {0, 1, 2, 3}
    assert all(len(g) == 2 for g in groups) and not groups[0] & groups[1]
    for t, part in enumerate(tasks.parts):
        assert len(part) == int(
            torch.isin(y, torch.tensor(sorted(groups[t]))).sum()
        )  # every example of the group
        assert set(tasks.evals[t].y.tolist()) == groups[t]
        assert len(tasks.evals[t].y) == int(torch.isin(yt, torch.tensor(sorted(groups[t]))).sum())


@pytest.mark.parametrize(
    ("name", "tasks", "kw", "data_kw", "match"),
    [
        (
            "class_incremental",
            2,
            {"classes_per_task": 3},
            {},
            "--classes-per-task 3 does not divide the 4 classes",
        ),
        ("class_incremental", 3, {"classes_per_task": 2}, {}, "use --tasks 2"),
        ("class_incremental", 3, {}, {}, "--tasks 3 does not divide the 4 classes"),
        ("permuted_inputs", 2, {}, {"features": 1}, "have 1; use --shift permuted_labels"),
        ("permuted_labels", 200, {}, {}, "at least one training example per task"),
        (
            "permuted_inputs",
            2,
            {"classes_per_task": 2},
            {},
            "--classes-per-task applies to shifts that split",
        ),
        ("permuted_inputs", 0, {}, {}, "--tasks must be >= 1"),
    ],
)
def test_data_that_cannot_take_the_shift_get_one_line_errors(name, tasks, kw, data_kw, match):
    with pytest.raises(ActivewsError, match=match) as exc:
        build(name, tasks, data=data_kw, **kw)
    assert "\n" not in str(exc.value)


def test_rounds_per_task_must_divide():
    assert rounds_per_task(6, 3) == 2
    with pytest.raises(
        ActivewsError,
        match=r"--rounds 7 is not a multiple of the 3 tasks; use --rounds 6 or 9 \(or another --tasks\)",
    ):
        rounds_per_task(7, 3)
    with pytest.raises(ActivewsError, match="fixed number of rounds"):
        rounds_per_task(0, 3)


class Settings:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_task_stream_labels_each_task_in_turn_passive():
    tasks, _ = build("permuted_inputs", 3)
    cfg = Settings(initial=10, query_size=5, rounds=6)
    gen = torch.Generator().manual_seed(0)
    stream = TaskStream(PassiveStream, tasks.parts, cfg, 120, gen)
    assert stream.num_rounds == 6 and [stream.task_of_round(r) for r in range(6)] == [0, 0, 1, 1, 2, 2]
    rounds = list(stream.rounds())
    assert [r.n_new for r in rounds] == [10, 5, 10, 5, 10, 5]  # each task starts with `initial`
    assert [r.n_labeled for r in rounds] == [10, 15, 25, 30, 40, 45]
    for r, rnd in enumerate(rounds):
        assert (tasks.task_of[rnd.new] == stream.task_of_round(r)).all()
        assert torch.equal(rnd.labeled[-rnd.n_new :], rnd.new)
    assert len(rounds[-1].labeled.unique()) == 45


def test_task_stream_active_selects_only_among_the_current_task():
    tasks, _ = build("permuted_inputs", 2)
    cfg = Settings(initial=10, query_size=5, rounds=4, acquisition="margin")
    stream = TaskStream(ActiveStream, tasks.parts, cfg, 120, torch.Generator().manual_seed(0))
    asked: list[torch.Tensor] = []
    probs = torch.softmax(torch.randn(120, 4, generator=torch.Generator().manual_seed(1)), 1)

    def proba(idx):
        asked.append(torch.arange(120)[idx])
        return probs[idx]

    rounds = list(stream.rounds(lambda prev: proba))
    for r, rnd in enumerate(rounds):
        assert (tasks.task_of[rnd.new] == stream.task_of_round(r)).all()
    assert {int(tasks.task_of[a].unique()) for a in asked} == {
        0,
        1,
    }  # each query looks at one task's examples
    # The margin choice within task 1 at round 3: the smallest margins among task 1's unlabeled examples.
    part = tasks.parts[1]
    before = set(rounds[2].labeled.tolist())
    candidates = torch.tensor([int(i) for i in part if int(i) not in before])
    top2 = probs[candidates].topk(2, dim=1).values
    margin = top2[:, 0] - top2[:, 1]
    expected = set(candidates[margin.argsort()[:5]].tolist())
    assert set(rounds[3].new.tolist()) == expected


def test_a_task_too_small_for_its_rounds_names_the_task():
    tasks, _ = build("permuted_inputs", 3)  # 40 examples per task
    with pytest.raises(ActivewsError, match=r"^task 0 \(40 examples\): initial 30 \+ 2 rounds"):
        TaskStream(
            PassiveStream, tasks.parts, Settings(initial=30, query_size=10, rounds=9), 120, torch.Generator()
        )


def test_replay_settings_parse_and_refuse():
    assert replay_buffer("all") is None and replay_buffer("none") == 0 and replay_buffer("buffer:7") == 7
    for bad in ("buffer", "buffer:-1", "some", "buffer:1.5"):
        with pytest.raises(ActivewsError, match="give all, none or buffer:N"):
            replay_buffer(bad)
    with pytest.raises(ActivewsError, match="use --replay none"):
        replay_buffer("buffer:0")
    with pytest.raises(ActivewsError, match=r"buffer:50 holds every example the stream labels \(50\)"):
        check_buffer("buffer:50", 50)
    check_buffer("buffer:49", 50)


def test_replay_all_and_none():
    labeled, new = torch.tensor([4, 2, 9, 7]), torch.tensor([9, 7])
    idx, mask = Replay("all", torch.Generator()).train_set(Round(1, labeled, new))
    assert idx.tolist() == [4, 2, 9, 7] and mask.tolist() == [False, False, True, True]
    idx, mask = Replay("none", torch.Generator()).train_set(Round(1, labeled, new))
    assert idx.tolist() == [9, 7] and mask.tolist() == [True, True]


def test_replay_buffer_is_a_seeded_reservoir_that_resumes_exactly():
    def rounds(replay, start=0, stop=8):
        out = []
        for r in range(start, stop):
            new = torch.arange(10 * r, 10 * r + 10)
            idx, mask = replay.train_set(Round(r, torch.arange(10 * r + 10), new))
            out.append((idx.tolist(), mask.tolist()))
        return out

    a = Replay("buffer:15", torch.Generator().manual_seed(3))
    first = rounds(a)
    assert first[0] == (list(range(10)), [True] * 10)  # round 0: nothing to replay yet
    assert first[1][0] == list(range(10)) + list(range(10, 20))  # the buffer holds all 10 earlier examples
    for r, (idx, mask) in enumerate(first[2:], start=2):
        old = [i for i, m in zip(idx, mask, strict=True) if not m]
        assert (
            len(old) == 15 and len(set(old)) == 15 and max(old) < 10 * r
        )  # only earlier examples, no repeats
    assert first == rounds(Replay("buffer:15", torch.Generator().manual_seed(3)))  # same seed, same buffer
    assert first != rounds(Replay("buffer:15", torch.Generator().manual_seed(4)))
    b = Replay("buffer:15", torch.Generator().manual_seed(3))
    head = rounds(b, 0, 4)
    state = b.state_dict()
    c = Replay("buffer:15", torch.Generator().manual_seed(99))
    c.load_state_dict(state)
    assert head + rounds(c, 4, 8) == first


def test_reservoir_keeps_every_example_with_equal_probability():
    counts = torch.zeros(40)
    for seed in range(300):
        replay = Replay("buffer:10", torch.Generator().manual_seed(seed))
        replay.train_set(Round(0, torch.arange(40), torch.arange(40)))
        counts[replay.buffer] += 1
    share = counts / 300  # each of the 40 examples is kept with probability 10/40
    assert share.min() > 0.13 and share.max() < 0.37 and abs(share.mean() - 0.25) < 1e-6


def test_a_registered_shift_of_ones_own_runs_through_build():
    @register_shift("test_negated_inputs")
    class Negated(Shift):
        """Task t multiplies the inputs by (-1)**t."""

        def transform(self, task, x, y, num_classes, generator):
            return x * (-1) ** task, y

    try:
        tasks, (x, _, xt, _) = build("test_negated_inputs", 2)
        assert torch.equal(tasks.x_train[tasks.parts[1]], -x[tasks.parts[1]])
        assert torch.equal(tasks.evals[1].x, -xt)
    finally:
        SHIFTS.unregister("test_negated_inputs")


@pytest.mark.parametrize("name", ["permuted_labels", "random_labels"])
def test_label_shifts_need_two_classes(name):
    x, y, xt, yt, _ = data()
    with pytest.raises(ActivewsError, match=f"--shift {name} changes the labels, and the data have 1 class"):
        get_shift(name)(2).build(x, y * 0, xt, yt * 0, 1, torch.Generator())


def test_an_entry_point_shift_is_checked_and_named():
    from activews.streams.shifts import _check_entry_point

    class Rolled(Shift):
        def transform(self, task, x, y, num_classes, generator):
            return x.roll(task, dims=-1), y

    assert _check_entry_point("rolled", Rolled).name == "rolled"
    with pytest.raises(ActivewsError, match="is not a Shift subclass"):
        _check_entry_point("x", int)

    class Lazy(Shift):
        pass

    with pytest.raises(ActivewsError, match="Lazy does not implement transform"):
        _check_entry_point("lazy", Lazy)
