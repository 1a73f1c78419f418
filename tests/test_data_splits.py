"""Chronological split with TGN's new-node (inductive) sets: hand-computed cases and a set-based reference."""

import numpy as np
import pytest

from dgl_tgnn.data import TemporalDataset, split_events, zipf_events


def dataset(src, dst, t, num_nodes):
    ids = np.arange(num_nodes, dtype=np.int64)
    return TemporalDataset(
        name="toy",
        src=np.array(src, dtype=np.int64),
        dst=np.array(dst, dtype=np.int64),
        t=np.array(t, dtype=np.float64),
        label=None,
        edge_feat=None,
        node_feat=None,
        node_ids=ids,
        num_nodes=num_nodes,
        bipartite=False,
        dst_candidates=ids,
    )


# events 0..5 before the validation cut, 6-7 validation, 8-9 test
TOY = dataset(
    src=[0, 1, 2, 0, 3, 4, 0, 6, 3, 5],
    dst=[1, 2, 3, 4, 5, 1, 5, 2, 4, 7],
    t=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    num_nodes=8,
)
# nodes of val/test events: {0, 2, 3, 4, 5, 6, 7}; int(0.15 * 8 nodes) = 1 new node, drawn from those.
# new node -> (train, val_new, test_new), computed by hand
EXPECTED = {
    0: ([1, 2, 4, 5], [6, 7], [9]),
    2: ([0, 3, 4, 5], [7], [9]),
    3: ([0, 1, 3, 5], [6, 7], [8, 9]),
    4: ([0, 1, 2, 4], [7], [8, 9]),
    5: ([0, 1, 2, 3, 5], [6, 7], [9]),
    6: ([0, 1, 2, 3, 4, 5], [7], [9]),
    7: ([0, 1, 2, 3, 4, 5], [7], [9]),
}


def test_hand_computed_split_for_every_possible_new_node():
    chosen = set()
    for seed in range(30):
        split = split_events(TOY, val_ratio=0.2, test_ratio=0.2, new_node_ratio=0.15, seed=seed)
        assert split.val_time == pytest.approx(5.4) and split.test_time == pytest.approx(7.2)
        np.testing.assert_array_equal(split.val, [6, 7])
        np.testing.assert_array_equal(split.test, [8, 9])
        assert len(split.new_nodes) == 1
        new = int(split.new_nodes[0])
        train, val_new, test_new = EXPECTED[new]
        np.testing.assert_array_equal(split.train, train)
        np.testing.assert_array_equal(split.val_new, val_new)
        np.testing.assert_array_equal(split.test_new, test_new)
        chosen.add(new)
    assert len(chosen) >= 4  # the new node really is drawn at random


def test_same_seed_same_split():
    a = split_events(TOY, val_ratio=0.2, test_ratio=0.2, new_node_ratio=0.5, seed=11)
    b = split_events(TOY, val_ratio=0.2, test_ratio=0.2, new_node_ratio=0.5, seed=11)
    np.testing.assert_array_equal(a.new_nodes, b.new_nodes)
    np.testing.assert_array_equal(a.train, b.train)


def test_default_ratios_and_ties_at_the_cut():
    # quantiles of t: 0.70 -> 1.0 (a tie: all three events at t=1 are before the cut), 0.85 -> 1.4
    ds = dataset(src=[0, 1, 2, 3, 4], dst=[1, 2, 3, 4, 0], t=[0, 1, 1, 1, 2], num_nodes=5)
    split = split_events(ds, new_node_ratio=0.0)
    assert (split.val_time, split.test_time) == pytest.approx((1.0, 1.4))
    np.testing.assert_array_equal(split.train, [0, 1, 2, 3])
    assert split.val.size == 0 and split.val_new.size == 0 and split.new_nodes.size == 0
    np.testing.assert_array_equal(split.test, [4])
    assert split.test_new.size == 0  # nodes 4 and 0 both occur in training
    assert split.train.dtype == np.int64 and split.new_nodes.dtype == np.int64


def reference_split(ds, val_time, test_time, new_nodes):
    """TGN's procedure with Python sets, given the drawn new nodes."""
    events = list(zip(ds.src.tolist(), ds.dst.tolist(), ds.t.tolist(), strict=True))
    new = set(new_nodes)
    train = [i for i, (s, d, t) in enumerate(events) if t <= val_time and s not in new and d not in new]
    train_nodes = {events[i][0] for i in train} | {events[i][1] for i in train}
    val = [i for i, (_, _, t) in enumerate(events) if val_time < t <= test_time]
    test = [i for i, (_, _, t) in enumerate(events) if t > test_time]

    def unseen(index):
        return [i for i in index if events[i][0] not in train_nodes or events[i][1] not in train_nodes]

    return train, val, test, unseen(val), unseen(test)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_set_based_reference(seed):
    ds = zipf_events(3_000, 400, alpha=0.8, span_seconds=500, seed=seed)  # many ties in time
    split = split_events(ds, new_node_ratio=0.1, seed=seed)
    assert split.val_time == pytest.approx(np.quantile(ds.t, 0.70))
    assert split.test_time == pytest.approx(np.quantile(ds.t, 0.85))
    late = ds.t > split.val_time
    candidates = set(ds.src[late].tolist()) | set(ds.dst[late].tolist())
    assert set(split.new_nodes.tolist()) <= candidates
    occurring = np.unique(np.concatenate([ds.src, ds.dst])).size
    assert len(split.new_nodes) == min(len(candidates), int(0.1 * occurring)) > 0
    expected = reference_split(ds, split.val_time, split.test_time, split.new_nodes.tolist())
    for got, want in zip(
        (split.train, split.val, split.test, split.val_new, split.test_new), expected, strict=True
    ):
        np.testing.assert_array_equal(got, want)
    assert 0 < len(split.test_new) < len(split.test)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(val_ratio=0.5, test_ratio=0.5), "sum below 1"),
        (dict(val_ratio=-0.1), "val_ratio"),
        (dict(new_node_ratio=1.5), "new_node_ratio"),
    ],
)
def test_bad_ratios(kwargs, match):
    with pytest.raises(ValueError, match=match):
        split_events(TOY, **kwargs)
