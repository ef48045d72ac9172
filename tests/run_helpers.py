"""Shared helpers for the run-store, resume and executor tests (tiny configs that finish in seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TINY = dict(n_examples=1000, rounds=3, initial=100, query_size=100, seeds=2)
TINY_FLAGS = [
    "--n-examples",
    "1000",
    "--rounds",
    "3",
    "--initial",
    "100",
    "--query-size",
    "100",
    "--seeds",
    "2",
]


def comparable(arms: list[dict]) -> list[dict]:
    """Summary rows without wall-time fields (which differ between any two runs)."""
    drop = {"seconds", "time_ratio", "time_ratio_ci"}
    out = []
    for arm in arms:
        row = {k: v for k, v in arm.items() if k not in drop and k != "per_round"}
        row["per_round"] = [{k: v for k, v in p.items() if k != "seconds"} for p in arm["per_round"]]
        out.append(row)
    return out


def record_keys(records: list[dict]) -> list[tuple]:
    fields = (
        "arm",
        "seed",
        "round",
        "n_labeled",
        "test_accuracy",
        "test_loss",
        "steps",
        "epochs",
        "cumulative_steps",
    )
    return sorted(tuple(r[f] for f in fields) for r in records)


def cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "activews", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=env,
    )


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


class Interrupt(Exception):
    """Raised from an ``on_record`` callback to stop an arm after a given round."""


def interrupt_and_resume(
    config, data, strategy: str, checkpoint: Path, stop_after: int
) -> tuple[dict, list, list]:
    """Run an arm with checkpoints, stop it after round ``stop_after``, resume it.

    Returns the checkpoint as saved at the stop, the resumed run's records (restored ones included) and
    the records the resumed run computed itself.
    """
    import pytest
    import torch

    from activews.engine.arm import run_arm

    def stop(record: dict) -> None:
        if record["round"] == stop_after:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_arm(config, data, strategy, 0, checkpoint=checkpoint, on_record=stop)
    saved = torch.load(checkpoint, weights_only=True)  # loads without unpickling arbitrary objects
    computed: list = []
    resumed = run_arm(config, data, strategy, 0, checkpoint=checkpoint, on_record=computed.append)
    return saved, resumed, computed
