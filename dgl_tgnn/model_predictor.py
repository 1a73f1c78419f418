"""``LinkPredictor`` of a trained model (TGAT, TGN): a graph of the observed events, TGN's memory
carried through them, and scores from the model's embeddings, decoder and pair features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dgl_tgnn.config import RunConfig
from dgl_tgnn.data import TemporalDataset
from dgl_tgnn.devices import dedup_hops, features_on
from dgl_tgnn.graph import TemporalGraph
from dgl_tgnn.link import LinkModel
from dgl_tgnn.neighbourhoods import Neighbourhoods
from dgl_tgnn.pair_features import PairFeatures
from dgl_tgnn.predictor import LinkPredictor


class ModelPredictor(LinkPredictor):
    """Scores with ``model`` from the events observed so far.

    ``score(src, t, candidates)`` embeds every source and candidate of the call alike, at the
    call's earliest time ``t_ref`` (neighbours and TGN's memory: the observed events); each row's own
    time enters through the pair features (time since the pair's and the candidate's latest events).

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
        self.num_nodes = int(node_feat.shape[0])
        self.dedup = dedup
        self.clear()

    @classmethod
    def from_run(
        cls, run_dir: Path, config: RunConfig, dataset: TemporalDataset, device: torch.device
    ) -> ModelPredictor:
        from dgl_tgnn.train import load_best

        node_feat = features_on(dataset.node_feat, dataset.num_nodes, device)
        edge_feat = features_on(dataset.edge_feat, dataset.num_events, device)
        model = LinkModel(config.model, dataset.num_nodes, node_feat.shape[1], edge_feat.shape[1])
        model.load_state_dict(load_best(run_dir)["model"])
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
    def has_memory(self) -> bool:
        return self.model.has_memory

    def clear(self) -> None:
        empty = torch.empty(0, dtype=torch.int64)
        self.graph = TemporalGraph(
            empty, empty, torch.empty(0, dtype=torch.float64), num_nodes=self.num_nodes
        )
        self._feat_rows = self.stream_edge_feat[:0]  # grows by doubling; edge_feat is its prefix
        self.edge_feat = self._feat_rows
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
        self.pair_features = (
            PairFeatures(self.graph, c.model.pair_history, self.device) if c.model.pair_history else None
        )
        if self.model.has_memory:
            self.model.encoder.reset_memory()

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
        src, dst = torch.as_tensor(src).cpu(), torch.as_tensor(dst).cpu()
        t = torch.as_tensor(t, dtype=torch.float64).cpu() - self.origin
        width = self.stream_edge_feat.shape[1]
        if edge_feat is None:
            if width:
                raise ValueError(f"observe: this model uses edge features; pass edge_feat [n, {width}]")
            edge_feat = torch.zeros((src.shape[0], 0), dtype=torch.float32)
        self._observe(src, dst, t, torch.as_tensor(edge_feat, dtype=torch.float32))

    @torch.no_grad()
    def _observe(self, src: torch.Tensor, dst: torch.Tensor, t: torch.Tensor, feat: torch.Tensor) -> None:
        """Events in the model's time units: graph append, then TGN's memory in training-size batches."""
        if src.numel() == 0:
            return
        first = self.graph.num_events
        self.graph.append(src, dst, t)
        self._append_features(first, feat)
        if self.model.has_memory:
            eids = torch.arange(first, first + src.shape[0])
            size = self.config.train.batch_size
            for lo in range(0, src.shape[0], size):
                part = slice(lo, lo + size)
                self.model.observe_events(src[part], dst[part], t[part], eids[part], self.edge_feat)

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
        src = torch.as_tensor(src, dtype=torch.int64).cpu()
        candidates = torch.as_tensor(candidates, dtype=torch.int64).cpu()
        t = torch.as_tensor(t, dtype=torch.float64).cpu() - self.origin
        if candidates.dim() != 2 or candidates.shape[0] != src.shape[0] or t.shape != src.shape:
            raise ValueError(
                f"score: src [B], t [B] and candidates [B, C] expected; got {tuple(src.shape)}, "
                f"{tuple(t.shape)}, {tuple(candidates.shape)}"
            )
        bad = (candidates < 0) | (candidates >= self.num_nodes)
        if bad.any() or ((src < 0) | (src >= self.num_nodes)).any():
            raise ValueError(f"score: node ids must be in [0, {self.num_nodes})")
        was_training = self.model.training
        self.model.eval()
        try:
            return self._score(src, t, candidates).float().cpu()
        finally:
            self.model.train(was_training)

    def _score(self, src: torch.Tensor, t: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        size = src.shape[0]
        t_ref = t.min()
        nodes, inverse = torch.unique(torch.cat([src, candidates.reshape(-1)]), return_inverse=True)
        table = self.embed(nodes, float(t_ref))
        inverse = inverse.to(table.device)
        z_src = table[inverse[:size]]
        logits = self.model.score_table(z_src, table, inverse[size:].reshape(candidates.shape))
        if self.pair_features is not None:
            features = self.pair_features(src, t, t_ref, candidates)
            logits = logits + self.model.pair_score(features)
        return logits

    def embed(self, nodes: torch.Tensor, time: float, chunk: int = 4096) -> torch.Tensor:
        """``[R, d]`` embeddings of ``nodes [R]`` at ``time`` (model units) from the observed events."""
        parts = []
        for lo in range(0, nodes.shape[0], chunk):
            part = nodes[lo : lo + chunk]
            times = torch.full((part.shape[0],), time, dtype=torch.float64)
            blocks = self.neighbourhoods(part, times, time)
            parts.append(self.model(blocks, self.node_feat, self.edge_feat))
        return torch.cat(parts)
