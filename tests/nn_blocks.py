"""Random hop chains of ``TemporalBlock`` for the nn tests (the sampler is tested on its own)."""

from __future__ import annotations

import torch

from dgl_tgnn.sampling import TemporalBlock

# The tensor fields of a plain (not deduplicated) block, in constructor order.
BLOCK_TENSORS = ("root_nodes", "root_times", "nbr_nodes", "nbr_eids", "nbr_times", "mask")


def random_chain(
    num_roots: int,
    fanouts: list[int],
    num_nodes: int,
    num_events: int,
    seed: int,
    roots: torch.Tensor | None = None,
    times: torch.Tensor | None = None,
) -> list[TemporalBlock]:
    """A chain of ``len(fanouts)`` blocks: ~40% of slots empty, every 5th root without neighbours,
    padding roots (``-1``) in deeper hops wherever the hop above has an empty slot."""
    gen = torch.Generator().manual_seed(seed)
    if roots is None:
        roots = torch.randint(0, num_nodes, (num_roots,), generator=gen)
    if times is None:
        times = 100.0 + 50.0 * torch.rand(roots.shape[0], generator=gen, dtype=torch.float64)
    blocks = []
    for fanout in fanouts:
        count = roots.shape[0]
        mask = torch.rand(count, fanout, generator=gen) < 0.6
        mask[::5] = False
        mask[roots < 0] = False
        nbr_nodes = torch.where(mask, torch.randint(0, num_nodes, (count, fanout), generator=gen), -1)
        nbr_eids = torch.where(mask, torch.randint(0, num_events, (count, fanout), generator=gen), -1)
        gap = 1.0 + 40.0 * torch.rand(count, fanout, generator=gen, dtype=torch.float64)
        nbr_times = torch.where(mask, times[:, None] - gap, 0.0)
        blocks.append(TemporalBlock(roots, times, nbr_nodes, nbr_eids, nbr_times, mask))
        roots, times = nbr_nodes.flatten(), nbr_times.flatten()
    return blocks
