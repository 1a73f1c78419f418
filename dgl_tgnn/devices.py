"""Tensors on the model's device: features, the hop-dedup rule, host-to-GPU copies that do not stall."""

from __future__ import annotations

import numpy as np
import torch


def features_on(array: np.ndarray | None, rows: int, device: torch.device) -> torch.Tensor:
    """A dataset's feature array as float32 ``[rows, d]`` on ``device``; ``[rows, 0]`` when absent."""
    if array is None:
        return torch.zeros((rows, 0), dtype=torch.float32, device=device)
    return torch.from_numpy(array).to(device)


def dedup_hops(rule: str, device: torch.device) -> bool:
    """Whether deeper hops are deduplicated: ``model.dedup`` ``"always"``, or ``"auto"`` on a CPU."""
    return rule == "always" or (rule == "auto" and device.type == "cpu")


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; a CPU tensor goes to a GPU through a pinned copy, and the host does not
    wait for the transfer (a plain ``to`` waits for the GPU to finish all queued work first)."""
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)
