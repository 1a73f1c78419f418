"""TGAT and TGN over a deduplicated hop chain (``TemporalSampler(dedup=True)``) compute the same
embeddings and gradients as over the plain chain, with most-recent neighbours (the same neighbourhoods)."""

import dataclasses

import pytest
import torch

from dgl_tgnn import TemporalGraph, TemporalSampler
from dgl_tgnn.nn import TGAT, TGN
from dgl_tgnn.nn.tgat import check_blocks

NUM_NODES, NUM_EVENTS = 12, 90


def graph_and_roots() -> tuple[TemporalGraph, torch.Tensor, torch.Tensor]:
    """Few nodes and few distinct times: the deeper hops repeat (node, time) pairs a lot."""
    gen = torch.Generator().manual_seed(3)
    src = torch.randint(0, NUM_NODES, (NUM_EVENTS,), generator=gen)
    dst = torch.randint(0, NUM_NODES, (NUM_EVENTS,), generator=gen)
    t = torch.sort(torch.randint(0, 30, (NUM_EVENTS,), generator=gen)).values.double()
    roots = torch.randint(0, NUM_NODES, (25,), generator=gen)
    times = torch.randint(5, 35, (25,), generator=gen).double()
    return TemporalGraph(src, dst, t, num_nodes=NUM_NODES), roots, times


def run(model: torch.nn.Module, blocks, node_feat, edge_feat) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    out = model(blocks, node_feat, edge_feat)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("name", ["tgat", "tgn"])
def test_dedup_chain_gives_the_same_embeddings_and_gradients(name: str) -> None:
    graph, roots, times = graph_and_roots()
    fanouts = [4, 3, 2]
    plain = TemporalSampler(graph, fanouts, "recent").sample(roots, times)
    dedup = TemporalSampler(graph, fanouts, "recent", dedup=True).sample(roots, times)
    # 25, 100, 300 roots per hop plain; 25, 59, 102 distinct.
    assert dedup[1].num_roots < 0.7 * plain[1].num_roots and dedup[2].num_roots < 0.4 * plain[2].num_roots
    gen = torch.Generator().manual_seed(1)
    node_feat, edge_feat = torch.randn(NUM_NODES, 5, generator=gen), torch.randn(NUM_EVENTS, 3, generator=gen)
    torch.manual_seed(0)
    if name == "tgat":
        model = TGAT(5, 3, time_dim=6, embed_dim=8, num_layers=3, engine="dense").eval()
    else:
        model = TGN(NUM_NODES, 5, 3, memory_dim=7, time_dim=6, embed_dim=8, num_layers=3, engine="dense")
        model.eval()
        src, dst = torch.arange(6), torch.arange(6, 12)
        model.update(src, dst, torch.full((6,), 4.0, dtype=torch.float64), torch.arange(6), edge_feat)
    plain_out, plain_grads = run(model, plain, node_feat, edge_feat)
    dedup_out, dedup_grads = run(model, dedup, node_feat, edge_feat)
    torch.testing.assert_close(dedup_out, plain_out, atol=1e-5, rtol=0)
    assert len(dedup_grads) == len(plain_grads)
    for got, want in zip(dedup_grads, plain_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_check_blocks_reads_the_index_shape() -> None:
    graph, roots, times = graph_and_roots()
    blocks = TemporalSampler(graph, [4, 3], "recent", dedup=True).sample(roots, times)
    check_blocks(blocks, 2)
    bad = [dataclasses.replace(blocks[0], nbr_index=blocks[0].nbr_index[:, :2]), blocks[1]]
    with pytest.raises(ValueError, match="nbr_index must have the shape"):
        check_blocks(bad, 2)


def test_dedup_chain_without_any_neighbour() -> None:
    """Roots before every event: the deeper hops are empty, the embeddings those of a plain chain."""
    graph, roots, times = graph_and_roots()
    times = torch.full_like(times, -1.0)
    plain = TemporalSampler(graph, [4, 3], "recent").sample(roots, times)
    dedup = TemporalSampler(graph, [4, 3], "recent", dedup=True).sample(roots, times)
    assert dedup[1].num_roots == 0
    torch.manual_seed(0)
    model = TGAT(5, 3, time_dim=6, embed_dim=8, num_layers=2, engine="dense").eval()
    node_feat, edge_feat = torch.randn(NUM_NODES, 5), torch.randn(NUM_EVENTS, 3)
    want = model(plain, node_feat, edge_feat)
    torch.testing.assert_close(model(dedup, node_feat, edge_feat), want, atol=1e-6, rtol=0)
