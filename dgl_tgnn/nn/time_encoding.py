"""Harmonic encoding of time differences, ``cos(w * dt + b)``, as in TGAT."""

from __future__ import annotations

import torch
from torch import nn

from dgl_tgnn import _C


def harmonic(dt: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``cos(dt[:, None] * weight + bias)`` without gradient: ``dt`` ``[n]`` float32, ``weight``,
    ``bias`` ``[D]`` -> ``[n, D]``. On CPU and, in a CUDA build, on a GPU the extension's cosine
    (several times faster than torch's for the arguments beyond 1e5 that time differences in seconds
    give; one kernel on a GPU instead of two), elsewhere torch's."""
    on_device = dt.device.type == "cpu" or (dt.device.type == "cuda" and _C.with_cuda)
    if on_device and dt.dtype == torch.float32 == weight.dtype == bias.dtype:
        return _C.harmonic_encoding(dt, weight.detach(), bias.detach())
    return torch.addcmul(bias, dt.unsqueeze(1), weight).cos_()


class HarmonicEncoding(torch.autograd.Function):
    """``cos(dt[:, None] * w + b)`` for ``dt`` ``[n]`` float32, ``w``, ``b`` ``[D]`` -> ``[n, D]``.

    Written out because the encoding of every sampled slot is among the largest tensors of a batch:
    autograd's version makes about nine passes over ``[n, D]``, this one four (the gradients of
    ``w`` and ``b`` come from one product ``[dt; 1] @ (-sin(arg) * grad)``).
    """

    @staticmethod
    def forward(ctx, dt: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(dt, weight, bias)
        return harmonic(dt, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor, torch.Tensor]:
        dt, weight, bias = ctx.saved_tensors
        minus_grad_arg = torch.addcmul(bias, dt.unsqueeze(1), weight).sin_().mul_(grad)  # d/d(arg) = -sin
        # grad w = -dt @ sin(arg) * grad and grad b = -sum of its rows, in one pass: [dt; 1] @ [n, D].
        grad_weight, grad_bias = (torch.stack([dt, torch.ones_like(dt)]) @ minus_grad_arg).neg_()
        return None, grad_weight, grad_bias


class TimeEncoding(nn.Module):
    """``phi(dt) = cos(w * dt + b)`` with ``w_i = 1 / 10^(9 i / (dim - 1))`` and ``b = 0`` at init.

    Args:
        dim: width of the encoding (``>= 1``).
        learnable: when True ``w`` and ``b`` are parameters; when False they are fixed buffers.

    Forward: ``dt`` ``[...]`` any float dtype (seconds, or whatever unit the event times use)
    -> ``[..., dim]`` float32. The argument ``w * dt + b`` is formed in float32, as in TGAT: for
    ``dt`` around ``1e6`` the fastest components (``w`` near 1) carry rounding of a few percent.
    """

    def __init__(self, dim: int, learnable: bool = True) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim
        weight = 1.0 / 10.0 ** torch.linspace(0.0, 9.0, dim, dtype=torch.float64)
        weight = weight.to(torch.float32)
        bias = torch.zeros(dim)
        if learnable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(bias)
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias)

    def forward(self, dt: torch.Tensor) -> torch.Tensor:
        flat = dt.reshape(-1).to(torch.float32)
        if self.weight.requires_grad or self.bias.requires_grad:
            encoded = HarmonicEncoding.apply(flat, self.weight, self.bias)
        else:
            encoded = harmonic(flat, self.weight, self.bias)
        return encoded.view(*dt.shape, self.dim)
