import pytest
import torch
from nn_blocks import BLOCK_TENSORS, random_chain

from dgl_tgnn.nn import TGAT
from dgl_tgnn.nn.attention import gather_rows
from dgl_tgnn.sampling import TemporalBlock

NUM_NODES, NUM_EVENTS = 30, 70


def features(node_dim: int, edge_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    return torch.randn(NUM_NODES, node_dim, generator=gen), torch.randn(NUM_EVENTS, edge_dim, generator=gen)


def make_tgat(node_dim: int, edge_dim: int, num_layers: int, engine: str = "dense") -> TGAT:
    torch.manual_seed(0)
    return TGAT(node_dim, edge_dim, time_dim=6, embed_dim=8, num_layers=num_layers, engine=engine).eval()


@pytest.mark.parametrize(
    ("fanouts", "node_dim", "edge_dim"), [([5], 4, 3), ([4, 3], 0, 3), ([3, 2, 2], 4, 0)]
)
def test_shapes_dtype_and_no_nan(fanouts: list[int], node_dim: int, edge_dim: int) -> None:
    blocks = random_chain(17, fanouts, NUM_NODES, NUM_EVENTS, seed=1)
    assert len(fanouts) == 1 or (blocks[-1].root_nodes == -1).any()  # padding roots in deeper hops
    model = make_tgat(node_dim, edge_dim, len(fanouts))
    node_feat, edge_feat = features(node_dim, edge_dim)
    out = model(blocks, node_feat, edge_feat)
    assert out.shape == (17, 8) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_layers_run_bottom_up_over_the_hops() -> None:
    """Two layers equal layer 2 applied to layer-1 embeddings of hop 0 and hop 1, built by hand."""
    blocks = random_chain(11, [4, 3], NUM_NODES, NUM_EVENTS, seed=2)
    model = make_tgat(4, 3, 2)
    node_feat, edge_feat = features(4, 3)
    b0, b1 = blocks
    x0 = node_feat[b0.root_nodes]
    x1 = node_feat[b0.nbr_nodes.flatten().clamp(min=0)]
    x2 = node_feat[b1.nbr_nodes.flatten().clamp(min=0)]
    e0, e1 = edge_feat[b0.nbr_eids.clamp(min=0)], edge_feat[b1.nbr_eids.clamp(min=0)]
    layer1, layer2 = model.layers
    h1_roots = layer1(b0, x0, x1, e0)
    h1_nbrs = layer1(b1, x1, x2, e1)
    expected = layer2(b0, h1_roots, h1_nbrs, e0)
    torch.testing.assert_close(model(blocks, node_feat, edge_feat), expected, atol=0, rtol=0)


def test_root_depends_only_on_its_own_neighbourhood() -> None:
    blocks = random_chain(6, [3, 2], NUM_NODES, NUM_EVENTS, seed=3)
    model = make_tgat(4, 3, 2)
    node_feat, edge_feat = features(4, 3)
    out = model(blocks, node_feat, edge_feat)
    # Change events that only root 1's second hop holds (root 0 has no neighbour): only row 1 may move.
    own = torch.zeros(blocks[1].num_roots, dtype=torch.bool)
    own[3:6] = True
    touched = blocks[1].nbr_eids[own][blocks[1].mask[own]]
    others = torch.cat([blocks[1].nbr_eids[~own][blocks[1].mask[~own]], blocks[0].nbr_eids[blocks[0].mask]])
    only_root1 = touched[~torch.isin(touched, others)]
    assert only_root1.numel() > 0
    edge_feat2 = edge_feat.clone()
    edge_feat2[only_root1] += 5.0
    out2 = model(blocks, node_feat, edge_feat2)
    assert not torch.allclose(out2[1], out[1])
    torch.testing.assert_close(out2[[0, 2, 3, 4, 5]], out[[0, 2, 3, 4, 5]], atol=0, rtol=0)


def test_gradients_reach_every_layer() -> None:
    blocks = random_chain(13, [4, 3], NUM_NODES, NUM_EVENTS, seed=4)
    model = make_tgat(4, 3, 2).train()
    node_feat, edge_feat = features(4, 3)
    model(blocks, node_feat, edge_feat).square().sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_dgl_engine_equals_dense_engine() -> None:
    pytest.importorskip("dgl")
    blocks = random_chain(13, [4, 3], NUM_NODES, NUM_EVENTS, seed=5)
    node_feat, edge_feat = features(4, 3)
    results = []
    for engine in ("dense", "dgl"):
        model = make_tgat(4, 3, 2, engine)
        out = model(blocks, node_feat, edge_feat)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), [p.grad for p in model.parameters()]))
    (dense_out, dense_grads), (dgl_out, dgl_grads) = results
    torch.testing.assert_close(dgl_out, dense_out, atol=1e-5, rtol=0)
    for dgl_grad, dense_grad in zip(dgl_grads, dense_grads, strict=True):
        torch.testing.assert_close(dgl_grad, dense_grad, atol=1e-5, rtol=0)


def test_gather_rows_reads_row_zero_for_empty_ids() -> None:
    table = torch.arange(12.0).view(4, 3)
    ids = torch.tensor([[2, -1], [0, 3]])
    torch.testing.assert_close(gather_rows(table, ids), table[torch.tensor([[2, 0], [0, 3]])])
    # An empty table (a deduplicated hop without any neighbour) gives zero rows of its width.
    assert torch.equal(gather_rows(torch.zeros(0, 3), torch.full((2, 5), -1)), torch.zeros(2, 5, 3))


def test_rejects_bad_inputs() -> None:
    blocks = random_chain(5, [3, 2], NUM_NODES, NUM_EVENTS, seed=6)
    model = make_tgat(4, 3, 2)
    node_feat, edge_feat = features(4, 3)
    with pytest.raises(ValueError, match="one block per layer"):
        model(blocks[:1], node_feat, edge_feat)
    b1 = blocks[1]
    short = TemporalBlock(*(getattr(b1, f)[:-1] for f in BLOCK_TENSORS))
    with pytest.raises(ValueError, match="one root per slot"):
        model([blocks[0], short], node_feat, edge_feat)
    with pytest.raises(ValueError, match="node_feat"):
        model(blocks, node_feat[:, :2], edge_feat)
    with pytest.raises(ValueError, match="edge_feat"):
        model(blocks, node_feat, edge_feat[:, :2])
    with pytest.raises(ValueError, match="num_layers"):
        TGAT(4, 3, num_layers=0)
    with pytest.raises(ValueError, match="engine"):
        TGAT(4, 3, engine="gpu")
