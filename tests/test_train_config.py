"""Config: YAML round trip, the shipped configs match the paper defaults, flags override the file."""

import dataclasses
from pathlib import Path

import pytest

from dgl_tgnn.config import apply_overrides, default_config, load_config, save_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("model", ["tgat", "tgn"])
def test_shipped_configs_hold_the_paper_defaults(model):
    loaded = load_config(CONFIGS / f"{model}.yaml").validate()
    defaults = default_config(model)
    # Everything but the epoch budget (tgat.yaml picks a short one) is the papers'.
    assert loaded.model == defaults.model
    assert loaded.negatives == defaults.negatives
    assert loaded.eval == defaults.eval
    assert loaded.data == defaults.data
    assert dataclasses.replace(loaded.train, epochs=defaults.train.epochs) == defaults.train


def test_paper_settings():
    tgat, tgn = default_config("tgat"), default_config("tgn")
    assert (tgat.model.num_layers, tgat.model.fanouts, tgat.model.strategy) == (2, [10, 10], "uniform")
    assert (tgn.model.num_layers, tgn.model.fanouts, tgn.model.strategy) == (1, [10], "recent")
    assert tgn.model.memory_dim == 100 and tgat.train.batch_size == tgn.train.batch_size == 200


def test_round_trip(tmp_path):
    config = apply_overrides(default_config("tgn"), {"negatives.kind": "topk", "eval.negatives": 100})
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config


def test_flags_override_the_file(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  epochs: 7\n  lr: 0.01\nnegatives:\n  kind: degree\n")
    config = load_config(tmp_path / "c.yaml")
    assert (config.train.epochs, config.train.lr, config.negatives.kind) == (7, 0.01, "degree")
    config = apply_overrides(config, {"train.epochs": 2, "train.lr": None})
    assert (config.train.epochs, config.train.lr) == (2, 0.01)


def test_model_flag_picks_that_models_defaults():
    assert load_config(None, "tgn").model == default_config("tgn").model


@pytest.mark.parametrize(
    "text, message",
    [
        ("train:\n  epoch: 3\n", "unknown setting .*train.epoch"),
        ("trainer:\n  epochs: 3\n", "unknown setting .*trainer"),
        ("negatives:\n  kind: hardest\n", "negatives.kind must be one of"),
        ("model:\n  fanouts: [10]\n", "model.fanouts"),
        ("eval:\n  negatives: some\n", "eval.negatives"),
        ("model:\n  dedup: on\n", "model.dedup must be one of auto, always, never; got True"),
        ("model:\n  time_encoding: learned\n", "model.time_encoding must be one of fixed, learnable"),
        ("train:\n  val_every: 0\n", "train.val_every must be an integer >= 1"),
        ("train: [1, 2\n", "not valid YAML"),
    ],
)
def test_bad_configs_name_the_setting(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ValueError, match=message):
        load_config(tmp_path / "c.yaml").validate()


@pytest.mark.parametrize("model", ["tgat", "tgn"])
def test_time_encoding_setting_freezes_or_trains_every_time_encoding(model):
    from dgl_tgnn.link import LinkModel
    from dgl_tgnn.nn.time_encoding import TimeEncoding

    for setting, trained in (("fixed", False), ("learnable", True)):
        config = apply_overrides(default_config(model), {"model.time_encoding": setting})
        encoder = LinkModel(config.model, num_nodes=5, node_dim=0, edge_dim=2)
        encodings = [m for m in encoder.modules() if isinstance(m, TimeEncoding)]
        assert len(encodings) == 2  # TGAT: one per layer; TGN: the memory's and its one layer's
        names = {name for name, _ in encoder.named_parameters()}
        for m in encodings:
            assert m.weight.requires_grad is trained and m.bias.requires_grad is trained
        assert any("time_enc" in name for name in names) is trained


@pytest.mark.parametrize("model", ["graphmixer", "tpnet", "dygformer"])
def test_a_one_hop_model_refuses_more_layers_in_one_line(model):
    config = apply_overrides(default_config(model), {"model.num_layers": 2, "model.fanouts": [5, 5]})
    message = f"^{model} reads one hop of recent links: model.num_layers must be 1"
    with pytest.raises(ValueError, match=message):
        config.validate()
