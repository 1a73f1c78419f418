"""TGAT: a stack of temporal attention layers applied bottom-up over the sampler's hop blocks."""

from __future__ import annotations

import torch
from torch import nn

from dgl_tgnn.nn.attention import TemporalAttention, check_engine, gather_rows
from dgl_tgnn.nn.blocks import HopBlock


def check_blocks(blocks: list[HopBlock], num_layers: int) -> None:
    """Raise ValueError unless ``blocks`` is a hop chain of ``num_layers`` blocks.

    In a chain, ``blocks[i + 1]`` has one root per slot of ``blocks[i]``
    (``blocks[i + 1].root_nodes == blocks[i].nbr_nodes.flatten()``), or, when ``blocks[i].nbr_index``
    is set (a deduplicated chain), one root per distinct slot, which ``nbr_index`` points to.
    """
    if len(blocks) != num_layers:
        raise ValueError(f"blocks must hold one block per layer ({num_layers}), got {len(blocks)}")
    for i in range(len(blocks) - 1):
        index = blocks[i].nbr_index
        if index is not None:
            if index.shape != blocks[i].nbr_nodes.shape:
                raise ValueError(
                    f"blocks[{i}].nbr_index must have the shape of its nbr_nodes "
                    f"{tuple(blocks[i].nbr_nodes.shape)}, got {tuple(index.shape)}"
                )
            continue
        expected = blocks[i].num_roots * blocks[i].fanout
        if blocks[i + 1].num_roots != expected:
            raise ValueError(
                f"blocks[{i + 1}] must have one root per slot of blocks[{i}] ({expected}), "
                f"got {blocks[i + 1].num_roots}"
            )


def slot_rows(block: HopBlock, next_level: torch.Tensor) -> torch.Tensor:
    """Rows of ``next_level`` (one per root of the next hop) aligned with ``block``'s slots:
    ``[R * k, ...]``; through ``block.nbr_index`` when the chain is deduplicated."""
    if block.nbr_index is None:
        return next_level
    return gather_rows(next_level, block.nbr_index.flatten())


def level_nodes(blocks: list[HopBlock]) -> list[torch.Tensor]:
    """Node ids of each level of a hop chain: level ``i < L`` is ``blocks[i].root_nodes`` ``[R_i]``,
    level ``L`` is ``blocks[-1].nbr_nodes.flatten()`` ``[R_{L-1} * k]`` (``-1`` for empty slots)."""
    return [block.root_nodes for block in blocks] + [blocks[-1].nbr_nodes.flatten()]


class TGAT(nn.Module):
    """Temporal graph attention network (Xu et al., ICLR 2020).

    ``h^0(v, t)`` is the node feature; layer ``l`` computes
    ``h^l(v, t) = TemporalAttention_l(h^{l-1}(v, t), {h^{l-1}(u_j, t_j), e_j, t - t_j})``.
    With ``L`` layers and blocks ``0..L-1`` (``blocks[0]`` holds the ``R0`` roots), layer ``l``
    (from 1) runs on blocks ``0..L-l``: features are gathered once per level, and each level's
    embedding is computed once per layer (once per distinct root in a deduplicated chain).

    Args:
        node_dim: width of the node features (may be 0: no node features).
        edge_dim: width of the edge features (may be 0).
        time_dim: width of the time encodings.
        embed_dim: width of every layer's output.
        num_layers: number of attention layers (= number of hop blocks).
        num_heads, dropout, engine, learnable_time: as in ``TemporalAttention``.

    Forward:
        blocks: ``num_layers`` hop blocks (``blocks[i + 1]`` has one root per slot of ``blocks[i]``).
        node_feat: ``[N, node_dim]`` float32, indexed by node id.
        edge_feat: ``[E, edge_dim]`` float32, indexed by event id (``TemporalBlock.nbr_eids``).
        returns ``[R0, embed_dim]`` float32 embeddings of ``blocks[0].root_nodes`` at ``root_times``.
    """

    def __init__(
        self,
        node_dim: int,
        edge_dim: int,
        time_dim: int = 100,
        embed_dim: int = 100,
        num_layers: int = 2,
        num_heads: int = 2,
        dropout: float = 0.1,
        engine: str = "auto",
        learnable_time: bool = True,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        check_engine(engine)
        self.node_dim = node_dim
        self.edge_dim = edge_dim
        self.layers = nn.ModuleList(
            TemporalAttention(
                in_dim, edge_dim, time_dim, embed_dim, num_heads, dropout, engine, learnable_time
            )
            for in_dim in [node_dim] + [embed_dim] * (num_layers - 1)
        )

    def forward(
        self, blocks: list[HopBlock], node_feat: torch.Tensor, edge_feat: torch.Tensor
    ) -> torch.Tensor:
        check_blocks(blocks, len(self.layers))
        if node_feat.dim() != 2 or node_feat.shape[1] != self.node_dim:
            raise ValueError(f"node_feat must have shape [N, {self.node_dim}], got {tuple(node_feat.shape)}")
        levels = [gather_rows(node_feat, ids) for ids in level_nodes(blocks)]
        return self.embed(blocks, levels, edge_feat)

    def embed(
        self, blocks: list[HopBlock], levels: list[torch.Tensor], edge_feat: torch.Tensor
    ) -> torch.Tensor:
        """Run the layers on input features given per level.

        Args:
            blocks: a checked hop chain of ``num_layers`` blocks.
            levels: ``num_layers + 1`` tensors; ``levels[i]`` ``[R_i, node_dim]`` holds ``h^0`` of the
                nodes ``level_nodes(blocks)[i]``.
            edge_feat: ``[E, edge_dim]`` float32, indexed by event id.
        Returns ``[R0, embed_dim]``.
        """
        if edge_feat.dim() != 2 or edge_feat.shape[1] != self.edge_dim:
            raise ValueError(f"edge_feat must have shape [E, {self.edge_dim}], got {tuple(edge_feat.shape)}")
        slot_edges = [gather_rows(edge_feat, block.nbr_eids) for block in blocks]
        h = levels
        for depth, layer in enumerate(self.layers):
            h = [
                layer(blocks[i], h[i], slot_rows(blocks[i], h[i + 1]), slot_edges[i])
                for i in range(len(blocks) - depth)
            ]
        return h[0]
