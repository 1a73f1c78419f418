"""Link-prediction losses over one positive and ``n`` negatives per event, registered in
:data:`~dgl_tgnn.registry.LOSSES` (``train.loss``).

All take decoder logits: ``pos [B]`` for the true (src, dst) pairs and ``neg [B, n]`` for the
(src, negative dst) pairs, and return a scalar mean over the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from dgl_tgnn.registry import LOSSES

LossFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
"""``loss(pos [B], neg [B, n], temperature) -> []``: what ``LOSSES`` holds."""


def _check(pos: torch.Tensor, neg: torch.Tensor) -> None:
    if pos.dim() != 1 or neg.dim() != 2 or neg.shape[0] != pos.shape[0] or neg.shape[1] == 0:
        raise ValueError(
            f"pos must be [B] and neg [B, n] with n >= 1, got {tuple(pos.shape)} and {tuple(neg.shape)}"
        )


def bce_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """TGN's loss: binary cross-entropy of positives against 1 and of every negative against 0.

    ``mean_b softplus(-pos_b) + mean_{b,j} softplus(neg_bj)`` (the two means as in TGN, so the
    positive and negative terms weigh the same whatever ``n``).
    """
    _check(pos, neg)
    return F.softplus(-pos).mean() + F.softplus(neg).mean()


def bce_sum_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """The loss of arXiv 2402.09239's code: ``BCE(pos) + n * mean BCE(neg)``, i.e.
    ``mean_b softplus(-pos_b) + mean_b sum_j softplus(neg_bj)``: each negative weighs as much as the
    positive."""
    _check(pos, neg)
    return F.softplus(-pos).mean() + F.softplus(neg).sum(1).mean()


def infonce_loss(pos: torch.Tensor, neg: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Softmax cross-entropy of each positive against its own negatives (InfoNCE).

    ``mean_b -log( exp(pos_b / T) / (exp(pos_b / T) + sum_j exp(neg_bj / T)) )``.
    """
    _check(pos, neg)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = torch.cat([pos[:, None], neg], dim=1) / temperature
    return torch.logsumexp(logits, dim=1).sub(logits[:, 0]).mean()


LOSSES.register("bce", "TGN's binary cross-entropy")(lambda pos, neg, temperature: bce_loss(pos, neg))
LOSSES.register("bce_sum", "the same with the negatives summed (the hard-negative paper's code)")(
    lambda pos, neg, temperature: bce_sum_loss(pos, neg)
)
LOSSES.register("infonce", "softmax of the positive against its negatives")(infonce_loss)


def link_loss(name: str, pos: torch.Tensor, neg: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The loss registered as ``name`` of ``pos [B]`` against ``neg [B, n]``."""
    loss: LossFn = LOSSES[name]
    return loss(pos, neg, temperature)
