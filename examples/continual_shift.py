"""A task sequence of your own, run as a continual stream: does warm start keep up with a fresh start?

Each task rolls every MNIST-1D signal a further 8 positions (a drift of the input, not a permutation),
trains on that task's examples alone (``replay="none"``) and compares ``warm``, ``random`` and
``head_reset`` on the newest task, on forgetting and on compute. The shift is registered by name, so
the command line runs it too::

    activews --plugin examples/continual_shift.py bench --stream passive --shift rolled_signal \\
        --rounds 6 --initial 500 --replay none --strategy head_reset

    python examples/continual_shift.py           # about a minute on 2 CPU cores
"""

from __future__ import annotations

import os

import torch

from activews import BenchConfig, run_bench
from activews.streams.shifts import Shift, register_shift


@register_shift("rolled_signal")
class RolledSignal(Shift):
    """Task ``t`` rolls each signal by ``8 * t`` positions (task 0: the original data)."""

    def transform(self, task, x, y, num_classes, generator):
        return torch.roll(x, shifts=8 * task, dims=-1), y


def main() -> None:
    tiny = os.environ.get("ACTIVEWS_EXAMPLE_TINY") == "1"  # the test's settings
    config = BenchConfig(
        stream="passive",
        shift="rolled_signal",
        rounds=3 if tiny else 6,
        initial=150 if tiny else 500,
        replay="none",
        strategies=["head_reset"],
        seeds=2 if tiny else 3,
        n_examples=1000 if tiny else None,
    )
    result = run_bench(config)
    print(f"{'arm':<12} {'newest %':>9} {'vs random':>10} {'forgetting':>11} {'steps':>7}")
    print("-" * 53)
    for arm in result.summary:
        print(
            f"{arm['arm']:<12} {arm['newest_task_accuracy'] * 100:>9.1f} "
            f"{arm['newest_task_accuracy_vs_ref'] * 100:>+10.2f} {arm['forgetting'] * 100:>11.1f} "
            f"{arm['compute_ratio']:>7.2f}"
        )


if __name__ == "__main__":
    main()
