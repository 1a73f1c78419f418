"""TGN: node memory updated from past events, embedded by temporal graph attention."""

from __future__ import annotations

import torch
from torch import nn

from dgl_tgnn.nn.attention import gather_rows
from dgl_tgnn.nn.blocks import HopBlock
from dgl_tgnn.nn.memory import Memory, MemoryState
from dgl_tgnn.nn.tgat import TGAT, check_blocks, level_nodes


class TGN(nn.Module):
    """Temporal graph network (Rossi et al., 2020) with the raw-message store.

    A batch goes: ``forward`` (embeddings, with gradient to the memory modules through the messages
    of the *previous* batch), loss, backward, optimizer step, then ``update`` with the batch's events.
    The current batch's events reach the memory only at the next batch, so a prediction never sees
    its own events.

    The embedding of node ``v`` at time ``t`` is a ``TGAT`` over ``h^0(u) = [s_u || x_u]``, with ``s_u``
    the memory after applying the pending messages (see ``Memory``) and ``x_u`` the node features.

    Args:
        num_nodes: ``N``; node ids are ``0..N-1``.
        node_dim: width of the node features (may be 0).
        edge_dim: width of the edge features (may be 0).
        memory_dim: width of the memory.
        time_dim: width of every time encoding (messages and attention).
        embed_dim: width of the embeddings.
        num_layers: attention layers (= hop blocks per forward).
        num_heads, dropout, engine: as in ``TemporalAttention``.
        message, aggregator, updater: as in ``Memory``.
        learnable_time: train every time encoding (the paper) or keep them fixed.

    Forward:
        blocks: ``num_layers`` hop blocks (``blocks[i + 1]`` has one root per slot of ``blocks[i]``).
        node_feat: ``[N, node_dim]`` float32.
        edge_feat: ``[E, edge_dim]`` float32, indexed by event id.
        returns ``[R0, embed_dim]`` float32 embeddings of ``blocks[0].root_nodes`` at ``root_times``.
    """

    def __init__(
        self,
        num_nodes: int,
        node_dim: int,
        edge_dim: int,
        memory_dim: int = 100,
        time_dim: int = 100,
        embed_dim: int = 100,
        num_layers: int = 1,
        num_heads: int = 2,
        dropout: float = 0.1,
        message: str = "identity",
        aggregator: str = "last",
        updater: str = "gru",
        engine: str = "auto",
        learnable_time: bool = True,
    ) -> None:
        super().__init__()
        if node_dim < 0:
            raise ValueError(f"node_dim must be >= 0, got {node_dim}")
        self.node_dim = node_dim
        self.memory = Memory(
            num_nodes, memory_dim, edge_dim, time_dim, message, aggregator, updater, learnable_time
        )
        self.embedding = TGAT(
            memory_dim + node_dim,
            edge_dim,
            time_dim,
            embed_dim,
            num_layers,
            num_heads,
            dropout,
            engine,
            learnable_time,
        )

    def forward(
        self, blocks: list[HopBlock], node_feat: torch.Tensor, edge_feat: torch.Tensor
    ) -> torch.Tensor:
        check_blocks(blocks, len(self.embedding.layers))
        if node_feat.dim() != 2 or node_feat.shape[1] != self.node_dim:
            raise ValueError(f"node_feat must have shape [N, {self.node_dim}], got {tuple(node_feat.shape)}")
        updated = self.memory.pending_update()
        levels = [self.memory.read(ids, updated) for ids in level_nodes(blocks)]
        if self.node_dim > 0:
            levels = [
                torch.cat([memory, gather_rows(node_feat, ids)], dim=1)
                for memory, ids in zip(levels, level_nodes(blocks), strict=True)
            ]
        return self.embedding.embed(blocks, levels, edge_feat)

    def update(
        self,
        src: torch.Tensor,
        dst: torch.Tensor,
        t: torch.Tensor,
        eids: torch.Tensor,
        edge_feat: torch.Tensor,
    ) -> None:
        """After the optimizer step: persist (detached) the memory of the nodes with pending messages,
        as the last forward pass computed it, then store this batch's events as the pending messages.

        Args:
            src, dst: ``[B]`` int64 endpoints of the batch's events.
            t: ``[B]`` float times of the events.
            eids: ``[B]`` int64 event ids, rows of ``edge_feat``.
            edge_feat: ``[E, edge_dim]`` float32, indexed by event id.
        """
        if eids.shape != src.shape:
            raise ValueError(f"eids must have the shape of src {tuple(src.shape)}, got {tuple(eids.shape)}")
        self.memory.update(src, dst, t, edge_feat[eids])

    def reset_memory(self) -> None:
        """Zero memory and last-update times, drop pending messages (start of an epoch)."""
        self.memory.reset()

    def start_epoch(self) -> None:
        self.reset_memory()

    def backup_memory(self) -> MemoryState:
        """A copy of the memory and pending messages (e.g. before validation)."""
        return self.memory.backup()

    def restore_memory(self, state: MemoryState) -> None:
        """Return to a ``backup_memory()`` state."""
        self.memory.restore(state)
