"""The training step of one batch: on a CPU op by op, on a GPU as a device step replayed from CUDA
graphs for full batches, which hold TGN's pending messages in their buffers.

One training batch (events ``[i, i + B)`` of the training stream):

1. negatives ``[B, n]`` from the configured sampler;
2. embeddings of sources, destinations and negatives at the events' times (neighbours from the
   training events only, strictly before each root, see ``Neighbourhoods`` for ``visible_batch``);
   with ``topk`` negatives the queries are the sources' embeddings, detached: on CPU those of this
   pass (sources and destinations are embedded first, the negatives they pick next), on a GPU
   those of a no-gradient pass before it (fewer kernel launches);
3. decoder logits, loss, backward, optimizer step; the embeddings feed the ``topk`` table;
4. TGN: the batch's events become the memory's pending messages.

A model that scores pairs itself (``LinkModel.scores_pairs``: TPNet) takes one eager path on CPU and
GPU alike (``_train_pair_batch``): its logits of each event's destination and negatives come from
``PairLogits`` (neighbours and state before the batch under TGB's protocol), its node-level embeddings
serve the hard negatives only, and the batch's events then update its state as TGN's memory is.

The neighbour sampler draws keyed by each root's (node, time) and one round per batch
(``Neighbourhoods(keyed=True)``), so a batch's draws do not depend on how its roots are split into
calls; ``parallel.ParallelStep`` splits a batch across processes and draws what this step draws.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from dgl_tgnn.config import RunConfig
from dgl_tgnn.cuda_graph import GraphedStep
from dgl_tgnn.devices import to_device
from dgl_tgnn.events import EventBatch
from dgl_tgnn.link import LinkModel
from dgl_tgnn.losses import link_loss
from dgl_tgnn.negatives import NegativeSampler, SamplerBuilder, SamplerInputs
from dgl_tgnn.neighbourhoods import Embedder, Neighbourhoods, PairLogits
from dgl_tgnn.nn.memory import RawMessages
from dgl_tgnn.pair_features import PairFeatures
from dgl_tgnn.registry import NEGATIVES
from dgl_tgnn.training.build import RunData


class TrainingStep:
    """Trains the model on one batch (``step(batch)``), owning what the batches share: the
    negative sampler, the embedder, the pair features, the CUDA graphs and their buffers of TGN's
    pending messages.

    Args:
        config: the run config (validated).
        data: the run's events and features.
        model, optimizer: what is trained, on ``device``.
        neighbourhoods: the neighbour sampler of the training graph.
        device: the run's device.
        cuda_graph: on a GPU, replay the training step of full batches from a CUDA graph when the
            neighbour sampler allows it (``Neighbourhoods.replayable``: no deduplication, the
            default on a GPU); same results as the step run op by op (tests/test_cuda_graph.py).
    """

    def __init__(
        self,
        config: RunConfig,
        data: RunData,
        model: LinkModel,
        optimizer: torch.optim.Optimizer,
        neighbourhoods: Neighbourhoods,
        device: torch.device,
        *,
        cuda_graph: bool,
    ) -> None:
        c = config
        self.config, self.device, self.tgb = config, device, data.tgb
        self.model, self.optimizer, self.neighbourhoods = model, optimizer, neighbourhoods
        self.edge_feat = data.edge_feat
        self.pair_features = (
            PairFeatures(data.train_graph, c.model.pair_history, device, visible_batch=c.train.visible_batch)
            if c.model.pair_history
            else None
        )
        self.embedder = Embedder(model, neighbourhoods, data.node_feat, data.train_edge_feat)
        self.pair_logits = (
            PairLogits(model, neighbourhoods, data.node_feat, data.train_edge_feat)
            if model.scores_pairs
            else None
        )
        inputs = SamplerInputs(
            data.train_candidates,
            data.streams["train"],
            data.dataset.num_nodes,
            c.negatives,
            c.train.seed,
            embed=self._embed_candidates,
            score=lambda queries, table: model.score(queries[:, None, :], table[None, :, :]),
        )
        build: SamplerBuilder = NEGATIVES[c.negatives.kind]
        self.negatives: NegativeSampler = build(inputs)
        # CUDA graphs: the training step, and with topk negatives the query pass and the table refresh.
        self.graphed: GraphedStep | None = None
        self.graphed_queries: GraphedStep | None = None
        self.graphed_refresh: GraphedStep | None = None
        self._pool_on_device: torch.Tensor | None = None  # the refresh graph's copy of the pool
        # (Pair features find each batch's distinct candidates: a synchronisation, so no graph.)
        if (
            cuda_graph
            and self.device.type == "cuda"
            and neighbourhoods.replayable
            and not self.pair_features
            and not model.scores_pairs
        ):
            self.graphed = GraphedStep(self._graph_step)
            draws = self.negatives.device_draws()
            if draws is not None:
                generator = draws.generator_on(self.device)
                self.graphed_queries = GraphedStep(self._query_step, generators=(generator,))
            if self.negatives.observes:
                self._pool_on_device = self.negatives.candidates.to(self.device)
                self.graphed_refresh = GraphedStep(self._refresh_step)
        self._pending_at: RawMessages | None = None

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        """Within a training epoch: no gradient and no dropout, then back to training mode."""
        self.model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.model.train()

    def _embed_candidates(self, nodes: torch.Tensor, time_s: float) -> torch.Tensor:
        """The topk table refresh: embeddings of ``nodes`` at ``time_s``; replayed from a CUDA graph
        for the whole pool within a graphed batch (TGN: pending messages in the graph's buffers)."""
        if self.graphed_refresh is not None and nodes is self.negatives.candidates and self._pending_kept():
            time_bits = torch.tensor([time_s], dtype=torch.float64).view(torch.int64).pin_memory()
            (table,) = self._replay(self.graphed_refresh, time_bits, nodes.shape[0])
            return table.clone()  # the graph's table is overwritten by the next replay
        with self._inference():
            return self.embedder.at(nodes, time_s)

    def _refresh_step(self, inputs: torch.Tensor) -> tuple[torch.Tensor]:
        """``_embed_candidates`` of the whole pool as a CUDA graph holds it: ``inputs`` ``[1]`` int64,
        the bits of the time (float64 seconds)."""
        t = inputs.view(torch.float64)
        nodes = self._pool_on_device
        assert nodes is not None
        with self._inference():
            return (self.embedder(nodes, t.expand(nodes.shape[0]), t[0]),)

    def _query_step(self, events: torch.Tensor) -> tuple[torch.Tensor]:
        """The topk query pass and the draws as a CUDA graph holds them: ``events`` ``[4 * B]`` int64,
        ``src | dst | eids | t`` (``t`` as the bits of float64 seconds); returns the negatives
        ``[B, n]`` (``TopKNegatives.draw_on_device``)."""
        draws = self.negatives.device_draws()
        assert draws is not None
        size = events.shape[0] // 4
        src, dst, t = events[:size], events[size : 2 * size], events[3 * size :].view(torch.float64)
        with self._inference():
            queries = self.embedder(src, t, t[0])
        return (draws.draw_on_device(dst, queries),)

    def _replay(self, graphed: GraphedStep, inputs: torch.Tensor, roots: int) -> tuple[torch.Tensor, ...]:
        """``graphed(inputs)``; a replay counts the sampler calls that embedding ``roots`` roots makes."""
        replay = graphed.captured
        outputs = graphed(inputs)
        if replay:  # the sampler was not called from Python
            self.neighbourhoods.count_replay(-(-roots // self.embedder.chunk))
        return outputs

    def _pending_kept(self) -> bool:
        """True without memory, or when TGN's pending messages are in the CUDA graphs' buffers."""
        if not self.model.has_memory:
            return True
        pending = self.model.encoder.memory.pending
        return pending is not None and pending is self._pending_at

    def __call__(self, batch: EventBatch) -> torch.Tensor:
        """Trains on ``batch`` (see the module docstring); returns its loss (0-dim, detached, on the
        device: read it without a synchronisation per batch)."""
        self.neighbourhoods.next_round()
        if self.pair_logits is not None:
            return self._train_pair_batch(batch)
        if self.device.type == "cuda":
            return self._train_batch_cuda(batch)
        size, n = len(batch), self.negatives.num_negatives
        t0 = float(batch.t[0])
        # TGB's protocol: every root embedded at the batch's start, as the predictor scores a batch.
        times = torch.full_like(batch.t, t0) if self.tgb else batch.t
        if self.negatives.wants_queries:
            # The queries for the hard negatives are the sources' embeddings of this very pass
            # (detached): sources and destinations are embedded first, the negatives they pick next.
            with self.model.sharing_memory_update():
                z_pos = self.embedder(torch.cat([batch.src, batch.dst]), torch.cat([times, times]), t0)
                neg = self.negatives.sample(batch, z_pos[:size].detach())
                z = torch.cat([z_pos, self.embedder(neg.flatten(), times.repeat_interleave(n), t0)])
        else:
            neg = self.negatives.sample(batch)
            roots = torch.cat([batch.src, batch.dst, neg.flatten()])
            z = self.embedder(roots, torch.cat([times, times, times.repeat_interleave(n)]), t0)
        loss = self._optimize(z, size, n, self._pair_logits(batch.src, batch.t, batch.dst, neg, batch.t[0]))
        if self.negatives.observes:
            self.negatives.observe(torch.cat([batch.src, batch.dst, neg.flatten()]), z.detach())
        self.model.observe(batch, self.edge_feat)
        return loss.detach()

    def _train_pair_batch(self, batch: EventBatch) -> torch.Tensor:
        """The training step of a model that scores pairs itself (module docstring); its loss (0-dim,
        detached, on the device)."""
        assert self.pair_logits is not None
        n = self.negatives.num_negatives
        t0 = float(batch.t[0])
        times = torch.full_like(batch.t, t0) if self.tgb else batch.t
        queries = None
        if self.negatives.wants_queries:  # node-level embeddings (TPNet: its walk projections)
            with self._inference():
                queries = self.embedder(batch.src, times, t0)
        neg = self.negatives.sample(batch, queries)
        candidates = torch.cat([batch.dst.to(neg.device)[:, None], neg], dim=1)  # [B, 1 + n]
        # the sources at their own times with visible_batch, as the predictor scores them
        src_times = batch.t if self.config.train.visible_batch else times
        logits = self.pair_logits(batch.src, src_times, t0, candidates)
        pair = self._pair_logits(batch.src, batch.t, batch.dst, neg, batch.t[0])
        if pair is not None:
            logits = logits + pair
        loss = link_loss(self.config.train.loss, logits[:, 0], logits[:, 1:], self.config.train.temperature)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.negatives.observes:
            roots = torch.cat([batch.src, batch.dst, neg.flatten().to(batch.src.device)])
            with self._inference():
                z = self.embedder(roots, torch.cat([times, times, times.repeat_interleave(n)]), t0)
            self.negatives.observe(roots.to(z.device), z)
        self.model.observe(batch, self.edge_feat)
        return loss.detach()

    def _pair_logits(
        self, src: torch.Tensor, t: torch.Tensor, dst: torch.Tensor, neg: torch.Tensor, t_ref: torch.Tensor
    ) -> torch.Tensor | None:
        """``[B, 1 + n]`` pair logits of events ``src``, ``dst``, ``t`` ``[B]`` with their destination
        and negatives ``neg [B, n]``, from the training events before ``t_ref`` (0-dim float64, the
        start of the batch; of the whole window where ``src`` is a process's share), or None without
        pair features."""
        if self.pair_features is None:
            return None
        candidates = torch.cat([dst.to(neg.device)[:, None], neg.reshape(dst.shape[0], -1)], dim=1)
        return self.model.pair_score(self.pair_features(src, t, t_ref, candidates))

    def _optimize(self, z: torch.Tensor, size: int, n: int, pair: torch.Tensor | None = None) -> torch.Tensor:
        """``_loss``, backward pass and optimizer step; returns the loss (a 0-dim tensor)."""
        loss = self._loss(z, size, n, pair)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss

    def _loss(self, z: torch.Tensor, size: int, n: int, pair: torch.Tensor | None = None) -> torch.Tensor:
        """Loss of embeddings ``z`` ``[(2 + n) * size, d]`` (sources, destinations, then ``n``
        negatives per event) plus pair logits ``pair [size, 1 + n]`` when given (a 0-dim tensor)."""
        z_src, z_dst, z_neg = z[:size], z[size : 2 * size], z[2 * size :]
        pos_logits = self.model.score(z_src, z_dst)
        neg_logits = self.model.score(z_src[:, None, :], z_neg.reshape(size, n, -1))
        if pair is not None:
            pos_logits, neg_logits = pos_logits + pair[:, 0], neg_logits + pair[:, 1:]
        loss = link_loss(self.config.train.loss, pos_logits, neg_logits, self.config.train.temperature)
        head = self.model.dot_head
        if head is not None:  # model.dot_head: the retrieval head learns from detached embeddings
            z_src, z_dst, z_neg = z_src.detach(), z_dst.detach(), z_neg.detach()
            pos, neg = head(z_src, z_dst), head(z_src[:, None, :], z_neg.reshape(size, n, -1))
            aux = link_loss(self.config.train.loss, pos, neg, self.config.train.temperature)
            loss = loss + self.config.model.dot_head * aux
        return loss

    def _train_batch_cuda(self, batch: EventBatch) -> torch.Tensor:
        """A training batch on a GPU: the negatives (topk ones drawn on the GPU, within the query
        pass's CUDA graph for full batches), then the device step (``_device_step``), replayed from
        a CUDA graph for full batches (see ``_graphable``)."""
        size, n = len(batch), self.negatives.num_negatives
        graphable = self._graphable(size)
        # topk: the queries are the sources' embeddings of a no-gradient pass, and the negatives
        # are drawn on the GPU (``_query_step``; a training pass split in two measured slower).
        # The table refresh, when due, comes first, graphed or not, so that the
        # sampler's calls come in one order and uniform neighbours are drawn alike.
        draws = self.negatives.device_draws()
        if self.negatives.wants_queries and draws is not None:
            if graphable:  # (TGN: the pending messages into the graphs' buffers, for the refresh too)
                self._keep_pending(size)
            draws.begin_batch(batch)
            # src | dst | eids | the bits of t (float64), in one transfer, for both passes
            events = torch.cat([batch.src, batch.dst, batch.eids, batch.t.view(torch.int64)])
            events = to_device(events, self.device)
            if graphable:
                assert self.graphed_queries is not None
                (neg,) = self._replay(self.graphed_queries, events, size)
            else:
                (neg,) = self._query_step(events)
            inputs = torch.cat([events[: 3 * size], neg.flatten(), events[3 * size :]])
        else:
            queries = None
            if self.negatives.wants_queries:
                with self._inference():
                    queries = self.embedder(batch.src, batch.t, float(batch.t[0]))
            neg = self.negatives.sample(batch, queries)  # on the host
            host = torch.cat([batch.src, batch.dst, batch.eids, neg.flatten(), batch.t.view(torch.int64)])
            inputs = to_device(host, self.device)
        # inputs: the step's src | dst | eids | neg | the bits of t (float64)
        if graphable:
            assert self.graphed is not None
            self._keep_pending(size)
            loss, z = self._replay(self.graphed, inputs, (2 + n) * size)
            loss = loss.clone()  # the graph's loss is overwritten by the next replay
        else:
            loss, z = self._device_step(inputs, size)
        if self.negatives.observes:  # the batch's roots: src | dst | neg of inputs
            self.negatives.observe(torch.cat([inputs[: 2 * size], inputs[3 * size : (3 + n) * size]]), z)
        return loss

    def _device_step(self, inputs: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The training step of a batch of ``size`` events on the GPU, from ``inputs``
        ``[(4 + n) * size]`` int64 on the device (``src | dst | eids | neg | t``, ``neg`` row-major
        ``[size, n]``, ``t`` as the bits of float64 seconds): embeddings, loss, backward pass,
        optimizer step, TGN's memory update; no host synchronisation. Returns the loss (0-dim) and
        the embeddings ``[(2 + n) * size, d]``, both detached."""
        n = inputs.shape[0] // size - 4
        src, dst, eids = inputs[:size], inputs[size : 2 * size], inputs[2 * size : 3 * size]
        neg = inputs[3 * size : (3 + n) * size]
        t = inputs[(3 + n) * size :].view(torch.float64)
        roots = torch.cat([src, dst, neg])
        at = t[:1].expand(size) if self.tgb else t  # TGB's protocol: roots at the batch's start
        times = torch.cat([at, at, at[:, None].expand(size, n).flatten()])
        z = self.embedder(roots, times, t[0])
        loss = self._optimize(z, size, n, self._pair_logits(src, t, dst, neg.reshape(size, n), t[0]))
        self.model.observe_events(src, dst, t, eids, self.edge_feat)
        return loss.detach(), z.detach()

    def _graph_step(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``_device_step`` of a full batch as the CUDA graph holds it: TGN's next pending messages
        are written into the buffers the graph reads them from."""
        size = self.config.train.batch_size
        out = self._device_step(inputs, size)
        self._keep_pending(size)
        return out

    def _graphable(self, size: int) -> bool:
        """Whether this batch's step runs as the CUDA graph: a full batch, a sampler that may be
        replayed, and for TGN pending messages of a full batch in the per-message layout (not at an
        epoch's first batch)."""
        if self.graphed is None or size != self.config.train.batch_size:
            return False
        if not self.model.has_memory:
            return True
        pending = self.model.encoder.memory.pending
        return pending is not None and pending.row is not None and pending.node.shape[0] == 2 * size

    def _pending_buffers(self, size: int) -> RawMessages:
        """Where the CUDA graphs keep TGN's pending messages (``2 * size`` rows, made once from the
        current ones)."""
        if self._pending_at is None:
            pending = self.model.encoder.memory.pending
            assert pending is not None and pending.node.shape[0] == 2 * size
            self._pending_at = pending.clone()
        return self._pending_at

    def _keep_pending(self, size: int) -> None:
        """Before a graphed pass of a batch of ``size`` events: TGN's pending messages into the
        graphs' buffers (``Memory.keep_pending_in``)."""
        if self.model.has_memory:
            self.model.encoder.memory.keep_pending_in(self._pending_buffers(size))
