"""Temporal neighbourhoods: ``TemporalBlock`` (one hop, dense ``[R, k]``) and ``TemporalSampler``."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TemporalBlock:
    """One hop of sampled temporal neighbourhoods, dense with ``k`` slots per root.

    Attributes:
        root_nodes: ``[R]`` int64 node ids (``-1`` for padding roots of deeper hops).
        root_times: ``[R]`` float64 times at which the roots are embedded.
        nbr_nodes: ``[R, k]`` int64 neighbour ids, ``-1`` where a slot is empty.
        nbr_eids: ``[R, k]`` int64 event ids (positions in the graph's input arrays), ``-1`` where empty.
        nbr_times: ``[R, k]`` float64 times of the neighbours' events (``0`` where empty).
        mask: ``[R, k]`` bool, True where a slot holds a neighbour.
    """

    root_nodes: torch.Tensor
    root_times: torch.Tensor
    nbr_nodes: torch.Tensor
    nbr_eids: torch.Tensor
    nbr_times: torch.Tensor
    mask: torch.Tensor

    @property
    def num_roots(self) -> int:
        return int(self.nbr_nodes.shape[0])

    @property
    def fanout(self) -> int:
        return int(self.nbr_nodes.shape[1])

    @property
    def dt(self) -> torch.Tensor:
        """``[R, k]`` float64 ``root_time - event_time`` (``>= 0``), ``0`` where empty."""
        return torch.where(self.mask, self.root_times[:, None] - self.nbr_times, 0.0)

    def to_dgl(self):  # noqa: ANN201 (returns dgl.DGLBlock; DGL is imported lazily)
        """This hop as a DGL block.

        dst nodes are the ``R`` roots; src nodes are the ``R`` roots followed by the valid
        neighbours in row-major order of ``mask`` (so src node ``R + j`` is the ``j``-th True of
        ``mask.flatten()``). One edge per valid neighbour, from its src node to its root.

        srcdata: ``nid`` int64, ``ts`` float64 (root time for roots, event time for neighbours).
        dstdata: ``nid``, ``ts`` of the roots. edata: ``eid`` int64, ``dt`` float64 ``>= 0``.
        """
        from dgl_tgnn._dgl import dgl

        num_roots = self.num_roots
        rows, cols = self.mask.nonzero(as_tuple=True)
        num_valid = int(rows.shape[0])
        src = torch.arange(num_roots, num_roots + num_valid, device=rows.device)
        block = dgl.create_block(
            (src, rows), num_src_nodes=num_roots + num_valid, num_dst_nodes=num_roots
        )
        block.srcdata["nid"] = torch.cat([self.root_nodes, self.nbr_nodes[rows, cols]])
        block.srcdata["ts"] = torch.cat([self.root_times, self.nbr_times[rows, cols]])
        block.dstdata["nid"] = self.root_nodes
        block.dstdata["ts"] = self.root_times
        block.edata["eid"] = self.nbr_eids[rows, cols]
        block.edata["dt"] = self.root_times[rows] - self.nbr_times[rows, cols]
        return block


class TemporalSampler:
    def __init__(self, *args, **kwargs) -> None:
        raise NotImplementedError("TemporalSampler is being written")
