"""Metrics against hand-computed values and brute-force definitions (ties included)."""

import itertools

import pytest
import torch

from dgl_tgnn.metrics import average_precision, mrr, positive_ranks, recall_at, roc_auc


def brute_ap(pos: list[float], neg: list[float]) -> float:
    """AP by its definition: sum over distinct thresholds of (recall step) x precision at >= threshold."""
    scored = [(s, 1) for s in pos] + [(s, 0) for s in neg]
    ap, previous_recall = 0.0, 0.0
    for threshold in sorted({s for s, _ in scored}, reverse=True):
        selected = [label for s, label in scored if s >= threshold]
        recall = sum(selected) / len(pos)
        ap += (recall - previous_recall) * sum(selected) / len(selected)
        previous_recall = recall
    return ap


def brute_auc(pos: list[float], neg: list[float]) -> float:
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_ap_auc_hand_computed_with_a_tie():
    # Ranked: 0.9 (+), 0.8 (-), {0.4 (+), 0.4 (-)}, 0.1 (-).
    # AP = 0.5 * 1 (at 0.9) + 0.5 * 2/4 (at 0.4) = 0.75; AUC = (3 + 1.5) / 6 = 0.75.
    pos, neg = torch.tensor([0.9, 0.4]), torch.tensor([0.8, 0.4, 0.1])
    assert average_precision(pos, neg) == pytest.approx(0.75)
    assert roc_auc(pos, neg) == pytest.approx(0.75)


def test_perfect_and_reversed_scores():
    pos, neg = torch.tensor([3.0, 2.0]), torch.tensor([1.0, 0.0])
    assert average_precision(pos, neg) == 1.0 and roc_auc(pos, neg) == 1.0
    assert roc_auc(neg, pos) == 0.0
    # Reversed: the positives come last: precision 1/3 then 2/4 -> AP = 0.5 * (1/3 + 1/2).
    assert average_precision(neg, pos) == pytest.approx(0.5 * (1 / 3 + 1 / 2))


def test_all_tied_scores():
    pos, neg = torch.zeros(3), torch.zeros(5)
    assert roc_auc(pos, neg) == 0.5
    assert average_precision(pos, neg) == pytest.approx(3 / 8)


@pytest.mark.parametrize("seed", range(5))
def test_ap_auc_match_brute_force_on_heavy_ties(seed):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randint(0, 6, (17,), generator=g).float()
    neg = torch.randint(0, 6, (23,), generator=g).float()
    assert average_precision(pos, neg) == pytest.approx(brute_ap(pos.tolist(), neg.tolist()))
    assert roc_auc(pos, neg) == pytest.approx(brute_auc(pos.tolist(), neg.tolist()))


def test_ranks_average_ties_as_tgb():
    pos = torch.tensor([0.5, 1.0, 9.0])
    neg = torch.tensor([[0.7, 0.5, 0.5, 0.1], [0.2, 0.3, 1.0, 2.0], [1.0, 2.0, 3.0, 4.0]])
    # Row 0: one greater, two equal -> 1 + 1 + 1 = 3. Row 1: one greater, one equal -> 2.5. Row 2: 1.
    ranks = positive_ranks(pos, neg)
    assert ranks.tolist() == [3.0, 2.5, 1.0]
    assert mrr(ranks) == pytest.approx((1 / 3 + 1 / 2.5 + 1) / 3)
    assert recall_at(ranks, 1) == pytest.approx(1 / 3)
    assert recall_at(ranks, 2) == pytest.approx(1 / 3)
    assert recall_at(ranks, 3) == pytest.approx(1.0)


def test_ranks_ignore_masked_negatives():
    pos = torch.tensor([0.5])
    neg = torch.tensor([[0.9, 0.5, 0.1, 0.8]])
    mask = torch.tensor([[False, True, True, False]])
    assert positive_ranks(pos, neg, mask).tolist() == [1.5]


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="pos must be"):
        positive_ranks(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="non-empty"):
        average_precision(torch.zeros(0), torch.zeros(2))
    with pytest.raises(ValueError, match="k must be"):
        recall_at(torch.ones(2), 0)


def test_nan_is_never_a_hit():
    """A NaN positive used to rank first (NaN compares false) and a diverged model scored MRR 1."""
    nan = float("nan")
    ranks = positive_ranks(torch.tensor([nan, 0.5, 0.5]), torch.tensor([[0.1, 0.2], [nan, 0.1], [nan, nan]]))
    assert ranks.tolist() == [3.0, 2.0, 3.0]
    assert mrr(ranks) < 1.0 and recall_at(ranks, 1) == 0.0
    mask = torch.tensor([[True, False], [True, True], [True, True]])
    assert (
        positive_ranks(
            torch.tensor([nan, 1.0, 1.0]), torch.tensor([[0.1, 0.2], [0.0, 0.0], [0.0, 0.0]]), mask
        )[0]
        == 2.0
    )
    for metric in (average_precision, roc_auc):
        with pytest.raises(ValueError, match="NaN"):
            metric(torch.tensor([nan, 1.0]), torch.tensor([0.0]))
        with pytest.raises(ValueError, match="NaN"):
            metric(torch.tensor([1.0]), torch.tensor([nan]))
    # infinities are ordinary scores
    assert average_precision(torch.tensor([float("inf")]), torch.tensor([0.0])) == 1.0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("distinct", [4, 1000])
def test_ap_auc_match_scikit_learn(seed, distinct):
    """scikit-learn (the design's reference) on random scores, with many ties (4 values) and few."""
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(seed)
    pos = torch.randint(0, distinct, (200 + seed,), generator=g).double() / distinct + 0.1
    neg = torch.randint(0, distinct, (300 - seed,), generator=g).double() / distinct
    labels = [1] * len(pos) + [0] * len(neg)
    scores = torch.cat([pos, neg]).tolist()
    assert average_precision(pos, neg) == pytest.approx(metrics.average_precision_score(labels, scores))
    assert roc_auc(pos, neg) == pytest.approx(metrics.roc_auc_score(labels, scores))
