"""TGB's link property prediction protocol (Huang et al., 2023), offline.

* Split: chronological at the 0.70 / 0.85 time quantiles, no node held out
  (``split_events(ds, 0.15, 0.15, new_node_ratio=0)``).
* Each positive ``(s, d, t)`` is ranked against its own negative set: ``rank = 1 + #(neg > pos) +
  0.5 * #(neg == pos)``; MRR and Recall@k over all positives of the split.
* Negative sets (:class:`NegativeSets`): every destination of the pool except the positives of the
  same ``(s, t)`` (``"all"``, what TGB does for tgbl-wiki-v2), or ``N`` seeded negatives per positive,
  half historical (destinations the source met in the training split) and half random, TGB's
  ``hist_rnd`` scheme, generated once and stored with the run.
* The stream is ranked in batches through :class:`~dgl_tgnn.predictor.LinkPredictor`: a batch is
  scored, then observed (:func:`rank_stream`), so a positive never sees its own batch; or, for a
  predictor with ``visible_batch`` (which reads each source's events strictly before its own time),
  observed, then scored, so a positive sees the earlier events of its batch but never itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from dgl_tgnn.metrics import average_precision, mrr, positive_ranks, recall_at, roc_auc

if TYPE_CHECKING:
    from dgl_tgnn.events import EventStream
    from dgl_tgnn.predictor import LinkPredictor


def _same_query_groups(src: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions grouped by equal ``(src, t)``: ``order [P]`` and group ``starts`` (with ``P`` last)."""
    order = np.lexsort((t, src))
    s, tt = src[order], t[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (s[1:] != s[:-1]) | (tt[1:] != tt[:-1])
    starts = np.append(np.flatnonzero(new), len(order))
    return order, starts


def _same_query_pairs(src: np.ndarray, dst: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(position, destination)`` for every positive and every destination that is a positive of
    the same ``(src, t)`` (its own included): what a negative set must leave out."""
    order, starts = _same_query_groups(src, t)
    sizes = np.diff(starts)
    rows, dsts = [order], [dst[order]]  # every positive's own destination
    for size in np.unique(sizes[sizes > 1]):
        firsts = starts[:-1][sizes == size]
        members = order[firsts[:, None] + np.arange(size)[None, :]]  # [G, size]
        rows.append(np.repeat(members, size, axis=1).ravel())
        dsts.append(np.tile(dst[members], (1, size)).ravel())
    return np.concatenate(rows), np.concatenate(dsts)


@dataclass
class NegativeSets:
    """The negative destinations of each positive of one split, in stream order.

    Attributes:
        candidates: ``[P, M]`` int64 negative destinations of each positive (for ``"all"``: ``None``,
            every row is ``pool``).
        pool: ``[C]`` int64 destination pool (``"all"``).
        excluded: ``[X, 2]`` int64 ``(position, pool row)`` pairs left out of ``"all"`` rows.
    """

    candidates: torch.Tensor | None
    pool: torch.Tensor
    excluded: torch.Tensor

    @classmethod
    def all_destinations(
        cls, src: np.ndarray, dst: np.ndarray, t: np.ndarray, pool: np.ndarray
    ) -> NegativeSets:
        """Every destination of ``pool`` except the positives of the same ``(src, t)``."""
        row_of = np.full(int(max(pool.max(initial=-1), dst.max(initial=-1))) + 1, -1, dtype=np.int64)
        row_of[pool] = np.arange(len(pool))
        positions, dsts = _same_query_pairs(src, dst, t)
        rows = row_of[dsts]
        keep = rows >= 0
        excluded = np.stack([positions[keep], rows[keep]], axis=1)
        excluded = excluded[np.argsort(excluded[:, 0], kind="stable")]
        return cls(None, torch.from_numpy(np.asarray(pool, dtype=np.int64)), torch.from_numpy(excluded))

    @classmethod
    def sampled(
        cls,
        src: np.ndarray,
        dst: np.ndarray,
        t: np.ndarray,
        pool: np.ndarray,
        history_src: np.ndarray,
        history_dst: np.ndarray,
        count: int,
        seed: int,
    ) -> NegativeSets:
        """``count`` negatives per positive, TGB's ``hist_rnd``: up to half among the destinations the
        source met in ``history_*`` (without replacement), the rest uniform from ``pool`` minus those
        and minus the positives of the same ``(src, t)`` (with replacement only when too few)."""
        rng = np.random.default_rng(seed)
        order = np.argsort(history_src, kind="stable")
        hs, hd = history_src[order], history_dst[order]
        bounds = np.searchsorted(hs, np.arange(int(max(hs.max(initial=-1), src.max(initial=-1))) + 2))
        positions, dsts = _same_query_pairs(src, dst, t)
        by_position = np.argsort(positions, kind="stable")
        pos_bounds = np.searchsorted(positions[by_position], np.arange(len(src) + 1))
        pool_set = np.asarray(pool, dtype=np.int64)
        out = np.empty((len(src), count), dtype=np.int64)
        n_hist_max = count // 2
        for i in range(len(src)):
            same = dsts[by_position[pos_bounds[i] : pos_bounds[i + 1]]]
            s = int(src[i])
            seen = np.unique(hd[bounds[s] : bounds[s + 1]]) if s + 1 < len(bounds) else np.empty(0, np.int64)
            eligible = seen[~np.isin(seen, same)]
            n_hist = min(n_hist_max, len(eligible))
            hist = rng.choice(eligible, n_hist, replace=False) if n_hist else np.empty(0, np.int64)
            rest = pool_set[~np.isin(pool_set, np.concatenate([same, seen]))]
            n_rnd = count - n_hist
            if len(rest) == 0:
                rest = pool_set
            rnd = rng.choice(rest, n_rnd, replace=n_rnd > len(rest))
            out[i] = np.concatenate([hist, rnd])
        return cls(torch.from_numpy(out), torch.from_numpy(pool_set), torch.zeros((0, 2), dtype=torch.int64))

    def batch(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Negatives of positions ``[start, stop)``: ``[B, M]`` int64 ids and ``[B, M]`` bool (True
        where the negative counts)."""
        if self.candidates is not None:
            cand = self.candidates[start:stop]
            return cand, torch.ones_like(cand, dtype=torch.bool)
        size = stop - start
        cand = self.pool[None, :].expand(size, -1)
        valid = torch.ones((size, self.pool.numel()), dtype=torch.bool)
        lo, hi = torch.searchsorted(self.excluded[:, 0].contiguous(), torch.tensor([start, stop]))
        if hi > lo:
            pairs = self.excluded[lo:hi]
            valid[pairs[:, 0] - start, pairs[:, 1]] = False
        return cand, valid

    def save(self, path: Path) -> None:
        """Writes the sets to ``path`` (``.npz``)."""
        arrays = {"pool": self.pool.numpy(), "excluded": self.excluded.numpy()}
        if self.candidates is not None:
            arrays["candidates"] = self.candidates.numpy()
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> NegativeSets:
        with np.load(path) as data:
            candidates = torch.from_numpy(data["candidates"]) if "candidates" in data else None
            return cls(candidates, torch.from_numpy(data["pool"]), torch.from_numpy(data["excluded"]))


@torch.no_grad()
def rank_stream(
    predictor: LinkPredictor,
    stream: EventStream,
    negatives: NegativeSets,
    batch_size: int,
    recall_ks: list[int],
    *,
    edge_feat: torch.Tensor | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """Ranks every positive of ``stream`` against its negatives through ``predictor``, one batch at
    a time: ``score`` the batch (positive in column 0), then ``observe`` it (with its rows of
    ``edge_feat [E, edge_dim]``, indexed by the stream's event ids, when given); with
    ``predictor.visible_batch``, ``observe`` it first.

    Returns ``mrr``, ``recall@k`` for each ``k``, and ``ap`` / ``auc`` of the positives against one
    seeded negative per positive drawn from its negative set. Raises ``ValueError`` on a
    non-finite score (a diverged model) rather than counting it.
    """
    generator = torch.Generator().manual_seed(seed)
    ranks, pos_all, neg_one = [], [], []
    bar = tqdm(total=len(stream), unit="event", disable=not progress, leave=False, desc="ranking")
    for batch in stream.batches(batch_size):
        cand, valid = negatives.batch(batch.start, batch.stop)
        queries = torch.cat([batch.dst[:, None], cand], dim=1)
        feat = None if edge_feat is None else edge_feat[batch.eids.to(edge_feat.device)]
        if predictor.visible_batch:
            predictor.observe(batch.src, batch.dst, batch.t, feat)
        scores = predictor.score(batch.src, batch.t, queries).float().cpu()
        if not torch.isfinite(scores).all():
            raise ValueError(f"non-finite scores at events {batch.start}..{batch.stop - 1} of the split")
        pos, neg = scores[:, 0], scores[:, 1:]
        ranks.append(positive_ranks(pos, neg, valid))
        # One negative per positive for AP / AUC: a uniform draw among its valid negatives.
        weights = valid.double()
        pick = torch.multinomial(weights, 1, generator=generator)[:, 0]
        pos_all.append(pos)
        neg_one.append(neg[torch.arange(len(batch)), pick])
        if not predictor.visible_batch:
            predictor.observe(batch.src, batch.dst, batch.t, feat)
        bar.update(len(batch))
    bar.close()
    if not ranks:
        return {}
    all_ranks = torch.cat(ranks)
    pos_cat, neg_cat = torch.cat(pos_all), torch.cat(neg_one)
    result = {"mrr": mrr(all_ranks)}
    result |= {f"recall@{k}": recall_at(all_ranks, k) for k in recall_ks}
    result["ap"] = average_precision(pos_cat, neg_cat)
    result["auc"] = roc_auc(pos_cat, neg_cat)
    return result
