"""Harmonic encoding of time differences, ``cos(w * dt + b)``, as in TGAT."""

from __future__ import annotations

import torch
from torch import nn


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
        return torch.cos(dt.to(torch.float32).unsqueeze(-1) * self.weight + self.bias)
