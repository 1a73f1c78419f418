"""Dynamic node classification (``dgl-tgnn classify``): a classifier on a run's frozen source
embeddings learns labels that depend on the source's recent history, an event's embedding never sees
that event or a later one, and the one-line errors."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dgl_tgnn.cli import main
from dgl_tgnn.model_predictor import ModelPredictor
from dgl_tgnn.node_classification import classify_nodes

QUICK = [
    "--model",
    "tgn",
    "--embed-dim",
    "16",
    "--memory-dim",
    "16",
    "--epochs",
    "1",
    "--batch-size",
    "100",
    "--threads",
    "1",
    "--eval-negs",
    "none",
    "--no-progress",
]


def _labelled_stream(path, n=1500, users=30, items=10, seed=0):
    """A JODIE csv: one event per time unit; half the events repeat the previous event's user. The
    label is 1 when the user's previous event was the one just before (its recent history)."""
    rng = np.random.default_rng(seed)
    last = {}
    lines = ["user_id,item_id,timestamp,state_label,f0"]
    user = 0
    for i in range(n):
        user = user if rng.random() < 0.5 else int(rng.integers(users))
        label = int(last.get(user, -9) == i - 1)
        last[user] = i
        lines.append(f"{user},{int(rng.integers(items))},{float(i)},{label},{rng.random():.3f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _train(tmp_path, data, *flags):
    runs = tmp_path / "runs"
    result = CliRunner().invoke(main, ["train", "--data", str(data), "--runs-dir", str(runs), *QUICK, *flags])
    assert result.exit_code == 0, result.output
    (run,) = runs.iterdir()
    return run


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nodecls")
    return _train(tmp, _labelled_stream(tmp / "events.csv"))


# a model without memory: the stream's blocks need no memory update
MIXER = ["--model", "graphmixer", "--fanouts", "5", "--node-embedding", "8"]


@pytest.fixture(scope="module")
def mixer_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nodecls_mixer")
    return _train(tmp, _labelled_stream(tmp / "events.csv"), *MIXER)


def test_the_classifier_learns_labels_of_the_recent_history(labelled_run):
    result = classify_nodes(labelled_run, epochs=30, lr=3e-3, seed=0)
    assert result["test_auc"] > 0.65 and result["val_auc"] > 0.65, result  # 0.71 and 0.69 when written
    saved = json.loads((labelled_run / "node_classification.json").read_text())
    assert saved["test_auc"] == result["test_auc"]
    assert saved["train_events"] + saved["val_events"] + saved["test_events"] == 1500


@pytest.mark.parametrize("run", ["labelled_run", "mixer_run"])
def test_an_event_embedding_sees_no_later_event(run, request):
    from dgl_tgnn.config import load_config
    from dgl_tgnn.train import load_events

    labelled_run = request.getfixturevalue(run)
    config = load_config(labelled_run / "config.yaml")
    ds = load_events(config.data)
    device = torch.device("cpu")
    z = ModelPredictor.from_run(labelled_run, config, ds, device).embed_stream_sources()
    assert z.shape[0] == ds.num_events and torch.isfinite(z).all()
    for k in (750, 849):  # within a block of the memory's batches, and its last event
        dst, feat = ds.dst.copy(), ds.edge_feat.copy()
        dst[k] = (dst[k] + 1 - ds.dst.min()) % (ds.dst.max() + 1 - ds.dst.min()) + ds.dst.min()
        feat[k] += 5.0
        changed = dataclasses.replace(ds, dst=dst, edge_feat=feat)
        z2 = ModelPredictor.from_run(labelled_run, config, changed, device).embed_stream_sources()
        assert torch.equal(z[: k + 1], z2[: k + 1]), k  # the event itself and every earlier one
        assert not torch.equal(z[k + 1 :], z2[k + 1 :]), k  # later ones do see it


def test_classify_cli_prints_and_writes_the_metrics(labelled_run):
    result = CliRunner().invoke(
        main, ["classify", str(labelled_run), "--epochs", "3", "--seed", "1", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "test_auc" in result.output and "val_auc" in result.output
    saved = json.loads((labelled_run / "node_classification.json").read_text())
    assert saved["seed"] == 1 and saved["epochs"] == 3
    assert f"{saved['test_auc']:.4f}" in result.output


def test_a_dataset_without_labels_is_a_one_line_error(tmp_path):
    data = tmp_path / "plain.csv"
    rng = np.random.default_rng(0)
    data.write_text("".join(f"{rng.integers(20)},{20 + rng.integers(10)},{i}\n" for i in range(600)))
    run = _train(tmp_path, data)
    result = CliRunner().invoke(main, ["classify", str(run)])
    assert result.exit_code == 1
    assert "has no event labels; node classification needs JODIE's state_label column" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_directory_that_is_not_a_finished_run_is_a_one_line_error(tmp_path, labelled_run):
    result = CliRunner().invoke(main, ["classify", str(tmp_path)])
    assert result.exit_code == 1 and "not a run directory" in result.output
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((labelled_run / "config.yaml").read_text())
    result = CliRunner().invoke(main, ["classify", str(unfinished)])
    assert result.exit_code == 1 and "not a finished run (no best.pt" in result.output


@pytest.mark.parametrize("model", [[], MIXER], ids=["tgn", "graphmixer"])
def test_train_task_node_classifies_with_the_trained_model(tmp_path, model):
    data = _labelled_stream(tmp_path / "events.csv")
    runs = tmp_path / "runs"
    args = ["train", "--data", str(data), "--runs-dir", str(runs), *QUICK, *model, "--task", "node"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (run,) = runs.iterdir()
    final = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["final"]
    assert final["node_val_auc"] > 0.65 and final["node_test_auc"] > 0.65, final  # learnable labels
    last = result.output.strip().splitlines()[-1]
    assert f"node val AUC {final['node_val_auc']:.4f} | node test AUC {final['node_test_auc']:.4f}" in last
    saved = json.loads((run / "node_classification.json").read_text())
    assert (saved["val_auc"], saved["test_auc"]) == (final["node_val_auc"], final["node_test_auc"])
    assert (saved["epochs"], saved["lr"], saved["seed"]) == (50, 3e-4, 0)
    # the same as `classify` of the finished run (its best.pt, the same classifier settings)
    again = classify_nodes(run, epochs=50, lr=3e-4, seed=0)
    assert (again["val_auc"], again["test_auc"]) == (final["node_val_auc"], final["node_test_auc"])


def test_train_task_node_without_labels_is_a_one_line_error(tmp_path):
    data = tmp_path / "plain.csv"
    rng = np.random.default_rng(0)
    data.write_text("".join(f"{rng.integers(20)},{20 + rng.integers(10)},{i}\n" for i in range(600)))
    runs = tmp_path / "runs"
    args = ["train", "--data", str(data), "--runs-dir", str(runs), *QUICK, "--task", "node"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last == (
        "Error: dataset 'plain' has no event labels; node classification needs JODIE's state_label "
        "column (--task link trains link prediction only)"
    )
    assert not runs.exists() or not any(runs.iterdir())  # refused before the run directory
    result = CliRunner().invoke(
        main, ["train", "--model", "edgebank", "--task", "node", "--runs-dir", str(runs)]
    )
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: train.task 'node' classifies embeddings: model 'edgebank' has none (--task link)"
    )
