import math

import pytest
import torch

from dgl_tgnn import ops
from dgl_tgnn.nn import TimeEncoding
from dgl_tgnn.nn.time_encoding import harmonic


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
    assert torch.autograd.gradcheck(harmonic, (dt, weight, bias))


NEEDS_CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
DEVICES = ["cpu", pytest.param("cuda", marks=NEEDS_CUDA)]


@pytest.mark.parametrize("device", DEVICES)
def test_encoding_matches_float64_cosine_of_the_float32_argument(device: str) -> None:
    # Time differences in seconds over 8 decades times TGAT's frequencies: arguments up to ~1e8,
    # where torch's own float32 cosine leaves its fast path.
    gen = torch.Generator().manual_seed(1)
    dt = 10 ** (8 * torch.rand(3000, generator=gen, dtype=torch.float64))
    dt[::7] *= -1
    enc = TimeEncoding(100, learnable=False)
    out = enc.to(device)(dt.to(device)).cpu()
    argument = dt.to(torch.float32).unsqueeze(1) * enc.weight.cpu()  # float32, as the encoding forms it
    assert (out.double() - argument.double().cos()).abs().max() < 1e-7


@pytest.mark.parametrize("device", DEVICES)
def test_encoding_with_bias_and_strided_input(device: str) -> None:
    gen = torch.Generator().manual_seed(2)
    weight = torch.rand(9, generator=gen)
    bias = torch.randn(9, generator=gen)
    dt = (1e4 * torch.rand(400, generator=gen)).reshape(200, 2)[:, 1]  # not contiguous
    out = ops.harmonic_encoding(dt.to(device), weight.to(device), bias.to(device)).cpu()
    exact = (dt.double().unsqueeze(1) * weight.double() + bias.double()).cos()
    # The float32 argument carries up to one rounding of the product and one of the sum.
    product = (dt.double().unsqueeze(1) * weight.double()).abs()
    slack = 1e-7 + (2 * product + bias.double().abs()) * 2.0**-24
    assert ((out.double() - exact).abs() <= slack).all()


@pytest.mark.parametrize("device", DEVICES)
def test_encoding_of_non_finite_and_huge_differences(device: str) -> None:
    weight = 1.0 / 10.0 ** torch.linspace(0.0, 9.0, 5)
    dt = torch.tensor([float("nan"), float("inf"), 3e9, 1e30, 0.0])
    out = ops.harmonic_encoding(dt.to(device), weight.to(device), torch.zeros(5, device=device)).cpu()
    assert out[:2].isnan().all()
    expected = torch.tensor([[math.cos(a) for a in (x * weight).tolist()] for x in dt[2:].tolist()])
    assert (out[2:].double() - expected.double()).abs().max() < 1e-7


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_encoding_rejects_tensors_on_two_devices() -> None:
    with pytest.raises(ValueError, match="weight must be a 1-D float32 tensor on the CPU or a GPU .*on cpu"):
        ops.harmonic_encoding(torch.zeros(4, device="cuda"), torch.ones(3), torch.zeros(3, device="cuda"))


def test_cpu_encoding_rejects_bad_input() -> None:
    weight, bias = torch.ones(3), torch.zeros(3)
    with pytest.raises(ValueError, match="dt must be a 1-D float32 tensor on the CPU.*, got Double"):
        ops.harmonic_encoding(torch.zeros(4, dtype=torch.float64), weight, bias)
    with pytest.raises(ValueError, match="weight must be a 1-D float32 tensor on the CPU.* 2 dims"):
        ops.harmonic_encoding(torch.zeros(4), torch.ones(3, 1), bias)
    with pytest.raises(ValueError, match="weight and bias must have the same size, got 3 and 2"):
        ops.harmonic_encoding(torch.zeros(4), weight, torch.zeros(2))
