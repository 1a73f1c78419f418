"""GraphMixer (``dgl_tgnn/nn/graphmixer.py``, ``--model graphmixer``): shapes on empty histories, the
paper's time encoding and the mixer against hand-written references, no leakage of an event into its
own embedding, and training from the command line (both protocols, every negative sampler)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from nn_blocks import random_chain

from dgl_tgnn.cli import main
from dgl_tgnn.config import apply_overrides, default_config, load_config
from dgl_tgnn.graph import TemporalGraph
from dgl_tgnn.link import LinkModel
from dgl_tgnn.nn.graphmixer import GraphMixer, MixerBlock, MixerTimeEncoding, mixer_frequencies
from dgl_tgnn.registry import NEGATIVES
from dgl_tgnn.sampling import TemporalBlock, TemporalSampler

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NUM_NODES, NUM_EVENTS = 30, 70


def features(node_dim: int, edge_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    return torch.randn(NUM_NODES, node_dim, generator=gen), torch.randn(NUM_EVENTS, edge_dim, generator=gen)


def make_mixer(node_dim: int, edge_dim: int, k: int, **kwargs) -> GraphMixer:
    torch.manual_seed(0)
    return GraphMixer(node_dim, edge_dim, time_dim=6, embed_dim=8, num_tokens=k, **kwargs).eval()


@pytest.mark.parametrize(("node_dim", "edge_dim"), [(4, 3), (0, 3), (4, 0), (0, 0)])
def test_shapes_and_no_nan_with_empty_histories(node_dim: int, edge_dim: int) -> None:
    (block,) = random_chain(17, [5], NUM_NODES, NUM_EVENTS, seed=1)
    empty = ~block.mask.any(dim=1)
    assert empty.sum() >= 4  # every 5th root has no earlier event
    model = make_mixer(node_dim, edge_dim, 5)
    node_feat, edge_feat = features(node_dim, edge_dim)
    out = model([block], node_feat, edge_feat)
    assert out.shape == (17, 8) and out.dtype == torch.float32 and torch.isfinite(out).all()
    # a root without history is its own features alone: featureless ones all embed alike
    if node_dim == 0:
        assert torch.equal(out[empty], out[empty][:1].expand(int(empty.sum()), -1))
    # no root has any history: still finite (a zero token stream through the layer norms)
    none = TemporalBlock(
        block.root_nodes,
        block.root_times,
        torch.full_like(block.nbr_nodes, -1),
        torch.full_like(block.nbr_eids, -1),
        torch.zeros_like(block.nbr_times),
        torch.zeros_like(block.mask),
    )
    assert torch.isfinite(model([none], node_feat, edge_feat)).all()
    # and with an empty feature table (no event at all yet)
    out = model([none], node_feat, edge_feat[:0])
    assert torch.isfinite(out).all()
    model.train()
    model([block], node_feat, edge_feat).square().sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


def test_time_encoding_is_the_papers_fixed_cosine() -> None:
    # alpha = beta = sqrt(4) = 2: w = 2^0, 2^-1/2, 2^-1, 2^-3/2
    w = mixer_frequencies(4)
    torch.testing.assert_close(w, torch.tensor([1.0, 2**-0.5, 0.5, 2**-1.5]))
    # d = 100: alpha = beta = 10, w_i = 10^(-(i - 1) / 10)
    w100 = mixer_frequencies(100).double()
    torch.testing.assert_close(w100[[0, 10, 55, 99]], torch.tensor([1.0, 0.1, 10**-5.5, 10**-9.9]).double())
    encoding = MixerTimeEncoding(4)
    dt = torch.tensor([[0.0, 3.0], [250.0, 4000.0]], dtype=torch.float64)  # (float32 arguments)
    out = encoding(dt)
    assert out.shape == (2, 2, 4)
    for i in range(2):
        for j in range(2):
            expected = [math.cos(float(dt[i, j]) * 2 ** (-k / 2)) for k in range(4)]
            # (the float32 argument w * dt near 2.8e3 is spaced 2.4e-4 apart)
            torch.testing.assert_close(out[i, j], torch.tensor(expected), atol=3e-4, rtol=0)
    assert not list(encoding.parameters())  # fixed: nothing to learn


def _layer_norm(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    mean = sum(x) / len(x)
    var = sum((v - mean) ** 2 for v in x) / len(x)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def _feed_forward(x: torch.Tensor, layers: torch.nn.Sequential) -> torch.Tensor:
    first, last = layers[0], layers[3]
    hidden = first.weight @ x + first.bias
    hidden = 0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))  # GELU
    return last.weight @ hidden + last.bias


def mixer_reference(block: MixerBlock, x: torch.Tensor) -> torch.Tensor:
    """One mixer layer on ``x [K, C]`` of one root, token by token and channel by channel."""
    k, c = x.shape
    normed = torch.stack([_layer_norm(x[j], block.token_norm) for j in range(k)])
    y = x.clone()
    for channel in range(c):  # token mixing: across the K tokens of one channel
        y[:, channel] = x[:, channel] + _feed_forward(normed[:, channel], block.token_mix)
    out = y.clone()
    for j in range(k):  # channel mixing: across the channels of one token
        out[j] = y[j] + _feed_forward(_layer_norm(y[j], block.channel_norm), block.channel_mix)
    return out


def test_mixer_block_against_a_token_by_token_reference() -> None:
    torch.manual_seed(3)
    block = MixerBlock(
        num_tokens=3, channels=4, token_expansion=0.5, channel_expansion=4.0, dropout=0.5
    ).eval()
    assert block.token_mix[0].out_features == 1 and block.channel_mix[0].out_features == 16
    x = torch.randn(2, 3, 4)
    out = block(x)
    for r in range(2):
        torch.testing.assert_close(out[r], mixer_reference(block, x[r]), atol=1e-5, rtol=1e-5)


def test_graphmixer_against_a_root_by_root_reference() -> None:
    (block,) = random_chain(9, [4], NUM_NODES, NUM_EVENTS, seed=5)
    model = make_mixer(3, 2, 4, num_layers=2, dropout=0.3)
    node_feat, edge_feat = features(3, 2)
    out = model([block], node_feat, edge_feat)
    w = mixer_frequencies(6)
    for r in range(9):
        tokens = torch.zeros(4, 8)
        nbr_sum, count = torch.zeros(3), 0
        for j in range(4):
            if block.mask[r, j]:
                dt = float(block.root_times[r] - block.nbr_times[r, j])
                x = torch.cat([edge_feat[block.nbr_eids[r, j]], torch.cos(dt * w.double()).float()])
                tokens[j] = model.tokens.weight @ x + model.tokens.bias
                nbr_sum, count = nbr_sum + node_feat[block.nbr_nodes[r, j]], count + 1
        for mixer in model.mixers:
            tokens = mixer_reference(mixer, tokens)
        link = torch.stack([_layer_norm(tokens[j], model.norm) for j in range(4)]).mean(0)
        node = node_feat[block.root_nodes[r]] + (nbr_sum / count if count else 0.0)
        expected = model.out.weight @ torch.cat([link, node]) + model.out.bias
        torch.testing.assert_close(out[r], expected, atol=1e-4, rtol=1e-4)


def test_an_event_never_influences_its_own_embedding() -> None:
    """Each event's source embedded at the event's time from the whole stream: changing event k
    (its destination and features) leaves the embeddings of k and of every event at or before its
    time alone (ties included), and changes later ones."""
    rng = np.random.default_rng(0)
    n = 300
    src = torch.from_numpy(rng.integers(0, 8, n))
    dst = torch.from_numpy(rng.integers(8, 20, n))
    t = torch.from_numpy(np.sort(rng.integers(0, 120, n)).astype(np.float64))  # many ties
    feat = torch.from_numpy(rng.normal(size=(n, 3)).astype(np.float32))
    config = apply_overrides(default_config("graphmixer"), {"model.fanouts": [6], "model.node_embedding": 4})
    torch.manual_seed(0)
    model = LinkModel(config.model, 20, 2, 3).eval()
    node_feat = torch.randn(20, 2)

    def embed(dst: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        sampler = TemporalSampler(TemporalGraph(src, dst, t, num_nodes=20), [6], "recent")
        with torch.no_grad():
            return model(sampler.sample(src, t), node_feat, feat)

    z = embed(dst, feat)
    for k in (150, 151, 299):
        dst2, feat2 = dst.clone(), feat.clone()
        dst2[k] = 8 + (dst[k] - 7) % 12
        feat2[k] += 5.0
        z2 = embed(dst2, feat2)
        upto = t <= t[k]
        assert torch.equal(z[upto], z2[upto]), k
        if k < 299:
            assert not torch.equal(z[~upto], z2[~upto]), k


def test_shipped_configs_hold_the_model_defaults() -> None:
    defaults = default_config("graphmixer")
    m = defaults.model
    assert (m.num_layers, m.fanouts, m.strategy, m.time_encoding) == (1, [20], "recent", "fixed")
    assert m.node_embedding == 100
    assert load_config(CONFIGS / "graphmixer.yaml").validate() == defaults
    tgb = load_config(CONFIGS / "graphmixer-tgb.yaml").validate()
    assert tgb.eval.protocol == "tgb" and tgb.model.pair_history == 50 and tgb.model.fanouts == [20]


QUICK = ["--max-events", "1500", "--epochs", "1", "--batch-size", "100", "--threads", "1",
         "--embed-dim", "16", "--fanouts", "5", "--node-embedding", "8", "--no-progress"]  # fmt: skip


@pytest.mark.parametrize("protocol", ["tgn", "tgb"])
def test_one_epoch_from_the_command_line(tmp_path, protocol: str) -> None:
    config = ["--config", str(CONFIGS / "graphmixer-tgb.yaml")] if protocol == "tgb" else []
    args = ["train", "--model", "graphmixer", *config, "--dataset", "wikipedia", "--runs-dir", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, *QUICK, "--eval-negs", "50", "--protocol", protocol])
    assert result.exit_code == 0, result.output
    (run,) = tmp_path.iterdir()
    assert run.name.endswith("-graphmixer-uniform")
    final = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["final"]
    metric = "test_mrr" if protocol == "tgb" else "test_ap"
    assert 0 < final[metric] <= 1, final
    assert "test (best epoch 1)" in result.output.splitlines()[-1]


def test_more_than_one_hop_is_a_one_line_error(tmp_path) -> None:
    args = ["train", "--model", "graphmixer", "--layers", "2", "--fanouts", "5,5", "--dataset", "wikipedia"]
    result = CliRunner().invoke(main, [*args, "--max-events", "600", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "graphmixer reads one hop of recent links: model.num_layers must be 1" in result.output
    assert len(result.output.strip().splitlines()[-1:]) == 1 and "Traceback" not in result.output


@pytest.mark.parametrize("kind", NEGATIVES.names())
def test_every_negative_sampler_trains_it(kind: str) -> None:
    from dgl_tgnn.train import Trainer

    overrides = {
        "data.dataset": "wikipedia",
        "data.max_events": 1500,
        "negatives.kind": kind,
        "negatives.n_hard": 1,
        "negatives.n_rand": 2,
        "model.embed_dim": 16,
        "model.fanouts": [5],
        "model.node_embedding": 8,
        "train.batch_size": 100,
        "train.threads": 1,
        "eval.negatives": "none",
    }
    trainer = Trainer(
        apply_overrides(default_config("graphmixer"), overrides), progress=False, log=lambda s: None
    )
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    assert trainer.train_epoch(stop_after=3) is False  # stopped after 3 batches
    losses = trainer.partial["losses"]
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses), losses
    moved = [name for name, p in trainer.model.named_parameters() if not torch.equal(p, before[name])]
    assert any(name.startswith("encoder.mixers.") for name in moved), moved
    assert "encoder.tokens.weight" in moved and "node_embedding.weight" in moved
