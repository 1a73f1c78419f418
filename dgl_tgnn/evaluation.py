"""Evaluation protocols for temporal link prediction.

* AP and AUC as in TGN: each positive event against one seeded uniform negative destination,
  computed per batch, then averaged over batches.
* MRR and Recall@k as in TGB: each positive against many negative destinations (every candidate,
  or a seeded sample of ``M`` per positive), ``rank = 1 + #(neg > pos) + 0.5 * #(neg == pos)``.
  The candidates of a batch are embedded once, at the batch's first event time, and the positive
  destination is scored from the same table, so positive and negatives are compared alike.

A model with memory (TGN) is updated with each batch's positive events after scoring it, so the
memory flows through the evaluated stream; callers back it up and restore it as TGN does.

Neighbours are drawn keyed by root and batch (``Neighbourhoods(keyed=True)``), and a subclass may
score a share of each batch and gather the scores (``share``, ``gather``, ``candidate_table``: the
evaluation split across processes, ``training.parallel.ParallelEvaluator``) with the same metrics.
"""

from __future__ import annotations

import torch

from dgl_tgnn.events import EventStream
from dgl_tgnn.graph import TemporalGraph
from dgl_tgnn.link import LinkModel
from dgl_tgnn.metrics import average_precision, mrr, positive_ranks, recall_at, roc_auc
from dgl_tgnn.negatives import UniformNegatives
from dgl_tgnn.neighbourhoods import Embedder, Neighbourhoods


class Evaluator:
    """Scores chronological streams of a dataset's events with the metrics above.

    Args:
        model: the link model (switched to eval mode while evaluating, then back).
        graph: all events (neighbours are always strictly earlier than the roots).
        node_feat, edge_feat: ``[N, node_dim]``, ``[E, edge_dim]`` float32 features on the model's device.
        candidates: ``[N_c]`` int64 destination pool for negatives.
        fanouts, strategy, dedup, threads, visible_batch: neighbourhood sampling, as in training.
        batch_size: events per evaluation batch.
        negatives: ``"all"``, ``M`` negatives per positive for MRR / Recall@k, or ``"none"``.
        recall_ks: the ``k`` of Recall@k.
        seed: seed of the evaluation negatives and neighbour sampling (the same every evaluation).
    """

    def __init__(
        self,
        model: LinkModel,
        graph: TemporalGraph,
        node_feat: torch.Tensor,
        edge_feat: torch.Tensor,
        candidates: torch.Tensor,
        *,
        fanouts: list[int],
        strategy: str,
        dedup: bool,
        threads: int | None,
        visible_batch: bool,
        batch_size: int,
        negatives: str | int,
        recall_ks: list[int],
        seed: int,
        device: torch.device,
    ) -> None:
        self.model = model
        self.graph = graph
        self.node_feat, self.edge_feat = node_feat, edge_feat
        self.candidates = torch.as_tensor(candidates, dtype=torch.int64)
        self.fanouts, self.strategy, self.dedup, self.threads = fanouts, strategy, dedup, threads
        self.visible_batch = visible_batch
        self.batch_size = batch_size
        self.negatives = negatives
        self.recall_ks = recall_ks
        self.seed = seed
        self.device = device
        self.sampler_seconds = 0.0
        self._row_of = torch.full((int(self.candidates.max()) + 1,), -1, dtype=torch.int64)
        self._row_of[self.candidates] = torch.arange(self.candidates.numel())

    def _embedder(self, seed: int) -> Embedder:
        nbrs = Neighbourhoods(
            self.graph,
            self.fanouts,
            self.strategy,
            seed,
            self.threads,
            self.visible_batch,
            self.device,
            dedup=self.dedup,
            keyed=True,
        )
        return Embedder(self.model, nbrs, self.node_feat, self.edge_feat)

    @torch.no_grad()
    def evaluate(self, stream: EventStream, ranking: bool) -> dict[str, float]:
        """Metrics of ``stream``: ``ap``, ``auc``, and with ``ranking`` ``mrr`` and ``recall@k``.

        Empty streams give an empty dict; ``negatives="none"`` turns ``ranking`` off.
        """
        if len(stream) == 0:
            return {}
        ranking = ranking and self.negatives != "none"
        was_training = self.model.training
        self.model.eval()
        # Separate neighbour samplers for the events and for the ranking tables, so that AP and AUC
        # do not depend on whether MRR is computed.
        embed, embed_table = self._embedder(self.seed), self._embedder(self.seed + 1)
        uniform = UniformNegatives(self.candidates, 1, seed=self.seed)
        rank_generator = torch.Generator().manual_seed(self.seed + 1)
        aps, aucs, ranks = [], [], []
        try:
            for batch in stream.batches(self.batch_size):
                embed.neighbourhoods.next_round()
                embed_table.neighbourhoods.next_round()
                lo, hi = self.share(len(batch))
                size = hi - lo
                neg = uniform.sample(batch)[lo:hi, 0]
                src, dst, t = batch.src[lo:hi], batch.dst[lo:hi], batch.t[lo:hi]
                t0 = float(batch.t[0])
                z = embed(torch.cat([src, dst, neg]), t.repeat(3), t0)
                z_src, z_dst, z_neg = z[:size], z[size : 2 * size], z[2 * size :]
                pos_score = self.gather(self.model.score(z_src, z_dst))
                neg_score = self.gather(self.model.score(z_src, z_neg))
                aps.append(average_precision(pos_score, neg_score))
                aucs.append(roc_auc(pos_score, neg_score))
                if ranking:
                    draws = len(batch), lo
                    ranks.append(self.gather(self._ranks(embed_table, z_src, dst, t0, rank_generator, draws)))
                self.model.observe(batch, self.edge_feat)
        finally:
            self.model.train(was_training)
            self.sampler_seconds += embed.neighbourhoods.seconds + embed_table.neighbourhoods.seconds
        result = {"ap": sum(aps) / len(aps), "auc": sum(aucs) / len(aucs)}
        if ranking:
            all_ranks = torch.cat(ranks)
            result["mrr"] = mrr(all_ranks)
            for k in self.recall_ks:
                result[f"recall@{k}"] = recall_at(all_ranks, k)
        return result

    def share(self, size: int) -> tuple[int, int]:
        """The events ``[lo, hi)`` of a batch of ``size`` that this evaluator scores: all of them."""
        return 0, size

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """The rows ``x`` ``[hi - lo, ...]`` of every share of the batch, in order: here ``x``."""
        return x

    def candidate_table(self, embed: Embedder, t0: float) -> torch.Tensor:
        """``[N_c, d]`` embeddings of every candidate at ``t0``."""
        return embed.at(self.candidates, t0)

    def _ranks(
        self,
        embed: Embedder,
        z_src: torch.Tensor,
        dst: torch.Tensor,
        t0: float,
        generator: torch.Generator,
        draws: tuple[int, int],
    ) -> torch.Tensor:
        """``[B]`` TGB ranks of the true destinations ``dst`` ``[B]`` among the batch's negatives.
        ``draws``: the batch's size and ``dst``'s first row in it (the sampled negatives are drawn
        for the whole batch, and these rows kept)."""
        size = dst.shape[0]
        if self.negatives == "all":
            pos_rows = self._row_of[dst.clamp(max=self._row_of.numel() - 1)]
            if (pos_rows < 0).any():
                raise ValueError("a destination lies outside the candidate pool")
            table = self.candidate_table(embed, t0)
            pos = self.model.score(z_src, table[pos_rows.to(table.device)])
            # Every candidate is scored against every source, ``chunk`` candidates at a time.
            chunk = 1024
            neg = torch.cat(
                [
                    self.model.score(z_src[:, None, :], table[None, lo : lo + chunk, :])
                    for lo in range(0, table.shape[0], chunk)
                ],
                dim=1,
            )
            neg_mask = torch.arange(table.shape[0])[None, :] != pos_rows[:, None]
        else:
            batch, lo = draws
            drawn = torch.randint(self.candidates.numel(), (batch, int(self.negatives)), generator=generator)
            sampled = self.candidates[drawn[lo : lo + size]]
            nodes, inverse = torch.unique(torch.cat([dst, sampled.flatten()]), return_inverse=True)
            table = embed.at(nodes, t0)
            rows = inverse.to(table.device)
            pos = self.model.score(z_src, table[rows[:size]])
            neg = self.model.score(z_src[:, None, :], table[rows[size:].reshape(size, -1)])
            neg_mask = sampled != dst[:, None]
        return positive_ranks(pos.cpu(), neg.cpu(), neg_mask)
