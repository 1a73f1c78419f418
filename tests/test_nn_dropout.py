"""Dropout with extension masks on CPU: values, rate, reproducibility, gradients, eval mode, errors."""

import math

import pytest
import torch

from dgl_tgnn.nn.dropout import Dropout


def test_values_rate_and_gradient() -> None:
    p, n = 0.3, 200_000
    layer = Dropout(p)
    x = torch.rand(n, dtype=torch.float32) + 1.0
    x.requires_grad_(True)
    out = layer(x)
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept] / (1 - p))
    # the dropped share is binomial(n, p): within 6 standard deviations
    assert abs((~kept).float().mean().item() - p) < 6 * math.sqrt(p * (1 - p) / n)
    out.sum().backward()
    assert torch.equal(x.grad, kept.float() / (1 - p))


def test_seeded_by_torch_and_independent_of_threads() -> None:
    x = torch.ones(50_000)
    layer = Dropout(0.5)
    threads = torch.get_num_threads()
    try:
        torch.manual_seed(7)
        torch.set_num_threads(1)
        first, second = layer(x), layer(x)
        torch.manual_seed(7)
        torch.set_num_threads(2)
        again = layer(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(first, again)
    assert not torch.equal(first, second)  # a fresh mask per call


def test_masks_of_nearby_seeds_are_uncorrelated() -> None:
    torch.manual_seed(0)
    layer = Dropout(0.5)
    a, b = (layer(torch.ones(100_000)) != 0 for _ in range(2))
    agreement = (a == b).float().mean().item()
    assert abs(agreement - 0.5) < 0.01


def test_eval_zero_and_one() -> None:
    x = torch.randn(4, 5)
    layer = Dropout(0.5).eval()
    assert layer(x) is x
    assert Dropout(0.0)(x) is x
    assert torch.equal(Dropout(1.0)(x), torch.zeros_like(x))


def test_other_dtypes_fall_back_to_torch() -> None:
    torch.manual_seed(3)
    out = Dropout(0.5)(torch.ones(1000, dtype=torch.float64))
    assert out.dtype == torch.float64 and set(out.unique().tolist()) <= {0.0, 2.0}


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_rejects_bad_probability(p: float) -> None:
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(p)


def test_extension_mask_checks_its_inputs() -> None:
    from dgl_tgnn import ops

    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        ops.dropout_mask(torch.zeros(10), 1.0, 0)
