"""The GPU training step replayed from a CUDA graph gives what the step run op by op gives (losses,
parameters, optimizer state, TGN's memory, the sampler's call count); TGN's per-message layout of
pending messages (the GPU's) gives the memory of the compact layout (the CPU's). The CUDA tests skip
without a GPU; the layout test runs everywhere."""

from collections import Counter
from collections.abc import Callable

import pytest
import torch

from dgl_tgnn import ops
from dgl_tgnn import run_dir as rd
from dgl_tgnn.config import apply_overrides, default_config
from dgl_tgnn.cuda_graph import GraphedStep
from dgl_tgnn.nn.memory import Memory, collect_messages
from dgl_tgnn.train import Trainer, load_events

needs_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and ops.WITH_CUDA),
    reason="needs a CUDA device and dgl_tgnn._C built with CUDA",
)


def random_events(seed: int, batch: int, num_nodes: int, edge_dim: int):
    """A batch with repeated nodes and ties in time (each node gets several messages)."""
    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(0, num_nodes, (batch,), generator=gen)
    dst = torch.randint(0, num_nodes, (batch,), generator=gen)
    t = torch.randint(0, 4, (batch,), generator=gen).to(torch.float64).sort().values + 10.0 * seed
    return src, dst, t, torch.randn(batch, edge_dim, generator=gen)


@pytest.mark.parametrize("aggregator", ["last", "mean"])
@pytest.mark.parametrize("message", ["identity", "mlp"])
def test_per_message_layout_gives_the_memory_of_the_compact_layout(aggregator: str, message: str) -> None:
    num_nodes, edge_dim = 12, 3
    torch.manual_seed(0)
    compact = Memory(num_nodes, 4, edge_dim, 5, message=message, aggregator=aggregator)
    per_message = Memory(num_nodes, 4, edge_dim, 5, message=message, aggregator=aggregator)
    per_message.load_state_dict(compact.state_dict())
    ids = torch.arange(num_nodes)
    for seed in range(1, 5):
        src, dst, t, feat = random_events(seed, 16, num_nodes, edge_dim)
        compact.update(src, dst, t, feat)
        # Memory.update stores the per-message layout on CUDA only: stored here by hand.
        per_message.update(src[:0], dst[:0], t[:0], feat[:0])
        per_message.pending = collect_messages(src, dst, t, feat, aggregator == "last", num_nodes, True)
        per_message._index_pending()
        assert per_message.pending.nodes.shape == (2 * 16,)
        expected = compact.read(ids, compact.pending_update())
        torch.testing.assert_close(per_message.read(ids, per_message.pending_update()), expected)
        torch.testing.assert_close(per_message.state, compact.state)
        assert torch.equal(per_message.last_update, compact.last_update)
    for memory in (compact, per_message):  # apply the last batch
        memory.update(src[:0], dst[:0], t[:0], feat[:0])
    torch.testing.assert_close(per_message.state, compact.state)
    assert torch.equal(per_message.last_update, compact.last_update)


@needs_cuda
@pytest.mark.parametrize("aggregator", ["last", "mean"])
def test_memory_on_cuda_equals_memory_on_cpu(aggregator: str) -> None:
    num_nodes, edge_dim = 12, 3
    torch.manual_seed(0)
    cpu = Memory(num_nodes, 4, edge_dim, 5, aggregator=aggregator, message="mlp")
    gpu = Memory(num_nodes, 4, edge_dim, 5, aggregator=aggregator, message="mlp").cuda()
    gpu.load_state_dict(cpu.state_dict())
    ids = torch.arange(num_nodes)
    for seed in range(1, 5):
        events = random_events(seed, 16, num_nodes, edge_dim)
        cpu.update(*events)
        gpu.update(*(x.cuda() for x in events))
        assert gpu.pending.row is not None and cpu.pending.row is None
        expected = cpu.read(ids, cpu.pending_update())
        torch.testing.assert_close(gpu.read(ids.cuda(), gpu.pending_update()).cpu(), expected)
    torch.testing.assert_close(gpu.state.cpu(), cpu.state)
    assert torch.equal(gpu.last_update.cpu(), cpu.last_update)
    backup = gpu.backup()  # a copy: later changes to the pending messages leave it alone
    gpu.pending.node.fill_(0)
    assert not torch.equal(backup.pending.node, gpu.pending.node)


@pytest.fixture
def replays(monkeypatch: pytest.MonkeyPatch) -> Callable[[GraphedStep | None], int]:
    """``replays(step)``: how many times ``step`` replayed its graph after capturing it, counted at
    ``torch.cuda.CUDAGraph.replay`` while the test runs (capture itself replays once, uncounted)."""
    counts: Counter[int] = Counter()
    replay = torch.cuda.CUDAGraph.replay

    def counting_replay(graph: torch.cuda.CUDAGraph) -> None:
        counts[id(graph)] += 1
        replay(graph)

    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", counting_replay)

    def replays_of(step: GraphedStep | None) -> int:
        assert step is not None and step.graph is not None, "the step was never captured"
        return counts[id(step.graph)] - 1

    return replays_of


def config(model: str, **overrides):
    """Wikipedia's first 2,050 events on the GPU, batches of 100."""
    settings = {
        "data.max_events": 2050,
        "train.epochs": 2,
        "train.batch_size": 100,
        "train.device": "cuda",
        "train.patience": 10,
        "model.engine": "dense",
        "model.embed_dim": 32,
        "model.time_dim": 16,
        "model.memory_dim": 24,
        "model.fanouts": [5, 5] if model == "tgat" else [5],
        "eval.negatives": 20,
    }
    settings.update(overrides)
    return apply_overrides(default_config(model), settings)


@needs_cuda
@pytest.mark.parametrize(
    "model, overrides",
    [
        ("tgn", {}),  # the default TGN: last aggregator, dropout 0.1
        ("tgn", {"model.aggregator": "mean", "model.message": "mlp", "train.visible_batch": False}),
        ("tgn", {"negatives.kind": "topk", "negatives.k": 5, "negatives.refresh": 3, "negatives.n_rand": 1}),
        ("tgat", {"model.strategy": "recent"}),  # no memory
        ("tgat", {}),  # the default TGAT: uniform neighbours, drawn anew at each replay
        ("tgat", {"negatives.kind": "topk", "negatives.k": 5, "negatives.refresh": 3}),
    ],
)
def test_graphed_training_equals_eager_training(model: str, overrides: dict, replays) -> None:
    cfg = config(model, **overrides)
    events = load_events(cfg.data)
    runs = {}
    for graphed in (True, False):
        trainer = Trainer(
            cfg, None, dataset=events, progress=False, log=lambda line: None, cuda_graph=graphed
        )
        final = trainer.fit()
        runs[graphed] = trainer, final
    (graphed, graphed_final), (eager, eager_final) = runs[True], runs[False]
    assert eager.step.graphed is None
    # Per epoch the short last batch runs op by op, and TGN's first (no pending messages yet); the
    # first epoch's first graphable batch is the warm-up, the next is captured and replayed once.
    full, short = divmod(len(graphed.streams["train"]), cfg.train.batch_size)
    assert short > 0
    graphable = 2 * (full - (model == "tgn"))
    assert replays(graphed.step.graphed) == graphable - 2
    if overrides.get("negatives.kind") == "topk":  # the query pass and the table refresh too
        assert replays(graphed.step.graphed_queries) == graphable - 2
        assert replays(graphed.step.graphed_refresh) > 0
    assert graphed.neighbourhoods.state_dict() == eager.neighbourhoods.state_dict()
    for a, b in zip(graphed.history, eager.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["val_ap"] == pytest.approx(b["val_ap"], abs=1e-4)
    assert graphed_final["test_ap"] == pytest.approx(eager_final["test_ap"], abs=1e-4)
    state_a, state_b = graphed.model.state_dict(), eager.model.state_dict()
    for name in state_a:
        torch.testing.assert_close(state_a[name], state_b[name], rtol=1e-4, atol=1e-6, msg=name)
    opt_a, opt_b = graphed.optimizer.state_dict()["state"], eager.optimizer.state_dict()["state"]
    for key in opt_a:
        for name in opt_a[key]:
            torch.testing.assert_close(opt_a[key][name], opt_b[key][name], rtol=1e-4, atol=1e-7)


@needs_cuda
def test_graphed_steps_equal_eager_steps_batch_by_batch(replays) -> None:
    """Batch by batch through the replays: the losses, TGN's memory and its pending messages. Without
    dropout: the two trainers' steps alternate, so they would draw different masks from torch's one
    generator (the test above compares dropout's draws, each trainer running on its own)."""
    cfg = config("tgn", **{"model.dropout": 0.0})
    events = load_events(cfg.data)
    trainers = [
        Trainer(cfg, None, dataset=events, progress=False, log=lambda line: None, cuda_graph=graphed)
        for graphed in (True, False)
    ]
    for trainer in trainers:
        trainer.model.train()
        trainer.negatives.start_epoch(0)
    graphed, eager = trainers
    batches = list(graphed.streams["train"].batches(cfg.train.batch_size))
    for i, batch in enumerate(batches[:8]):
        losses = [trainer._train_batch(batch) for trainer in trainers]
        torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-7, msg=f"batch {i}")
        memories = [trainer.model.encoder.memory for trainer in trainers]
        torch.testing.assert_close(memories[0].state, memories[1].state, rtol=1e-4, atol=1e-6)
        assert torch.equal(memories[0].last_update, memories[1].last_update)
        assert torch.equal(memories[0].slot, memories[1].slot)
        for a, b in zip(memories[0].pending._tensors(), memories[1].pending._tensors(), strict=True):
            assert torch.equal(a, b)
    assert replays(graphed.step.graphed) == 5  # batches 3 to 7 (0: no pending messages, 1: warm-up)


@needs_cuda
def test_resume_of_a_graphed_run(tmp_path, replays) -> None:
    """Interrupted mid-epoch (the checkpoint copies the pending messages out of the graph's
    buffers), resumed in a new trainer: the result of the uninterrupted run, up to the float
    rounding of the GPU's atomic sums (AP and AUC only: one rank of MRR moves on such rounding)."""
    cfg = config("tgn", **{"eval.negatives": "none"})
    events = load_events(cfg.data)
    finals = []
    for name, stop in (("a", None), ("b", 6)):
        (tmp_path / name).mkdir()
        trainer = Trainer(cfg, tmp_path / name, dataset=events, progress=False, log=lambda line: None)
        final = trainer.fit(stop_after_batches=stop)
        if stop is not None:
            assert final is None and replays(trainer.step.graphed) > 0
            resumed = Trainer.resume(tmp_path / name, progress=False, log=lambda line: None)
            final = resumed.fit()
            assert replays(resumed.step.graphed) > 0
        finals.append(final)
    assert finals[0].keys() == finals[1].keys()
    for key in finals[0]:
        assert finals[1][key] == pytest.approx(finals[0][key], abs=1e-4), key
    a = torch.load(tmp_path / "a" / rd.BEST, weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / rd.BEST, weights_only=False)["model"]
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-6, msg=name)
