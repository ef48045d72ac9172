"""Acquisition functions: pure functions from predicted probabilities to scores (higher = more wanted).

Each takes ``probs`` of shape ``(N, C)`` (rows sum to 1) and returns ``(N,)`` scores. They are applied
batch by batch over the unlabeled pool, so they must be row-wise (a score depends only on its row).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from activews.registry import Registry

__all__ = [
    "Acquisition",
    "ACQUISITIONS",
    "register_acquisition",
    "get_acquisition",
    "list_acquisitions",
    "least_confidence",
    "margin",
    "entropy",
    "random",
]


class Acquisition(Protocol):
    def __call__(self, probs: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor: ...


ACQUISITIONS: Registry[Acquisition] = Registry("acquisition", entry_point_group="activews.acquisitions")


def register_acquisition(name: str) -> Callable[[Acquisition], Acquisition]:
    """Decorator: register a row-wise acquisition function under ``name``."""
    return ACQUISITIONS.register(name)  # type: ignore[return-value]


def get_acquisition(name: str) -> Acquisition:
    return ACQUISITIONS.get(name)


def list_acquisitions() -> list[str]:
    return ACQUISITIONS.names()


@register_acquisition("least_confidence")
def least_confidence(probs: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``1 - max_c p(c|x)``.

    References:
        Lewis & Gale, "A Sequential Algorithm for Training Text Classifiers", SIGIR 1994.
    """
    return 1.0 - probs.max(dim=1).values


@register_acquisition("margin")
def margin(probs: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``-(p_top1 - p_top2)``: a small gap between the two likeliest classes scores high.

    References:
        Scheffer, Decomain & Wrobel, "Active Hidden Markov Models for Information Extraction", IDA 2001.
    """
    if probs.shape[1] < 2:
        return torch.zeros(probs.shape[0], dtype=probs.dtype, device=probs.device)
    top2 = probs.topk(2, dim=1).values
    return -(top2[:, 0] - top2[:, 1])


@register_acquisition("entropy")
def entropy(probs: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Predictive entropy ``-sum_c p log p`` (``0 log 0 = 0``).

    References:
        Shannon, 1948; for active learning, Settles, "Active Learning Literature Survey", 2009.
    """
    return -(torch.special.xlogy(probs, probs)).sum(dim=1)


@register_acquisition("random")
def random(probs: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform random scores (passive random sampling as an acquisition baseline), from ``generator``."""
    return torch.rand(probs.shape[0], generator=generator).to(probs.device, probs.dtype)
