"""A link predictor: a TGAT or TGN encoder and a decoder."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from dgl_tgnn.config import ModelConfig
from dgl_tgnn.devices import to_device
from dgl_tgnn.events import EventBatch
from dgl_tgnn.nn import TGAT, TGN, DotDecoder, MLPDecoder, PairScorer
from dgl_tgnn.nn.blocks import HopBlock
from dgl_tgnn.pair_features import NUM_PAIR_FEATURES


class LinkModel(nn.Module):
    """An encoder (``TGAT`` or ``TGN``) that embeds (node, time) roots, and a decoder that scores pairs.

    With ``config.node_embedding > 0`` every node also has a learnable identity vector of that
    width, appended to its features; with ``config.pair_history > 0`` a :class:`PairScorer` adds a
    logit from :class:`~dgl_tgnn.pair_features.PairFeatures` of each scored pair (``pair_score``).

    Args:
        config: the model section of the run config.
        num_nodes: ``N`` (TGN's memory has one row per node).
        node_dim, edge_dim: widths of the node and event features (0 when there are none).
    """

    def __init__(self, config: ModelConfig, num_nodes: int, node_dim: int, edge_dim: int) -> None:
        super().__init__()
        c = config
        learnable_time = c.time_encoding == "learnable"
        self.node_embedding: nn.Embedding | None = None
        if c.node_embedding > 0:
            self.node_embedding = nn.Embedding(num_nodes, c.node_embedding)
            nn.init.normal_(self.node_embedding.weight, std=0.1)
            node_dim += c.node_embedding
        self.pair_scorer = PairScorer(NUM_PAIR_FEATURES) if c.pair_history > 0 else None
        if c.name == "tgat":
            self.encoder: nn.Module = TGAT(
                node_dim,
                edge_dim,
                c.time_dim,
                c.embed_dim,
                c.num_layers,
                c.num_heads,
                c.dropout,
                c.engine,
                learnable_time,
            )
        else:
            self.encoder = TGN(
                num_nodes,
                node_dim,
                edge_dim,
                memory_dim=c.memory_dim,
                time_dim=c.time_dim,
                embed_dim=c.embed_dim,
                num_layers=c.num_layers,
                num_heads=c.num_heads,
                dropout=c.dropout,
                message=c.message,
                aggregator=c.aggregator,
                updater=c.updater,
                engine=c.engine,
                learnable_time=learnable_time,
            )
        self.decoder: nn.Module = MLPDecoder(c.embed_dim) if c.decoder == "mlp" else DotDecoder()

    @property
    def has_memory(self) -> bool:
        return isinstance(self.encoder, TGN)

    def forward(
        self, blocks: list[HopBlock], node_feat: torch.Tensor, edge_feat: torch.Tensor
    ) -> torch.Tensor:
        """``[R0, embed_dim]`` embeddings of ``blocks[0]``'s roots."""
        if self.node_embedding is not None:
            node_feat = torch.cat([node_feat, self.node_embedding.weight], dim=1)
        return self.encoder(blocks, node_feat, edge_feat)

    def sharing_memory_update(self) -> contextlib.AbstractContextManager[None]:
        """A scope whose forward passes share TGN's memory update (``Memory.sharing_update``);
        TGAT has no memory: nothing to share."""
        if self.has_memory:
            return self.encoder.memory.sharing_update()
        return contextlib.nullcontext()

    def observe(self, batch: EventBatch, edge_feat: torch.Tensor) -> None:
        """After a batch: TGN persists its memory and stores the batch's messages (TGAT keeps no state).

        ``edge_feat [E, edge_dim]`` lives on the model's device; the batch is moved there.
        """
        self.observe_events(batch.src, batch.dst, batch.t, batch.eids, edge_feat)

    def observe_events(
        self,
        src: torch.Tensor,
        dst: torch.Tensor,
        t: torch.Tensor,
        eids: torch.Tensor,
        edge_feat: torch.Tensor,
    ) -> None:
        """``observe`` of events ``src``, ``dst``, ``t``, ``eids`` (``[B]`` each, moved to the device of
        ``edge_feat [E, edge_dim]``)."""
        if self.has_memory:
            device = edge_feat.device
            src, dst, t, eids = (to_device(x, device) for x in (src, dst, t, eids))
            self.encoder.update(src, dst, t, eids, edge_feat)

    def score(self, z_src: torch.Tensor, z_dst: torch.Tensor) -> torch.Tensor:
        """Link logits of ``z_src [..., d]`` with ``z_dst [..., d]`` (leading dims broadcast)."""
        return self.decoder(z_src, z_dst)

    def score_table(self, z_src: torch.Tensor, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` logits of ``z_src [B, d]`` with rows ``index [B, C]`` of ``table [U, d]``."""
        return self.decoder.score_table(z_src, table, index)

    def pair_score(self, features: torch.Tensor) -> torch.Tensor:
        """The pair logit of ``features [..., NUM_PAIR_FEATURES]`` (``[...]``), added to ``score``'s."""
        assert self.pair_scorer is not None
        return self.pair_scorer(features)
