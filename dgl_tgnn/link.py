"""A link predictor (TGAT or TGN encoder + decoder) and the sampled neighbourhoods it embeds from."""

from __future__ import annotations

import contextlib
import dataclasses
import time

import torch
from torch import nn

from dgl_tgnn.config import ModelConfig
from dgl_tgnn.devices import to_device
from dgl_tgnn.events import EventBatch
from dgl_tgnn.graph import TemporalGraph
from dgl_tgnn.nn import TGAT, TGN, DotDecoder, DotHead, MLPDecoder, PairScorer
from dgl_tgnn.pair_features import NUM_PAIR_FEATURES
from dgl_tgnn.sampling import TemporalBlock, TemporalSampler


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
        self.dot_head: DotHead | None = None
        if c.dot_head > 0:
            with torch.random.fork_rng(devices=[]):  # the other draws come as without the head
                self.dot_head = DotHead(c.embed_dim)

    @property
    def has_memory(self) -> bool:
        return isinstance(self.encoder, TGN)

    def forward(
        self, blocks: list[TemporalBlock], node_feat: torch.Tensor, edge_feat: torch.Tensor
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


class Neighbourhoods:
    """Samples the hop blocks of roots from one ``TemporalGraph`` and times it.

    With ``visible_batch`` (TGN's original code, TGLite, TGM) a root at time ``t`` sees every event
    strictly before ``t``, earlier events of its own batch included. Without it, neighbours are
    drawn strictly before the batch's first event time ``batch_start`` while the roots keep their
    own times for the time encoding (the graph as it was before the batch was inserted).

    Args:
        graph: the events neighbours are drawn from.
        fanouts: neighbours per hop.
        strategy: ``"uniform"`` or ``"recent"``.
        seed: seed of the sampler (uniform strategy).
        threads: sampler threads (None: its default).
        visible_batch: see above.
        device: where the blocks are returned.
        dedup: deduplicate the roots of deeper hops (``TemporalSampler(dedup=True)``).
    """

    def __init__(
        self,
        graph: TemporalGraph,
        fanouts: list[int],
        strategy: str,
        seed: int,
        threads: int | None,
        visible_batch: bool,
        device: torch.device,
        *,
        dedup: bool = False,
    ) -> None:
        self.sampler = TemporalSampler(
            graph, fanouts=fanouts, strategy=strategy, seed=seed, num_threads=threads, dedup=dedup
        )
        self.visible_batch = visible_batch
        self.device = device
        self.seconds = 0.0

    def __call__(
        self, nodes: torch.Tensor, times: torch.Tensor, batch_start: float | torch.Tensor
    ) -> list[TemporalBlock]:
        """Blocks of roots ``nodes [R]`` int64 at ``times [R]`` float64 (``>= batch_start``, seconds:
        a float, or a 0-dim float64 tensor on ``device``, which a CUDA graph reads at each replay)."""
        began = time.perf_counter()
        # The sampler runs on the model's device (on a GPU without reading back its input check, one
        # synchronisation: the roots are valid node ids and finite times by construction).
        nodes, times = to_device(nodes, self.device), to_device(times, self.device)
        if self.visible_batch:
            blocks = self.sampler.sample(nodes, times, check=False)
        else:
            if isinstance(batch_start, torch.Tensor):
                start = batch_start.expand(times.shape).contiguous()
            else:
                start = torch.full_like(times, batch_start)
            blocks = self.sampler.sample(nodes, start, check=False)
            blocks[0] = dataclasses.replace(blocks[0], root_times=times)
        self.seconds += time.perf_counter() - began
        return blocks

    @property
    def replayable(self) -> bool:
        """True when a captured call may be replayed for other roots: nothing synchronises (no
        deduplication). Uniform draws too: on a GPU the kernels read the call number there."""
        return not self.sampler.dedup

    def count_replay(self, calls: int) -> None:
        """Count the sampler calls a replayed CUDA graph made, as ``state_dict`` records them."""
        self.sampler.count_replayed(calls)

    def state_dict(self) -> dict[str, int]:
        """The sampler's call counter: its draws are a function of (seed, call number)."""
        return {"calls": self.sampler.calls}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.calls = state["calls"]
