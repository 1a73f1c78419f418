"""A growing table of (source, destination) pairs with the time each was last seen."""

from __future__ import annotations

import torch


def pair_keys(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """int64 keys ``src * 2^32 + dst`` (ids below 2^31), same shape as the broadcast inputs."""
    return (src.to(torch.int64) << 32) + dst.to(torch.int64)


class PairTable:
    """The distinct pairs of the events added so far, each with its latest time.

    Kept as a sorted key array (``torch.searchsorted`` lookups, ``O(P log P)`` merges), on one
    device.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.keys = torch.empty(0, dtype=torch.int64, device=device)
        self.last = torch.empty(0, dtype=torch.float64, device=device)

    def add(self, src: torch.Tensor, dst: torch.Tensor, t: torch.Tensor) -> None:
        """Adds events ``src``, ``dst`` ``[n]`` int64 at ``t`` ``[n]`` float64 (any order)."""
        device = self.keys.device
        keys = torch.cat([self.keys, pair_keys(src.to(device), dst.to(device))])
        times = torch.cat([self.last, t.to(device, torch.float64)])
        unique, inverse = torch.unique(keys, sorted=True, return_inverse=True)
        last = torch.full(unique.shape, float("-inf"), dtype=torch.float64, device=device)
        self.keys, self.last = unique, last.scatter_reduce(0, inverse, times, "amax")

    def lookup(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """Latest time of each pair (``src`` and ``dst`` broadcast), ``-inf`` for unseen pairs."""
        query = pair_keys(src, dst).to(self.keys.device)
        if self.keys.numel() == 0:
            return torch.full(query.shape, float("-inf"), dtype=torch.float64, device=query.device)
        index = torch.searchsorted(self.keys, query.reshape(-1)).clamp(max=self.keys.numel() - 1)
        hit = self.keys[index] == query.reshape(-1)
        found = torch.where(hit, self.last[index], float("-inf"))
        return found.reshape(query.shape)
