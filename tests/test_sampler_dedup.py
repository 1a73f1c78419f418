"""Deduplicated hop chains: ``dedup_roots`` against a brute-force scan, and ``TemporalSampler(dedup=True)``
against the plain chain (recent: the same neighbourhoods, gathered through ``nbr_index``)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sampler import block_rows, graphs, past_events, unpack

from dgl_tgnn import TemporalSampler
from dgl_tgnn.sampling import dedup_roots


def brute_force_dedup(nodes, times):
    firsts, inverse = [], []
    for v, t in zip(nodes, times, strict=True):
        if v < 0:
            inverse.append(-1)
            continue
        key = (v, t + 0.0)
        match = [u for u, (w, s) in enumerate(firsts) if (w, s) == key]
        if not match:
            firsts.append(key)
        inverse.append(match[0] if match else len(firsts) - 1)
    return [v for v, _ in firsts], [t for _, t in firsts], inverse


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-1, 4), st.sampled_from([0.0, -0.0, 1.0, 2.5, 1e9])), max_size=40))
def test_dedup_roots_matches_brute_force(pairs):
    nodes = torch.tensor([p[0] for p in pairs], dtype=torch.int64)
    times = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    want_nodes, want_times, want_inverse = brute_force_dedup(nodes.tolist(), times.tolist())
    unique_nodes, unique_times, inverse = dedup_roots(nodes, times)
    assert unique_nodes.tolist() == want_nodes
    assert unique_times.tolist() == want_times
    assert inverse.tolist() == want_inverse


def test_dedup_roots_hand_example_and_bad_input():
    nodes = torch.tensor([3, 5, 3, -1, 3, 5])
    times = torch.tensor([1.0, 1.0, 1.0, 0.0, 2.0, 1.0], dtype=torch.float64)
    unique_nodes, unique_times, inverse = dedup_roots(nodes, times)
    assert unique_nodes.tolist() == [3, 5, 3]
    assert unique_times.tolist() == [1.0, 1.0, 2.0]
    assert inverse.tolist() == [0, 1, 0, -1, 2, 1]
    with pytest.raises(ValueError, match="int64 and float64"):
        dedup_roots(nodes.int(), times)
    with pytest.raises(ValueError, match="same length"):
        dedup_roots(nodes[:2], times)


def check_dedup_chain(blocks):
    """Each deeper hop's roots are the distinct valid slots of the hop above, in order of first
    occurrence, and nbr_index points every slot at its own (node, time)."""
    for b, nxt in zip(blocks, blocks[1:], strict=False):
        slots_nodes, slots_times = b.nbr_nodes.flatten(), b.nbr_times.flatten()
        want_nodes, want_times, want_inverse = brute_force_dedup(slots_nodes.tolist(), slots_times.tolist())
        assert nxt.root_nodes.tolist() == want_nodes and nxt.root_times.tolist() == want_times
        assert b.nbr_index.flatten().tolist() == want_inverse
        assert b.nbr_index.shape == b.nbr_nodes.shape
    assert blocks[-1].nbr_index is None


@settings(max_examples=120, deadline=None)
@given(graphs, st.integers(0, 2**64 - 1))
def test_recent_dedup_chain_gathers_the_plain_chain(case, seed):
    g, src, dst, t, nodes, times, fanouts, undirected = unpack(case)
    nodes, times = np.array(nodes, np.int64), np.array(times)
    plain = TemporalSampler(g, fanouts, "recent", seed=seed).sample(nodes, times)
    dedup = TemporalSampler(g, fanouts, "recent", seed=seed, dedup=True).sample(nodes, times)
    check_dedup_chain(dedup)
    assert block_rows(dedup[0]) == block_rows(plain[0])
    # Row r of the plain hop i is the dedup hop's row rows[r] (-1: a padding root, an empty row).
    rows = list(range(plain[0].num_roots))
    for i in range(1, len(fanouts)):
        index = dedup[i - 1].nbr_index.tolist()
        k = dedup[i - 1].fanout
        rows = [j for r in rows for j in (index[r] if r >= 0 else [-1] * k)]
        want, got = block_rows(plain[i]), block_rows(dedup[i])
        assert [got[j] if j >= 0 else [None] * fanouts[i] for j in rows] == want


@settings(max_examples=60, deadline=None)
@given(graphs, st.integers(0, 2**64 - 1))
def test_uniform_dedup_chain_valid_distinct_never_future(case, seed):
    g, src, dst, t, nodes, times, fanouts, undirected = unpack(case)
    blocks = TemporalSampler(g, fanouts, "uniform", seed=seed, dedup=True).sample(
        np.array(nodes, np.int64), np.array(times)
    )
    check_dedup_chain(blocks)
    for b in blocks:
        for v, time, row in zip(b.root_nodes.tolist(), b.root_times.tolist(), block_rows(b), strict=True):
            got = [x for x in row if x is not None]
            candidates = past_events(src, dst, t, v, time, undirected)
            assert set(got) <= set(candidates) and len(set(got)) == len(got) == min(len(row), len(candidates))


def test_dedup_validates_its_flag():
    g, *_ = unpack((2, [(0, 1, 1)], [(0, 2.0)], [1], True))
    with pytest.raises(ValueError, match="dedup: expected a bool"):
        TemporalSampler(g, [1], dedup=1)
