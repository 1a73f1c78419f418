"""Replicated TGN memory: every rank updates its copy of the memory with all ranks' events."""

from __future__ import annotations

import torch
import torch.distributed as dist

from dgl_tgnn.distributed.collectives import all_gather_rows, all_gather_sizes


def gather_events(
    src: torch.Tensor,
    dst: torch.Tensor,
    t: torch.Tensor,
    eids: torch.Tensor,
    group: dist.ProcessGroup | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """All ranks' events of one step, merged in ``(t, eid)`` order, the same on every rank.

    Each rank passes its share of a window of events; ``TGN.update(src, dst, t, eids, edge_feat)`` on
    every replica with the result then stores (and at the next update applies) the messages a single
    process stores from the whole window in ``(t, eid)`` order (the order of a chronological stream):
    the ``"last"`` aggregator breaks time ties by that order, ``"mean"`` sums in it.

    Args:
        src, dst: ``[B_r]`` int64 endpoints of this rank's events (``B_r`` may differ between ranks
            and may be 0).
        t: ``[B_r]`` event times, the same dtype on every rank (in the stream's time unit).
        eids: ``[B_r]`` int64 event ids (rows of ``edge_feat``), unique across ranks.
        group: the process group; None for the default one.

    Returns:
        ``(src, dst, t, eids)``, each ``[sum_r B_r]``, sorted by time, then by event id.
    """
    batch = src.shape[0]
    for name, x in (("dst", dst), ("t", t), ("eids", eids)):
        if x.shape != (batch,):
            raise ValueError(f"{name} must have the shape of src ({batch},), got {tuple(x.shape)}")
    sizes = all_gather_sizes([batch], src.device, group)[:, 0].tolist()
    columns = [torch.cat(all_gather_rows(x, group, sizes)) for x in (src, dst, t, eids)]
    all_src, all_dst, all_t, all_eids = columns
    order = torch.sort(all_eids, stable=True).indices
    order = order[torch.sort(all_t[order], stable=True).indices]
    return all_src[order], all_dst[order], all_t[order], all_eids[order]
