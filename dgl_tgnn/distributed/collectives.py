"""``all_gather`` of tensors whose first dimension differs from rank to rank."""

from __future__ import annotations

import torch
import torch.distributed as dist


def all_gather_sizes(
    values: list[int], device: torch.device, group: dist.ProcessGroup | None = None
) -> torch.Tensor:
    """Every rank's ``values`` (the same count on each rank): ``[world_size, len(values)]`` int64 on
    ``device``, row ``r`` from group rank ``r``."""
    mine = torch.tensor(values, dtype=torch.int64, device=device)
    gathered = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(gathered, mine, group=group)
    return torch.stack(gathered).cpu()


def all_gather_rows(
    x: torch.Tensor, group: dist.ProcessGroup | None = None, sizes: list[int] | None = None
) -> list[torch.Tensor]:
    """Every rank's ``x`` ``[n_r, ...]`` (same trailing shape, dtype and device on all ranks; ``n_r``
    may differ, and may be 0): a list of ``world_size`` tensors, entry ``r`` from group rank ``r``.

    ``sizes``: every rank's ``n_r`` where the caller already knows them; else gathered first (one more
    collective). Rows are padded to the largest ``n_r`` for the ``all_gather`` and trimmed after.
    """
    if sizes is None:
        sizes = all_gather_sizes([x.shape[0]], x.device, group)[:, 0].tolist()
    rows = max(max(sizes), 1)  # at least one row: no collective on empty tensors
    padded = x.new_zeros((rows, *x.shape[1:]))
    padded[: x.shape[0]] = x
    gathered = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded.contiguous(), group=group)
    return [part[:n] for part, n in zip(gathered, sizes, strict=True)]
