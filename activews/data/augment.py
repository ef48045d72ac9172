"""Batched data augmentation for image minibatches (``--augment``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from activews.errors import ActivewsError

__all__ = ["random_crop_flip"]


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Random-crop and random-flip a batch of images, each image with its own draw.

    Every image is zero-padded by ``padding`` pixels on each side and cropped back to ``H x W`` at a random
    offset (each of ``(2 * padding + 1) ** 2`` offsets equally likely), then mirrored left-right with
    probability 0.5: the standard CIFAR augmentation (``RandomCrop(32, padding=4)`` +
    ``RandomHorizontalFlip()``), done for the whole batch with one gather instead of a per-image loop.

    All channels of an image share its offset and flip. The padding is zeros *after* normalization, so it
    is the dataset's mean colour rather than black; that is harmless (the network sees a consistent
    border) and saves un-normalizing every batch.

    Args:
        x: images ``(B, C, H, W)``, on any device.
        generator: the source of all randomness. The offsets and flips are drawn on the generator's device
            (normally the CPU, so the draws do not depend on where ``x`` lives) and then moved to ``x``'s.
        padding: pixels of zero padding on each side; 0 leaves only the flips.

    Returns:
        A new tensor of ``x``'s shape, dtype and device.

    Raises:
        ActivewsError: ``x`` is not a 4-D image batch, or ``padding`` is negative.
    """
    if x.dim() != 4:
        raise ActivewsError(
            f"--augment needs image data (C, H, W); drop --augment for data of shape {tuple(x.shape[1:])}"
        )
    if padding < 0:
        raise ActivewsError(f"augmentation padding must be >= 0, got {padding}")
    batch, channels, height, width = x.shape
    draw_on = generator.device
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator, device=draw_on)
    flips = torch.rand(batch, generator=generator, device=draw_on) < 0.5
    # Only the 3 * B draws cross devices; the (B, H * W) index is built where the images are.
    offsets, flips = offsets.to(x.device), flips.to(x.device)
    rows = offsets[0, :, None] + torch.arange(height, device=x.device)  # (B, H) rows of the padded image
    cols = offsets[1, :, None] + torch.arange(width, device=x.device)  # (B, W)
    # A flipped crop reads its columns right to left: out[..., j] = crop[..., W - 1 - j].
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    padded_width = width + 2 * padding
    flat_index = (rows[:, :, None] * padded_width + cols[:, None, :]).reshape(batch, 1, height * width)
    flat_index = flat_index.expand(batch, channels, height * width)
    padded = F.pad(x, (padding, padding, padding, padding)).reshape(batch, channels, -1)
    return torch.gather(padded, 2, flat_index).reshape(batch, channels, height, width)
