"""DyGFormer: the co-occurrence counts against a Python count, the batched pair logits against a
per-pair reference built token by token, empty histories, leakage, training from the CLI with every
sampler and loss, and its ``LinkPredictor`` against the evaluator's ranking."""

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from pair_runs import assert_no_leakage, assert_predictor_ranks_as_the_run_did, assert_trains

from dgl_tgnn.cli import main
from dgl_tgnn.config import apply_overrides, default_config, load_config
from dgl_tgnn.link import LinkModel
from dgl_tgnn.model_predictor import ModelPredictor
from dgl_tgnn.nn.dygformer import DyGFormer, cooccurrence_counts
from dgl_tgnn.registry import LOSSES, NEGATIVES
from dgl_tgnn.sampling import TemporalBlock

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
NUM_NODES = 6


def _python_counts(ids, mask, other_ids, other_mask):
    return [
        sum(1 for o, m in zip(other_ids, other_mask, strict=True) if m and o == w) if keep else 0
        for w, keep in zip(ids, mask, strict=True)
    ]


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")),
    ],
)
def test_cooccurrence_counts_equal_a_python_count(device):
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 4, (5, 3, 7), generator=gen)  # few nodes: many repeats
    mask = torch.rand(5, 3, 7, generator=gen) < 0.7
    ids = torch.where(mask, ids, -1)  # empty slots hold -1, as the sampler's blocks
    other = torch.where(mask.roll(1, 0), ids.roll(1, 0), -1)
    other_mask = other >= 0
    # ... and a padded slot holding a real id must not count either
    other_mask[0, 0, 0], other[0, 0, 0] = False, 2
    got = cooccurrence_counts(ids.to(device), mask.to(device), other.to(device), other_mask.to(device)).cpu()
    for i in range(5):
        for j in range(3):
            want = _python_counts(
                ids[i, j].tolist(), mask[i, j].tolist(), other[i, j].tolist(), other_mask[i, j].tolist()
            )
            assert got[i, j].tolist() == want, (i, j)
    assert got.max() >= 2 and (got[~mask] == 0).all()
    # the broadcast [B, C] pairs form: a source row against its candidates
    pairs = cooccurrence_counts(
        ids[:, :1].to(device), mask[:, :1].to(device), other.to(device), other_mask.to(device)
    )
    assert pairs.shape == (5, 3, 7)


def _block(roots, nbrs, eids, nbr_t, at) -> TemporalBlock:
    nbrs = torch.tensor(nbrs)
    nbr_t = torch.tensor(nbr_t, dtype=torch.float64)
    return TemporalBlock(
        torch.tensor(roots),
        torch.full((len(roots),), at, dtype=torch.float64),
        nbrs,
        torch.tensor(eids),
        nbr_t,
        nbrs >= 0,
    )


def _model(neighbours: int = 4, patch: int = 2, node_dim: int = 2, edge_dim: int = 3) -> DyGFormer:
    torch.manual_seed(1)
    return DyGFormer(
        node_dim, edge_dim, time_dim=4, neighbours=neighbours, patch_size=patch, channels=6, cooc_dim=5,
        layers=2, heads=2, dropout=0.0, out_dim=8, learnable_time=True,
    ).eval()  # fmt: skip


def _reference_logit(model, su, sv, row_u, row_v, node_feat, edge_feat):
    """One pair's logit from the paper's formulas, token by token: Python counts, the plain MLP ``f``
    on each count, each group's projection of whole patches, the Transformer over the valid patches
    only (no mask)."""
    p = model.patch_size
    seqs = []
    for block, row in ((su, row_u), (sv, row_v)):
        ids = [int(block.root_nodes[row])] + block.nbr_nodes[row].tolist()
        eids = [-1] + block.nbr_eids[row].tolist()
        dts = [0.0] + block.dt[row].tolist()
        mask = [True] + block.mask[row].tolist()
        while len(ids) % p:
            ids, eids, dts, mask = ids + [-1], eids + [-1], dts + [0.0], mask + [False]
        seqs.append((ids, eids, dts, mask))
    sides = []
    for s, (ids, eids, dts, mask) in enumerate(seqs):
        other = seqs[1 - s]
        own_n = _python_counts(ids, mask, ids, mask)
        other_n = _python_counts(ids, mask, other[0], other[3])
        groups = {"node": [], "edge": [], "time": [], "cooc": []}
        for i, w in enumerate(ids):
            keep = float(mask[i])
            groups["node"].append(node_feat[max(w, 0)] * keep)
            groups["edge"].append(
                edge_feat[eids[i]] * keep if eids[i] >= 0 else torch.zeros(edge_feat.shape[1])
            )
            groups["time"].append(model.time_enc(torch.tensor([dts[i]], dtype=torch.float64))[0] * keep)
            f = model.cooc(torch.tensor([[float(own_n[i])], [float(other_n[i])]])).sum(0)
            groups["cooc"].append(f * keep)
        projections = [(model.node_proj, "node"), (model.edge_proj, "edge"), (model.time_proj, "time"),
                       (model.cooc_proj, "cooc")]  # fmt: skip
        patches = []
        for lo in range(0, len(ids), p):
            if any(mask[lo : lo + p]):
                parts = [proj(torch.cat(groups[g][lo : lo + p])) for proj, g in projections]
                patches.append(torch.cat(parts))
        sides.append(torch.stack(patches))
    x = torch.cat(sides)[None]
    for layer in model.layers:
        x = layer(x, torch.ones(x.shape[:2], dtype=torch.bool))
    nu = sides[0].shape[0]
    hu, hv = model.output(x[0, :nu].mean(0)), model.output(x[0, nu:].mean(0))
    return model.merge(torch.cat([hu, hv]))[0]


@pytest.mark.parametrize(("patch", "node_dim", "edge_dim"), [(1, 2, 3), (2, 2, 3), (3, 2, 3), (2, 0, 0)])
def test_pair_logits_equal_a_per_pair_reference(patch, node_dim, edge_dim):
    model = _model(patch=patch, node_dim=node_dim, edge_dim=edge_dim)
    # four groups of 6 channels with or without features (DyGLib's zero features: a learnt constant)
    assert model.width == 4 * 6
    node_feat, edge_feat = torch.randn(NUM_NODES, node_dim), torch.randn(len(EVENTS), edge_dim)
    at = 10.0
    # repeated neighbours, the candidate among the source's neighbours, a source among its own
    src = _block([0, 2], [[3, 4, 3, 5], [3, -1, -1, -1]], [[0, 2, 1, 5], [6, -1, -1, -1]],
                 [[1, 3.5, 2, 7], [9, 0, 0, 0]], at)  # fmt: skip
    cand = _block([3, 4, 1], [[0, 1, 2, 0], [1, 2, 0, -1], [-1, -1, -1, -1]],
                  [[0, 4, 6, 1], [7, 3, 2, -1], [-1, -1, -1, -1]],
                  [[1, 6, 9, 2], [9.5, 4, 3.5, 0], [0, 0, 0, 0]], at)  # fmt: skip
    index = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 1]])
    with torch.no_grad():
        got = model.pair_logits(src, cand, index, torch.tensor(at, dtype=torch.float64), node_feat, edge_feat)
        for b in range(2):
            for c in range(4):
                want = _reference_logit(model, src, cand, b, int(index[b, c]), node_feat, edge_feat)
                assert got[b, c].item() == pytest.approx(want.item(), rel=1e-4, abs=1e-5), (b, c)
    assert got.shape == (2, 4)
    assert got[0].unique().numel() == 3  # pairs differ (candidate 1 twice)
    # small chunks of pairs give the same logits
    model.pair_budget = {"cpu": 1}
    with torch.no_grad():
        chunked = model.pair_logits(
            src, cand, index, torch.tensor(at, dtype=torch.float64), node_feat, edge_feat
        )
    torch.testing.assert_close(chunked, got)


@pytest.mark.parametrize(("node_dim", "edge_dim"), [(0, 0), (2, 3)])
def test_empty_histories_give_finite_scores_of_the_right_shape(node_dim, edge_dim):
    model = _model(node_dim=node_dim, edge_dim=edge_dim).train()
    empty = _block([0, 1, 2], [[-1] * 4] * 3, [[-1] * 4] * 3, [[0.0] * 4] * 3, 0.0)
    index = torch.tensor([[0, 1], [2, 0], [1, 1]])
    node_feat, edge_feat = torch.randn(NUM_NODES, node_dim), torch.randn(4, edge_dim)
    logits = model.pair_logits(
        empty, empty, index, torch.tensor(0.0, dtype=torch.float64), node_feat, edge_feat
    )
    assert logits.shape == (3, 2) and torch.isfinite(logits).all()
    z = model([empty], node_feat, edge_feat)
    assert z.shape == (3, 8) and torch.isfinite(z).all()
    (logits.sum() + z.sum()).backward()  # gradients flow through empty histories too
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    empty_pairs = model.pair_logits(empty, empty, index[:, :0], torch.tensor(0.0), node_feat, edge_feat)
    assert empty_pairs.shape == (3, 0)


def test_bad_settings_fail_in_one_line():
    with pytest.raises(ValueError, match="heads dividing"):
        DyGFormer(0, 0, time_dim=4, neighbours=4, patch_size=1, channels=5, cooc_dim=5, layers=1, heads=3,
                  dropout=0.0, out_dim=8, learnable_time=False)  # fmt: skip
    model = _model(neighbours=4)
    wrong = _block([0], [[1, 2, 3]], [[0, 1, 2]], [[1.0, 2.0, 3.0]], 5.0)
    with pytest.raises(ValueError, match="built for 4 neighbours"):
        model([wrong], torch.zeros(NUM_NODES, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="TGB's protocol"):
        _small_config(**{"eval.protocol": "tgn"}).validate()
    with pytest.raises(ValueError, match="patch_size must be >= 1"):
        _small_config(**{"model.patch_size": 0}).validate()


# -- through the package: predictor, leakage, training

QUICK = ["--max-events", "2000", "--epochs", "1", "--batch-size", "100", "--threads", "1", "--no-progress"]
SMALL = ["--model", "dygformer", "--embed-dim", "8", "--fanouts", "4", "--patch-size", "2"]


def _small_config(**overrides):
    config = default_config("dygformer")
    values = {
        "model.embed_dim": 8, "model.fanouts": [4], "model.time_dim": 4, "model.patch_size": 2,
        "data.max_events": 1500, "train.batch_size": 100, "train.threads": 1, **overrides,
    }  # fmt: skip
    return apply_overrides(config, values)


def _predictor(src, dst, t) -> ModelPredictor:
    config = _small_config()
    torch.manual_seed(0)
    model = LinkModel(config.model, NUM_NODES, 0, 0).eval()
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
    assert_trains(_small_config(**overrides))


def test_one_epoch_from_the_cli_and_the_predictor_ranks_as_the_run_did(tmp_path):
    result = CliRunner().invoke(
        main, ["train", "--protocol", "tgb", "--eval-negs", "20", "--runs-dir", str(tmp_path), *QUICK, *SMALL]
    )
    assert result.exit_code == 0, result.output
    (run,) = tmp_path.iterdir()
    assert_predictor_ranks_as_the_run_did(run)


def test_the_tgb_config_keeps_the_paper_model():
    loaded = load_config(Path(__file__).resolve().parents[1] / "configs" / "dygformer-tgb.yaml").validate()
    paper = default_config("dygformer")
    assert loaded.model == paper.model and loaded.eval.protocol == "tgb"
    m = paper.model
    assert (m.fanouts, m.strategy, m.patch_size, m.num_heads, m.embed_dim) == ([31], "recent", 1, 2, 172)
    assert (m.time_dim, m.dropout, paper.train.lr, paper.train.batch_size) == (100, 0.1, 1e-4, 200)
    assert loaded.eval_batch_size == 20  # ranked 20 events at a time
