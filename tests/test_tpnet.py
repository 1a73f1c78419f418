"""TPNet: the walk matrices' projections against explicit walk counts, the pair encoder against a
per-pair reference, empty histories, leakage, training from the CLI with every sampler and loss, and
its ``LinkPredictor`` against the evaluator's ranking."""

import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from pair_runs import assert_no_leakage, assert_predictor_ranks_as_the_run_did, assert_trains

from dgl_tgnn.cli import main
from dgl_tgnn.config import apply_overrides, default_config
from dgl_tgnn.model_predictor import ModelPredictor
from dgl_tgnn.nn.tpnet import MixerLayer, TPNet, WalkMatrices, log_relu
from dgl_tgnn.registry import LOSSES, NEGATIVES
from dgl_tgnn.sampling import TemporalBlock

# A small stream without self-loops: (src, dst, t), in time order; batches of BATCH events.
EVENTS = [
    (0, 3, 1.0),
    (1, 3, 2.0),
    (0, 4, 3.5),
    (2, 4, 4.0),
    (1, 3, 6.0),
    (0, 5, 7.0),
    (2, 3, 9.0),
    (1, 4, 9.5),
]
NUM_NODES, DECAY = 6, 0.1


def _walk_counts(events, batch: int, length: int, at: float) -> list[np.ndarray]:
    """``A_1..A_length`` at time ``at`` by enumerating walks (module docstring of nn/tpnet.py): a walk
    of events ``e_1, e_2, ...`` from ``a`` takes each next event from a strictly earlier batch, and
    weighs ``exp(-lambda * sum (at - t_i))``."""
    counts = [np.zeros((NUM_NODES, NUM_NODES)) for _ in range(length)]

    def walk(node: int, start: int, steps: int, weight: float, origin: int) -> None:
        for i in range(len(events) if steps == 0 else start):  # first step: any event
            s, d, t = events[i]
            if node not in (s, d):
                continue
            nxt = d if node == s else s
            w = weight * math.exp(-DECAY * (at - t))
            counts[steps][origin, nxt] += w
            if steps + 1 < length:
                walk(nxt, (i // batch) * batch, steps + 1, w, origin)  # events of earlier batches

    for a in range(NUM_NODES):
        walk(a, 0, 0, 1.0, a)
    return counts


def _fed(walks: WalkMatrices, events, batch: int) -> WalkMatrices:
    for lo in range(0, len(events), batch):
        s, d, t = (torch.tensor(c) for c in zip(*events[lo : lo + batch], strict=True))
        walks.update(s, d, t.double())
    return walks


@pytest.mark.parametrize("batch", [1, 3])
def test_projections_with_orthonormal_features_are_the_walk_matrices(batch):
    features, _ = torch.linalg.qr(torch.randn(NUM_NODES, NUM_NODES, dtype=torch.float64))
    walks = _fed(WalkMatrices(NUM_NODES, 3, NUM_NODES, DECAY, features.float()), EVENTS, batch)
    at = 11.0
    p = walks.read(torch.arange(NUM_NODES), torch.tensor(at, dtype=torch.float64)).double()  # [N, 4, N]
    reference = [np.eye(NUM_NODES), *_walk_counts(EVENTS, batch, 3, at)]
    assert reference[3].max() > 0.1  # walks of length 3 exist
    for k in range(4):
        got = (p[:, k] @ features.T).numpy()  # P_k R^T = A_k
        np.testing.assert_allclose(got, reference[k], atol=1e-5)
        for j in range(4):  # <P_k[a], P_j[b]> = (A_k A_j^T)[a, b]
            inner = (p[:, k] @ p[:, j].T).numpy()
            np.testing.assert_allclose(inner, reference[k] @ reference[j].T, atol=1e-5)


def test_random_projections_estimate_the_walk_inner_products():
    torch.manual_seed(0)
    walks = _fed(WalkMatrices(NUM_NODES, 2, 20000, DECAY), EVENTS, 1)
    p = walks.read(torch.arange(NUM_NODES), torch.tensor(10.0, dtype=torch.float64)).double()
    a = [np.eye(NUM_NODES), *_walk_counts(EVENTS, 1, 2, 10.0)]
    for i, j in [(0, 1), (1, 1), (1, 2), (2, 2)]:
        exact = a[i] @ a[j].T
        np.testing.assert_allclose((p[:, i] @ p[:, j].T).numpy(), exact, atol=0.05 * exact.max() + 0.02)


def test_pending_batch_backup_restore_and_reset():
    features = torch.randn(NUM_NODES, 8)
    every = _fed(WalkMatrices(NUM_NODES, 3, 8, DECAY, features), EVENTS, 4)
    walks = _fed(WalkMatrices(NUM_NODES, 3, 8, DECAY, features), EVENTS[:4], 4)
    first = walks.view()[0].clone()
    walks.update(*(torch.tensor(c) for c in zip(*EVENTS[4:], strict=True)))
    torch.testing.assert_close(walks.view()[0], every.view()[0])
    walks.discard_pending()  # back to the first batch only
    torch.testing.assert_close(walks.view()[0], first)
    saved = every.backup()
    restored = WalkMatrices(NUM_NODES, 3, 8, DECAY, features)
    restored.restore(saved)
    nodes, at = torch.arange(NUM_NODES), torch.tensor(12.0, dtype=torch.float64)
    torch.testing.assert_close(restored.read(nodes, at), every.read(nodes, at))
    restored.reset()
    assert restored.read(nodes, at)[:, 1:].abs().max() == 0


def test_a_training_epoch_starts_from_empty_walks_over_new_random_features():
    """As the paper's code (``reset_random_projections`` at each epoch): new ``N(0, 1/d)`` features
    ``R``; an evaluation's ``reset_memory`` keeps them."""
    torch.manual_seed(0)
    model = TPNet(
        NUM_NODES, 0, 0, channels=8, time_dim=4, neighbours=3, mixer_layers=1, dropout=0.0,
        walk_length=2, walk_dim=4000, decay=DECAY, learnable_time=True,
    )  # fmt: skip
    _fed(model.memory, EVENTS, 4)
    drawn = model.memory.features.clone()
    model.reset_memory()
    assert torch.equal(model.memory.features, drawn)
    _fed(model.memory, EVENTS, 4)
    model.start_epoch()
    nodes, at = torch.arange(NUM_NODES), torch.tensor(12.0, dtype=torch.float64)
    assert model.memory.read(nodes, at)[:, 1:].abs().max() == 0
    new = model.memory.features
    assert new.shape == drawn.shape and not torch.equal(new, drawn)
    # N(0, 1/d): about unit squared norm per node, independent of the earlier draw
    torch.testing.assert_close(new.square().sum(1), torch.ones(NUM_NODES), atol=0.15, rtol=0)
    assert (new * drawn).sum(1).abs().max() < 0.15


def test_the_trainer_draws_new_features_each_epoch_and_a_resume_draws_the_same(tmp_path):
    from dgl_tgnn.train import Trainer

    config = _small_config(**{"train.epochs": 2, "data.max_events": 600})
    seen = []
    for name, stop in (("a", None), ("b", 2)):
        (tmp_path / name).mkdir()
        trainer = Trainer(config, tmp_path / name, progress=False, log=lambda line: None)
        trainer.model.eval()
        first = trainer.model.encoder.memory.features.clone()
        if stop is not None:
            assert trainer.fit(stop_after_batches=stop) is None
            trainer = Trainer.resume(tmp_path / name, progress=False, log=lambda line: None)
        trainer.fit()
        seen.append((first, trainer.model.encoder.memory.features.clone()))
    (first_a, last_a), (first_b, last_b) = seen
    assert torch.equal(first_a, first_b) and torch.equal(last_a, last_b)
    assert not torch.equal(first_a, last_a)


def _block(roots, nbrs, eids, nbr_t, at) -> TemporalBlock:
    nbrs = torch.tensor(nbrs)
    return TemporalBlock(
        torch.tensor(roots),
        torch.full((len(roots),), at, dtype=torch.float64),
        nbrs,
        torch.tensor(eids),
        torch.tensor(nbr_t, dtype=torch.float64),
        nbrs >= 0,
    )


def _model(neighbours: int = 3, node_dim: int = 2, edge_dim: int = 3) -> TPNet:
    torch.manual_seed(1)
    model = TPNet(
        NUM_NODES, node_dim, edge_dim, channels=8, time_dim=4, neighbours=neighbours, mixer_layers=2,
        dropout=0.0, walk_length=2, walk_dim=16, decay=DECAY, learnable_time=True,
    )  # fmt: skip
    _fed(model.memory, EVENTS, 2)
    return model.eval()


def _reference_logit(model, u, v, su, sv, row_u, row_v, node_feat, edge_feat, at):
    """One pair's logit from the paper's formulas, token by token (no shared parts, the plain MLP)."""
    walks, relation = model.memory, model.relation
    time = torch.tensor(at, dtype=torch.float64)

    def rel(a, b):
        return relation(walks.read(torch.tensor(a), time), walks.read(torch.tensor(b), time))

    sides = []
    for block, row in ((su, row_u), (sv, row_v)):
        tokens = []
        for h in range(block.fanout):
            w = int(block.nbr_nodes[row, h])
            if w < 0:
                tokens.append(torch.zeros(model.channels))
                continue
            dt = torch.log1p(block.dt[row, h : h + 1])
            feats = [
                node_feat[w],
                edge_feat[block.nbr_eids[row, h]],
                model.time_enc(dt)[0],
                rel(w, u),
                rel(w, v),
            ]
            tokens.append(model.project(torch.cat(feats)))
        x = torch.stack(tokens)
        for mixer in model.mixers:
            x = mixer(x)
        sides.append(x.mean(0))
    return model.decoder(torch.cat([*sides, rel(u, v)]))[0]


def test_pair_logits_equal_a_per_pair_reference():
    model = _model()
    node_feat, edge_feat = torch.randn(NUM_NODES, 2), torch.randn(len(EVENTS), 3)
    at = 10.0
    src = _block([0, 2], [[5, 4, 3], [3, -1, -1]], [[5, 2, 0], [6, -1, -1]], [[7, 3.5, 1], [9, 0, 0]], at)
    cand = _block([3, 4, 1], [[2, 1, 0], [1, 2, 0], [4, 3, -1]], [[6, 4, 0], [7, 3, 2], [7, 4, -1]],
                  [[9, 6, 1], [9.5, 4, 3.5], [9.5, 6, 0]], at)  # fmt: skip
    index = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 1]])
    with torch.no_grad():
        got = model.pair_logits(src, cand, index, torch.tensor(at, dtype=torch.float64), node_feat, edge_feat)
        for b in range(2):
            for c in range(4):
                u, v = int(src.root_nodes[b]), int(cand.root_nodes[index[b, c]])
                want = _reference_logit(model, u, v, src, cand, b, int(index[b, c]), node_feat, edge_feat, at)
                assert got[b, c].item() == pytest.approx(want.item(), rel=1e-4, abs=1e-5), (b, c)
    assert got.shape == (2, 4)


def _mixer(tokens: int = 5, channels: int = 7) -> MixerLayer:
    """A mixer layer without dropout whose token LayerNorm scales and shifts (not the identity)."""
    torch.manual_seed(0)
    layer = MixerLayer(tokens, channels, dropout=0.0)
    with torch.no_grad():
        layer.token_norm.weight.normal_()
        layer.token_norm.bias.normal_()
    return layer


def test_token_mixing_in_place_equals_pytorch_s_layer_norm_and_linear_on_the_transpose():
    """The GPU's token mixing (reductions and products in ``[..., T, C]``) against PyTorch's
    LayerNorm and Linear layers on the transposed ``[..., C, T]`` (the CPU's), in float64: values,
    and the gradients of the input and of every parameter."""
    layer = _mixer().double()
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64, requires_grad=True)
    params = [x, *layer.token_norm.parameters(), *layer.token_mlp.parameters()]
    got, want = layer.token_mixing_in_place(x), layer.token_mixing_transposed(x)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(got)
    got_grads = torch.autograd.grad((got * weights).sum(), params)
    want_grads = torch.autograd.grad((want * weights).sum(), params)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_mixer_layer_on_a_gpu_equals_the_same_layer_on_the_cpu():
    layer = _mixer(tokens=20, channels=172).eval()
    x = torch.randn(64, 20, 172)
    with torch.no_grad():
        want = layer(x)
        got = layer.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_gpu_mixer_layer_mixes_tokens_in_place_for_ranking_and_through_the_transpose_for_training():
    layer = _mixer(tokens=20, channels=172).cuda()
    calls = []
    for name in ("token_mixing_in_place", "token_mixing_transposed"):
        method = getattr(layer, name)
        setattr(layer, name, lambda x, method=method, name=name: calls.append(name) or method(x))
    x = torch.randn(8, 20, 172, device="cuda")
    with torch.no_grad():
        layer(x)
    layer(x.requires_grad_()).sum().backward()
    assert calls == ["token_mixing_in_place", "token_mixing_transposed"]


def test_empty_histories_give_finite_scores_of_the_right_shape():
    model = _model(neighbours=4, node_dim=0, edge_dim=0)
    model.reset_memory()  # no walks
    empty = _block([0, 1, 2], [[-1] * 4] * 3, [[-1] * 4] * 3, [[0.0] * 4] * 3, 0.0)
    index = torch.tensor([[0, 1], [2, 0], [1, 1]])
    logits = model.pair_logits(empty, empty, index, torch.tensor(0.0, dtype=torch.float64),
                               torch.zeros(NUM_NODES, 0), torch.zeros(0, 0))  # fmt: skip
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()
    logits.sum().backward()  # gradients flow through empty histories too
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert log_relu(torch.tensor([-3.0, 0.0])).tolist() == [0.0, 0.0]


# -- through the package: predictor, leakage, training

QUICK = ["--max-events", "2000", "--epochs", "1", "--batch-size", "100", "--threads", "1", "--no-progress"]
SMALL = ["--model", "tpnet", "--embed-dim", "8", "--fanouts", "4", "--walk-dim", "16", "--walk-decay", "1e-5"]


def _small_config(**overrides):
    config = default_config("tpnet")
    values = {
        "model.embed_dim": 8, "model.fanouts": [4], "model.time_dim": 4, "model.walk_dim": 16,
        "data.max_events": 1500, "train.batch_size": 100, "train.threads": 1, **overrides,
    }  # fmt: skip
    return apply_overrides(config, values)


def _predictor(src, dst, t) -> ModelPredictor:
    config = _small_config()
    torch.manual_seed(0)
    from dgl_tgnn.link import LinkModel

    model = LinkModel(config.model, NUM_NODES, 0, 0)
    zeros = torch.zeros(NUM_NODES, 0)
    return ModelPredictor(model, config, src, dst, t, zeros, torch.zeros(len(src), 0), torch.device("cpu"))


def test_an_event_never_changes_its_own_score_nor_earlier_ones():
    assert_no_leakage(_predictor, EVENTS, NUM_NODES)


@pytest.mark.parametrize(
    ("kind", "loss"),
    [(kind, "bce") for kind in NEGATIVES.names()] + [("uniform", loss) for loss in LOSSES.names()],
)
def test_every_sampler_and_loss_trains_it(kind, loss):
    overrides = {"negatives.kind": kind, "train.loss": loss, "negatives.n_rand": 1, "negatives.k": 5}
    assert_trains(_small_config(**overrides), ("encoder.memory.features",))


def test_bad_pair_model_settings_fail_in_one_line():
    with pytest.raises(ValueError, match="TGB's protocol"):
        _small_config(**{"eval.protocol": "tgn"}).validate()
    with pytest.raises(ValueError, match="similarity dot or cosine"):
        _small_config(**{"negatives.kind": "topk", "negatives.similarity": "decoder"}).validate()


def test_one_epoch_from_the_cli_and_the_predictor_ranks_as_the_run_did(tmp_path):
    result = CliRunner().invoke(
        main, ["train", "--protocol", "tgb", "--runs-dir", str(tmp_path), *QUICK, *SMALL]
    )
    assert result.exit_code == 0, result.output
    (run,) = tmp_path.iterdir()
    assert_predictor_ranks_as_the_run_did(run)


def test_the_tgb_config_keeps_the_paper_model_with_the_tgb_code_s_walk_length():
    import dataclasses
    from pathlib import Path

    from dgl_tgnn.config import load_config

    loaded = load_config(Path(__file__).resolve().parents[1] / "configs" / "tpnet-tgb.yaml").validate()
    paper = default_config("tpnet")
    assert loaded.model.walk_length == 2  # lxd99/TGB_TPNet's best configs; its other code has 3
    assert dataclasses.replace(loaded.model, walk_length=3) == paper.model and loaded.eval.protocol == "tgb"
    m = paper.model
    assert (m.fanouts, m.strategy, m.embed_dim, m.mixer_layers) == ([20], "recent", 172, 2)
    assert (m.walk_length, m.walk_decay, m.walk_dim, paper.train.lr) == (3, 1e-6, 120, 1e-4)
    assert m.time_encoding == "learnable"  # DyGLib's TimeEncoder learns its frequencies
    # ranked in batches of 20 events, trained in batches of 200, as the TGB code on tgbl-wiki
    assert (loaded.eval_batch_size, loaded.train.batch_size) == (20, 200)
