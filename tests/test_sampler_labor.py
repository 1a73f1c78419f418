"""TemporalSampler(strategy="labor"): correlated sampling from one number per event per call.

Against a brute-force Python reference (the same counter-based hash as csrc/core/rng.h); marginal
per-root distribution uniform without replacement (chi-square); never a future event; the same
samples whatever the thread count, with or without dedup, after append; the shared-number property;
and (marked cuda) the GPU sampler equal to the CPU one."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare
from test_sampler import check_chain_and_padding, graphs, past_events, unpack, zipf_like_graph

from dgl_tgnn import TemporalGraph, TemporalSampler, ops

MASK64 = 2**64 - 1
GAMMA = 0x9E3779B97F4A7C15


def mix64(x: int) -> int:
    """rng::mix64."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def call_key(seed: int, call: int) -> int:
    """rng::call_key."""
    return mix64(mix64(mix64(seed) ^ ((call * GAMMA + 1) & MASK64)) ^ 0x8CB92BA72F3D8DD7)


def word(key: int, draw: int) -> int:
    """rng::word."""
    return mix64((key + (draw + 1) * GAMMA) & MASK64)


SHORT_ROW = 64  # rng::kLaborShortRow
ROUNDS = 6  # rng::kFeistelRounds


def feistel_bits(d: int) -> int:
    """rng::feistel_bits."""
    bits = 2
    while bits < 62 and (1 << bits) < d:
        bits += 1
    return bits


def feistel_forward(key: int, node: int, bits: int, x: int) -> int:
    """rng::Feistel(key, node, bits).forward(x)."""
    k = mix64((mix64(key ^ 0xA24BAED4963EE407) + (node + 1) * GAMMA) & MASK64)
    mul = [mix64((k + (2 * r + 1) * GAMMA) & MASK64) | 1 for r in range(ROUNDS)]
    add = [mix64((k + (2 * r + 2) * GAMMA) & MASK64) for r in range(ROUNDS)]
    lw, rw = bits - bits // 2, bits // 2
    left, right = x >> rw, x & ((1 << rw) - 1)
    for r in range(ROUNDS):
        left, right = right, left ^ ((((right ^ add[r]) * mul[r]) & MASK64) >> (64 - lw))
        lw, rw = rw, lw
    return (left << rw) | right


def row_events(src, dst, t, v, undirected=True):
    """Node v's whole row as (time, eid, nbr), sorted by (time, eid): index = offset."""
    return sorted(past_events(src, dst, t, v, float("inf"), undirected))


def reference_labor_row(src, dst, t, v, time, k, key, undirected=True):
    """Root (v, time)'s labor sample as (time, eid, nbr), most recent first: the k past events with
    the smallest (number, offset), number = word(key, eid) in a row of <= 64 events, else the
    Feistel rank of the offset."""
    if v < 0:
        return []
    row = row_events(src, dst, t, v, undirected)
    past = [x for x in row if x[0] < time]  # a prefix of the row
    if len(row) <= SHORT_ROW:
        numbers = [word(key, e) for _, e, _ in past]
    else:
        bits = feistel_bits(len(row))
        numbers = [feistel_forward(key, v, bits, o) for o in range(len(past))]
    ranked = sorted(range(len(past)), key=lambda o: (numbers[o], o))
    return sorted((past[o] for o in ranked[:k]), reverse=True)


def block_rows(b):
    return [
        [(tm, e, n) for n, e, tm, m in zip(*row, strict=True) if m]
        for row in zip(
            b.nbr_nodes.tolist(), b.nbr_eids.tolist(), b.nbr_times.tolist(), b.mask.tolist(), strict=True
        )
    ]


@settings(max_examples=150, deadline=None)
@given(graphs, st.integers(0, 2**64 - 1), st.integers(0, 2**40), st.booleans())
def test_labor_matches_brute_force(case, seed, call, dedup):
    """Each root's row is a function of (node, time, seed, call) alone, in every hop."""
    g, src, dst, t, nodes, times, fanouts, undirected = unpack(case)
    sampler = TemporalSampler(g, fanouts, "labor", seed=seed, num_threads=2, dedup=dedup)
    sampler.calls = call
    blocks = sampler.sample(np.array(nodes, np.int64), np.array(times))
    if not dedup:
        check_chain_and_padding(blocks, nodes, times)
    key = call_key(seed, call)
    for b in blocks:
        for v, time, row in zip(b.root_nodes.tolist(), b.root_times.tolist(), block_rows(b), strict=True):
            assert row == reference_labor_row(src, dst, t, v, time, b.fanout, key, undirected)
        assert (b.mask[:, :-1] | ~b.mask[:, 1:]).all()  # valid slots first


def test_hand_example_smallest_numbers():
    # Node 0: 6 events at times 0..5 (eids 0..5); a root at 4.5 sees eids 0..4 and takes 2 of them.
    g = TemporalGraph([0] * 6, [1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5])
    sampler = TemporalSampler(g, [2], "labor", seed=9)
    b = sampler.sample([0, 0, 0], [4.5, 1.5, 0.0])[0]
    key = call_key(9, 0)
    smallest = sorted(sorted(range(5), key=lambda e: word(key, e))[:2], reverse=True)
    assert b.nbr_eids[0].tolist() == smallest
    assert b.nbr_eids[1].tolist() == [1, 0]  # 2 past events, fanout 2: both, most recent first
    assert b.nbr_eids[2].tolist() == [-1, -1] and not b.mask[2].any()  # nothing strictly before 0


def test_labor_chi_square_uniform_without_replacement():
    """4000 star nodes, each with 8 past events in pairs of equal times: a root per node takes 3.
    Events of different nodes have independent numbers, so the rows are independent draws."""
    num_stars, degree, k = 4000, 8, 3
    src = np.repeat(np.arange(num_stars), degree)
    dst = num_stars + np.tile(np.arange(degree), num_stars)
    t = np.tile(np.array([0, 0, 1, 1, 2, 2, 3, 3]), num_stars)
    g = TemporalGraph(src, dst, t, num_nodes=num_stars + degree)
    b = TemporalSampler(g, [k], "labor", seed=5).sample(np.arange(num_stars), np.full(num_stars, 10.0))[0]
    assert b.mask.all()
    local = (b.nbr_nodes - num_stars).numpy()  # which of the 8 events of its star
    counts = np.bincount(local.flatten(), minlength=degree)
    assert counts.sum() == num_stars * k
    assert chisquare(counts).pvalue > 1e-3  # each event taken equally often
    subsets = {s: 0 for s in itertools.combinations(range(degree), k)}
    for row in local.tolist():
        subsets[tuple(sorted(row))] += 1
    assert chisquare(list(subsets.values())).pvalue > 1e-3  # all 56 subsets equally likely


def test_labor_chi_square_across_calls_and_prefixes():
    """Node 0: a short row (12 events, numbers by event); node 1: a long one (300 events, Feistel
    ranks, by computing ranks (n = 8, 40) and by walking the permutation (n = 300)). Roots at several
    prefixes resampled over 3000 calls take 2 events: each subset (or each event) equally often."""
    src = [0] * 12 + [1] * 300
    dst = list(range(2, 14)) + [2 + i % 50 for i in range(300)]
    t = list(range(12)) + list(range(300))
    g = TemporalGraph(src, dst, t)
    sampler = TemporalSampler(g, [2], "labor", seed=77)
    roots = [(0, 9), (0, 12), (1, 8), (1, 40), (1, 300)]
    nodes, times = [v for v, _ in roots], [n - 0.5 for _, n in roots]
    picks = [[] for _ in roots]
    for _ in range(3000):
        b = sampler.sample(nodes, times)[0]
        for i, row in enumerate(b.nbr_times.long().tolist()):  # event times = offsets in the row
            picks[i].append(tuple(sorted(row)))
    for (_, n), got in zip(roots, picks, strict=True):
        counts = np.bincount(np.array(got).flatten(), minlength=n)
        assert counts.shape == (n,) and chisquare(counts).pvalue > 1e-3  # each event equally often
        if n <= 12:
            subsets = dict.fromkeys(itertools.combinations(range(n), 2), 0)
            for pair in got:
                subsets[pair] += 1
            assert chisquare(list(subsets.values())).pvalue > 1e-3  # each pair equally often


def test_shared_numbers_same_events_before_the_earlier_time():
    """Two roots of one node at t1 < t2 (one call): every event of the later root's sample that is
    older than t1 is in the earlier root's sample. And labor makes far fewer distinct hop-1 rows."""
    g, rng = zipf_like_graph(num_events=6000, num_nodes=100)
    nodes = rng.integers(0, 100, 4000)
    t1 = rng.uniform(0, 500, 4000)
    t2 = t1 + rng.uniform(0, 200, 4000)
    k = 5
    b = TemporalSampler(g, [k], "labor", seed=3).sample(
        np.concatenate([nodes, nodes]), np.concatenate([t1, t2])
    )[0]
    e1, e2 = b.nbr_eids[:4000], b.nbr_eids[4000:]
    times2 = b.nbr_times[4000:]
    checked = 0
    for row1, row2, tm2, time1 in zip(e1.tolist(), e2.tolist(), times2.tolist(), t1.tolist(), strict=True):
        older = {e for e, tm in zip(row2, tm2, strict=True) if e >= 0 and tm < time1}
        assert older <= set(row1)
        checked += len(older)
    assert checked > 1000

    def distinct_slots(strategy: str) -> int:
        blk = TemporalSampler(g, [10], strategy, seed=3).sample(nodes, t1)[0]
        pairs = torch.stack([blk.nbr_nodes[blk.mask].double(), blk.nbr_times[blk.mask]], 1)
        return int(torch.unique(pairs, dim=0).shape[0])

    assert distinct_slots("labor") * 2 < distinct_slots("uniform")


def test_labor_same_samples_whatever_threads_new_per_call_and_seed():
    g, rng = zipf_like_graph()
    nodes, times = rng.integers(0, 200, 3000), rng.uniform(0, 600, 3000)
    runs = []
    for threads in (1, 2, 3, None):
        sampler = TemporalSampler(g, [5, 4], "labor", seed=42, num_threads=threads)
        runs.append([sampler.sample(nodes, times) for _ in range(2)])
    for other in runs[1:]:
        for call_a, call_b in zip(runs[0], other, strict=True):
            for a, b in zip(call_a, call_b, strict=True):
                assert torch.equal(a.nbr_eids, b.nbr_eids) and torch.equal(a.mask, b.mask)
    first, second = runs[0]
    assert not torch.equal(first[0].nbr_eids, second[0].nbr_eids)  # a new call, new numbers
    other_seed = TemporalSampler(g, [5, 4], "labor", seed=43).sample(nodes, times)
    assert not torch.equal(other_seed[0].nbr_eids, first[0].nbr_eids)


def test_labor_dedup_samples_equal_the_full_chain():
    """A labor row depends on its root (node, time) alone: with dedup=True every distinct root of a
    hop has the row that each of its copies has in the full chain."""
    g, rng = zipf_like_graph()
    nodes, times = rng.integers(0, 200, 500), rng.uniform(0, 600, 500)
    full = TemporalSampler(g, [6, 5, 3], "labor", seed=8).sample(nodes, times)
    dedup = TemporalSampler(g, [6, 5, 3], "labor", seed=8, dedup=True).sample(nodes, times)
    for f, d in zip(full, dedup, strict=True):
        roots = zip(d.root_nodes.tolist(), d.root_times.tolist(), strict=True)
        rows = dict(zip(roots, d.nbr_eids.tolist(), strict=True))
        assert len(rows) == d.num_roots  # distinct roots
        for v, time, row in zip(
            f.root_nodes.tolist(), f.root_times.tolist(), f.nbr_eids.tolist(), strict=True
        ):
            assert row == (rows[(v, time)] if v >= 0 else [-1] * f.fanout)
    assert dedup[1].num_roots < full[1].num_roots and dedup[2].num_roots < full[2].num_roots


def test_labor_append_then_sample_equals_rebuild():
    g, rng = zipf_like_graph(num_events=2000)
    src, dst, t = g.src.numpy(), g.dst.numpy(), g.t.numpy()
    order = np.argsort(t, kind="stable")
    src, dst, t = src[order], dst[order], t[order]
    whole = TemporalGraph(src, dst, t, num_nodes=200)
    grown = TemporalGraph(src[:700], dst[:700], t[:700], num_nodes=200)
    grown.append(src[700:], dst[700:], t[700:])
    nodes, times = rng.integers(0, 200, 1000), rng.uniform(0, 600, 1000)
    a = TemporalSampler(whole, [7, 3], "labor", seed=1).sample(nodes, times)
    b = TemporalSampler(grown, [7, 3], "labor", seed=1).sample(nodes, times)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.nbr_eids, y.nbr_eids)


def test_labor_large_fanout_and_rows():
    """Fanouts past the stack buffer (64) and rows of thousands of events, against the reference."""
    rng = np.random.default_rng(4)
    num = 3000
    src, dst, t = np.zeros(num, np.int64), rng.integers(1, 50, num), rng.integers(0, 1000, num)
    g = TemporalGraph(src, dst, t, num_nodes=50)
    times = [10.0, 400.0, 999.5, 2000.0]
    for k in (1, 10, 70, 300):
        b = TemporalSampler(g, [k], "labor", seed=11).sample([0] * 4, times)[0]
        key = call_key(11, 0)
        for time, row in zip(times, block_rows(b), strict=True):
            assert row == reference_labor_row(src.tolist(), dst.tolist(), t.tolist(), 0, time, k, key)


def test_labor_rejects_replace():
    g = TemporalGraph([0], [1], [0])
    with pytest.raises(ValueError, match="replace"):
        TemporalSampler(g, [2], "labor", replace=True)


@pytest.mark.cuda
@pytest.mark.skipif(
    not (torch.cuda.is_available() and ops.WITH_CUDA),
    reason="needs a CUDA device and dgl_tgnn._C built with CUDA",
)
@pytest.mark.parametrize("fanouts", [[10, 10], [1, 32], [33, 7], [100, 3], [256]])
@pytest.mark.parametrize("dedup", [False, True])
def test_labor_cuda_equals_cpu(fanouts, dedup):
    from dgl_tgnn.data import load_dataset

    ds = load_dataset("zipf-1m")
    g = TemporalGraph(ds.src, ds.dst, ds.t, num_nodes=ds.num_nodes)
    rng = np.random.default_rng(0)
    events = rng.integers(0, len(ds.src), 5000)
    nodes = np.concatenate([ds.src[events], ds.dst[events], rng.integers(0, ds.num_nodes, 5000)])
    times = np.concatenate([ds.t[events]] * 3).astype(np.float64)
    cpu = TemporalSampler(g, fanouts, "labor", seed=6, dedup=dedup)
    gpu = TemporalSampler(g, fanouts, "labor", seed=6, dedup=dedup)
    for _ in range(2):  # two calls: the device call counter moves as the host's
        a = cpu.sample(nodes, times)
        b = gpu.sample(torch.from_numpy(nodes).cuda(), torch.from_numpy(times).cuda())
        for x, y in zip(a, b, strict=True):
            for name in ("root_nodes", "root_times", "nbr_nodes", "nbr_eids", "nbr_times", "mask"):
                assert torch.equal(getattr(x, name), getattr(y, name).cpu()), name
