import pytest
import torch
from nn_blocks import BLOCK_TENSORS, random_chain

from dgl_tgnn.nn import TGN
from dgl_tgnn.nn.memory import collect_messages
from dgl_tgnn.sampling import TemporalBlock

MEM, TIME, EDGE = 3, 2, 2


def make_tgn(num_nodes: int = 5, **kwargs) -> TGN:
    torch.manual_seed(0)
    options = dict(memory_dim=MEM, time_dim=TIME, embed_dim=4, num_heads=1, dropout=0.0, engine="dense")
    options.update(kwargs)
    model = TGN(num_nodes, 0, EDGE, **options)
    with torch.no_grad():  # a non-trivial time encoding
        model.memory.time_enc.bias.copy_(torch.tensor([0.3, -0.7]))
    return model


def phi(model: TGN, dt: float) -> torch.Tensor:
    enc = model.memory.time_enc
    return torch.cos(enc.weight.detach() * dt + enc.bias.detach())


def gru(model: TGN, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """PyTorch's GRU cell written out: r, z, n gates."""
    cell = model.memory.updater
    gi = cell.weight_ih.detach() @ x + cell.bias_ih.detach()
    gh = cell.weight_hh.detach() @ h + cell.bias_hh.detach()
    (i_r, i_z, i_n), (h_r, h_z, h_n) = gi.chunk(3), gh.chunk(3)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


def rnn(model: TGN, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    cell = model.memory.updater
    return torch.tanh(
        cell.weight_ih.detach() @ x
        + cell.bias_ih.detach()
        + cell.weight_hh.detach() @ h
        + cell.bias_hh.detach()
    )


def mlp(model: TGN, raw: torch.Tensor) -> torch.Tensor:
    first, _, second = model.memory.message_fn
    hidden = torch.relu(first.weight.detach() @ raw + first.bias.detach())
    return second.weight.detach() @ hidden + second.bias.detach()


EDGE_FEAT = torch.tensor([[1.0, -2.0], [0.5, 0.25], [-1.5, 3.0], [2.0, 0.0]])


def event(model: TGN, src: int, dst: int, t: float, eid: int) -> None:
    model.update(
        torch.tensor([src]),
        torch.tensor([dst]),
        torch.tensor([t], dtype=torch.float64),
        torch.tensor([eid]),
        EDGE_FEAT,
    )


def test_three_event_stream_matches_hand_gru() -> None:
    model = make_tgn()
    zero = torch.zeros(MEM)
    event(model, 0, 1, 1.0, 0)  # stored, not applied
    assert torch.equal(model.memory.state, torch.zeros(5, MEM))

    event(model, 1, 2, 2.0, 1)  # applies event 0
    s0 = gru(model, torch.cat([zero, zero, phi(model, 1.0), EDGE_FEAT[0]]), zero)
    s1 = gru(model, torch.cat([zero, zero, phi(model, 1.0), EDGE_FEAT[0]]), zero)
    expected = torch.zeros(5, MEM)
    expected[0], expected[1] = s0, s1
    torch.testing.assert_close(model.memory.state, expected)
    torch.testing.assert_close(
        model.memory.last_update, torch.tensor([1.0, 1.0, 0, 0, 0], dtype=torch.float64)
    )

    event(model, 0, 2, 4.0, 2)  # applies event 1 (node 1 last updated at 1, node 2 never)
    s1_new = gru(model, torch.cat([s1, zero, phi(model, 2.0 - 1.0), EDGE_FEAT[1]]), s1)
    s2 = gru(model, torch.cat([zero, s1, phi(model, 2.0 - 0.0), EDGE_FEAT[1]]), zero)
    expected[1], expected[2] = s1_new, s2
    torch.testing.assert_close(model.memory.state, expected)
    torch.testing.assert_close(
        model.memory.last_update, torch.tensor([1.0, 2.0, 2.0, 0, 0], dtype=torch.float64)
    )

    # Event 2 is pending: a read applies it (with autograd) without storing it.
    updated = model.memory.pending_update()
    assert updated.requires_grad
    read = model.memory.read(torch.tensor([0, 1, 2, 3, -1]), updated)
    s0_now = gru(model, torch.cat([s0, s2, phi(model, 4.0 - 1.0), EDGE_FEAT[2]]), s0)
    s2_now = gru(model, torch.cat([s2, s0, phi(model, 4.0 - 2.0), EDGE_FEAT[2]]), s2)
    torch.testing.assert_close(read.detach(), torch.stack([s0_now, s1_new, s2_now, zero, s0_now]))
    torch.testing.assert_close(model.memory.state, expected)


@pytest.mark.parametrize("aggregator", ["last", "mean"])
@pytest.mark.parametrize(("message", "updater"), [("identity", "gru"), ("mlp", "gru"), ("identity", "rnn")])
def test_batch_aggregation(aggregator: str, message: str, updater: str) -> None:
    """Node 0 gets three messages in one batch, two of them at the latest time."""
    model = make_tgn(message=message, aggregator=aggregator, updater=updater)
    src, dst = torch.tensor([0, 3, 2]), torch.tensor([1, 0, 4])
    t = torch.tensor([1.0, 2.5, 2.5], dtype=torch.float64)
    model.update(src, dst, t, torch.tensor([0, 1, 2]), EDGE_FEAT)
    model.update(src[:0], dst[:0], t[:0], torch.tensor([], dtype=torch.int64), EDGE_FEAT)  # applies them
    zero = torch.zeros(MEM)
    raws = [torch.cat([zero, zero, phi(model, dt), EDGE_FEAT[e]]) for dt, e in ((1.0, 0), (2.5, 1))]
    msgs = raws if message == "identity" else [mlp(model, raw) for raw in raws]
    x = msgs[-1] if aggregator == "last" else (msgs[0] + msgs[1]) / 2
    cell = gru if updater == "gru" else rnn
    torch.testing.assert_close(model.memory.state[0], cell(model, x, zero))
    assert model.memory.last_update[0].item() == 2.5
    # Nodes 3 and 4 took one message each, node 1 too.
    raw3 = torch.cat([zero, zero, phi(model, 2.5), EDGE_FEAT[1]])
    msg3 = raw3 if message == "identity" else mlp(model, raw3)
    torch.testing.assert_close(model.memory.state[3], cell(model, msg3, zero))
    assert model.memory.pending is None


def test_last_keeps_the_later_event_of_equal_times() -> None:
    model = make_tgn()
    t = torch.tensor([3.0, 3.0], dtype=torch.float64)
    model.update(torch.tensor([0, 0]), torch.tensor([1, 2]), t, torch.tensor([0, 1]), EDGE_FEAT)
    pending = model.memory.pending
    row = (pending.nodes == 0).nonzero().item()
    assert pending.other[pending.index == row].tolist() == [2]


def batch_blocks(roots: torch.Tensor, times: torch.Tensor, seed: int) -> list[TemporalBlock]:
    return random_chain(roots.shape[0], [4], 20, 8, seed, roots=roots, times=times)


def concat_blocks(a: TemporalBlock, b: TemporalBlock) -> TemporalBlock:
    return TemporalBlock(*(torch.cat([getattr(a, f), getattr(b, f)]) for f in BLOCK_TENSORS))


def history(model: TGN, edge_feat: torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(5)
    for start in (0.0, 10.0):
        src, dst = torch.randint(0, 20, (6,), generator=gen), torch.randint(0, 20, (6,), generator=gen)
        t = start + torch.arange(6, dtype=torch.float64)
        model.update(src, dst, t, torch.randint(0, 8, (6,), generator=gen), edge_feat)


def test_current_batch_never_reaches_its_own_prediction() -> None:
    model = make_tgn(num_nodes=20).eval()
    edge_feat = torch.randn(8, EDGE, generator=torch.Generator().manual_seed(1))
    node_feat = torch.zeros(20, 0)
    history(model, edge_feat)
    src, dst = torch.tensor([1, 2, 3, 4]), torch.tensor([5, 6, 7, 8])
    perm = torch.tensor([2, 0, 3, 1])
    t = torch.tensor([20.0, 21.0, 22.0, 23.0], dtype=torch.float64)
    eids = torch.tensor([0, 1, 2, 3])
    (src_block,) = batch_blocks(src, t, seed=2)
    (dst_block,) = batch_blocks(dst, t, seed=3)
    dst_block_perm = TemporalBlock(*(getattr(dst_block, f)[perm] for f in BLOCK_TENSORS))
    start = model.backup_memory()

    def step(dst_block: TemporalBlock, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        model.restore_memory(start)
        before = model.memory.state.clone()
        z_src = model([concat_blocks(src_block, dst_block)], node_feat, edge_feat)[:4]
        assert torch.equal(model.memory.state, before)  # forward never stores
        model.update(src, dst, t, eids, edge_feat)
        (next_block,) = batch_blocks(src, t + 10.0, seed=4)
        return z_src, model([next_block], node_feat, edge_feat)

    z_src, z_next = step(dst_block, dst)
    z_src_perm, z_next_perm = step(dst_block_perm, dst[perm])
    torch.testing.assert_close(z_src_perm, z_src, atol=0, rtol=0)
    # The same destinations do reach the sources' next prediction, through the memory.
    assert not torch.allclose(z_next_perm, z_next)


def test_forward_gives_gradients_to_memory_modules() -> None:
    model = make_tgn(num_nodes=20, message="mlp")
    edge_feat = torch.randn(8, EDGE)
    history(model, edge_feat)
    (block,) = batch_blocks(torch.arange(10), torch.full((10,), 30.0, dtype=torch.float64), seed=7)
    model([block], torch.zeros(20, 0), edge_feat).square().sum().backward()
    for name, param in model.memory.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert not model.memory.state.requires_grad


def test_update_stores_the_memory_of_the_forward_pass() -> None:
    """As in TGN's code: the memory persisted after the optimizer step is the one the forward pass
    computed with the weights before the step; a forward pass after the step recomputes it."""
    model = make_tgn()
    zero = torch.zeros(MEM)
    event(model, 0, 1, 1.0, 0)
    before_step = model.memory.pending_update()
    with torch.no_grad():
        model.memory.updater.weight_ih.add_(0.5)  # an optimizer step
    after_step = model.memory.pending_update()
    assert not torch.allclose(after_step, before_step)
    raw = torch.cat([zero, zero, phi(model, 1.0), EDGE_FEAT[0]])
    torch.testing.assert_close(after_step[0], gru(model, raw, zero))
    with torch.no_grad():
        model.memory.updater.weight_ih.sub_(0.5)
    forward_pass = model.memory.pending_update()
    torch.testing.assert_close(forward_pass, before_step)
    with torch.no_grad():
        model.memory.updater.weight_ih.add_(0.5)
    event(model, 1, 2, 2.0, 1)  # applies event 0 as the last forward pass computed it
    torch.testing.assert_close(model.memory.state[:2], forward_pass.detach())
    assert not model.memory.state.requires_grad


def test_forward_passes_sharing_the_memory_update() -> None:
    """Within ``sharing_update()`` (the hard negatives' two forward passes of a step) the pending
    messages are applied once, with the gradients of two separate applications; outside it, and
    under another grad mode, every call applies them."""
    model = make_tgn(num_nodes=20)
    edge_feat = torch.randn(8, EDGE)
    history(model, edge_feat)
    calls = []
    model.memory.updater.register_forward_hook(lambda *args: calls.append(1))
    times = torch.full((10,), 30.0, dtype=torch.float64)
    first, second = (batch_blocks(torch.arange(lo, lo + 10), times, seed=lo)[0] for lo in (0, 10))
    weights = torch.randn(2, 10, 4)
    parameters = list(model.memory.parameters())

    def gradients() -> tuple[torch.Tensor, ...]:
        z_first = model([first], torch.zeros(20, 0), edge_feat)
        with torch.no_grad():  # e.g. a refresh of the hard negatives' table
            model([second], torch.zeros(20, 0), edge_feat)
        z_second = model([second], torch.zeros(20, 0), edge_feat)
        loss = (weights[0] * z_first).sum() + (weights[1] * z_second).sum()
        return torch.autograd.grad(loss, parameters)

    separate = gradients()
    assert len(calls) == 3
    with model.memory.sharing_update():
        shared = gradients()
    assert len(calls) == 3 + 2  # the no_grad pass computes its own; the second grad pass reuses
    for got, expected in zip(shared, separate, strict=True):
        torch.testing.assert_close(got, expected)
    model([first], torch.zeros(20, 0), edge_feat)
    assert len(calls) == 6


def test_keep_pending_in_refuses_missing_or_mismatched_messages() -> None:
    model = make_tgn()
    src, dst = torch.tensor([0, 1]), torch.tensor([2, 3])
    t = torch.tensor([1.0, 2.0], dtype=torch.float64)
    buffers = collect_messages(src, dst, t, EDGE_FEAT[:2], True, 5, per_message=True)
    with pytest.raises(ValueError, match="^no pending messages to keep$"):
        model.memory.keep_pending_in(buffers)
    event(model, 0, 1, 1.0, 0)  # one event, compact layout on CPU: not the buffers' shapes
    with pytest.raises(ValueError, match="^the pending messages do not have the buffers' layout and shapes$"):
        model.memory.keep_pending_in(buffers)


def test_backup_restore_round_trip() -> None:
    model = make_tgn(num_nodes=20).eval()
    edge_feat = torch.randn(8, EDGE)
    history(model, edge_feat)
    (block,) = batch_blocks(torch.arange(10), torch.full((10,), 30.0, dtype=torch.float64), seed=8)
    z = model([block], torch.zeros(20, 0), edge_feat)
    state = model.backup_memory()
    saved = model.memory.state.clone(), model.memory.last_update.clone()
    model.update(
        torch.tensor([1, 2]),
        torch.tensor([3, 4]),
        torch.tensor([25.0, 26.0]),
        torch.tensor([0, 1]),
        edge_feat,
    )
    model.update(torch.tensor([5]), torch.tensor([1]), torch.tensor([27.0]), torch.tensor([2]), edge_feat)
    assert not torch.equal(model.memory.state, saved[0])
    model.restore_memory(state)
    assert torch.equal(model.memory.state, saved[0]) and torch.equal(model.memory.last_update, saved[1])
    torch.testing.assert_close(model([block], torch.zeros(20, 0), edge_feat), z, atol=0, rtol=0)
    model.reset_memory()
    assert not model.memory.state.any() and not model.memory.last_update.any()
    assert model.memory.pending is None and (model.memory.slot == -1).all()


def test_shapes_with_node_features_no_memory_and_empty_neighbourhoods() -> None:
    torch.manual_seed(0)
    model = TGN(20, 5, 0, memory_dim=6, time_dim=4, embed_dim=8, num_layers=2)
    blocks = random_chain(9, [3, 2], 20, 8, seed=9)
    node_feat, edge_feat = torch.randn(20, 5), torch.zeros(8, 0)
    out = model(blocks, node_feat, edge_feat)  # first batch: no pending messages
    assert out.shape == (9, 8) and out.dtype == torch.float32 and torch.isfinite(out).all()
    model.update(
        torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([1.0, 2.0]), torch.tensor([0, 1]), edge_feat
    )
    out = model(blocks, node_feat, edge_feat)
    assert out.shape == (9, 8) and torch.isfinite(out).all()


def test_dgl_engine_equals_dense_engine() -> None:
    pytest.importorskip("dgl")
    edge_feat = torch.randn(8, EDGE)
    (block,) = batch_blocks(torch.arange(12), torch.full((12,), 30.0, dtype=torch.float64), seed=10)
    results = []
    for engine in ("dense", "dgl"):
        model = make_tgn(num_nodes=20, engine=engine)
        history(model, edge_feat)
        out = model([block], torch.zeros(20, 0), edge_feat)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), [p.grad for p in model.parameters()]))
    (dense_out, dense_grads), (dgl_out, dgl_grads) = results
    torch.testing.assert_close(dgl_out, dense_out, atol=1e-5, rtol=0)
    for dgl_grad, dense_grad in zip(dgl_grads, dense_grads, strict=True):
        torch.testing.assert_close(dgl_grad, dense_grad, atol=1e-5, rtol=0)


def test_rejects_bad_arguments() -> None:
    for kwargs, word in (
        ({"message": "sum"}, "message"),
        ({"aggregator": "max"}, "aggregator"),
        ({"updater": "lstm"}, "updater"),
    ):
        with pytest.raises(ValueError, match=word):
            make_tgn(**kwargs)
    model = make_tgn()
    with pytest.raises(ValueError, match="edge_feat"):
        model.memory.update(torch.tensor([0]), torch.tensor([1]), torch.tensor([1.0]), torch.zeros(1, 5))
    with pytest.raises(ValueError, match="eids"):
        model.update(
            torch.tensor([0]), torch.tensor([1]), torch.tensor([1.0]), torch.tensor([0, 1]), EDGE_FEAT
        )
    with pytest.raises(ValueError, match="one block per layer"):
        model([], torch.zeros(5, 0), EDGE_FEAT)


@pytest.mark.parametrize(("name", "stateful"), [("tgn", True), ("tgat", False)])
def test_link_model_knows_which_encoders_carry_memory(name: str, stateful: bool) -> None:
    """Declared by the model's registration: a protocol's isinstance would miss TGN's memory
    submodule on Python >= 3.12 and train TGN without memory updates."""
    from dgl_tgnn.config import default_config
    from dgl_tgnn.link import LinkModel

    model = LinkModel(default_config(name).model, num_nodes=10, node_dim=0, edge_dim=0)
    assert model.has_memory is stateful
    assert hasattr(model.encoder, "memory") is stateful


@pytest.mark.parametrize("name", ["tgn", "tgat"])
def test_link_model_memory_calls_need_not_know_the_model(name: str) -> None:
    """reset / backup / restore through LinkModel: TGN's memory round-trips; TGAT has none to keep."""
    from dgl_tgnn.config import default_config
    from dgl_tgnn.link import LinkModel

    model = LinkModel(default_config(name).model, num_nodes=10, node_dim=0, edge_dim=0)
    model.reset_memory()
    saved = model.backup_memory()
    assert (saved is None) is not model.has_memory
    if saved is None:
        model.restore_memory(None)
        return
    model.observe_events(
        torch.tensor([0]), torch.tensor([1]), torch.tensor([1.0]), torch.tensor([0]), torch.zeros(1, 0)
    )
    model.observe_events(
        torch.tensor([2]), torch.tensor([3]), torch.tensor([2.0]), torch.tensor([0]), torch.zeros(1, 0)
    )
    assert not torch.equal(model.backup_memory().last_update, saved.last_update)
    model.restore_memory(saved)
    assert torch.equal(model.backup_memory().last_update, saved.last_update)
