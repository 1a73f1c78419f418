"""Chronological train/validation/test split with TGN's inductive (new-node) evaluation sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dgl_tgnn.data.dataset import TemporalDataset


@dataclass(frozen=True, eq=False)
class Split:
    """Event indices (int64, ascending) of each part of a :class:`TemporalDataset`.

    Attributes:
        train: events with ``t <= val_time`` that touch no node of ``new_nodes``.
        val: events with ``val_time < t <= test_time``.
        test: events with ``t > test_time``.
        val_new, test_new: the val / test events with at least one endpoint outside the training node set
            (the nodes of the ``train`` events): the inductive evaluation sets.
        val_time, test_time: the time cuts (same unit as ``ds.t``).
        new_nodes: int64 node ids, ascending, whose events are held out of training.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    val_new: np.ndarray
    test_new: np.ndarray
    val_time: float
    test_time: float
    new_nodes: np.ndarray


def split_events(
    ds: TemporalDataset,
    val_ratio: float = 0.15,
    test_ratio: float = 0.15,
    new_node_ratio: float = 0.1,
    seed: int = 0,
) -> Split:
    """Split ``ds`` chronologically at time quantiles and hold out new nodes as TGN does.

    ``val_time`` and ``test_time`` are the ``1 - val_ratio - test_ratio`` and ``1 - test_ratio`` quantiles of
    ``ds.t`` (linear interpolation). The candidates for new nodes are the nodes of the val and test events;
    as in TGN, ``int(new_node_ratio * #nodes occurring in ds)`` of them (at most all candidates), drawn
    without replacement with ``seed``, become ``new_nodes``, and every event with ``t <= val_time``
    touching one of them is dropped from training.
    """
    if not (0 <= val_ratio < 1 and 0 <= test_ratio < 1 and val_ratio + test_ratio < 1):
        raise ValueError(
            f"val_ratio and test_ratio must be >= 0 with a sum below 1, got val_ratio={val_ratio}, "
            f"test_ratio={test_ratio}"
        )
    if not 0 <= new_node_ratio <= 1:
        raise ValueError(f"new_node_ratio must be in [0, 1], got {new_node_ratio}")
    if ds.num_events == 0:
        raise ValueError(f"dataset {ds.name!r} has no events to split")
    val_time, test_time = np.quantile(ds.t, [1 - val_ratio - test_ratio, 1 - test_ratio])
    before_val = ds.t <= val_time
    is_test = ds.t > test_time
    is_val = ~before_val & ~is_test

    late = ~before_val
    candidates = np.unique(np.concatenate([ds.src[late], ds.dst[late]]))
    num_occurring = np.unique(np.concatenate([ds.src, ds.dst])).size
    n_new = min(len(candidates), int(new_node_ratio * num_occurring))
    rng = np.random.default_rng(seed)
    new_nodes = np.sort(rng.choice(candidates, size=n_new, replace=False)).astype(np.int64)

    is_new = np.zeros(ds.num_nodes, dtype=bool)
    is_new[new_nodes] = True
    train = np.flatnonzero(before_val & ~is_new[ds.src] & ~is_new[ds.dst])
    in_train = np.zeros(ds.num_nodes, dtype=bool)
    in_train[ds.src[train]] = True
    in_train[ds.dst[train]] = True
    unseen = ~in_train[ds.src] | ~in_train[ds.dst]
    return Split(
        train=train,
        val=np.flatnonzero(is_val),
        test=np.flatnonzero(is_test),
        val_new=np.flatnonzero(is_val & unseen),
        test_new=np.flatnonzero(is_test & unseen),
        val_time=float(val_time),
        test_time=float(test_time),
        new_nodes=new_nodes,
    )
