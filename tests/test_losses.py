"""Losses against hand-computed values."""

import math

import pytest
import torch

from dgl_tgnn.losses import bce_loss, bce_sum_loss, infonce_loss, link_loss


def test_bce_hand_computed():
    # softplus(0) = ln 2 for the positive and for each negative: mean + mean = 2 ln 2.
    assert float(bce_loss(torch.zeros(2), torch.zeros(2, 3))) == pytest.approx(2 * math.log(2))
    pos, neg = torch.tensor([2.0]), torch.tensor([[-1.0, 3.0]])
    expected = math.log1p(math.exp(-2.0)) + (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(3.0))) / 2
    assert float(bce_loss(pos, neg)) == pytest.approx(expected)


def test_bce_sum_hand_computed():
    # The positive terms averaged, each event's negative terms summed, then averaged over events.
    pos, neg = torch.tensor([0.0, 2.0]), torch.tensor([[0.0, 1.0], [-1.0, 3.0]])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    want = (sp(0) + sp(-2)) / 2 + ((sp(0) + sp(1)) + (sp(-1) + sp(3))) / 2
    assert bce_sum_loss(pos, neg).item() == pytest.approx(want, rel=1e-6)
    assert link_loss("bce_sum", pos, neg).item() == pytest.approx(want, rel=1e-6)


def test_infonce_hand_computed():
    assert float(infonce_loss(torch.zeros(1), torch.zeros(1, 2))) == pytest.approx(math.log(3))
    # Temperature 0.5: logits [2, 0] -> log(e^2 + 1) - 2.
    value = infonce_loss(torch.tensor([1.0]), torch.tensor([[0.0]]), temperature=0.5)
    assert float(value) == pytest.approx(math.log(math.exp(2) + 1) - 2)


def test_infonce_pushes_positive_up_and_negatives_down():
    pos = torch.tensor([0.3], requires_grad=True)
    neg = torch.tensor([[0.1, -0.2]], requires_grad=True)
    infonce_loss(pos, neg).backward()
    assert pos.grad.item() < 0 and (neg.grad > 0).all()


def test_link_loss_dispatch_and_errors():
    pos, neg = torch.tensor([1.0]), torch.tensor([[0.5]])
    assert torch.equal(link_loss("bce", pos, neg), bce_loss(pos, neg))
    assert torch.equal(link_loss("infonce", pos, neg, 0.1), infonce_loss(pos, neg, 0.1))
    with pytest.raises(ValueError, match="loss must be one of"):
        link_loss("hinge", pos, neg)
    with pytest.raises(ValueError, match="temperature"):
        infonce_loss(pos, neg, 0.0)
    with pytest.raises(ValueError, match="neg"):
        bce_loss(pos, torch.zeros(2, 1))
