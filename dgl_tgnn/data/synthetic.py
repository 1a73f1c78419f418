"""Synthetic event streams for benchmarks."""

from __future__ import annotations

import numpy as np

from dgl_tgnn.data.dataset import TemporalDataset


def zipf_events(
    n_events: int,
    n_nodes: int,
    alpha: float = 1.0,
    span_seconds: int = 30 * 86400,
    feat_dim: int = 0,
    seed: int = 0,
) -> TemporalDataset:
    """``n_events`` events over ``n_nodes`` nodes whose popularity follows a finite Zipf law.

    The node of popularity rank ``r`` (1-based) is drawn as source, and independently as destination, with
    probability ``r**-alpha / sum_k k**-alpha``; ranks are assigned to node ids by a random permutation.
    Times are integer seconds drawn uniformly from ``[0, span_seconds)``, sorted (stored as float64).
    Features, when ``feat_dim > 0``, are standard normal ``[E, feat_dim]`` float32. Self-loops can occur.
    All nodes ``0..n_nodes-1`` belong to the dataset, even those no event touches.
    """
    if n_events < 1:
        raise ValueError(f"n_events must be at least 1, got {n_events}")
    if n_nodes < 1:
        raise ValueError(f"n_nodes must be at least 1, got {n_nodes}")
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if span_seconds < 1:
        raise ValueError(f"span_seconds must be at least 1, got {span_seconds}")
    if feat_dim < 0:
        raise ValueError(f"feat_dim must be >= 0, got {feat_dim}")
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(np.arange(1, n_nodes + 1, dtype=np.float64) ** -alpha)
    node_of_rank = rng.permutation(n_nodes).astype(np.int64)
    ranks = np.searchsorted(cdf, rng.random(2 * n_events) * cdf[-1], side="right")
    ends = node_of_rank[np.minimum(ranks, n_nodes - 1)]
    t = np.sort(rng.integers(0, span_seconds, size=n_events)).astype(np.float64)
    edge_feat = rng.standard_normal((n_events, feat_dim), dtype=np.float32) if feat_dim else None
    return TemporalDataset(
        name="zipf",
        src=ends[:n_events],
        dst=ends[n_events:],
        t=t,
        label=None,
        edge_feat=edge_feat,
        node_feat=None,
        node_ids=np.arange(n_nodes, dtype=np.int64),
        num_nodes=n_nodes,
        bipartite=False,
        dst_candidates=np.arange(n_nodes, dtype=np.int64),
    )
