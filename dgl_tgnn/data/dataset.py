"""The in-memory form of a temporal interaction dataset, and how raw events become one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class DataError(ValueError):
    """Input data that cannot be loaded; the message is one line naming the file (and line, value)."""


@dataclass(frozen=True, eq=False)
class TemporalDataset:
    """A stream of timestamped interactions ``src -> dst at t``, sorted by time.

    Attributes:
        name: dataset name (built-in name or file stem).
        src, dst: ``[E]`` int64 node ids in ``0..num_nodes-1``.
        t: ``[E]`` float64 event times, non-decreasing (events are stably sorted by time).
        label: ``[E]`` int64 per-event labels (e.g. JODIE ``state_label``) or None.
        edge_feat: ``[E, d]`` float32 event features or None.
        node_feat: ``[N, d]`` float32 node features or None.
        node_ids: ``[N]`` int64 original id of each node. For bipartite data users come first (their ids in
            the user id space), then items (their ids in the item id space).
        num_nodes: ``N``.
        bipartite: True when sources (users) and destinations (items) are disjoint node sets.
        dst_candidates: int64 ids of the destination pool: the items for bipartite data, all nodes otherwise.
    """

    name: str
    src: np.ndarray
    dst: np.ndarray
    t: np.ndarray
    label: np.ndarray | None
    edge_feat: np.ndarray | None
    node_feat: np.ndarray | None
    node_ids: np.ndarray
    num_nodes: int
    bipartite: bool
    dst_candidates: np.ndarray

    def __post_init__(self) -> None:
        n_events = len(self.t)
        for field, array in (("src", self.src), ("dst", self.dst)):
            if array.dtype != np.int64 or array.shape != (n_events,):
                raise ValueError(
                    f"{field} must be int64 of shape ({n_events},), got {array.dtype} {array.shape}"
                )
            if n_events and (array.min() < 0 or array.max() >= self.num_nodes):
                raise ValueError(f"{field} ids must lie in 0..{self.num_nodes - 1}")
        if self.t.dtype != np.float64 or self.t.ndim != 1:
            raise ValueError(f"t must be 1-D float64, got {self.t.dtype} {self.t.shape}")
        if np.any(self.t[1:] < self.t[:-1]):
            raise ValueError("t must be non-decreasing (sort the events by time)")
        if self.label is not None and (self.label.dtype != np.int64 or self.label.shape != (n_events,)):
            raise ValueError(
                f"label must be int64 of shape ({n_events},), got {self.label.dtype} {self.label.shape}"
            )
        for field, array, rows in (
            ("edge_feat", self.edge_feat, n_events),
            ("node_feat", self.node_feat, self.num_nodes),
        ):
            if array is not None and (array.dtype != np.float32 or array.ndim != 2 or len(array) != rows):
                raise ValueError(
                    f"{field} must be float32 of shape ({rows}, d), got {array.dtype} {array.shape}"
                )
        if self.node_ids.shape != (self.num_nodes,):
            raise ValueError(f"node_ids must have shape ({self.num_nodes},), got {self.node_ids.shape}")
        if self.dst_candidates.dtype != np.int64 or self.dst_candidates.ndim != 1:
            raise ValueError("dst_candidates must be a 1-D int64 array")

    @property
    def num_events(self) -> int:
        """Number of events ``E``."""
        return len(self.t)

    @property
    def edge_dim(self) -> int:
        """Width ``d`` of the event features, 0 when there are none."""
        return 0 if self.edge_feat is None else self.edge_feat.shape[1]

    def __repr__(self) -> str:
        return (
            f"TemporalDataset(name={self.name!r}, events={self.num_events}, nodes={self.num_nodes}, "
            f"edge_dim={self.edge_dim}, bipartite={self.bipartite})"
        )


def from_events(
    name: str,
    src: np.ndarray,
    dst: np.ndarray,
    t: np.ndarray,
    *,
    label: np.ndarray | None = None,
    edge_feat: np.ndarray | None = None,
    bipartite: bool = False,
) -> TemporalDataset:
    """Re-index node ids to ``0..N-1`` and stably sort the events by time.

    Args:
        src, dst: ``[E]`` integer original node ids. When ``bipartite``, ``src`` are user ids and ``dst`` item
            ids, each in its own id space: users become ``0..U-1`` in order of their original id, items
            ``U..U+I-1`` in order of theirs. Otherwise both share one id space,
            re-indexed by sorted unique id.
        t: ``[E]`` event times (any real dtype, stored as float64).
        label: ``[E]`` integer labels or None.
        edge_feat: ``[E, d]`` real features or None (stored as float32).
    """
    if bipartite:
        users, src_new = np.unique(src, return_inverse=True)
        items, dst_new = np.unique(dst, return_inverse=True)
        node_ids = np.concatenate([users, items]).astype(np.int64)
        dst_new = dst_new + len(users)
        dst_candidates = np.arange(len(users), len(node_ids), dtype=np.int64)
    else:
        node_ids, inverse = np.unique(np.concatenate([src, dst]), return_inverse=True)
        node_ids = node_ids.astype(np.int64)
        src_new, dst_new = inverse[: len(src)], inverse[len(src) :]
        dst_candidates = np.arange(len(node_ids), dtype=np.int64)
    order = np.argsort(t, kind="stable")
    return TemporalDataset(
        name=name,
        src=src_new[order].astype(np.int64),
        dst=dst_new[order].astype(np.int64),
        t=np.asarray(t, dtype=np.float64)[order],
        label=None if label is None else label[order].astype(np.int64),
        edge_feat=None if edge_feat is None else np.ascontiguousarray(edge_feat[order], dtype=np.float32),
        node_feat=None,
        node_ids=node_ids,
        num_nodes=len(node_ids),
        bipartite=bipartite,
        dst_candidates=dst_candidates,
    )
