import math

import pytest
import torch
import torch.nn.functional as F
from nn_blocks import random_chain

from dgl_tgnn import ops
from dgl_tgnn.nn import TemporalAttention
from dgl_tgnn.nn.attention import dgl_available, masked_attention, resolve_engine
from dgl_tgnn.sampling import TemporalBlock

NUM_NODES, NUM_EVENTS = 40, 90


def make_inputs(node_dim: int, edge_dim: int, seed: int = 0, num_roots: int = 23, fanout: int = 4):
    (block,) = random_chain(num_roots, [fanout], NUM_NODES, NUM_EVENTS, seed)
    gen = torch.Generator().manual_seed(seed + 100)
    root_feat = torch.randn(num_roots, node_dim, generator=gen)
    nbr_feat = torch.randn(num_roots * fanout, node_dim, generator=gen)
    edge_feat = torch.randn(num_roots, fanout, edge_dim, generator=gen)
    return block, root_feat, nbr_feat, edge_feat


def make_layer(node_dim: int, edge_dim: int, engine: str, num_heads: int = 2) -> TemporalAttention:
    torch.manual_seed(0)
    layer = TemporalAttention(node_dim, edge_dim, time_dim=6, out_dim=8, num_heads=num_heads, engine=engine)
    with torch.no_grad():  # move the time encoding and norm away from their special initial values
        for param in layer.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return layer.eval()


def reference(
    layer: TemporalAttention, block: TemporalBlock, root_feat, nbr_feat, edge_feat, params=None
) -> torch.Tensor:
    """TGAT's layer root by root in float64 with explicit keys and values (no folding, no DGL), with
    ``params`` (float64 copies of the layer's parameters by name) when given."""
    p = params or {name: t.detach().double() for name, t in layer.named_parameters()}
    heads, d = layer.num_heads, layer.head_dim

    def phi(dt: float) -> torch.Tensor:
        return torch.cos(p["time_enc.weight"] * dt + p["time_enc.bias"])

    out = []
    for r in range(block.num_roots):
        h_v = root_feat[r].double()
        x_q = torch.cat([h_v, phi(0.0)])
        q = (p["w_q.weight"] @ x_q).view(heads, d)
        keys, values = [], []
        for j in range(block.fanout):
            if block.mask[r, j]:
                dt = (block.root_times[r] - block.nbr_times[r, j]).item()
                x_j = torch.cat([nbr_feat[r * block.fanout + j].double(), edge_feat[r, j].double(), phi(dt)])
                keys.append((p["w_k.weight"] @ x_j).view(heads, d))
                values.append((p["w_v.weight"] @ x_j).view(heads, d))
        attended = torch.zeros(heads, d, dtype=torch.float64)
        if keys:
            k, v = torch.stack(keys), torch.stack(values)  # [n, H, d]
            alpha = torch.softmax((k * q).sum(-1) / math.sqrt(d), dim=0)  # [n, H]
            attended = (alpha.unsqueeze(-1) * v).sum(0)
        o = p["w_o.weight"] @ attended.flatten() + p["w_o.bias"] + x_q
        h = F.layer_norm(o, o.shape, p["norm.weight"], p["norm.bias"], layer.norm.eps)
        hidden = torch.relu(p["merge_hidden.weight"] @ torch.cat([h, h_v]) + p["merge_hidden.bias"])
        out.append(p["merge_out.weight"] @ hidden + p["merge_out.bias"])
    return torch.stack(out)


ENGINES = ["dense", pytest.param("dgl", marks=pytest.mark.skipif(not dgl_available(), reason="needs DGL"))]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("node_dim", "edge_dim", "num_heads"), [(5, 3, 2), (0, 3, 1), (5, 0, 4), (0, 0, 2)])
def test_matches_per_root_reference(engine: str, node_dim: int, edge_dim: int, num_heads: int) -> None:
    layer = make_layer(node_dim, edge_dim, engine, num_heads)
    block, root_feat, nbr_feat, edge_feat = make_inputs(node_dim, edge_dim)
    assert (~block.mask).all(1).any() and block.mask.any(1).any()  # both kinds of roots present
    out = layer(block, root_feat, nbr_feat, edge_feat)
    assert out.shape == (block.num_roots, 8) and out.dtype == torch.float32
    expected = reference(layer, block, root_feat, nbr_feat, edge_feat)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("node_dim", "edge_dim"), [(5, 3), (0, 3), (0, 0)])
def test_parameter_gradients_match_per_root_reference(engine: str, node_dim: int, edge_dim: int) -> None:
    layer = make_layer(node_dim, edge_dim, engine)
    block, root_feat, nbr_feat, edge_feat = make_inputs(node_dim, edge_dim, seed=5)
    weight = torch.randn(block.num_roots, 8, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    (layer(block, root_feat, nbr_feat, edge_feat).double() * weight).sum().backward()
    params = {name: t.detach().double().requires_grad_() for name, t in layer.named_parameters()}
    (reference(layer, block, root_feat, nbr_feat, edge_feat, params) * weight).sum().backward()
    for name, param in layer.named_parameters():
        torch.testing.assert_close(param.grad.double(), params[name].grad, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize(("node_dim", "edge_dim"), [(5, 3), (0, 3), (5, 0)])
def test_dgl_engine_equals_dense_engine(node_dim: int, edge_dim: int) -> None:
    pytest.importorskip("dgl")
    results = {}
    for engine in ("dense", "dgl"):
        layer = make_layer(node_dim, edge_dim, engine)
        block, *inputs = make_inputs(node_dim, edge_dim, seed=3)
        inputs = [t.requires_grad_() for t in inputs]
        out = layer(block, *inputs)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads = [t.grad for t in inputs if t.numel() > 0] + [p.grad for p in layer.parameters()]
        results[engine] = (out.detach(), grads)
    torch.testing.assert_close(results["dgl"][0], results["dense"][0], atol=1e-5, rtol=0)
    for dgl_grad, dense_grad in zip(results["dgl"][1], results["dense"][1], strict=True):
        torch.testing.assert_close(dgl_grad, dense_grad, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("node_dim", "edge_dim", "num_heads"), [(5, 3, 2), (0, 3, 1), (5, 0, 4), (0, 0, 2)])
def test_dgl_engine_without_autograd_equals_its_per_head_passes(
    node_dim: int, edge_dim: int, num_heads: int
) -> None:
    """Without autograd the DGL engine passes over all heads at once (x broadcast across them); the
    output is the one its per-head passes give with autograd, and the per-root reference's."""
    pytest.importorskip("dgl")
    layer = make_layer(node_dim, edge_dim, "dgl", num_heads).eval()
    block, *inputs = make_inputs(node_dim, edge_dim, seed=5)
    with torch.no_grad():
        inference = layer(block, *inputs)
    per_head = layer(block, *inputs)
    assert per_head.requires_grad
    torch.testing.assert_close(inference, per_head.detach(), atol=1e-6, rtol=0)
    expected = reference(layer, block, *inputs)
    torch.testing.assert_close(inference.double(), expected, atol=1e-5, rtol=1e-4)


def test_masked_attention_gradients_are_exact() -> None:
    gen = torch.Generator().manual_seed(1)
    mask = torch.rand(6, 4, generator=gen) < 0.6
    mask[0] = False
    mask[1] = True
    qk = torch.randn(6, 2, 7, dtype=torch.float64, generator=gen, requires_grad=True)
    parts = [
        torch.randn(6, 4, 3, dtype=torch.float64, generator=gen, requires_grad=True),
        torch.randn(6, 4, 1, dtype=torch.float64, generator=gen),  # no gradient wanted
        torch.randn(6, 4, 3, dtype=torch.float64, generator=gen, requires_grad=True),
    ]
    assert torch.autograd.gradcheck(masked_attention, (qk, mask, *parts))
    agg = masked_attention(qk, mask, *parts)
    assert torch.equal(agg[0], torch.zeros(2, 7, dtype=torch.float64))  # no valid slot: zero message


def brute_force_attention(qk: torch.Tensor, mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The definition, one root and head at a time: softmax over the valid slots, then the sum."""
    agg = torch.zeros_like(qk)
    for r in range(qk.shape[0]):
        valid = mask[r].nonzero().flatten()
        if valid.numel():
            for h in range(qk.shape[1]):
                alpha = torch.softmax(x[r, valid] @ qk[r, h], dim=0)
                agg[r, h] = alpha @ x[r, valid]
    return agg


def check_fused_kernel(
    device: torch.device,
    needs: tuple[bool, ...],
    slots: int,
    heads: int = 3,
    widths: tuple[int, ...] = (5, 1, 16),
) -> None:
    """float32 inputs on ``device`` take the fused kernel: forward and gradients against the
    definition in float64, with empty rows, fully valid rows and parts without gradient."""
    gen = torch.Generator().manual_seed(4)
    roots = 37
    mask = torch.rand(roots, slots, generator=gen) < 0.5
    mask[0], mask[1] = False, True
    qk = torch.randn(roots, heads, sum(widths), generator=gen)
    parts = [torch.randn(roots, slots, w, generator=gen) for w in widths]
    grad = torch.randn(roots, heads, sum(widths), generator=gen)
    tensors = [qk, *parts]
    inputs32 = [t.to(device, copy=True).requires_grad_(need) for t, need in zip(tensors, needs, strict=True)]
    agg32 = masked_attention(inputs32[0], mask.to(device), *inputs32[1:])
    agg32.backward(grad.to(device))
    inputs64 = [t.double().requires_grad_(need) for t, need in zip(tensors, needs, strict=True)]
    agg64 = brute_force_attention(inputs64[0], mask, torch.cat(inputs64[1:], dim=2))
    agg64.backward(grad.double())
    assert torch.equal(agg32[0].cpu(), torch.zeros(heads, sum(widths)))
    torch.testing.assert_close(agg32.double().cpu(), agg64.detach(), atol=1e-5, rtol=1e-5)
    for got, want, need in zip(inputs32, inputs64, needs, strict=True):
        assert (got.grad is not None) is need
        if need:
            torch.testing.assert_close(got.grad.double().cpu(), want.grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("needs", [(True, True, False, True), (False, False, True, False)])
def test_fused_cpu_kernel_equals_the_definition(needs: tuple[bool, ...]) -> None:
    check_fused_kernel(torch.device("cpu"), needs, slots=9)


@pytest.mark.parametrize("needs", [(True, True, False, True), (False, False, True, False)])
def test_fused_cpu_kernel_wide_parts(needs: tuple[bool, ...]) -> None:
    """Heads in pairs only, and widths that take every column path of the CPU kernel: blocks of
    32, 8 and 4 floats and single ones (100 = 3 * 32 + 4, 45 = 32 + 8 + 4 + 1)."""
    check_fused_kernel(torch.device("cpu"), needs, slots=11, heads=2, widths=(100, 3, 45))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("slots", [9, 40])  # more slots than a warp's lanes
@pytest.mark.parametrize("needs", [(True, True, False, True), (False, False, True, False)])
def test_fused_cuda_kernel_equals_the_definition(needs: tuple[bool, ...], slots: int) -> None:
    check_fused_kernel(torch.device("cuda"), needs, slots)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(("heads", "slots", "widths"), [(1, 7000, (2,)), (2, 5, (1, 2, 1, 2, 3))])
def test_cuda_inputs_beyond_the_kernel_take_batched_products(heads: int, slots: int, widths: tuple) -> None:
    """More (head, slot) weights or parts than the CUDA kernel holds: same function, no error."""
    gen = torch.Generator().manual_seed(6)
    mask = torch.rand(3, slots, generator=gen) < 0.5
    qk = torch.randn(3, heads, sum(widths), generator=gen)
    parts = [torch.randn(3, slots, w, generator=gen) for w in widths]
    cuda = torch.device("cuda")
    agg = masked_attention(qk.to(cuda), mask.to(cuda), *(part.to(cuda) for part in parts))
    expected = brute_force_attention(qk.double(), mask, torch.cat(parts, dim=2).double())
    torch.testing.assert_close(agg.double().cpu(), expected, atol=1e-4, rtol=1e-4)


def test_fused_kernel_checks_its_inputs() -> None:
    qk, mask = torch.zeros(2, 1, 3), torch.ones(2, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="widths sum to 2"):
        ops.masked_attention(qk, mask, [torch.zeros(2, 4, 2)])
    with pytest.raises(ValueError, match=r"parts\[0\]: expected a contiguous float32 tensor \[2, 4, .*cpu"):
        ops.masked_attention(qk, mask, [torch.zeros(2, 5, 3)])
    with pytest.raises(ValueError, match="mask: expected"):
        ops.masked_attention(qk, mask.float(), [torch.zeros(2, 4, 3)])


@pytest.mark.parametrize("engine", ENGINES)
def test_empty_slots_are_ignored(engine: str) -> None:
    layer = make_layer(5, 3, engine)
    block, root_feat, nbr_feat, edge_feat = make_inputs(5, 3, seed=4)
    out = layer(block, root_feat, nbr_feat, edge_feat)
    empty = ~block.mask
    nbr_feat2 = torch.where(empty.reshape(-1, 1), 1e3, nbr_feat)
    edge_feat2 = torch.where(empty.unsqueeze(-1), -1e3, edge_feat)
    times2 = torch.where(empty, -5e3, block.nbr_times)
    block2 = TemporalBlock(
        block.root_nodes, block.root_times, block.nbr_nodes, block.nbr_eids, times2, block.mask
    )
    out2 = layer(block2, root_feat, nbr_feat2, edge_feat2)
    torch.testing.assert_close(out2, out, atol=1e-6, rtol=0)


@pytest.mark.parametrize("engine", ENGINES)
def test_all_roots_without_neighbours(engine: str) -> None:
    layer = make_layer(5, 3, engine)
    block, root_feat, nbr_feat, edge_feat = make_inputs(5, 3)
    empty = TemporalBlock(
        block.root_nodes,
        block.root_times,
        torch.full_like(block.nbr_nodes, -1),
        torch.full_like(block.nbr_eids, -1),
        torch.zeros_like(block.nbr_times),
        torch.zeros_like(block.mask),
    )
    root_feat.requires_grad_()
    out = layer(empty, root_feat, nbr_feat, edge_feat)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(root_feat.grad).all()
    expected = reference(layer, empty, root_feat, nbr_feat, edge_feat)
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-4)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="engine"):
        TemporalAttention(4, 2, 4, 8, engine="cuda")
    with pytest.raises(ValueError, match="num_heads"):
        TemporalAttention(4, 2, 4, 9, num_heads=2)
    layer = make_layer(5, 3, "dense")
    block, root_feat, nbr_feat, edge_feat = make_inputs(5, 3)
    with pytest.raises(ValueError, match="nbr_feat"):
        layer(block, root_feat, nbr_feat[:-1], edge_feat)
    with pytest.raises(ValueError, match="edge_feat"):
        layer(block, root_feat, nbr_feat, edge_feat[..., :2])
    with pytest.raises(ValueError, match="root_feat"):
        layer(block, root_feat[:, :4], nbr_feat, edge_feat)


def test_auto_engine_choice() -> None:
    assert resolve_engine("auto", torch.device("cuda")) == "dense"
    assert resolve_engine("auto", torch.device("cpu")) == ("dgl" if dgl_available() else "dense")
    assert resolve_engine("dense", torch.device("cpu")) == "dense"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_dense_engine_on_cuda_matches_cpu() -> None:
    layer = make_layer(5, 3, "auto")
    block, *inputs = make_inputs(5, 3, num_roots=300, fanout=10)
    expected = layer(block, *inputs)
    cuda = torch.device("cuda")
    block_cuda = block.to(cuda)
    out = layer.to(cuda)(block_cuda, *(t.to(cuda) for t in inputs))
    torch.testing.assert_close(out.cpu(), expected, atol=1e-4, rtol=1e-4)


def test_dropout_only_in_training() -> None:
    block, *inputs = make_inputs(5, 3)
    layer = TemporalAttention(5, 3, 6, 8, dropout=0.5, engine="dense")
    assert not torch.equal(layer(block, *inputs), layer(block, *inputs))
    layer.eval()
    assert torch.equal(layer(block, *inputs), layer(block, *inputs))
