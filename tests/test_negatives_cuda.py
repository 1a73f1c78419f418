"""TopKNegatives on a GPU (queries on CUDA): hard negatives drawn there, among the K nearest without
the true destination, uniformly; the table fed as on the host; the GPU generator's state resumed."""

import pytest
import torch
from scipy.stats import chisquare

from dgl_tgnn import ops
from dgl_tgnn.events import EventStream
from dgl_tgnn.negatives import TopKNegatives

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and ops.WITH_CUDA),
    reason="needs a CUDA device and dgl_tgnn._C built with CUDA",
)


def node_vectors(nodes: torch.Tensor, dim: int, device: str = "cuda") -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    return torch.randn(100, dim, generator=g)[nodes.cpu()].to(device)


def sampler(similarity: str = "dot", device: str = "cuda", **overrides) -> TopKNegatives:
    settings = dict(n_hard=3, n_rand=2, k=4, refresh=1, warmup_epochs=0, exclude_known=False)
    settings.update(overrides)
    out = TopKNegatives(
        torch.arange(30),
        similarity=similarity,
        embed=lambda nodes, time_s: node_vectors(nodes, 6, device),
        seed=0,
        score=lambda q, c: q @ c.T,
        **settings,
    )
    out.start_epoch(0)
    return out


def events(src: torch.Tensor, dst: torch.Tensor) -> EventStream:
    return EventStream(src, dst, torch.zeros(src.shape[0], dtype=torch.float64), torch.arange(src.shape[0]))


@pytest.mark.parametrize("similarity", ["dot", "cosine", "decoder"])
def test_hard_negatives_come_from_the_k_nearest_and_exclude_the_destination(similarity: str) -> None:
    negatives = sampler(similarity)
    batch = events(torch.arange(40, 60), torch.arange(20) % 30).batch(0, 20)
    queries = node_vectors(batch.src, 6)
    drawn = negatives.sample(batch, queries)
    assert drawn.is_cuda and drawn.shape == (20, 5)
    table = node_vectors(torch.arange(30), 6)
    if similarity == "cosine":
        table = torch.nn.functional.normalize(table, dim=1)
    for row in range(20):
        scores = (table @ queries[row]).cpu()
        scores[int(batch.dst[row])] = float("-inf")
        nearest = set(torch.argsort(scores, descending=True)[:4].tolist())
        hard = drawn[row, :3].tolist()
        assert set(hard) <= nearest and len(set(hard)) == 3
    assert ((drawn[:, 3:] >= 0) & (drawn[:, 3:] < 30)).all()


def test_hard_negatives_are_uniform_among_the_k_nearest() -> None:
    negatives = sampler(n_hard=1, n_rand=0, k=5)
    rows = 5000
    batch = events(torch.full((rows,), 40), torch.zeros(rows, dtype=torch.int64)).batch(0, rows)
    drawn = negatives.sample(batch, node_vectors(batch.src, 6))[:, 0].cpu()
    counts = torch.bincount(drawn, minlength=30)
    picked = counts.nonzero().flatten()
    assert picked.numel() == 5 and 0 not in picked.tolist()
    assert chisquare(counts[picked].numpy()).pvalue > 1e-3


def test_too_few_nearest_are_topped_up_uniformly() -> None:
    """With k = 3 of a pool of 3 and the destination excluded, the third hard negative is uniform."""
    negatives = TopKNegatives(
        torch.tensor([5, 6, 7]),
        n_hard=3,
        n_rand=0,
        k=3,
        refresh=1,
        warmup_epochs=0,
        similarity="dot",
        exclude_known=False,
        embed=lambda nodes, time_s: node_vectors(nodes, 6),
        seed=0,
    )
    negatives.start_epoch(0)
    rows = 3000
    batch = events(torch.full((rows,), 40), torch.full((rows,), 6)).batch(0, rows)
    drawn = negatives.sample(batch, node_vectors(batch.src, 6)).cpu()
    assert (torch.sort(drawn[:, :2], dim=1).values == torch.tensor([5, 7])).all()
    assert chisquare(torch.bincount(drawn[:, 2] - 5, minlength=3).numpy()).pvalue > 1e-3


def test_observe_on_the_gpu_equals_observe_on_the_host() -> None:
    batch = events(torch.tensor([40, 41]), torch.tensor([1, 2])).batch(0, 2)
    gpu, host = sampler(refresh=100), sampler(device="cpu", refresh=100)
    gpu.sample(batch, node_vectors(batch.src, 6))
    host.sample(batch, node_vectors(batch.src, 6, "cpu"))
    # Node 3 three times (the last wins), ids outside the pool (99, -1), row 0 written once.
    nodes = torch.tensor([3, 99, 3, 5, -1, 0, 3, 99])
    embeddings = torch.randn(8, 6)
    gpu.observe(nodes.cuda(), embeddings.cuda())
    host.observe(nodes, embeddings)
    assert torch.equal(gpu.table.cpu(), host.table)
    assert torch.equal(host.table[3], embeddings[6]) and torch.equal(host.table[0], embeddings[5])


def test_state_dict_resumes_the_same_draws_on_the_gpu() -> None:
    batches = list(events(torch.arange(40, 100), torch.ones(60, dtype=torch.int64)).batches(10))
    first = sampler(refresh=4)
    drawn = [first.sample(b, node_vectors(b.src, 6)) for b in batches]
    second = sampler(refresh=4)
    for b in batches[:3]:
        second.sample(b, node_vectors(b.src, 6))
    third = sampler(refresh=4)
    third.load_state_dict(second.state_dict())
    resumed = [third.sample(b, node_vectors(b.src, 6)) for b in batches[3:]]
    assert all(torch.equal(a, b) for a, b in zip(drawn[3:], resumed, strict=True))


def test_the_pool_is_copied_to_the_gpu_once_whichever_way_it_is_named() -> None:
    """A CUDA graph holds the pool's GPU copy: ``cuda`` and ``cuda:<current>`` must give that one tensor."""
    negatives = sampler()
    first = negatives.on_device("candidates", torch.device("cuda"))
    assert torch.equal(first.cpu(), torch.arange(30))
    assert negatives.on_device("candidates", torch.device("cuda", torch.cuda.current_device())) is first
    assert negatives.on_device("candidates", torch.device("cuda")) is first
