"""A link predictor: the encoder of a registered model (``MODELS``), a decoder, and optional node
identities and pair scores."""

from __future__ import annotations

import contextlib
from typing import Protocol, cast

import torch
from torch import nn

from dgl_tgnn.config import ModelConfig
from dgl_tgnn.devices import to_device
from dgl_tgnn.events import EventBatch
from dgl_tgnn.models import ModelSpec
from dgl_tgnn.nn import DotDecoder, DotHead, MemoryState, MLPDecoder, PairScorer
from dgl_tgnn.nn.blocks import HopBlock
from dgl_tgnn.pair_features import NUM_PAIR_FEATURES
from dgl_tgnn.registry import MODELS


class EncoderMemory(Protocol):
    """What the training step and ``ModelPredictor`` use of a stateful encoder's ``memory`` (TGN's
    ``nn.Memory``, TPNet's ``nn.tpnet.WalkMatrices``): the last batch given to ``update`` is pending
    (read by the forward passes, not yet committed) until the next ``update``."""

    def sharing_update(self, keep: bool = False) -> contextlib.AbstractContextManager[None]:
        """A scope whose forward passes share the pending update's computation (with ``keep``, also
        one computed without autograd in an earlier scope, while the state is unchanged)."""

    def discard_pending(self) -> None:
        """Drops the pending batch without committing it."""

    def grow(self, num_nodes: int) -> None:
        """Rows for new nodes ``num_nodes..`` (which start empty)."""


class StatefulEncoder(Protocol):
    """An encoder that carries state from batch to batch (TGN's memory, TPNet's walk matrices): the
    training loop and the evaluation reset, back up and restore it, and feed it each batch's events
    after the batch (``update``: the batch becomes pending, see ``EncoderMemory``)."""

    memory: EncoderMemory

    def update(
        self,
        src: torch.Tensor,
        dst: torch.Tensor,
        t: torch.Tensor,
        eids: torch.Tensor,
        edge_feat: torch.Tensor,
    ) -> None:
        """Takes the events ``src``, ``dst``, ``t``, ``eids`` ``[B]`` (``edge_feat [E, edge_dim]``)."""

    def reset_memory(self) -> None: ...

    def start_epoch(self) -> None:
        """The start of a training epoch: ``reset_memory``, and whatever else the encoder renews."""

    def backup_memory(self) -> MemoryState: ...

    def restore_memory(self, state: MemoryState) -> None: ...


class PairEncoder(Protocol):
    """An encoder that scores (source, candidate) pairs itself (``ModelSpec.pairs``: TPNet, DyGFormer):
    the logit of a pair reads both endpoints' recent neighbours (one hop block each) and the encoder's
    state, so it is not a decoder of two node embeddings."""

    def pair_logits(
        self,
        src_block: HopBlock,
        cand_block: HopBlock,
        index: torch.Tensor,
        time: torch.Tensor,
        node_feat: torch.Tensor,
        edge_feat: torch.Tensor,
    ) -> torch.Tensor:
        """``[B, C]`` logits of ``src_block``'s ``B`` roots with rows ``index [B, C]`` of
        ``cand_block``'s roots, from neighbours and state strictly before ``time`` (0-dim float64,
        the call's reference time; ``node_feat [N, node_dim]``, ``edge_feat [E, edge_dim]``)."""


class LinkModel(nn.Module):
    """An encoder (the ``ModelSpec.encoder`` of ``config.name``) that embeds (node, time) roots, and
    a decoder that scores pairs; or, for a model that scores pairs itself (``scores_pairs``), its
    encoder's ``pair_logits`` and no decoder.

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
        self.node_embedding: nn.Embedding | None = None
        if c.node_embedding > 0:
            self.node_embedding = nn.Embedding(num_nodes, c.node_embedding)
            nn.init.normal_(self.node_embedding.weight, std=0.1)
            node_dim += c.node_embedding
        self.pair_scorer = PairScorer(NUM_PAIR_FEATURES) if c.pair_history > 0 else None
        spec: ModelSpec = MODELS[c.name]
        build = spec.encoder
        if build is None:
            raise ValueError(f"model {c.name!r} has no parameters: it is not a LinkModel")
        self.encoder = build(c, num_nodes, node_dim, edge_dim)
        # Declared by the model, not probed: a protocol's isinstance on Python >= 3.12 reads attributes
        # statically and misses a module's submodules (TGN's memory).
        self.has_memory: bool = spec.stateful
        self.scores_pairs: bool = spec.pairs
        self.decoder: nn.Module | None = None
        if not spec.pairs:
            self.decoder = MLPDecoder(c.embed_dim) if c.decoder == "mlp" else DotDecoder()
        self.dot_head: DotHead | None = None
        if c.dot_head > 0:
            with torch.random.fork_rng(devices=[]):  # the other draws come as without the head
                self.dot_head = DotHead(c.embed_dim)

    @property
    def stateful_encoder(self) -> StatefulEncoder:
        """The encoder, which carries state between batches (``has_memory`` must be True)."""
        assert self.has_memory
        return cast(StatefulEncoder, self.encoder)

    def forward(
        self, blocks: list[HopBlock], node_feat: torch.Tensor, edge_feat: torch.Tensor
    ) -> torch.Tensor:
        """``[R0, embed_dim]`` embeddings of ``blocks[0]``'s roots."""
        return self.encoder(blocks, self._node_features(node_feat), edge_feat)

    def _node_features(self, node_feat: torch.Tensor) -> torch.Tensor:
        """``node_feat [N, node_dim]`` with the identity vectors appended (with ``node_embedding``)."""
        if self.node_embedding is not None:
            node_feat = torch.cat([node_feat, self.node_embedding.weight], dim=1)
        return node_feat

    def pair_logits(
        self,
        src_block: HopBlock,
        cand_block: HopBlock,
        index: torch.Tensor,
        time: torch.Tensor,
        node_feat: torch.Tensor,
        edge_feat: torch.Tensor,
    ) -> torch.Tensor:
        """``[B, C]`` logits of a model that scores pairs (``PairEncoder.pair_logits``)."""
        assert self.scores_pairs
        encoder = cast(PairEncoder, self.encoder)
        return encoder.pair_logits(
            src_block, cand_block, index, time, self._node_features(node_feat), edge_feat
        )

    def sharing_memory_update(self, keep: bool = False) -> contextlib.AbstractContextManager[None]:
        """A scope whose forward passes share the memory update (``Memory.sharing_update``, ``keep``
        as there); an encoder without memory has nothing to share."""
        if self.has_memory:
            return self.stateful_encoder.memory.sharing_update(keep)
        return contextlib.nullcontext()

    def reset_memory(self) -> None:
        """Empties a stateful encoder's memory (TGN: each node at time 0, no pending messages);
        nothing to do without memory."""
        if self.has_memory:
            self.stateful_encoder.reset_memory()

    def start_epoch(self) -> None:
        """The start of a training epoch: a stateful encoder's memory emptied and what else it renews
        each epoch (TPNet: its random features); nothing to do without memory."""
        if self.has_memory:
            self.stateful_encoder.start_epoch()

    def backup_memory(self) -> MemoryState | None:
        """A copy of a stateful encoder's memory (for ``restore_memory``), or None without memory."""
        return self.stateful_encoder.backup_memory() if self.has_memory else None

    def restore_memory(self, state: MemoryState | None) -> None:
        """Restores a ``backup_memory``; None restores nothing (a model without memory, or a run that
        saved none)."""
        if state is not None:
            self.stateful_encoder.restore_memory(state)

    def observe(self, batch: EventBatch, edge_feat: torch.Tensor) -> None:
        """After a batch: a stateful encoder (TGN) persists its memory and stores the batch's messages.

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
            self.stateful_encoder.update(src, dst, t, eids, edge_feat)

    def score(self, z_src: torch.Tensor, z_dst: torch.Tensor) -> torch.Tensor:
        """Link logits of ``z_src [..., d]`` with ``z_dst [..., d]`` (leading dims broadcast; not for
        a model that scores pairs)."""
        assert self.decoder is not None
        return self.decoder(z_src, z_dst)

    def score_table(self, z_src: torch.Tensor, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` logits of ``z_src [B, d]`` with rows ``index [B, C]`` of ``table [U, d]``."""
        assert self.decoder is not None
        return self.decoder.score_table(z_src, table, index)

    def pair_score(self, features: torch.Tensor) -> torch.Tensor:
        """The pair logit of ``features [..., NUM_PAIR_FEATURES]`` (``[...]``), added to ``score``'s."""
        assert self.pair_scorer is not None
        return self.pair_scorer(features)
