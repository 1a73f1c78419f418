"""TemporalSampler on CUDA: the same samples as the CPU sampler, bit for bit (recent, and uniform too,
since both draw from the same counter-based RNG; identical samples imply identical distributions),
input validation, append, and no host synchronisation."""

import numpy as np
import pytest
import torch

from dgl_tgnn import TemporalGraph, TemporalSampler, ops

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not (torch.cuda.is_available() and ops.WITH_CUDA),
        reason="needs a CUDA device and dgl_tgnn._C built with CUDA",
    ),
]


@pytest.fixture(scope="module")
def zipf():
    from dgl_tgnn.data import load_dataset

    ds = load_dataset("zipf-1m")
    g = TemporalGraph(ds.src, ds.dst, ds.t, num_nodes=ds.num_nodes)
    rng = np.random.default_rng(0)
    events = rng.integers(0, len(ds.src), 20000)
    nodes = np.concatenate([ds.src[events], ds.dst[events], rng.integers(0, ds.num_nodes, 20000)])
    times = np.concatenate([ds.t[events]] * 3)
    return g, nodes, times


def assert_same(cpu_blocks, gpu_blocks):
    assert len(cpu_blocks) == len(gpu_blocks)
    for c, d in zip(cpu_blocks, gpu_blocks, strict=True):
        assert d.nbr_nodes.is_cuda
        for name in ("root_nodes", "root_times", "nbr_nodes", "nbr_eids", "nbr_times", "mask"):
            assert torch.equal(getattr(c, name), getattr(d, name).cpu()), name


@pytest.mark.parametrize(
    ("strategy", "replace", "fanouts"),
    [
        ("recent", False, [10, 10]),
        ("uniform", False, [10, 10]),
        ("uniform", True, [10, 10]),
        ("recent", False, [33, 2]),
        ("uniform", False, [33, 2]),
    ],
)
def test_cuda_matches_cpu_on_zipf(zipf, strategy, replace, fanouts):
    g, nodes, times = zipf
    cpu = TemporalSampler(g, fanouts, strategy, replace=replace, seed=7)
    gpu = TemporalSampler(g, fanouts, strategy, replace=replace, seed=7)
    for _ in range(2):  # the second call draws anew on both devices, identically
        expected = cpu.sample(nodes, times)
        assert_same(expected, gpu.sample(torch.from_numpy(nodes).cuda(), torch.from_numpy(times).cuda()))


@pytest.mark.parametrize("fanout", [64, 100, 256])
def test_cuda_matches_cpu_large_fanouts(zipf, fanout):
    g, nodes, times = zipf
    nodes, times = nodes[:3000], times[:3000]
    for strategy, replace in [("recent", False), ("uniform", False), ("uniform", True)]:
        expected = TemporalSampler(g, [fanout], strategy, replace=replace, seed=3).sample(nodes, times)
        got = TemporalSampler(g, [fanout], strategy, replace=replace, seed=3).sample(
            torch.from_numpy(nodes).cuda(), torch.from_numpy(times).cuda()
        )
        assert_same(expected, got)
        if strategy == "recent":  # hub roots have more than `fanout` candidates: every path is exercised
            assert expected[0].mask.sum(1).max() == fanout


def test_cuda_bad_input():
    g = TemporalGraph([0, 1], [1, 2], [1.0, 2.0])
    sampler = TemporalSampler(g, [2])
    dev = torch.device("cuda")
    with pytest.raises(ValueError, match=r"nodes: id 3 at position 1 is out of range \[0, 3\)"):
        sampler.sample(torch.tensor([0, 3], device=dev), torch.tensor([5.0, 5.0], device=dev))
    with pytest.raises(ValueError, match="times: NaN at position 0"):
        sampler.sample(torch.tensor([0], device=dev), torch.tensor([float("nan")], device=dev))
    with pytest.raises(ValueError, match="times: on cpu, expected the device of nodes"):
        sampler.sample(torch.tensor([0], device=dev), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="fanouts: fanout 300 at position 0 exceeds 256"):
        TemporalSampler(g, [300]).sample(torch.tensor([0], device=dev), torch.tensor([1.0], device=dev))
    # Unchecked, a bad root only gets an empty row (never an out-of-bounds read).
    b = sampler.sample(
        torch.tensor([1, -5, 99], device=dev), torch.tensor([5.0] * 3, device=dev), check=False
    )[0]
    assert b.mask.tolist() == [[True, True], [False, False], [False, False]]


def test_cuda_call_counter_checked_and_kept_in_step_with_refused_calls(zipf):
    g, nodes, times = zipf
    dev = torch.device("cuda")
    roots = torch.from_numpy(nodes).to(dev), torch.from_numpy(times).to(dev)
    args = (g.packed_csr(dev), *roots, [5], 1, False, 3)
    with pytest.raises(ValueError, match="call: expected an int64 tensor of one element on cuda"):
        ops.sample_cuda(*args, torch.zeros(1, dtype=torch.int64), 0, None)  # on the host
    with pytest.raises(ValueError, match="call: expected an int64 tensor of one element"):
        ops.sample_cuda(*args, torch.zeros(2, dtype=torch.int64, device=dev), 0, None)
    # A call refused for a bad root still counts, on the host and on the device alike.
    gpu = TemporalSampler(g, [5], "uniform", seed=3)
    with pytest.raises(ValueError, match="out of range"):
        gpu.sample(torch.tensor([-7], device=dev), torch.tensor([1.0], device=dev))
    cpu = TemporalSampler(g, [5], "uniform", seed=3)
    cpu.calls = 1
    assert_same(cpu.sample(nodes, times), gpu.sample(*roots))


def test_cuda_sees_appended_events():
    g = TemporalGraph([0], [1], [1.0], num_nodes=3)
    sampler = TemporalSampler(g, [3])
    dev = torch.device("cuda")
    nodes, times = torch.tensor([0], device=dev), torch.tensor([10.0], device=dev)
    assert sampler.sample(nodes, times)[0].nbr_eids.tolist() == [[0, -1, -1]]
    g.append([2, 0], [0, 0], [3.0, 2.0])
    assert sampler.sample(nodes, times)[0].nbr_eids.tolist() == [[1, 2, 0]]


def test_cuda_sample_does_not_synchronise(zipf):
    g, nodes, times = zipf
    sampler = TemporalSampler(g, [10, 10], "uniform")
    nodes, times = torch.from_numpy(nodes).cuda(), torch.from_numpy(times).cuda()
    sampler.sample(nodes, times)  # uploads the T-CSR once
    torch.cuda.set_sync_debug_mode("error")
    try:
        blocks = sampler.sample(nodes, times, check=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert blocks[1].mask.any()


def test_cuda_graph_replays_draw_as_the_next_calls(zipf):
    """Uniform samples captured in a CUDA graph: each replay draws what the next eager call would
    (the kernels read the call number on the device), the same as the CPU sampler's calls."""
    g, nodes, times = zipf
    cpu = TemporalSampler(g, [10, 10], "uniform", seed=11)
    expected = [cpu.sample(nodes, times) for _ in range(5)]
    gpu = TemporalSampler(g, [10, 10], "uniform", seed=11)
    roots = torch.from_numpy(nodes).cuda(), torch.from_numpy(times).cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up (call 0) off the default stream, as capture wants
        assert_same(expected[0], gpu.sample(*roots, check=False))
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):  # records call 1 (counted on the host) without running it
        captured = gpu.sample(*roots, check=False)
    graph.replay()  # runs call 1
    assert_same(expected[1], captured)
    for call in (2, 3):
        graph.replay()
        gpu.count_replayed(1)
        assert_same(expected[call], captured)
    assert gpu.calls == 4
    assert_same(expected[4], gpu.sample(*roots))  # eager again, from the device counter


@pytest.mark.parametrize("strategy", ["recent", "uniform"])
def test_cuda_dedup_chain_matches_cpu(zipf, strategy):
    g, nodes, times = zipf
    blocks = {}
    for device in ("cpu", "cuda"):
        sampler = TemporalSampler(g, [10, 10, 5], strategy, seed=3, dedup=True)
        roots = torch.as_tensor(nodes, device=device), torch.as_tensor(times, device=device)
        blocks[device] = sampler.sample(*roots)
    assert_same(blocks["cpu"], blocks["cuda"])
    for c, d in zip(blocks["cpu"][:-1], blocks["cuda"][:-1], strict=True):
        assert torch.equal(c.nbr_index, d.nbr_index.cpu())
    assert blocks["cuda"][-1].nbr_index is None


def test_cuda_dedup_roots_matches_cpu(zipf):
    from dgl_tgnn.sampling import dedup_roots

    g, nodes, times = zipf
    (block,) = TemporalSampler(g, [10], "recent").sample(nodes, times)
    slots_nodes, slots_times = block.nbr_nodes.flatten(), block.nbr_times.flatten()
    slots_times[:5] = -0.0  # signed zero is one time
    cpu = dedup_roots(slots_nodes, slots_times)
    gpu = dedup_roots(slots_nodes.cuda(), slots_times.cuda())
    for c, d in zip(cpu, gpu, strict=True):
        assert torch.equal(c, d.cpu())
