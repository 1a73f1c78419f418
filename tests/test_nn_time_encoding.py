import math

import pytest
import torch

from dgl_tgnn.nn import TimeEncoding
from dgl_tgnn.nn.time_encoding import HarmonicEncoding


@pytest.mark.parametrize("dim", [1, 2, 7, 100])
def test_init_follows_tgat(dim: int) -> None:
    enc = TimeEncoding(dim)
    expected = [1.0 if dim == 1 else 1.0 / 10 ** (9 * i / (dim - 1)) for i in range(dim)]
    assert torch.allclose(enc.weight, torch.tensor(expected), rtol=1e-6, atol=0)
    assert torch.equal(enc.bias, torch.zeros(dim))


def test_forward_is_cos_of_affine_time() -> None:
    enc = TimeEncoding(5)
    with torch.no_grad():
        enc.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0, 1.0]))
    dt = torch.tensor([[0.0, 1.5], [30.0, 250.0]], dtype=torch.float64)
    out = enc(dt)
    assert out.shape == (2, 2, 5) and out.dtype == torch.float32
    for i in range(2):
        for j in range(2):
            for c in range(5):
                w, b = enc.weight[c].item(), enc.bias[c].item()
                assert out[i, j, c].item() == pytest.approx(math.cos(w * dt[i, j].item() + b), abs=1e-5)


def test_learnable_gets_gradients() -> None:
    enc = TimeEncoding(4)
    enc(torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert {name for name, _ in enc.named_parameters()} == {"weight", "bias"}
    assert enc.weight.grad is not None and enc.weight.grad.abs().sum() > 0
    assert enc.bias.grad is not None and enc.bias.grad.abs().sum() > 0


def test_fixed_has_no_parameters_and_no_grad() -> None:
    enc = TimeEncoding(4, learnable=False)
    assert list(enc.parameters()) == []
    assert {name for name, _ in enc.named_buffers()} == {"weight", "bias"}
    out = enc(torch.tensor([1.0, 2.0]))
    assert not out.requires_grad
    assert torch.allclose(out, TimeEncoding(4)(torch.tensor([1.0, 2.0])).detach())


def test_rejects_empty_width() -> None:
    with pytest.raises(ValueError, match="dim"):
        TimeEncoding(0)


def test_encoding_gradients_are_exact() -> None:
    gen = torch.Generator().manual_seed(0)
    dt = 10 * torch.rand(7, dtype=torch.float64, generator=gen)
    weight = torch.rand(5, dtype=torch.float64, generator=gen, requires_grad=True)
    bias = torch.randn(5, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(HarmonicEncoding.apply, (dt, weight, bias))
