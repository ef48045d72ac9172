"""What each round trains on: every labeled example, only the new ones, or a reservoir plus the new ones.

``--replay all`` (the default) trains each round on everything labeled so far, the warm-start setting
of Ash & Adams. ``--replay none`` trains only on the round's new examples, the setting of the
loss-of-plasticity literature (each task's data are seen once, then gone). ``--replay buffer:N`` keeps a
seeded reservoir sample of ``N`` earlier examples (Vitter's algorithm R: every example seen so far is in
the buffer with the same probability) and trains on it plus the new examples.

References:
    Vitter, "Random sampling with a reservoir", ACM TOMS 11(1), 1985; Chaudhry et al., "On tiny episodic
    memories in continual learning", 2019 (reservoir replay).
"""

from __future__ import annotations

import re
from typing import Any

import torch

from activews.errors import ActivewsError
from activews.streams.base import Round

__all__ = ["Replay", "check_buffer", "replay_buffer"]

REPLAY_SYNTAX = "give all, none or buffer:N (e.g. buffer:500)"


def replay_buffer(text: str) -> int | None:
    """The buffer size of a ``replay`` setting: None for ``all``, 0 for ``none``, ``N`` for ``buffer:N``."""
    if text == "all":
        return None
    if text == "none":
        return 0
    match = re.fullmatch(r"buffer:(\d+)", text)
    if match is None:
        raise ActivewsError(f"--replay {text!r} is not a replay setting; {REPLAY_SYNTAX}")
    size = int(match.group(1))
    if size < 1:
        raise ActivewsError(f"--replay buffer:{size}: a buffer holds at least 1 example; use --replay none")
    return size


def check_buffer(setting: str, labeled: int | None) -> None:
    """A one-line error when a ``buffer:N`` setting would hold every one of the ``labeled`` examples a
    stream labels (it would replay everything: that is ``all``)."""
    capacity = replay_buffer(setting)
    if capacity and labeled is not None and capacity >= labeled:
        raise ActivewsError(
            f"--replay buffer:{capacity} holds every example the stream labels ({labeled}), so it replays "
            "everything; use --replay all or a smaller buffer"
        )


class Replay:
    """Which labeled examples a round trains on, with the reservoir's state (for checkpoints).

    Args:
        setting: ``"all"``, ``"none"`` or ``"buffer:N"``.
        generator: the reservoir's own generator (only ``buffer:N`` draws from it).
    """

    def __init__(self, setting: str, generator: torch.Generator) -> None:
        self.setting = setting
        self.capacity = replay_buffer(setting)
        self.generator = generator
        self.buffer: list[int] = []
        self.seen = 0

    def train_set(self, rnd: Round) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool indices round ``rnd`` trains on and the mask of the new ones among them; then the round's
        new examples enter the reservoir (so a round never replays its own examples twice)."""
        if self.capacity is None:
            return rnd.labeled, rnd.new_mask()
        new = rnd.new
        old = torch.tensor(self.buffer, dtype=torch.long)
        idx = torch.cat([old, new.cpu()])
        mask = torch.zeros(len(idx), dtype=torch.bool)
        mask[len(old) :] = True
        if self.capacity:
            self._add(new.tolist())
        return idx, mask

    def _add(self, examples: list[int]) -> None:
        capacity = self.capacity or 0
        for example in examples:
            self.seen += 1
            if len(self.buffer) < capacity:
                self.buffer.append(example)
                continue
            j = int(torch.randint(0, self.seen, (1,), generator=self.generator))
            if j < capacity:
                self.buffer[j] = example

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": list(self.buffer), "seen": self.seen, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer = [int(i) for i in state["buffer"]]
        self.seen = int(state["seen"])
        self.generator.set_state(state["generator"])
