"""Batch selectors beyond predicted probabilities: ``bald``, ``badge`` and ``coreset``.

Each is a :class:`~activews.streams.acquisition.BatchSelector` built on a pure function of tensors
(:func:`bald_scores`, :func:`badge_seeding`, :func:`k_center_greedy`) that the tests pin on hand-computed
inputs. What each keeps in memory per candidate (``D`` = penultimate width, ``C`` = classes, float32) and
what it costs, with ``N`` candidates, ``L`` labeled examples and a batch of ``k``:

============  ==========================================  ====================================================
selector      kept per candidate                          time
============  ==========================================  ====================================================
``bald``      the 4-byte score (MC samples live one       ``samples`` forward passes over the candidates
              window at a time: ``samples x window x C``)
``badge``     features and ``p - onehot``: ``4 (D + C)``  one forward pass over the candidates, then
              bytes, plus 25 bytes of norms, distances,   ``O(k N (D + C))`` for the ``k`` seeding steps
              step temporaries and the running sum
``coreset``   features: ``4 D`` bytes, plus 12 bytes of   forward passes over candidates and labeled set,
              norms, distances and step temporaries       ``O((L + k) N D)`` for the distances
============  ==========================================  ====================================================

The active stream adds the candidate index vector (8 bytes per candidate). For a pool too large to hold
the ``badge`` or ``coreset`` vectors, ``--pool-subsample N`` bounds the candidates per round.
"""

from __future__ import annotations

from typing import cast

import torch
from pydantic import Field
from torch import nn

from activews.errors import ActivewsError
from activews.streams.acquisition import (
    BatchSelector,
    ScoringSelector,
    iter_windows,
    register_acquisition,
)
from activews.streams.base import ModelView, ProbaFn
from activews.training import dropout_layers

__all__ = [
    "BALD",
    "BADGE",
    "CoreSet",
    "bald_scores",
    "badge_factors",
    "badge_seeding",
    "gradient_sq_distances",
    "k_center_greedy",
    "min_sq_distances",
]

_BLOCK_ELEMENTS = 1 << 22
"""Largest temporary distance block (rows x centers) built at once: 16 MB of float32."""


# ------------------------------------------------------------------------------------------ pure functions


def _sq_norms(x: torch.Tensor) -> torch.Tensor:
    # Row-wise dot products without the (N, D) temporary that (x * x).sum(1) would allocate.
    return torch.einsum("nd,nd->n", x, x)


def bald_scores(mc_probs: torch.Tensor) -> torch.Tensor:
    """Mutual information between the prediction and the weights, from Monte Carlo samples.

    ``I = H[mean_s p_s] - mean_s H[p_s]`` with ``H`` the entropy (``0 log 0 = 0``): high when the samples
    are each confident but disagree. Row-wise over examples; negative rounding noise is clipped to 0.

    Args:
        mc_probs: ``(S, N, C)`` class probabilities of ``S`` dropout samples for ``N`` examples.

    Returns:
        ``(N,)`` scores, higher = more wanted.

    References:
        Houlsby, Huszar, Ghahramani & Lengyel, "Bayesian Active Learning for Classification and
        Preference Learning", arXiv 1112.5745, 2011; Gal, Islam & Ghahramani, "Deep Bayesian Active
        Learning with Image Data", ICML 2017.
    """
    if mc_probs.dim() != 3:
        raise ActivewsError(
            f"bald_scores expects (samples, N, C) probabilities, got shape {tuple(mc_probs.shape)}"
        )
    mean = mc_probs.mean(dim=0)
    entropy_of_mean = -torch.special.xlogy(mean, mean).sum(dim=1)
    mean_entropy = -torch.special.xlogy(mc_probs, mc_probs).sum(dim=2).mean(dim=0)
    return (entropy_of_mean - mean_entropy).clamp_min(0.0)


def badge_factors(probs: torch.Tensor) -> torch.Tensor:
    """``a = p - onehot(argmax p)``: the cross-entropy gradient w.r.t. the logits at the predicted label.

    The gradient embedding of BADGE (the loss gradient w.r.t. the last layer's weights, at the label the
    model predicts) is the outer product ``a h^T`` with ``h`` the penultimate features; it is never built.
    """
    a = probs.clone()
    a[torch.arange(len(a), device=a.device), probs.argmax(dim=1)] -= 1.0
    return a


def gradient_sq_distances(
    h: torch.Tensor, a: torch.Tensor, center: int, g2: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared distances ``||g_i - g_c||^2`` between the gradient embeddings ``g = a h^T`` and center ``c``.

    Uses ``||g_i - g_c||^2 = ||h_i||^2 ||a_i||^2 + ||h_c||^2 ||a_c||^2 - 2 (h_i . h_c)(a_i . a_c)``, so
    the ``(D x C)`` outer products are never formed: ``O(N (D + C))`` time, ``N``-vectors of memory.
    ``g2`` (optional) holds the precomputed ``||h_i||^2 ||a_i||^2``. Clamped at 0, since rounding can
    make a zero distance slightly negative.
    """
    if g2 is None:
        g2 = _sq_norms(h) * _sq_norms(a)
    # In place on one fresh N-vector: the per-step temporaries stay at two N-vectors.
    d2 = h @ h[center]
    return d2.mul_(a @ a[center]).mul_(-2.0).add_(g2).add_(g2[center]).clamp_min_(0.0)


def badge_seeding(h: torch.Tensor, a: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding on gradient embeddings ``g_i = a_i h_i^T``, exact, one center at a time.

    The first center is the example with the largest gradient norm ``||g_i|| = ||h_i|| ||a_i||`` (the
    first maximum on ties), as in the authors' code; each later one is drawn with probability
    proportional to its squared distance to the nearest center chosen so far, and the distances are
    updated after each draw. If every remaining distance is 0 (duplicates), the next center is drawn
    uniformly from the examples not yet chosen.

    Memory: ``h`` and ``a``, plus 9 bytes per row (squared norms, running minimum, chosen mask) and, per
    step, two float32 ``N``-vectors and a float64 running sum (16 bytes per row).
    Time: ``O(k N (D + C))``.

    Args:
        h: ``(N, D)`` penultimate features.
        a: ``(N, C)`` logit gradients (:func:`badge_factors`).
        k: centers to choose, ``<= N``.
        generator: CPU generator for the draws.

    Returns:
        ``(k,)`` int64 positions into the rows of ``h``, in the order chosen.

    References:
        Ash, Zhang, Krishnamurthy, Langford & Agarwal, "Deep Batch Active Learning by Diverse, Uncertain
        Gradient Lower Bounds", ICLR 2020; Arthur & Vassilvitskii, "k-means++", SODA 2007.
    """
    n = len(h)
    if h.dim() != 2 or a.dim() != 2 or len(a) != n:
        raise ActivewsError(
            f"badge_seeding expects h (N, D) and a (N, C), got {tuple(h.shape)} and {tuple(a.shape)}"
        )
    if not 0 <= k <= n:
        raise ActivewsError(f"badge_seeding: cannot choose {k} centers from {n} examples")
    chosen = torch.empty(k, dtype=torch.long)
    if k == 0:
        return chosen
    g2 = _sq_norms(h) * _sq_norms(a)
    taken = torch.zeros(n, dtype=torch.bool, device=h.device)
    center = int(g2.argmax())
    min_d2 = torch.full_like(g2, float("inf"))
    for t in range(k):
        if t > 0:
            cdf = torch.cumsum(min_d2, dim=0, dtype=torch.float64)
            total = float(cdf[-1])
            if total > 0.0:
                u = float(torch.rand((), generator=generator, dtype=torch.float64))
                # The first position whose running sum exceeds u * total: zero-weight examples (centers
                # already chosen) are never drawn, as their running sum equals their predecessor's.
                target = torch.tensor([u * total], dtype=torch.float64, device=cdf.device)
                center = int(torch.searchsorted(cdf, target, right=True))
                if center >= n:  # u * total rounded up to total: the last example with weight
                    center = int(min_d2.nonzero()[-1])
            else:
                free = (~taken).nonzero().squeeze(1)
                center = int(free[int(torch.randint(len(free), (1,), generator=generator))])
        chosen[t] = center
        taken[center] = True
        torch.minimum(min_d2, gradient_sq_distances(h, a, center, g2), out=min_d2)
        # Exactly 0 (and kept so by the minimum, distances being >= 0): rounding never draws a center twice.
        min_d2[center] = 0.0
    return chosen


def min_sq_distances(
    x: torch.Tensor, centers: torch.Tensor, min_d2: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared Euclidean distance from each row of ``x`` to its nearest row of ``centers``.

    Computed as ``||x||^2 + ||c||^2 - 2 x.c`` in blocks of at most ``2**22`` distances, so the
    temporaries stay at 16 MB whatever the sizes. ``min_d2`` (optional) is a running minimum to update.
    """
    out = torch.full((len(x),), float("inf"), dtype=x.dtype, device=x.device) if min_d2 is None else min_d2
    if len(centers) == 0 or len(x) == 0:
        return out
    x2, c2 = _sq_norms(x), _sq_norms(centers)
    rows = max(1, _BLOCK_ELEMENTS // len(centers))
    for i in range(0, len(x), rows):
        d2 = torch.addmm(c2.unsqueeze(0), x[i : i + rows], centers.T, alpha=-2.0).add_(x2[i : i + rows, None])
        torch.minimum(out[i : i + rows], d2.amin(dim=1).clamp_min_(0.0), out=out[i : i + rows])
    return out


def k_center_greedy(x: torch.Tensor, k: int, min_d2: torch.Tensor | None = None) -> torch.Tensor:
    """Greedy k-center: repeatedly take the point farthest from every center, exact, one at a time.

    Args:
        x: ``(N, D)`` points.
        k: points to choose, ``<= N``.
        min_d2: ``(N,)`` squared distance of each point to its nearest existing center (the labeled set;
            see :func:`min_sq_distances`); ``None`` means no center yet, and the first point is taken first.

    Returns:
        ``(k,)`` int64 positions into ``x``, in the order chosen (ties: the first farthest point).

    Memory: ``x`` plus three ``N``-vectors (squared norms, running distances, one step's). Time: ``O(k N D)``.

    References:
        Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set Approach",
        ICLR 2018; Gonzalez, "Clustering to minimize the maximum intercluster distance", 1985.
    """
    n = len(x)
    if x.dim() != 2:
        raise ActivewsError(f"k_center_greedy expects points of shape (N, D), got {tuple(x.shape)}")
    if not 0 <= k <= n:
        raise ActivewsError(f"k_center_greedy: cannot choose {k} points from {n}")
    dist = (
        torch.full((n,), float("inf"), dtype=x.dtype, device=x.device) if min_d2 is None else min_d2.clone()
    )
    x2 = _sq_norms(x)
    chosen = torch.empty(k, dtype=torch.long)
    for t in range(k):
        c = int(dist.argmax())
        chosen[t] = c
        d2 = (x @ x[c]).mul_(-2.0).add_(x2).add_(x2[c]).clamp_min_(0.0)
        torch.minimum(dist, d2, out=dist)
        dist[c] = -1.0  # below every distance: never chosen again, even among duplicates at distance 0
    return chosen


# ------------------------------------------------------------------------------------------------ helpers


def _embed_candidates(
    view: ProbaFn, candidates: torch.Tensor, window: int, with_factors: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features of every candidate and (``with_factors``) BADGE's ``p - onehot``, else an
    empty tensor; filled window by window into tensors allocated once the widths are known."""
    model_view = cast(ModelView, view)  # the stream checked that the view offers "embed"
    feats = factors = torch.empty(0)
    for start, stop, idx in iter_windows(candidates, window):
        h, p = model_view.embed_proba(idx)
        if start == 0:
            feats = h.new_empty((len(candidates), h.shape[1]))
            if with_factors:
                factors = p.new_empty((len(candidates), p.shape[1]))
        feats[start:stop] = h
        if with_factors:
            factors[start:stop] = badge_factors(p)
    return feats, factors


def _has_linear(model: nn.Module, who: str) -> None:
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        raise ActivewsError(
            f"{who} needs penultimate features (the input of the model's last nn.Linear), and "
            f"{type(model).__name__} has no nn.Linear; use a model with a linear head or --acquisition margin"
        )


# ------------------------------------------------------------------------------------------------ selectors


@register_acquisition("bald")
class BALD(ScoringSelector):
    """BALD with Monte Carlo dropout: the mutual information between the label and the weights.

    Each candidate gets ``samples`` predictions with dropout active (everything else in eval mode) and
    scores :func:`bald_scores`; the top ``k`` are taken. Candidates are walked in windows of
    ``score_batch``, one seed drawn from the stream's generator per window, so the selection depends on
    the seed and on ``--score-batch``. Needs a model with dropout (``--model-param dropout=0.2``).
    Kept per candidate: the 4-byte score. Time: ``samples`` forward passes over the candidates.

    References:
        Houlsby, Huszar, Ghahramani & Lengyel, "Bayesian Active Learning for Classification and
        Preference Learning", arXiv 1112.5745, 2011; Gal, Islam & Ghahramani, "Deep Bayesian Active
        Learning with Image Data", ICML 2017.
    """

    class Params(BatchSelector.Params):
        samples: int = Field(20, ge=2, description="Monte Carlo dropout samples per candidate")

    needs = frozenset({"mc_proba"})
    reference = "Houlsby et al. 2011; Gal, Islam & Ghahramani, ICML 2017"

    def check(self, model: nn.Module) -> None:
        if not dropout_layers(model):
            raise ActivewsError("bald needs a model with dropout; add --model-param dropout=0.2")

    def score(self, view: ProbaFn, idx: torch.Tensor | slice, generator: torch.Generator) -> torch.Tensor:
        samples = self.params.samples  # type: ignore[attr-defined]
        return bald_scores(cast(ModelView, view).mc_proba(idx, samples, generator))


@register_acquisition("badge")
class BADGE(BatchSelector):
    """BADGE: k-means++ seeding on the gradient embeddings of the last layer (uncertain *and* diverse).

    A candidate's gradient embedding is the gradient of the cross-entropy at the predicted label with
    respect to the last ``nn.Linear``'s weights, ``g = (p - onehot(argmax p)) h^T``, with ``h`` the
    penultimate features. :func:`badge_seeding` picks the batch, using
    ``||g_i - g_j||^2 = ||h_i||^2 ||a_i||^2 + ||h_j||^2 ||a_j||^2 - 2 (h_i . h_j)(a_i . a_j)`` so that the
    ``D x C`` embeddings are never formed.
    Kept per candidate: ``h`` and ``a`` (``4 (D + C)`` bytes) and 25 bytes of norms, distances and step
    temporaries (1,089 bytes for the default MLP: 109 MB for 100,000 candidates). Time: one forward pass over the candidates,
    then ``O(k N (D + C))``.

    References:
        Ash, Zhang, Krishnamurthy, Langford & Agarwal, "Deep Batch Active Learning by Diverse, Uncertain
        Gradient Lower Bounds", ICLR 2020.
    """

    needs = frozenset({"embed"})
    reference = "Ash et al., ICLR 2020"

    def check(self, model: nn.Module) -> None:
        _has_linear(model, "badge")

    def select(
        self,
        view: ProbaFn,
        candidates: torch.Tensor,
        labeled: torch.Tensor,
        k: int,
        generator: torch.Generator,
    ) -> torch.Tensor:
        self.check_batch(k, candidates)
        if k == 0:
            return candidates[:0]
        h, a = _embed_candidates(view, candidates, self.score_batch, with_factors=True)
        return candidates[badge_seeding(h, a, k, generator)]


@register_acquisition("coreset")
class CoreSet(BatchSelector):
    """Core-set: greedy k-center on penultimate features, the labeled set as the initial centers.

    Each step takes the candidate farthest (Euclidean) from every labeled example and every candidate
    chosen so far (:func:`k_center_greedy`), so the batch covers the feature space. Deterministic.
    Kept per candidate: the features (``4 D`` bytes) and 12 bytes of norms, distances and step
    temporaries (1,036 bytes for the default MLP: 104 MB for 100,000 candidates); the labeled set's
    features pass through one window of ``score_batch`` at a time, against the candidates in blocks of
    at most 16 MB of distances. Time: forward passes
    over candidates and labeled set, then ``O((L + k) N D)`` for ``L`` labeled examples.

    References:
        Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set Approach",
        ICLR 2018.
    """

    needs = frozenset({"embed"})
    reference = "Sener & Savarese, ICLR 2018"

    def check(self, model: nn.Module) -> None:
        _has_linear(model, "coreset")

    def select(
        self,
        view: ProbaFn,
        candidates: torch.Tensor,
        labeled: torch.Tensor,
        k: int,
        generator: torch.Generator,
    ) -> torch.Tensor:
        self.check_batch(k, candidates)
        if k == 0:
            return candidates[:0]
        feats, _ = _embed_candidates(view, candidates, self.score_batch, with_factors=False)
        min_d2: torch.Tensor | None = None
        labeled = labeled.sort().values  # sorted: runs of consecutive indices become slices (no copy)
        for _, _, idx in iter_windows(labeled, self.score_batch):
            min_d2 = min_sq_distances(feats, cast(ModelView, view).embed(idx), min_d2)
        return candidates[k_center_greedy(feats, k, min_d2)]
