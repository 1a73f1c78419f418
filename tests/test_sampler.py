"""TemporalSampler on CPU against a brute-force reference: recent exact, uniform valid and uniform,
no future events, determinism across threads, append == rebuild, validation, DGL blocks, and the
T-CSR object pickled on its own (exact round trip, corrupt states refused)."""

import itertools
import math
import os
import pickle
import re
import select
from copy import deepcopy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from dgl_tgnn import TemporalGraph, TemporalSampler, ops


def past_events(src, dst, t, v, time, undirected=True):
    """(time, eid, neighbour) of node v's events strictly before `time`, most recent first, ties by
    larger eid first: the brute-force definition of the candidates."""
    out = []
    for e, (a, b, te) in enumerate(zip(src, dst, t, strict=True)):
        if te >= time:
            continue
        if a == v:
            out.append((float(te), e, b))
        elif undirected and b == v:
            out.append((float(te), e, a))
    return sorted(out, reverse=True)


def reference_recent(src, dst, t, nodes, times, fanouts, undirected=True):
    """Dense per-hop rows of (time, eid, nbr) or None, chained as the sampler documents."""
    hops = []
    for k in fanouts:
        rows = []
        for v, time in zip(nodes, times, strict=True):
            ev = past_events(src, dst, t, v, time, undirected)[:k] if v >= 0 else []
            rows.append(ev + [None] * (k - len(ev)))
        hops.append(rows)
        flat = [x for row in rows for x in row]
        nodes = [x[2] if x else -1 for x in flat]
        times = [x[0] if x else 0.0 for x in flat]
    return hops


def block_rows(b):
    return [
        [(tm, e, n) if m else None for n, e, tm, m in zip(*row, strict=True)]
        for row in zip(
            b.nbr_nodes.tolist(), b.nbr_eids.tolist(), b.nbr_times.tolist(), b.mask.tolist(), strict=True
        )
    ]


def check_chain_and_padding(blocks, nodes, times):
    assert torch.equal(blocks[0].root_nodes, torch.as_tensor(nodes, dtype=torch.int64))
    for b, nxt in itertools.pairwise(blocks):
        assert torch.equal(nxt.root_nodes, b.nbr_nodes.flatten())
        assert torch.equal(nxt.root_times, b.nbr_times.flatten())
    for b in blocks:
        assert b.nbr_nodes.dtype == b.nbr_eids.dtype == torch.int64
        assert b.nbr_times.dtype == b.root_times.dtype == torch.float64 and b.mask.dtype == torch.bool
        assert (b.nbr_nodes[~b.mask] == -1).all() and (b.nbr_eids[~b.mask] == -1).all()
        assert (b.nbr_times[~b.mask] == 0).all()
        assert (b.dt >= 0).all()


graphs = st.integers(1, 7).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), st.integers(0, 4)), max_size=25),
        st.lists(
            st.tuples(st.integers(0, n - 1), st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5, 4.0, 9.0])), max_size=8
        ),
        st.lists(st.integers(1, 5), min_size=1, max_size=3),
        st.booleans(),
    )
)


def unpack(case):
    n, ev, roots, fanouts, undirected = case
    src, dst, t = ([e[i] for e in ev] for i in range(3))
    g = TemporalGraph(
        np.array(src, np.int64),
        np.array(dst, np.int64),
        np.array(t, np.int64),
        num_nodes=n,
        undirected=undirected,
    )
    nodes = [r[0] for r in roots]
    times = [r[1] for r in roots]
    return g, src, dst, t, nodes, times, fanouts, undirected


@settings(max_examples=120, deadline=None)
@given(graphs, st.integers(0, 2**64 - 1))
def test_recent_matches_brute_force(case, seed):
    g, src, dst, t, nodes, times, fanouts, undirected = unpack(case)
    sampler = TemporalSampler(g, fanouts, "recent", seed=seed)
    blocks = sampler.sample(np.array(nodes, np.int64), np.array(times))
    expected = reference_recent(src, dst, t, nodes, times, fanouts, undirected)
    assert [block_rows(b) for b in blocks] == expected
    check_chain_and_padding(blocks, nodes, times)


@settings(max_examples=120, deadline=None)
@given(graphs, st.booleans(), st.integers(0, 2**64 - 1))
def test_uniform_valid_distinct_sized_never_future(case, replace, seed):
    g, src, dst, t, nodes, times, fanouts, undirected = unpack(case)
    sampler = TemporalSampler(g, fanouts, "uniform", replace=replace, seed=seed, num_threads=2)
    blocks = sampler.sample(torch.tensor(nodes, dtype=torch.int64), torch.tensor(times, dtype=torch.float64))
    check_chain_and_padding(blocks, nodes, times)
    for b in blocks:
        for v, time, row in zip(b.root_nodes.tolist(), b.root_times.tolist(), block_rows(b), strict=True):
            candidates = past_events(src, dst, t, v, time, undirected) if v >= 0 else []
            got = [x for x in row if x is not None]
            assert row[: len(got)] == got  # valid slots first
            assert set(got) <= set(candidates)  # never a future event, nbr/time consistent with eid
            assert got == sorted(got, reverse=True)  # most recent first
            k = len(row)
            if replace:
                assert len(got) == (k if candidates else 0)
            else:
                assert len(got) == min(k, len(candidates)) and len(set(got)) == len(got)


def test_hand_example_two_hops():
    # eid:  0        1        2        3        4
    src = [0, 1, 0, 2, 1]
    dst = [1, 2, 2, 0, 0]
    t = [1.0, 2.0, 2.0, 3.0, 5.0]
    g = TemporalGraph(src, dst, t)
    b0, b1 = TemporalSampler(g, [2, 1]).sample([0, 2], [4.0, 2.0])
    # node 0 before 4: e3 (t3, nbr 2), then e2 (t2, nbr 2); node 2 before 2: nothing.
    assert b0.nbr_eids.tolist() == [[3, 2], [-1, -1]]
    assert b0.nbr_nodes.tolist() == [[2, 2], [-1, -1]]
    assert b0.nbr_times.tolist() == [[3.0, 2.0], [0.0, 0.0]]
    assert b0.mask.tolist() == [[True, True], [False, False]]
    assert b0.dt.tolist() == [[1.0, 2.0], [0.0, 0.0]]
    # hop 2 roots: (2, 3), (2, 2), (-1, 0), (-1, 0). Node 2 before 3: e1 and e2 at t=2 -> larger eid e2.
    assert b1.root_nodes.tolist() == [2, 2, -1, -1]
    assert b1.nbr_eids.tolist() == [[2], [-1], [-1], [-1]]
    assert b1.nbr_nodes.tolist() == [[0], [-1], [-1], [-1]]


def test_uniform_chi_square_with_tied_times():
    # Node 0 has 8 past events, pairs of equal times; 4000 roots draw 3 each without replacement.
    g = TemporalGraph([0] * 8, list(range(1, 9)), [0, 0, 1, 1, 2, 2, 3, 3])
    nodes, times = np.zeros(4000, np.int64), np.full(4000, 10.0)
    for replace in (False, True):
        b = TemporalSampler(g, [3], "uniform", replace=replace, seed=5).sample(nodes, times)[0]
        counts = np.bincount(b.nbr_eids.flatten().numpy(), minlength=8)
        assert counts.sum() == 12000
        assert chisquare(counts).pvalue > 1e-3  # each event drawn equally often
        if replace:
            repeats = sum(len(set(r)) < 3 for r in b.nbr_eids.tolist())
            assert abs(repeats / 4000 - (1 - 8 * 7 * 6 / 8**3)) < 0.05
        else:
            subsets = {s: 0 for s in itertools.combinations(range(8), 3)}
            for row in b.nbr_eids.tolist():
                subsets[tuple(sorted(row))] += 1
            assert chisquare(list(subsets.values())).pvalue > 1e-3  # all 56 subsets equally likely


def zipf_like_graph(num_events=3000, num_nodes=200, seed=0):
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, num_nodes + 1)
    src = rng.choice(num_nodes, num_events, p=p / p.sum())
    dst = rng.choice(num_nodes, num_events, p=p / p.sum())
    t = rng.integers(0, 500, num_events)
    return TemporalGraph(src, dst, t, num_nodes=num_nodes), rng


@pytest.mark.parametrize(("strategy", "replace"), [("recent", False), ("uniform", False), ("uniform", True)])
def test_same_seed_same_samples_whatever_threads(strategy, replace):
    g, rng = zipf_like_graph()
    nodes, times = rng.integers(0, 200, 3000), rng.uniform(0, 600, 3000)
    runs = []
    for threads in (1, 2, 3, None):
        sampler = TemporalSampler(g, [5, 4], strategy, replace=replace, seed=42, num_threads=threads)
        runs.append([sampler.sample(nodes, times) for _ in range(2)])
    for other in runs[1:]:
        for call_a, call_b in zip(runs[0], other, strict=True):
            for a, b in zip(call_a, call_b, strict=True):
                assert torch.equal(a.nbr_eids, b.nbr_eids) and torch.equal(a.mask, b.mask)
    first, second = runs[0]
    differs = any(not torch.equal(a.nbr_eids, b.nbr_eids) for a, b in zip(first, second, strict=True))
    assert differs == (strategy == "uniform")  # a new call draws new samples
    other_seed = TemporalSampler(g, [5, 4], strategy, replace=replace, seed=43).sample(nodes, times)
    assert (strategy == "uniform") != torch.equal(other_seed[0].nbr_eids, first[0].nbr_eids)


def test_calls_counts_and_sets_the_call_number():
    g, rng = zipf_like_graph()
    nodes, times = rng.integers(0, 200, 500), rng.uniform(0, 600, 500)
    sampler = TemporalSampler(g, [5], "uniform", seed=5)
    draws = [sampler.sample(nodes, times)[0].nbr_eids for _ in range(3)]
    assert sampler.calls == 3
    sampler.calls = 1  # e.g. a resumed run: the next call draws as call 1 did
    assert torch.equal(sampler.sample(nodes, times)[0].nbr_eids, draws[1])
    sampler.count_replayed(0)
    assert sampler.calls == 2
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="calls"):
            sampler.calls = bad


def _second_hop_eids(sampler, nodes, times):
    return sampler.sample(nodes, times)[1].nbr_eids


def _in_forked_child(fn, timeout=60.0):
    """fn() run in a child forked from this process (threads already started here), or an error."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.write(write, pickle.dumps(fn().numpy()))
        finally:
            os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], timeout)
    data = b""
    while ready and (chunk := os.read(read, 1 << 20)):
        data += chunk
    os.close(read)
    if not ready:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    assert data, "the forked child hung or crashed"
    return torch.from_numpy(pickle.loads(data))


def test_pickled_sampler_and_forked_child_sample_alike():
    g, rng = zipf_like_graph()
    nodes, times = rng.integers(0, 200, 5000), rng.uniform(0, 600, 5000)
    sampler = TemporalSampler(g, [5, 4], "uniform", seed=9, num_threads=2)
    sampler.sample(nodes, times)  # call 0; helper threads exist in this process now
    copy = pickle.loads(pickle.dumps(sampler))
    assert torch.equal(
        _second_hop_eids(copy, nodes, times), _second_hop_eids(sampler, nodes, times)
    )  # call 1
    # A forked child (a DataLoader worker) builds a graph and samples with threads (call 2).
    child = _in_forked_child(lambda: _second_hop_eids(pickle.loads(pickle.dumps(copy)), nodes, times))
    assert torch.equal(child, _second_hop_eids(sampler, nodes, times))


def test_append_then_sample_equals_rebuild():
    g, rng = zipf_like_graph(2000)
    full_src, full_dst, full_t = g.src.clone(), g.dst.clone(), g.t.clone()
    for _ in range(20):
        n = int(rng.integers(1, 50))
        s, d = rng.integers(0, 200, n), rng.integers(0, 200, n)
        t = g.max_time + rng.integers(0, 3, n)
        g.append(s, d, t)
        full_src = torch.cat([full_src, torch.from_numpy(s)])
        full_dst = torch.cat([full_dst, torch.from_numpy(d)])
        full_t = torch.cat([full_t, torch.from_numpy(t)])
    rebuilt = TemporalGraph(full_src, full_dst, full_t, num_nodes=200)
    nodes, times = rng.integers(0, 200, 2000), rng.uniform(0, 600, 2000)
    for strategy in ("recent", "uniform"):
        a = TemporalSampler(g, [6, 3], strategy, seed=1).sample(nodes, times)
        b = TemporalSampler(rebuilt, [6, 3], strategy, seed=1).sample(nodes, times)
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x.nbr_eids, y.nbr_eids) and torch.equal(x.nbr_times, y.nbr_times)


def test_input_types_agree_and_edge_cases():
    g, rng = zipf_like_graph(500, 50)
    nodes, times = rng.integers(0, 50, 100), rng.integers(0, 600, 100)
    sampler = TemporalSampler(g, [4], "recent")
    ref = sampler.sample(nodes, times)[0]
    variants = [
        (torch.from_numpy(nodes).int(), torch.from_numpy(times)),
        (nodes.tolist(), times.astype(np.float32)),
    ]
    for n, tm in variants:
        assert torch.equal(sampler.sample(n, tm)[0].nbr_eids, ref.nbr_eids)
    empty = TemporalSampler(g, [3, 2]).sample(np.zeros(0, np.int64), np.zeros(0))
    assert [tuple(b.nbr_eids.shape) for b in empty] == [(0, 3), (0, 2)]
    latest = TemporalSampler(g, [1]).sample([int(g.src[-1])], [math.inf])[0]
    assert latest.nbr_times.item() == g.max_time  # an infinite root time sees every event


@pytest.mark.parametrize(
    ("sampler_kwargs", "nodes", "times", "message"),
    [
        ({}, [0, 50], [1.0, 2.0], "nodes: id 50 at position 1 is out of range [0, 50)"),
        ({}, [-1], [1.0], "nodes: id -1 at position 0 is out of range [0, 50)"),
        ({}, [0, 1], [1.0, float("nan")], "times: NaN at position 1"),
        ({}, [0, 1], [1.0], "nodes and times: length mismatch 2 vs 1"),
        ({}, [0.0, 1.0], [1.0, 2.0], "nodes: wrong dtype torch.float64, expected an integer type"),
        ({}, [0, 1], [True, False], "times: wrong dtype torch.bool"),
        ({}, [[0, 1]], [[1.0, 2.0]], "nodes: expected a 1-D array, got shape (1, 2)"),
        ({"fanouts": [10, 0]}, [0], [1.0], "fanouts: fanout 0 at position 1 must be an int > 0"),
        ({"fanouts": [-3]}, [0], [1.0], "fanouts: fanout -3 at position 0 must be an int > 0"),
        ({"fanouts": []}, [0], [1.0], "fanouts: expected at least one hop"),
        ({"fanouts": 10}, [0], [1.0], "fanouts: expected a sequence of ints, got 10"),
        ({"strategy": "latest"}, [0], [1.0], "strategy: unknown 'latest'"),
        ({"replace": True}, [0], [1.0], "replace: True applies only to strategy 'uniform'"),
        ({"seed": -1}, [0], [1.0], "seed: expected an int in [0, 2**64), got -1"),
        ({"num_threads": 0}, [0], [1.0], "num_threads: expected None or an int > 0, got 0"),
    ],
)
def test_bad_input_raises_value_error_naming_it(sampler_kwargs, nodes, times, message):
    g, _ = zipf_like_graph(500, 50)
    with pytest.raises(ValueError) as err:
        TemporalSampler(g, **sampler_kwargs).sample(nodes, times)
    assert message in str(err.value)
    assert "\n" not in str(err.value)  # one line, no C++ trace


def test_extension_checks_its_inputs_too():
    g = TemporalGraph([0], [1], [1.0])
    f64, one, tcsr = torch.float64, torch.tensor([1.0], dtype=torch.float64), g._tcsr
    cases = [
        (
            lambda: ops.sample_cpu(tcsr, torch.tensor([0, 1]), one, [2], 0, False, 0, 0, 0),
            "length mismatch 2 vs 1",
        ),
        (
            lambda: ops.sample_cpu(tcsr, torch.tensor([5]), one, [2], 0, False, 0, 0, 0),
            "nodes: id 5 at position 0",
        ),
        (
            lambda: ops.sample_cpu(tcsr, torch.tensor([0]), one, [2, 0], 0, False, 0, 0, 0),
            "fanout 0 at position 1",
        ),
        (lambda: ops.sample_cpu(tcsr, torch.tensor([[0]]), one, [2], 0, False, 0, 0, 0), "got 2 dimensions"),
        (
            lambda: ops.tcsr_build(torch.tensor([0]), torch.tensor([1]), one.float(), 2, True),
            "t: expected dtype Double",
        ),
        (
            lambda: ops.tcsr_build(torch.tensor([0]), torch.tensor([1]), one, -1, True),
            "num_nodes: expected >= 0, got -1",
        ),
        (
            lambda: ops.tcsr_append(
                tcsr, torch.tensor([0]), torch.tensor([1]), torch.tensor([0.5], dtype=f64)
            ),
            "time 0.5 at",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            call()


def test_to_dgl_message_passing_equals_dense_sum():
    pytest.importorskip("dgl")
    from dgl_tgnn._dgl import dgl

    g, rng = zipf_like_graph(2000, 100)
    h = torch.randn(100, 3, dtype=torch.float64)
    nodes, times = rng.integers(0, 100, 300), rng.uniform(0, 600, 300)
    for strategy in ("recent", "uniform"):
        for b in TemporalSampler(g, [5, 3], strategy, seed=3).sample(nodes, times):
            block = b.to_dgl()
            r, valid = b.num_roots, int(b.mask.sum())
            assert (block.num_dst_nodes(), block.num_src_nodes(), block.num_edges()) == (r, r + valid, valid)
            assert torch.equal(block.srcdata["nid"][:r], b.root_nodes)
            assert torch.equal(block.srcdata["nid"][r:], b.nbr_nodes[b.mask])
            assert torch.equal(block.srcdata["ts"][r:], b.nbr_times[b.mask])
            assert torch.equal(block.edata["eid"], b.nbr_eids[b.mask])
            assert torch.equal(block.edata["dt"], b.dt[b.mask]) and (block.edata["dt"] >= 0).all()
            block.srcdata["h"] = h[block.srcdata["nid"].clamp(min=0)]
            block.edata["w"] = block.edata["dt"][:, None]
            block.update_all(dgl.function.u_mul_e("h", "w", "m"), dgl.function.sum("m", "out"))
            dense = (h[b.nbr_nodes.clamp(min=0)] * (b.dt * b.mask)[..., None]).sum(1)
            torch.testing.assert_close(block.dstdata["out"], dense)


# ---- the T-CSR object pickled on its own (TemporalGraph pickles its events instead)


def _tcsr_facts(tcsr: torch.ScriptObject) -> tuple:
    """Everything a T-CSR is: packed arrays (as lists, so -0.0 and 0.0 differ nowhere), counts, flags."""
    arrays = tuple(x.tolist() for x in ops.tcsr_pack(tcsr))
    scalars = (tcsr.num_nodes(), tcsr.num_events(), tcsr.num_entries(), tcsr.undirected(), tcsr.max_time())
    return arrays + scalars


def _all_samples(tcsr: torch.ScriptObject, nodes: torch.Tensor, times: torch.Tensor) -> list[torch.Tensor]:
    """Two hops of every strategy (uniform with and without replacement), two calls each."""
    out = []
    for strategy, replace in ((0, False), (1, False), (1, True), (2, False)):
        for call in (0, 1):
            hops = ops.sample_cpu(tcsr, nodes, times, [4, 3], strategy, replace, 17, call, 2)
            out += [x for hop in hops for x in hop]
    return out


@pytest.mark.parametrize("undirected", [True, False])
def test_tcsr_pickles_exactly_built_and_after_appends(undirected):
    rng = np.random.default_rng(3)
    src, dst = torch.from_numpy(rng.integers(0, 60, 800)), torch.from_numpy(rng.integers(0, 60, 800))
    t = torch.from_numpy(rng.integers(0, 100, 800).astype(np.float64))
    tcsr = ops.tcsr_build(src, dst, t, 60, undirected)
    nodes = torch.from_numpy(rng.integers(0, 60, 300))
    times = torch.from_numpy(rng.uniform(0, 400, 300))
    for stage in range(3):  # built; appended to (rows moved, with slack); appended to again
        copy = pickle.loads(pickle.dumps(tcsr))
        assert _tcsr_facts(copy) == _tcsr_facts(tcsr)
        assert copy.storage_size() == copy.num_entries()  # packed, no slack: as tcsr_build makes it
        assert _tcsr_facts(deepcopy(tcsr)) == _tcsr_facts(tcsr)  # deepcopy goes through the same state
        assert stage == 0 or tcsr.storage_size() > tcsr.num_entries()  # the original did have slack
        for a, b in zip(_all_samples(copy, nodes, times), _all_samples(tcsr, nodes, times), strict=True):
            assert torch.equal(a, b)
        for _ in range(30):  # appending to the copy equals appending to the original
            n = int(rng.integers(1, 20))
            s, d = torch.from_numpy(rng.integers(0, 60, n)), torch.from_numpy(rng.integers(0, 60, n))
            bt = tcsr.max_time() + torch.from_numpy(rng.integers(0, 3, n).astype(np.float64))
            ops.tcsr_append(tcsr, s, d, bt)
            ops.tcsr_append(copy, s, d, bt)
            src, dst, t = torch.cat([src, s]), torch.cat([dst, d]), torch.cat([t, bt])
        assert _tcsr_facts(copy) == _tcsr_facts(tcsr)
        for a, b in zip(_all_samples(copy, nodes, times), _all_samples(tcsr, nodes, times), strict=True):
            assert torch.equal(a, b)
    rebuilt = ops.tcsr_build(src, dst, t, 60, undirected)
    assert _tcsr_facts(pickle.loads(pickle.dumps(tcsr))) == _tcsr_facts(rebuilt)


def test_tcsr_of_empty_graphs_pickles():
    for num_nodes in (0, 4):
        none = torch.zeros(0, dtype=torch.int64)
        tcsr = ops.tcsr_build(none, none, torch.zeros(0, dtype=torch.float64), num_nodes, True)
        copy = pickle.loads(pickle.dumps(tcsr))
        assert _tcsr_facts(copy) == _tcsr_facts(tcsr)
        assert copy.max_time() == -math.inf
        if num_nodes:
            t = torch.tensor([-5.0], dtype=torch.float64)
            ops.tcsr_append(copy, torch.tensor([0]), torch.tensor([3]), t)
            assert ops.tcsr_pack(copy)[0].tolist() == [0, 1, 1, 1, 2]


def _unpickle_script_object(state: object) -> torch.ScriptObject:
    """What unpickling a ScriptObject does (``copyreg.__newobj__``, then ``__setstate__``)."""
    obj = torch.ScriptObject.__new__(torch.ScriptObject)
    obj.__setstate__(state)
    return obj


class _PickledAs:
    """Pickles as a T-CSR whose state is ``state``: what a corrupt or hand-made pickle would hold."""

    def __init__(self, tcsr: torch.ScriptObject, state: tuple) -> None:
        _, qualified_name = tcsr.__getstate__()
        self._state = (state, qualified_name)

    def __reduce__(self) -> tuple:
        return _unpickle_script_object, (self._state,)


_TCSR_STATE_ERRORS = [
    # (state position, new value, message)
    (0, torch.tensor([0, 2, 1, 5]), "indptr: 1 at position 2 is smaller than the 2 before it"),
    (0, torch.tensor([0, 2, 4]), "indptr: expected 5 (the number of entries) at position 2, got 4"),
    (0, torch.tensor([1, 2, 4, 5]), "indptr: expected 0 at position 0, got 1"),
    (0, torch.zeros(0, dtype=torch.int64), "indptr: expected num_nodes + 1 >= 1 entries, got 0"),
    (0, torch.tensor([0.0, 2, 4, 5]), "indptr: expected a 1-D torch.int64 tensor, got torch.float32 (4,)"),
    (1, torch.tensor([1, 2, 0, 1]), "nbr, eid, ts: length mismatch 4, 5, 5"),
    (1, torch.tensor([1, 2, 0, 7, 0]), "nbr: id 7 at position 3 (row 1) is out of range [0, 3)"),
    (2, torch.tensor([[0, 2, 0, 1, 2]]), "eid: expected a 1-D torch.int64 tensor, got torch.int64 (1, 5)"),
    (2, torch.tensor([0, 2, 0, 1, 9]), "eid: id 9 at position 4 (row 2) is out of range [0, 3)"),
    (3, torch.tensor([1.0, 2, 1, 2, math.nan], dtype=torch.float64), "ts: time nan at position 4"),
    (3, torch.tensor([2.0, 1, 1, 2, 1], dtype=torch.float64), "ts, eid: (1, 2) at position 1 (row 0)"),
    (3, torch.tensor([1.0, 2, 1, 2, 1.5], dtype=torch.float64), "eid: event 2 at position 4 (row 2)"),
    (4, -1, "num_events: expected >= 0, got -1"),
    (4, 9, "num_events: 9 events cannot make 5 entries of an undirected graph"),
    (4, 4, "eid: event 3 is in no row"),
    (5, False, "num_events: 3 events cannot make 5 entries of a directed graph"),
    (6, 7.0, "max_time: expected 2 (the latest time listed), got 7"),
]


@pytest.mark.parametrize(("position", "value", "message"), _TCSR_STATE_ERRORS)
def test_corrupt_tcsr_state_raises_one_line_value_error(position, value, message):
    # eid 0 = 0-1 at t 1, eid 1 = 1-1 at t 2 (a self-loop, listed once), eid 2 = 2-0 at t 2.
    src, dst, t = torch.tensor([0, 1, 2]), torch.tensor([1, 1, 0]), torch.tensor([1.0, 2, 2])
    tcsr = ops.tcsr_build(src, dst, t.double(), 3, True)
    state, qualified_name = tcsr.__getstate__()  # ScriptObject's pickling: (def_pickle's state, class)
    assert qualified_name == "__torch__.torch.classes.dgl_tgnn.TCSR"
    state = list(state)
    packed = [[0, 2, 4, 5], [1, 2, 0, 1, 0], [0, 2, 0, 1, 2], [1, 2, 1, 2, 2]]  # indptr, nbr, eid, ts
    assert [x.tolist() for x in state[:4]] == packed and state[4:] == [3, True, 2.0]
    assert _tcsr_facts(pickle.loads(pickle.dumps(_PickledAs(tcsr, tuple(state))))) == _tcsr_facts(tcsr)
    state[position] = value
    with pytest.raises(ValueError) as err:
        pickle.loads(pickle.dumps(_PickledAs(tcsr, tuple(state))))
    assert str(err.value).startswith("TCSR state: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)  # one line, no C++ trace
