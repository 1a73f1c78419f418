"""``LinkPredictor`` of a trained model (TGAT, TGN, TPNet): a graph of the observed events, the
model's state (TGN's memory, TPNet's walk matrices) carried through them, and scores from the model's
embeddings, decoder and pair features, or from its own pair scores (``LinkModel.scores_pairs``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dgl_tgnn.config import RunConfig, config_from_dict
from dgl_tgnn.data import TemporalDataset
from dgl_tgnn.devices import dedup_hops, features_on, to_device
from dgl_tgnn.graph import TemporalGraph
from dgl_tgnn.link import LinkModel
from dgl_tgnn.neighbourhoods import Neighbourhoods, PairLogits
from dgl_tgnn.node_ids import NodeIds
from dgl_tgnn.pair_features import NUM_PAIR_FEATURES, PairFeatures
from dgl_tgnn.predictor import LinkPredictor, exclusion_matrix, stage
from dgl_tgnn.topk import topk_dot


@dataclass(frozen=True)
class _PoolKeys:
    """The retrieval keys of a candidate pool (``ModelPredictor._pool_keys``).

    Attributes:
        pool: ``[C]`` int64 node rows of the pool (CPU), what the keys were built for: the tensor
            ``LinkPredictor._pool`` made (the predictor's own, never written to).
        rows: ``[C]`` int64, ``pool`` on the model's device (stage 2 gathers the shortlist's node
            rows there; ``pool`` itself on a CPU).
        events: the observed events before the keys' time (those the keys see).
        keys: ``[C, d]`` float32, contiguous: the pool's embeddings at that time (a dot decoder's),
            or ``model.dot_head.key`` of them.
        position: ``[capacity]`` int64, each node row's pool position (``-1``: outside the pool).
    """

    pool: torch.Tensor
    rows: torch.Tensor
    events: int
    keys: torch.Tensor
    position: torch.Tensor


class ModelPredictor(LinkPredictor):
    """Scores with ``model`` from the events observed so far.

    ``score(src, t, candidates)`` embeds every source and candidate of the call alike, at the
    call's earliest time ``t_ref`` (neighbours and TGN's memory: the observed events); each row's own
    time enters through the pair features (time since the pair's and the candidate's latest events).
    With ``train.visible_batch`` (``visible_batch``) the pair features, and a pair-scoring model's
    sources, read each source's observed events up to its own time: earlier events of the call's
    batch, observed before it, count, as they do for neighbours in training.

    Args:
        model: the trained link model (kept in eval mode).
        config: the run config (sampling, batch size of memory updates, seed).
        src, dst: ``[E]`` int64 numpy arrays, the dataset's stream (``reset``).
        t: ``[E]`` float64 numpy times of the stream, in the model's units (``origin`` subtracted).
        node_feat: ``[N, node_dim]`` float32 on ``device``.
        edge_feat: ``[E, edge_dim]`` float32 features of the stream's events.
        origin: added to the model's times to give the user's (``score`` and ``observe`` take the
            user's times).
    """

    def __init__(
        self,
        model: LinkModel,
        config: RunConfig,
        src: np.ndarray,
        dst: np.ndarray,
        t: np.ndarray,
        node_feat: torch.Tensor,
        edge_feat: torch.Tensor,
        device: torch.device,
        origin: float = 0.0,
        dedup: bool = False,
    ) -> None:
        super().__init__(src, dst, t)
        self.model, self.config, self.device, self.origin = model, config, device, origin
        self.node_feat, self.stream_edge_feat = node_feat, edge_feat
        self.capacity = int(node_feat.shape[0])  # node rows of model, graph and memory (doubling)
        self.node_ids = NodeIds(None, self.capacity)
        self.dedup = dedup
        self.visible_batch = config.train.visible_batch
        self.clear()

    @classmethod
    def from_run(
        cls, run_dir: Path, config: RunConfig, dataset: TemporalDataset, device: torch.device
    ) -> ModelPredictor:
        from dgl_tgnn.train import load_best

        widths = [0 if a is None else a.shape[1] for a in (dataset.node_feat, dataset.edge_feat)]
        model = LinkModel(config.model, dataset.num_nodes, *widths)
        model.load_state_dict(load_best(run_dir)["model"])
        model.eval()  # the predictor's own model: eval mode for good, no switch per query
        return cls.from_model(model, config, dataset, device)

    @classmethod
    def from_model(
        cls, model: LinkModel, config: RunConfig, dataset: TemporalDataset, device: torch.device
    ) -> ModelPredictor:
        """The predictor of ``model`` (trained on ``dataset`` with ``config``; moved to ``device``),
        with the dataset as its stream and nothing observed (TGN's memory emptied)."""
        node_feat = features_on(dataset.node_feat, dataset.num_nodes, device)
        edge_feat = features_on(dataset.edge_feat, dataset.num_events, device)
        model.to(device)
        origin = float(dataset.t[0])
        return cls(
            model,
            config,
            dataset.src,
            dataset.dst,
            dataset.t - origin,
            node_feat,
            edge_feat,
            device,
            origin,
            dedup_hops(config.model.dedup, device),
        )

    @property
    def edge_dim(self) -> int:
        return int(self.stream_edge_feat.shape[1])

    @property
    def has_memory(self) -> bool:
        return self.model.has_memory

    def clear(self) -> None:
        empty = torch.empty(0, dtype=torch.int64)
        times = torch.empty(0, dtype=torch.float64)
        self.graph = TemporalGraph(empty, empty, times, num_nodes=self.capacity)
        self._feat_rows = self.stream_edge_feat[:0]  # grows by doubling; edge_feat is its prefix
        self.edge_feat = self._feat_rows
        self._sample_from(self.graph, calls=0)
        self.model.reset_memory()
        self._keys: _PoolKeys | None = None  # stage 1's pool keys (_pool_keys), dropped on changes
        self.memory_events = 0  # TGN's memory holds the first memory_events observed events,
        self.applied = 0  # those before `applied` for good, the rest pending

    def _sample_from(self, graph: TemporalGraph, calls: int) -> None:
        """Neighbours and pair features from ``graph``, the sampler at its ``calls``-th call."""
        self.graph = graph
        c = self.config
        self.neighbourhoods = Neighbourhoods(
            self.graph,
            c.model.fanouts,
            c.model.strategy,
            c.eval.seed,
            c.train.threads,
            True,
            self.device,
            dedup=self.dedup,
        )
        self.neighbourhoods.load_state_dict({"calls": calls})
        self.pair_features = (
            PairFeatures(self.graph, c.model.pair_history, self.device, visible_batch=c.train.visible_batch)
            if c.model.pair_history
            else None
        )

    def grow(self, num_nodes: int) -> None:
        """Room for ``num_nodes`` rows (capacity doubling): zero node features, identity vectors and
        memory for the new nodes, and a graph rebuilt with the new node count."""
        if num_nodes <= self.capacity:
            return
        capacity = max(num_nodes, 2 * self.capacity)
        extra = capacity - self.capacity
        width = self.node_feat.shape[1]
        self.node_feat = torch.cat([self.node_feat, self.node_feat.new_zeros(extra, width)])
        table = self.model.node_embedding
        if table is not None:
            zeros = table.weight.new_zeros(extra, table.embedding_dim)
            table.weight = nn.Parameter(torch.cat([table.weight.data, zeros]))
            table.num_embeddings = capacity
        if self.model.has_memory:
            self.model.encoder.memory.grow(capacity)
        self.capacity = capacity
        self._keys = None
        graph = TemporalGraph(self.graph.src, self.graph.dst, self.graph.t, num_nodes=capacity)
        self._sample_from(graph, self.neighbourhoods.state_dict()["calls"])

    def observe_stream(self, positions: np.ndarray) -> None:
        rows = torch.from_numpy(positions).to(self.stream_edge_feat.device)
        self._observe(
            torch.from_numpy(self.stream_src[positions]),
            torch.from_numpy(self.stream_dst[positions]),
            torch.from_numpy(self.stream_t[positions]),
            self.stream_edge_feat[rows],
        )

    def observe(
        self,
        src: torch.Tensor,
        dst: torch.Tensor,
        t: torch.Tensor,
        edge_feat: torch.Tensor | None = None,
    ) -> None:
        t = torch.as_tensor(np.asarray(t, dtype=np.float64)).reshape(-1) - self.origin
        width = self.stream_edge_feat.shape[1]
        if edge_feat is None:
            if width:
                raise ValueError(f"observe: this model uses edge features; pass edge_feat [n, {width}]")
            edge_feat = torch.zeros((t.shape[0], 0), dtype=torch.float32)
        src, dst = self._add_nodes(src, dst, t, self.graph.max_time, self.origin)
        self._observe(src, dst, t, torch.as_tensor(edge_feat, dtype=torch.float32))

    def _observe(self, src: torch.Tensor, dst: torch.Tensor, t: torch.Tensor, feat: torch.Tensor) -> None:
        """Events (rows) in the model's time units: appended to the graph and the features; TGN's
        memory takes them when a score needs them (``_memory_through``)."""
        if src.numel() == 0:
            return
        self._keys = None
        first = self.graph.num_events
        self.graph.append(src, dst, t)
        self._append_features(first, feat)

    @torch.no_grad()
    def _memory_through(self, t_ref: float) -> None:
        """TGN's memory holding exactly the observed events before ``t_ref`` (model units): blocks of
        ``train.batch_size`` events from the first, each applied when the next one is stored; the
        last block (1 to batch_size events, or none) pending, rebuilt as it grows or shrinks."""
        if self.model.has_memory:
            before = torch.searchsorted(self.graph.t, torch.tensor([t_ref], dtype=torch.float64))
            self._memory_to(int(before[0]))

    @torch.no_grad()
    def _memory_to(self, stop: int) -> None:
        """TGN's memory holding the first ``stop`` observed events (see ``_memory_through``)."""
        if stop == self.memory_events:
            return
        if stop <= self.applied and self.applied > 0:
            raise ValueError(
                f"score before observed event {stop}: TGN's memory already holds events up to time "
                f"{float(self.graph.t[self.applied - 1]) + self.origin}; reset(until=...) to score earlier"
            )
        memory, size = self.model.encoder.memory, self.config.train.batch_size
        memory.discard_pending()
        lo = self.applied
        while True:
            part = slice(lo, min(lo + size, stop))
            src, dst, t = self.graph.src[part], self.graph.dst[part], self.graph.t[part]
            eids = torch.arange(part.start, part.stop)
            self.model.observe_events(src, dst, t, eids, self.edge_feat)
            if stop <= lo + size:
                break
            lo += size
        self.applied, self.memory_events = lo, stop

    def _append_features(self, first: int, feat: torch.Tensor) -> None:
        """Rows ``first..`` of the observed events' features ``feat [n, edge_dim]``: amortised O(n),
        the buffer doubling when full (a copy per call would make a stream quadratic)."""
        stop = first + feat.shape[0]
        if stop > self._feat_rows.shape[0]:
            grown = self._feat_rows.new_empty((max(stop, 2 * self._feat_rows.shape[0]), feat.shape[1]))
            grown[:first] = self._feat_rows[:first]
            self._feat_rows = grown
        self._feat_rows[first:stop] = feat.to(self._feat_rows.device)
        self.edge_feat = self._feat_rows[:stop]

    @torch.no_grad()
    def score(self, src: torch.Tensor, t: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        src, t, candidates = self.score_arguments(src, t, candidates)
        t = t - self.origin
        with self._evaluating():
            return self._score(src, t, candidates).float().cpu()

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        """The model in eval mode within the scope, and TGN's memory update computed once for all its
        forward passes and those of later scopes, until the memory changes (the weights never do
        here; each query recomputed it)."""
        was_training = self.model.training
        if was_training:  # (a model already in eval mode: no walk over its modules, twice a query)
            self.model.eval()
        try:
            with self.model.sharing_memory_update(keep=True):
                yield
        finally:
            if was_training:
                self.model.train()

    def _score(self, src: torch.Tensor, t: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        t_ref = t.min()
        if self.model.scores_pairs:
            logits = self._model_pair_logits(src, t, t_ref, candidates)
        else:
            table, z_src, rows = self._embed_with(src, candidates.reshape(-1), t_ref)
            logits = self.model.score_table(z_src, table, rows.reshape(candidates.shape))
        return self._plus_pair_logits(logits, src, t, t_ref, candidates)

    def _model_pair_logits(
        self, src: torch.Tensor, t: torch.Tensor, t_ref: torch.Tensor, candidates: torch.Tensor
    ) -> torch.Tensor:
        """``[B, C]`` logits of a model that scores pairs itself: candidates ``[B, C]`` at ``t_ref``
        (its state brought up to it), sources ``[B]`` at their times ``t`` with ``visible_batch``,
        else at ``t_ref``."""
        self._memory_through(float(t_ref))
        pairs = PairLogits(self.model, self.neighbourhoods, self.node_feat, self.edge_feat)
        times = t if self.visible_batch else t_ref.expand(src.shape[0]).contiguous()
        return pairs(src, times, t_ref, candidates)

    def _embed_with(
        self, src: torch.Tensor, candidates: torch.Tensor, t_ref: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embeddings at ``t_ref`` (memory brought up to it) of the distinct nodes of ``src [B]`` and
        ``candidates [C]``: ``table [U, d]``, the sources' rows ``[B, d]`` and the candidates'
        table rows ``[C]``. The distinct nodes are found on the device of ``candidates``."""
        self._memory_through(float(t_ref))
        both = torch.cat([to_device(src, candidates.device), candidates])
        nodes, inverse = torch.unique(both, return_inverse=True)
        table = self.embed(nodes, float(t_ref))
        inverse = inverse.to(table.device)
        return table, table[inverse[: src.shape[0]]], inverse[src.shape[0] :]

    def _plus_pair_logits(
        self,
        logits: torch.Tensor,
        src: torch.Tensor,
        t: torch.Tensor,
        t_ref: torch.Tensor,
        candidates: torch.Tensor,
    ) -> torch.Tensor:
        """``logits [B, C]`` plus the pair scorer's logits of ``candidates [B, C]`` (with one)."""
        if self.pair_features is None:
            return logits
        return logits + self.model.pair_score(self.pair_features(src, t, t_ref, candidates))

    @torch.no_grad()
    def pool_scores(
        self, src: torch.Tensor, t: torch.Tensor, pool: torch.Tensor
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """``score``'s values over chunks of ``pool``, embedding the sources and the pool once (the
        nodes ``score`` of the whole pool embeds, in the same calls: the same values)."""
        t = t - self.origin
        size = src.shape[0]
        t_ref = t.min()
        if self.model.scores_pairs:  # (the pair encoder bounds its own memory, chunk by chunk)
            chunk = max(16, self.score_budget // size)
            with self._evaluating():
                for lo in range(0, pool.shape[0], chunk):
                    candidates = pool[lo : lo + chunk].expand(size, -1)
                    logits = self._model_pair_logits(src, t, t_ref, candidates)
                    yield lo, self._plus_pair_logits(logits, src, t, t_ref, candidates).float().cpu()
            return
        with self._evaluating():
            table, z_src, rows = self._embed_with(src, pool, t_ref)
            # floats per scored pair: the MLP decoder's hidden layer, the pair features, their history
            # and the pair scorer's layers
            width = self.config.model.embed_dim if self.config.model.decoder == "mlp" else 1
            if self.model.pair_scorer is not None:
                layers = self.model.pair_scorer.modules()
                hidden = sum(m.out_features for m in layers if isinstance(m, nn.Linear))
                width += NUM_PAIR_FEATURES + self.config.model.pair_history + hidden
            # (at least 16 candidates: matrix kernels of one column may round differently from score's)
            chunk = max(16, self.score_budget // (size * width))
            for lo in range(0, pool.shape[0], chunk):
                part = table[rows[lo : lo + chunk]]
                index = torch.arange(part.shape[0], device=part.device).expand(size, -1)
                logits = self.model.score_table(z_src, part, index)
                candidates = pool[lo : lo + chunk].expand(size, -1)
                yield lo, self._plus_pair_logits(logits, src, t, t_ref, candidates).float().cpu()

    @torch.no_grad()
    def shortlist_scores(
        self,
        src: torch.Tensor,
        t: torch.Tensor,
        pool: torch.Tensor,
        shortlist: int,
        seen: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two stages. Stage 1: the ``shortlist`` pool candidates of each source with the largest
        dot product (``topk_dot``: the dot decoder's logits, or ``model.dot_head``'s) of the source
        embedded at the call's ``t_ref`` with the pool's cached keys (``_pool_keys``: embedded once, at
        the time of the call that built them; not at this call's ``t_ref``) and, with pair features,
        the partners of its last ``pair_history`` events (whose pair features the dot product cannot
        see). Stage 2: ``score``'s values of those, exactly: the sources and the distinct shortlisted
        nodes embedded together at ``t_ref``, as ``score`` of them embeds them. Stage 1 leaves the
        sampler's call counter as it found it (stage 2 draws what ``score`` would). Recall against
        the exact top-k is measured (``bench/recommend_speed.py``), not guaranteed.

        Returns ``[B, S']`` positions and float32 scores (``LinkPredictor.shortlist_scores``) on the
        model's device: node rows, their distinct nodes and the scores never visit the host."""
        unsupported = self.shortlist_unsupported()
        if unsupported is not None:
            raise ValueError(unsupported)
        head = self.model.dot_head
        t = t - self.origin
        size = src.shape[0]
        t_ref = t.min()
        with self._evaluating():
            with stage("memory"):
                self._memory_through(float(t_ref))
            with self._sampler_kept():
                with stage("keys"):
                    keys = self._pool_keys(pool, float(t_ref))
                with stage("queries"):
                    queries = self.embed(src, float(t_ref))
                    if head is not None and self.config.model.decoder != "dot":
                        queries = head.query(queries)
            with stage("retrieve"):
                device = keys.keys.device
                exclude = None if seen is None else exclusion_matrix(seen, size).to(device)
                count = min(shortlist, pool.shape[0])
                _, picked = topk_dot(queries.contiguous(), keys.keys, count, exclude)
                if self.pair_features is not None:
                    picked = self._with_partners(picked, src, t_ref, keys.position, exclude)
            with stage("embed"):
                valid = picked >= 0
                # [B, S'] node rows; a pad holds its query's source, which is embedded anyway: the same
                # distinct nodes as the valid ones alone, found without a boolean index (a GPU sync)
                own = to_device(src, device)[:, None].expand_as(picked)
                nodes = torch.where(valid, keys.rows[picked.clamp(min=0)], own)
                table, z_src, index = self._embed_with(src, nodes.reshape(-1), t_ref)
            with stage("score"):
                logits = self.model.score_table(z_src, table, index.view_as(picked))
                logits = self._plus_pair_logits(logits, src, t, t_ref, nodes)
                logits = logits.float().masked_fill(~valid, float("-inf"))
        return picked, logits

    def shortlist_unsupported(self) -> str | None:
        if self.model.scores_pairs:
            return (
                f"recommend: model {self.config.model.name} scores pairs itself (no embeddings to "
                "shortlist by); recommend without a shortlist"
            )
        if self.config.model.decoder != "dot" and self.model.dot_head is None:
            return (
                "recommend: a shortlist needs a dot-product decoder (--decoder dot) "
                "or a dot-product head (model.dot_head > 0)"
            )
        return None

    @contextlib.contextmanager
    def _sampler_kept(self) -> Iterator[None]:
        """The neighbour sampler's call counter (its uniform draws) restored after the scope."""
        calls = self.neighbourhoods.state_dict()
        try:
            yield
        finally:
            self.neighbourhoods.load_state_dict(calls)

    def _pool_keys(self, pool: torch.Tensor, t_ref: float) -> _PoolKeys:
        """Stage 1's retrieval keys of ``pool [C]`` (rows): the cached ones while the state and the
        pool are those they were built from and the same observed events precede ``t_ref`` (model
        units) as their time (so no later event and no missing one); else built now, at ``t_ref``
        (TGN's memory brought up to it by the caller). ``clear``, ``_observe`` and ``grow`` drop them."""
        events = int(torch.searchsorted(self.graph.t, torch.tensor([t_ref], dtype=torch.float64))[0])
        cached = self._keys
        if (
            cached is not None
            and cached.events == events
            # the default pool is one tensor between calls (``LinkPredictor._pool``): no compare
            and (cached.pool is pool or (cached.pool.shape == pool.shape and torch.equal(cached.pool, pool)))
        ):
            return cached
        self._keys = None  # (its memory free before the new table is built)
        rows = pool.to(self.device)
        keys = self.embed(rows, t_ref)
        head = self.model.dot_head
        if head is not None and self.config.model.decoder != "dot":
            keys = head.key(keys)
        position = torch.full((self.capacity,), -1, dtype=torch.int64, device=self.device)
        position[rows] = torch.arange(pool.shape[0], device=self.device)
        self._keys = _PoolKeys(pool, rows, events, keys.contiguous(), position)
        return self._keys

    def _with_partners(
        self,
        picked: torch.Tensor,
        src: torch.Tensor,
        t_ref: torch.Tensor,
        position: torch.Tensor,
        exclude: torch.Tensor | None,
    ) -> torch.Tensor:
        """``picked [B, S]`` pool positions and those of the partners of each source's last
        ``pair_history`` events before ``t_ref`` (``[B, S + H]``; ``-1`` for repeats, partners
        outside the pool and ``exclude [B, m]``d positions); ``position [capacity]``: each node row's
        pool position, ``-1`` outside the pool."""
        assert self.pair_features is not None
        device = picked.device
        times = t_ref.expand(src.shape[0]).contiguous()
        (block,) = self.pair_features.recent.sample(src, times, check=False)
        nbr = position[block.nbr_nodes.to(device).clamp(min=0)]
        partners = torch.where(block.mask.to(device), nbr, -1)
        if exclude is not None:
            excluded = (partners[:, :, None] == exclude[:, None, :]).any(-1)
            partners = partners.masked_fill(excluded, -1)
        merged = torch.cat([picked, partners], dim=1).sort(dim=1).values
        repeat = torch.zeros_like(merged, dtype=torch.bool)
        repeat[:, 1:] = merged[:, 1:] == merged[:, :-1]
        return merged.masked_fill(repeat, -1)

    def observed_events(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.graph.src, self.graph.dst, self.graph.t + self.origin

    def state(self) -> dict[str, Any]:
        return {
            "model": self.config.model.name,
            "config": self.config.to_dict(),
            "weights": self.model.state_dict(),
            "node_feat": self.node_feat.cpu(),
            "stream": [torch.from_numpy(a) for a in (self.stream_src, self.stream_dst, self.stream_t)],
            "stream_edge_feat": self.stream_edge_feat.cpu(),
            "origin": self.origin,
            "dedup": self.dedup,
            "events": [self.graph.src, self.graph.dst, self.graph.t, self.edge_feat.cpu()],
            "memory_events": self.memory_events,
            "sampler_calls": self.neighbourhoods.state_dict()["calls"],
            "destinations": torch.from_numpy(self.destinations),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> ModelPredictor:
        config = config_from_dict(state["config"])
        node_feat, stream_edge_feat = state["node_feat"].to(device), state["stream_edge_feat"].to(device)
        model = LinkModel(config.model, node_feat.shape[0], node_feat.shape[1], stream_edge_feat.shape[1])
        model.load_state_dict(state["weights"])
        model.to(device).eval()  # (as from_run's)
        src, dst, t = (x.numpy() for x in state["stream"])
        predictor = cls(
            model, config, src, dst, t, node_feat, stream_edge_feat, device, state["origin"], state["dedup"]
        )
        predictor.node_ids = NodeIds.from_state(state["node_ids"])
        predictor.destinations = state["destinations"].numpy().copy()
        predictor._observe(*state["events"])
        predictor._sample_from(predictor.graph, state["sampler_calls"])
        if model.has_memory:
            predictor._memory_to(state["memory_events"])
        return predictor

    @torch.no_grad()
    def embed_stream_sources(self, progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """``[E, d]`` float32 (CPU) embeddings of each stream event's source at the event's time, as
        the evaluation computes them: the stream in blocks of ``train.batch_size`` events from the
        first, each block embedded at its events' own times (neighbours as ``train.visible_batch``
        says) with TGN's memory holding every earlier block, then fed to the memory. Neighbours are
        strictly earlier than the event: an event's embedding never sees itself or a later event.

        The predictor is left reset to the whole stream (``reset(inf)``); ``progress(done, total)``
        is called after each block.
        """
        self.reset(float("inf"))
        size, total = self.config.train.batch_size, len(self.stream_t)
        self.neighbourhoods.visible_batch = self.config.train.visible_batch
        parts = []
        try:
            with self._evaluating():
                for lo in range(0, total, size):
                    hi = min(lo + size, total)
                    if self.model.has_memory:
                        self._memory_to(lo)  # the blocks before this one (the last one pending)
                    nodes = torch.from_numpy(self.stream_src[lo:hi])
                    times = torch.from_numpy(self.stream_t[lo:hi])
                    blocks = self.neighbourhoods(nodes, times, float(times[0]))
                    parts.append(self.model(blocks, self.node_feat, self.edge_feat).float().cpu())
                    if progress is not None:
                        progress(hi, total)
        finally:
            self.neighbourhoods.visible_batch = True  # (score's: every observed event before t)
        return torch.cat(parts) if parts else torch.empty(0, self.config.model.embed_dim)

    def embed(self, nodes: torch.Tensor, time: float, chunk: int = 4096) -> torch.Tensor:
        """``[R, d]`` embeddings of ``nodes [R]`` (on the CPU or the model's device) at ``time`` (model
        units) from the observed events."""
        parts = []
        for lo in range(0, nodes.shape[0], chunk):
            part = nodes[lo : lo + chunk]
            times = torch.full((part.shape[0],), time, dtype=torch.float64, device=part.device)
            blocks = self.neighbourhoods(part, times, time)
            parts.append(self.model(blocks, self.node_feat, self.edge_feat))
        return torch.cat(parts)
