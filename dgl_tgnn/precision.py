"""Arithmetic precision of a run's forward passes (``train.precision``): the same float32 weights,
optimiser and state, with the matrix products on the GPU's tensor cores.

- ``float32``: every product in float32 (torch's ``"highest"`` float32 matmul precision).
- ``tf32``: float32 matrix products on TF32 tensor cores (10-bit mantissa inputs, float32 sums;
  torch's ``"high"``). CUDA only: a CPU has no TF32.
- ``bf16``: forward passes under ``torch.autocast`` to bfloat16 (products and their inputs in bfloat16,
  reductions and losses in float32, as autocast decides); gradients reach float32 weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

_MATMUL = {"float32": "highest", "tf32": "high", "bf16": "highest"}  # torch's float32 matmul precision
PRECISIONS = tuple(_MATMUL)


@contextlib.contextmanager
def precision(name: str, device: torch.device) -> Iterator[None]:
    """Runs the block at precision ``name`` (module docstring) on ``device``; torch's float32 matmul
    precision is restored on leaving (it is global to the process)."""
    if name not in _MATMUL:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {name!r}")
    if name == "tf32" and device.type != "cuda":
        raise ValueError(
            f"precision tf32 needs a CUDA device (--device cuda, or --precision float32); got {device.type}"
        )
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(_MATMUL[name])
    try:
        if name == "bf16":
            # (no cast cache: a captured CUDA graph must not keep casts of weights that later change)
            with torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False):
                yield
        else:
            yield
    finally:
        torch.set_float32_matmul_precision(before)
