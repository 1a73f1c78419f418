"""Link-prediction metrics: AP and AUC (binary), MRR and Recall@k (ranking, ties averaged as in TGB).

All functions take torch tensors of scores (any float dtype, any device) and return Python floats
or float64 tensors. Higher scores mean "more likely a true link".

NaN is never a hit: AP and AUC refuse NaN scores (``ValueError``), and in ``positive_ranks`` a NaN
positive ranks below all its negatives and a NaN negative above its positive. (A NaN compares
false with everything, so it would otherwise rank first and a diverged model score perfectly.)
"""

from __future__ import annotations

import torch


def _binary_inputs(pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pos = pos.detach().reshape(-1).double().cpu()
    neg = neg.detach().reshape(-1).double().cpu()
    if pos.numel() == 0 or neg.numel() == 0:
        raise ValueError(f"pos and neg must be non-empty, got {pos.numel()} and {neg.numel()} scores")
    nan = int(torch.isnan(pos).sum()) + int(torch.isnan(neg).sum())
    if nan:
        raise ValueError(
            f"{nan} of {pos.numel() + neg.numel()} scores are NaN: the model diverged "
            "(lower the learning rate, --lr, or check the features for huge values)"
        )
    return pos, neg


def average_precision(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """Average precision of positive scores ``pos`` against negative scores ``neg`` (any shapes).

    ``AP = sum_n (R_n - R_{n-1}) * P_n`` over the distinct score thresholds in decreasing order,
    where ``P_n`` and ``R_n`` count every sample scoring ``>=`` the n-th threshold (tied samples
    enter together), the definition scikit-learn's ``average_precision_score`` uses.
    """
    pos, neg = _binary_inputs(pos, neg)
    scores = torch.cat([pos, neg])
    labels = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
    order = torch.argsort(scores, descending=True, stable=True)
    scores, labels = scores[order], labels[order]
    tp = torch.cumsum(labels, 0)
    seen = torch.arange(1, scores.numel() + 1, dtype=torch.float64)
    # Keep the last position of each run of equal scores: the threshold's full count.
    last = torch.ones_like(scores, dtype=torch.bool)
    last[:-1] = scores[1:] != scores[:-1]
    tp, seen = tp[last], seen[last]
    precision = tp / seen
    recall = tp / pos.numel()
    recall_step = torch.diff(recall, prepend=torch.zeros(1, dtype=torch.float64))
    return float((recall_step * precision).sum())


def roc_auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """Area under the ROC curve: ``P(pos > neg) + 0.5 * P(pos == neg)`` over all (pos, neg) pairs.

    Computed from average ranks (Mann-Whitney U) in ``O(n log n)``.
    """
    pos, neg = _binary_inputs(pos, neg)
    scores = torch.cat([pos, neg])
    sorted_scores, order = torch.sort(scores, stable=True)
    # Average 1-based rank of each run of equal scores.
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    avg_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(scores)
    ranks[order] = avg_rank[inverse]
    n_pos, n_neg = pos.numel(), neg.numel()
    u = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def positive_ranks(
    pos: torch.Tensor, neg: torch.Tensor, neg_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Rank of each positive among its own negatives, ties averaged as in TGB.

    Args:
        pos: ``[B]`` score of each positive.
        neg: ``[B, M]`` scores of each positive's negatives.
        neg_mask: optional ``[B, M]`` bool, True where a negative counts (False = padding).

    Returns:
        ``[B]`` float64 ``rank = 1 + #(neg > pos) + 0.5 * #(neg == pos)``, where NaN scores count
        as ``neg > pos`` (a NaN positive ranks last).
    """
    if pos.dim() != 1 or neg.dim() != 2 or neg.shape[0] != pos.shape[0]:
        raise ValueError(f"pos must be [B] and neg [B, M], got {tuple(pos.shape)} and {tuple(neg.shape)}")
    if neg_mask is not None and neg_mask.shape != neg.shape:
        raise ValueError(f"neg_mask must have neg's shape {tuple(neg.shape)}, got {tuple(neg_mask.shape)}")
    pos = pos.detach().double()
    neg = neg.detach().double()
    # NaN is never a hit: a NaN positive (or a NaN negative) counts as below (above) the other.
    nan = torch.isnan(neg) | torch.isnan(pos)[:, None]
    greater = (neg > pos[:, None]) | nan
    equal = neg == pos[:, None]
    if neg_mask is not None:
        greater &= neg_mask
        equal &= neg_mask
    return 1.0 + greater.sum(1).double() + 0.5 * equal.sum(1).double()


def mrr(ranks: torch.Tensor) -> float:
    """Mean reciprocal rank of ``ranks`` (``[B]``, from :func:`positive_ranks`)."""
    return float((1.0 / ranks.double()).mean())


def recall_at(ranks: torch.Tensor, k: int) -> float:
    """Fraction of positives whose rank is ``<= k`` (TGB's Hits@k)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return float((ranks.double() <= k).double().mean())
