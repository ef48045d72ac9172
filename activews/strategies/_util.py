"""Small tensor helpers shared by strategies."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def copy_buffers(dst: nn.Module, src: nn.Module) -> None:
    """Copy every buffer (BatchNorm running statistics, ...) of ``src`` into ``dst`` in place."""
    src_buffers = dict(src.named_buffers())
    for name, buf in dst.named_buffers():
        buf.copy_(src_buffers[name])


@torch.no_grad()
def load_state_in_place(dst: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` into ``dst``'s existing tensors (keeps their device, dtype and identity)."""
    own = dst.state_dict(keep_vars=True)
    for name, value in state.items():
        own[name].data.copy_(value)


def parameterized_leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that own parameters directly, in registration (forward-definition) order."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    ]
