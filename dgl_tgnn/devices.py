"""Moving tensors to the model's device without stalling the host."""

from __future__ import annotations

import torch


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; a CPU tensor goes to a GPU through a pinned copy, and the host does not
    wait for the transfer (a plain ``to`` waits for the GPU to finish all queued work first)."""
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)
