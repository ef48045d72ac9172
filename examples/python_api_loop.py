"""A hand-written active-learning loop built from activews' building blocks.

This is the "plug activews into your own pipeline" route: you keep the loop, and take from activews
only what you need: data loading, seeded model construction, a stream (or a bare acquisition
function), an initialization strategy, train-to-criterion training and evaluation. At the end the
per-round rows are handed to ``summarize``, which computes the same penalty and compute ratios as
``activews bench``.

Run it with::

    python examples/python_api_loop.py
"""

from __future__ import annotations

import torch

from activews import (
    ActiveStream,
    InitContext,
    TrainConfig,
    build_model,
    evaluate,
    load_dataset,
    make_strategy,
    predict_proba,
    summarize,
    train_to_criterion,
    training_hooks,
)
from activews.streams import get_acquisition

torch.set_num_threads(1)  # models this small train fastest on one CPU thread (results do not change)

SEED = 0
STRATEGIES = {"random": {}, "warm": {}, "shrink_perturb": {"shrink": 0.6, "perturb": 0.01}}

# Tiny settings so that the script finishes in seconds.
data = load_dataset("mnist1d", n_examples=1500, test_fraction=0.3, split_seed=0)
train_cfg = TrainConfig(optimizer="adam", lr=1e-3, batch_size=128, target_accuracy=0.99)
model_params = {"hidden": [128, 128]}


def run_loop(strategy_name: str, params: dict) -> list[dict]:
    """One arm: the strategy ``strategy_name`` through three rounds of margin sampling."""
    strategy = make_strategy(strategy_name, params)
    # Separate, seeded generators for the stream, the minibatch order and the strategy, so that
    # every arm sees the same round-0 labeled set and the same round-0 model.
    stream = ActiveStream(
        len(data.y_train),
        torch.Generator().manual_seed(SEED),
        initial=200,
        query_size=200,
        rounds=3,
        acquisition="margin",
    )
    train_gen = torch.Generator().manual_seed(SEED + 1)
    init_gen = torch.Generator().manual_seed(SEED + 2)

    def fresh_model() -> torch.nn.Module:
        draw = int(torch.randint(0, 2**62, (1,), generator=init_gen))
        return build_model("mlp", data.input_shape, data.num_classes, model_params, seed=draw)

    model = build_model("mlp", data.input_shape, data.num_classes, model_params, seed=SEED)
    initial_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    rows, cum_steps, cum_seconds = [], 0, 0.0
    rnd = stream.first()
    while True:
        x_l, y_l = data.x_train[rnd.labeled], data.y_train[rnd.labeled]
        ctx = InitContext(
            round_index=rnd.index,
            fresh_model=fresh_model,
            initial_state=initial_state,
            generator=init_gen,
            device=torch.device("cpu"),
            x_labeled=x_l,
            y_labeled=y_l,
            new_mask=rnd.new_mask(),
        )
        if rnd.index > 0:
            model = strategy.init_round(model, ctx)
        # A new optimizer each round; training_hooks passes the strategy's loss term and after-step
        # call (l2_init, redo, continual_backprop, ...) to the trainer, and nothing for the others.
        stats, _ = train_to_criterion(model, x_l, y_l, train_cfg, train_gen, **training_hooks(strategy, ctx))
        accuracy, _loss = evaluate(model, data.x_test, data.y_test)
        cum_steps += stats.steps
        cum_seconds += stats.seconds
        rows.append(
            {
                "strategy": strategy_name,
                "seed": SEED,
                "round": rnd.index,
                "n_labeled": rnd.n_labeled,
                "test_accuracy": accuracy,
                "stop_reason": stats.stop_reason,
                "steps": stats.steps,
                "cumulative_steps": cum_steps,
                "cumulative_seconds": cum_seconds,
            }
        )
        print(
            f"  {strategy_name:<15} round {rnd.index}: {rnd.n_labeled:>4} labeled, "
            f"test acc {accuracy:.3f}, {stats.steps:>4} steps ({stats.stop_reason})"
        )
        if rnd.index + 1 == stream.num_rounds:
            return rows
        # The stream asks the current model for class probabilities of unlabeled pool indices.
        rnd = stream.next(rnd, lambda idx, m=model: predict_proba(m, data.x_train[idx]))


def main() -> None:
    print(data)
    records = []
    for name, params in STRATEGIES.items():
        records += run_loop(name, params)

    print()
    print(f"{'strategy':<16}{'final acc %':>12}{'penalty (points)':>18}{'step ratio':>12}")
    for arm in summarize(records, list(STRATEGIES)):
        print(
            f"{arm['strategy']:<16}{arm['final_accuracy'] * 100:>12.1f}"
            f"{arm['penalty'] * 100:>+18.2f}{arm['compute_ratio']:>12.2f}"
        )

    # Without a stream object: score part of your own pool with a registered acquisition function
    # (higher = more wanted) and label the top-k yourself.
    margin = get_acquisition("margin")
    scorer = build_model("mlp", data.input_shape, data.num_classes, model_params, seed=SEED)
    train_to_criterion(
        scorer, data.x_train[:200], data.y_train[:200], train_cfg, torch.Generator().manual_seed(SEED)
    )
    scores = margin(predict_proba(scorer, data.x_train[200:]))
    print(
        f"\nmargin sampling over the {len(scores)} unlabeled examples picks pool indices "
        f"{(scores.topk(5).indices + 200).tolist()} first"
    )


if __name__ == "__main__":
    main()
