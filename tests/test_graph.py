"""TemporalGraph: T-CSR contents against a brute-force reference, append == rebuild, validation."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dgl_tgnn import TemporalGraph


def reference_rows(src, dst, t, num_nodes, undirected=True):
    """Per node, the (time, eid, neighbour) of its events, sorted: the T-CSR by brute force."""
    rows = [[] for _ in range(num_nodes)]
    for e, (u, v, time) in enumerate(zip(src, dst, t, strict=True)):
        rows[u].append((float(time), e, int(v)))
        if undirected and u != v:
            rows[v].append((float(time), e, int(u)))
    return [sorted(r) for r in rows]


def packed_rows(g):
    indptr, nbr, eid, ts = g.packed_csr()
    return [
        list(zip(ts[a:b].tolist(), eid[a:b].tolist(), nbr[a:b].tolist(), strict=True))
        for a, b in zip(indptr[:-1].tolist(), indptr[1:].tolist(), strict=True)
    ]


events = st.integers(1, 8).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.integers(0, 4)), max_size=30),
    )
)


def test_hand_example():
    # eid:       0  1  2  3  4   (4 is a self-loop: listed once)
    src = [0, 1, 2, 0, 1]
    dst = [1, 2, 0, 2, 1]
    t = [5, 3, 3, 1, 3]
    g = TemporalGraph(np.array(src), np.array(dst), np.array(t), num_nodes=4)
    assert (g.num_nodes, g.num_events, g.max_time) == (4, 5, 5.0)
    indptr, nbr, eid, ts = g.packed_csr()
    assert indptr.tolist() == [0, 3, 6, 9, 9]
    assert eid.tolist() == [3, 2, 0, 1, 4, 0, 3, 1, 2]
    assert nbr.tolist() == [2, 2, 1, 2, 1, 0, 0, 1, 0]
    assert ts.tolist() == [1, 3, 5, 3, 3, 5, 1, 3, 3]
    assert ts.dtype == torch.float64 and eid.dtype == torch.int64


@settings(max_examples=60, deadline=None)
@given(events, st.booleans())
def test_tcsr_matches_brute_force(case, undirected):
    n, ev = case
    src, dst, t = (list(x) for x in zip(*ev, strict=True)) if ev else ([], [], [])
    g = TemporalGraph(
        torch.tensor(src, dtype=torch.int64),
        np.array(dst, dtype=np.int32),
        np.array(t, dtype=np.float32),
        num_nodes=n,
        undirected=undirected,
    )
    assert packed_rows(g) == reference_rows(src, dst, t, n, undirected)
    assert g.num_events == len(ev)
    assert g.src.tolist() == src and g.dst.tolist() == dst and g.t.tolist() == [float(x) for x in t]


@settings(max_examples=40, deadline=None)
@given(events, st.lists(st.integers(1, 6), min_size=1, max_size=6), st.data())
def test_append_equals_rebuild(case, batch_sizes, data):
    n, ev = case
    src, dst, t = ([e[i] for e in ev] for i in range(3))
    feat = torch.arange(len(ev) * 2, dtype=torch.float32).reshape(-1, 2)
    g = TemporalGraph(
        np.array(src, np.int64), np.array(dst, np.int64), np.array(t), edge_feat=feat, num_nodes=n
    )
    now = max(t, default=0)
    for size in batch_sizes:
        bs = data.draw(st.lists(st.integers(0, n - 1), min_size=size, max_size=size))
        bd = data.draw(st.lists(st.integers(0, n - 1), min_size=size, max_size=size))
        bt = data.draw(st.lists(st.integers(now, now + 2), min_size=size, max_size=size))  # unsorted, ties
        bf = torch.randn(size, 2)
        g.append(np.array(bs), torch.tensor(bd), np.array(bt, dtype=np.float64), edge_feat=bf)
        src, dst, t, feat = src + bs, dst + bd, t + bt, torch.cat([feat, bf])
        now = max(now, *bt)
    rebuilt = TemporalGraph(np.array(src), np.array(dst), np.array(t), edge_feat=feat, num_nodes=n)
    for a, b in zip(g.packed_csr(), rebuilt.packed_csr(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(g.edge_feat, feat) and g.src.tolist() == src and g.max_time == rebuilt.max_time
    assert packed_rows(g) == reference_rows(src, dst, t, n)


def test_directed_lists_only_source_rows():
    g = TemporalGraph([0, 1, 0], [1, 0, 2], [2.0, 1.0, 0.0], undirected=False)
    indptr, nbr, eid, _ = g.packed_csr()
    assert indptr.tolist() == [0, 2, 3, 3] and eid.tolist() == [2, 0, 1] and nbr.tolist() == [2, 1, 0]
    assert not g.undirected


def test_defaults_and_empty_graph():
    g = TemporalGraph([3], [1], [7])
    assert g.num_nodes == 4 and g.undirected and g.edge_feat is None
    empty = TemporalGraph(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    assert empty.num_nodes == 0 and empty.num_events == 0 and math.isinf(empty.max_time)
    assert empty.packed_csr()[0].tolist() == [0]


def test_unix_seconds_are_exact():
    t = np.array([1_700_000_000_123, 1_700_000_000_122], dtype=np.int64)  # milliseconds, > 2**32
    g = TemporalGraph([0, 0], [1, 1], t)
    assert g.packed_csr()[3][:2].tolist() == [1_700_000_000_122.0, 1_700_000_000_123.0]


def test_packed_csr_is_refreshed_after_append():
    g = TemporalGraph([0], [1], [1.0])
    before = g.packed_csr()
    assert g.packed_csr() is before  # cached
    g.append([1], [0], [2.0])
    assert g.packed_csr()[0].tolist() == [0, 2, 4]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(src=[0, 5], dst=[1, 1], t=[0, 1], num_nodes=3), "src: id 5 at position 1 is out of range [0,"),
        (dict(src=[0, 1], dst=[-1, 1], t=[0, 1]), "dst: id -1 at position 0 is out of range"),
        (dict(src=[0, 1], dst=[1, 1], t=[0, float("nan")]), "t: time nan at position 1 is not finite"),
        (dict(src=[0, 1], dst=[1, 1], t=[0, float("inf")]), "t: time inf at position 1 is not finite"),
        (dict(src=[0, 1], dst=[1, 1], t=[0]), "src, dst, t: length mismatch 2, 2, 1"),
        (dict(src=[0.0, 1.0], dst=[1, 1], t=[0, 1]), "src: wrong dtype torch.float64, expected an integer"),
        (dict(src=[0, 1], dst=[True, False], t=[0, 1]), "dst: wrong dtype torch.bool"),
        (dict(src=[0, 1], dst=[1, 1], t=["a", "b"]), "t: wrong dtype <U1"),
        (dict(src=[[0, 1]], dst=[[1, 1]], t=[[0, 1]]), "src: expected a 1-D array, got shape (1, 2)"),
        (dict(src=[0], dst=[1], t=[0], num_nodes=-2), "num_nodes: expected a non-negative int, got -2"),
        (dict(src=[0], dst=[1], t=[0], edge_feat=np.zeros((2, 3))), "edge_feat: expected 1 rows"),
    ],
)
def test_construction_errors(kwargs, message):
    with pytest.raises(ValueError) as err:
        TemporalGraph(**kwargs)
    assert message in str(err.value)


def test_append_errors_leave_graph_unchanged():
    g = TemporalGraph([0, 1], [1, 2], [1.0, 5.0], edge_feat=np.zeros((2, 3), np.float32))
    older = r"t: time 4 at position 0 is older than the graph's latest event \(5\)"
    with pytest.raises(ValueError, match=older):
        g.append([0], [1], [4.0], edge_feat=np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"dst: id 3 at position 0 is out of range \[0, 3\)"):
        g.append([0], [3], [6.0], edge_feat=np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="edge_feat: the graph has edge features, got NoneType"):
        g.append([0], [1], [6.0])
    with pytest.raises(ValueError, match=r"edge_feat: expected rows of shape \(3,\) and dtype torch.float32"):
        g.append([0], [1], [6.0], edge_feat=np.zeros((1, 4), np.float32))
    assert g.num_events == 2 and g.edge_feat.shape == (2, 3) and g.packed_csr()[0].tolist() == [0, 1, 3, 4]
