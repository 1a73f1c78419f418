"""Harmonic encoding of time differences, ``cos(w * dt + b)``, as in TGAT."""

from __future__ import annotations

import torch
from torch import nn

from dgl_tgnn import ops


def harmonic(dt: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``cos(dt[:, None] * weight + bias)``: ``dt`` ``[n]``, ``weight``, ``bias`` ``[D]`` -> ``[n, D]``.

    float32 on CPU and, in a CUDA build, on a GPU: the op ``dgl_tgnn.ops.harmonic_encoding`` (a cosine
    several times faster than torch's for the arguments beyond 1e5 that time differences in seconds
    give; one kernel on a GPU instead of two; its gradient makes four passes over ``[n, D]`` where
    autograd's own makes about nine). Elsewhere torch's ``addcmul`` and ``cos``.
    """
    on_device = dt.device.type == "cpu" or (dt.device.type == "cuda" and ops.WITH_CUDA)
    if on_device and dt.dtype == torch.float32 == weight.dtype == bias.dtype:
        return ops.harmonic_encoding(dt, weight, bias)
    return torch.addcmul(bias, dt.unsqueeze(1), weight).cos()


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
        return harmonic(flat, self.weight, self.bias).view(*dt.shape, self.dim)
