"""`dgl-tgnn train` / `evaluate` from the command line: a 1-epoch run on a tiny built-in subset."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from dgl_tgnn.cli import main

pytest.importorskip("dgl")

QUICK = [
    "--max-events",
    "1200",
    "--epochs",
    "1",
    "--batch-size",
    "100",
    "--threads",
    "1",
    "--engine",
    "dense",
    "--embed-dim",
    "16",
    "--fanouts",
    "5,5",
    "--eval-negs",
    "20",
    "--no-progress",
]


def test_train_writes_the_run_dir_and_evaluate_reads_it(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["train", "--dataset", "wikipedia", "--runs-dir", str(tmp_path), *QUICK])
    assert result.exit_code == 0, result.output
    (run,) = tmp_path.iterdir()
    assert run.name.endswith("-tgat-uniform")
    assert {p.name for p in run.iterdir()} >= {
        "config.yaml",
        "metrics.jsonl",
        "curves.png",
        "best.pt",
        "checkpoint.pt",
    }
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["epoch"] == 1 and "final" in records[-1]
    assert "test (best epoch 1): AP" in result.output.splitlines()[-1]
    config = (run / "config.yaml").read_text()
    assert "max_events: 1200" in config and "embed_dim: 16" in config

    evaluated = runner.invoke(main, ["evaluate", str(run), "--metric", "ap"])
    assert evaluated.exit_code == 0, evaluated.output
    test_ap = float(
        next(line.split()[1] for line in evaluated.output.splitlines() if line.startswith("test_ap"))
    )
    assert test_ap == pytest.approx(records[-1]["final"]["test_ap"], abs=1e-4)


def test_flags_override_the_config_file(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  epochs: 5\n  lr: 0.5\nnegatives:\n  kind: degree\n")
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--config",
            str(tmp_path / "c.yaml"),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--dedup",
            "never",
            "--time-encoding",
            "learnable",
            *QUICK,
        ],
    )
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    config = (run / "config.yaml").read_text()
    assert "epochs: 1" in config and "lr: 0.5" in config and "kind: degree" in config
    assert "dedup: never" in config and "time_encoding: learnable" in config


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "no-such-data"], "no-such-data"),
        (["--neg", "topk", "--k", "5", "--n-hard", "6"], "n_hard"),
        (["--fanouts", "10"], "fanouts"),
        (["--eval-negs", "many"], "'all', 'none' or a positive integer"),
        (["--dataset", "uci", "--data", "x.csv"], "not both"),
        (["--val-every", "0"], "train.val_every must be an integer >= 1; got 0"),
    ],
)
def test_bad_options_give_one_clear_line(tmp_path, args, message):
    result = CliRunner().invoke(main, ["train", "--runs-dir", str(tmp_path), *args])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output


def test_resume_refuses_other_options(tmp_path):
    result = CliRunner().invoke(main, ["train", "--resume", str(tmp_path), "--epochs", "3"])
    assert result.exit_code != 0 and "give no other option" in result.output


def test_help_explains_every_option():
    result = CliRunner().invoke(main, ["train", "--help"])
    for option in (
        "--model",
        "--neg",
        "--k",
        "--refresh",
        "--warmup-epochs",
        "--n-hard",
        "--n-rand",
        "--loss",
        "--dataset",
        "--data",
        "--epochs",
        "--batch-size",
        "--fanouts",
        "--lr",
        "--seed",
        "--device",
        "--config",
        "--engine",
        "--threads",
        "--visible-batch",
        "--resume",
        "--eval-negs",
        "--dedup",
        "--time-encoding",
    ):
        assert option in result.output, option


def test_python_dash_m_runs_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "dgl_tgnn", "datasets"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "wikipedia" in result.stdout
    usage = subprocess.run([sys.executable, "-m", "dgl_tgnn", "--help"], capture_output=True, text=True)
    assert usage.stdout.startswith("Usage: dgl-tgnn")


def test_train_on_a_generic_csv_file(tmp_path):
    g = np.random.default_rng(0)
    n = 800
    lines = ["when;who;whom"] + [f"{t};{g.integers(0, 40)};{g.integers(40, 60)}" for t in range(n)]
    (tmp_path / "events.csv").write_text("\n".join(lines) + "\n")
    args = [
        "train",
        "--data",
        str(tmp_path / "events.csv"),
        "--src-col",
        "who",
        "--dst-col",
        "whom",
        "--time-col",
        "when",
        "--delimiter",
        ";",
        "--runs-dir",
        str(tmp_path / "runs"),
        *QUICK,
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "test (best epoch 1): AP" in result.output


def string_id_events(path):
    """A csv with a header in an unusual column order and string node ids; the ids in order of first
    appearance (source before target on each line), written down independently of the loader."""
    g = np.random.default_rng(1)
    lines, first_seen = ["timestamp,source,target,amount"], []
    for t in range(600):
        src, dst = f"user_{g.integers(0, 30)}", f"page_{g.integers(0, 20)}"
        lines.append(f"{t},{src},{dst},{g.random():.3f}")
        first_seen += [node for node in (src, dst) if node not in first_seen]
    path.write_text("\n".join(lines) + "\n")
    return first_seen


def test_train_on_string_ids_records_the_data_and_names_the_run_after_it(tmp_path, monkeypatch):
    import dgl_tgnn.training.build

    csv = tmp_path / "events.csv"
    first_seen = string_id_events(csv)
    loads = []
    load_dataset = dgl_tgnn.training.build.load_dataset

    def counted(*args, **kwargs):
        loads.append(args)
        return load_dataset(*args, **kwargs)

    monkeypatch.setattr(dgl_tgnn.training.build, "load_dataset", counted)
    runs = tmp_path / "runs"
    result = CliRunner().invoke(main, ["train", "--data", str(csv), "--runs-dir", str(runs), *QUICK])
    assert result.exit_code == 0, result.output
    assert len(loads) == 1  # the trainer got the dataset the command loaded
    lines = result.output.splitlines()
    assert lines[0] == f"data: events ({csv})"  # describe(ds) first
    ids = "string ids, rows in order of first appearance"
    assert f"events 600, nodes {len(first_seen)} ({ids})" in result.output
    (run,) = runs.iterdir()
    assert re.fullmatch(r"\d{8}-\d{6}-events-tgat-uniform", run.name)
    assert f"run directory: {run}" in lines
    data = yaml.safe_load((run / "config.yaml").read_text())["data"]
    assert data["path"] == str(csv) and data["format"] == "csv" and data["delimiter"] == ","
    assert (data["src_col"], data["dst_col"], data["time_col"]) == ("source", "target", "timestamp")
    assert data["header"] is True and data["keep_ids"] is False and data["feature_cols"] is None
    # users and pages never swap sides: bipartite (guessed, and recorded as read), users first
    assert "  guessed: bipartite: yes, no id is both a source and a destination (--no-bipartite)" in lines
    assert data["bipartite"] is True
    users = [node for node in first_seen if node.startswith("user_")]
    pages = [node for node in first_seen if node.startswith("page_")]
    assert np.load(run / "node_ids.npy").tolist() == users + pages

    # evaluate reads the file again from config.yaml alone: the same events (its content hash) and ids
    evaluated = CliRunner().invoke(main, ["evaluate", str(run), "--metric", "ap"])
    assert evaluated.exit_code == 0, evaluated.output


def test_train_on_a_tgb_edge_list_with_kept_ids(tmp_path):
    g = np.random.default_rng(2)
    edges = tmp_path / "tgbl-tiny_edgelist_v2.csv"
    rows = [f"{t},{g.integers(0, 50) * 2},{g.integers(0, 50) * 2 + 1},1.0" for t in range(600)]
    edges.write_text("timestamp,src,dst,weight\n" + "\n".join(rows) + "\n")
    highest = max(int(part) for row in rows for part in row.split(",")[1:3])
    runs = tmp_path / "runs"
    args = ["train", "--data", str(edges), "--format", "tgb", "--keep-ids", "--runs-dir", str(runs), *QUICK]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "format tgb" in result.output
    assert f"nodes {highest + 1} (integer ids kept as rows (--keep-ids))" in result.output
    (run,) = runs.iterdir()
    assert re.fullmatch(r"\d{8}-\d{6}-tgbl-tiny-tgat-uniform", run.name)
    data = yaml.safe_load((run / "config.yaml").read_text())["data"]
    assert data["format"] == "tgb" and data["keep_ids"] is True
    assert not (run / "node_ids.npy").exists()  # rows are the ids: nothing to map back


def test_a_header_read_as_events_fails_without_leaving_a_run_directory(tmp_path):
    csv = tmp_path / "events.csv"
    string_id_events(csv)
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        main, ["train", "--data", str(csv), "--no-header", "--runs-dir", str(runs), *QUICK]
    )
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and f"{csv}:1:" in result.output
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("flags, named", [(["--keep-ids"], "--keep-ids"), (["--no-header"], "--no-header")])
def test_data_file_flags_with_a_built_in_dataset_are_refused(tmp_path, flags, named):
    result = CliRunner().invoke(main, ["train", "--dataset", "uci", *flags, "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{named} describes a --data file" in result.output and not any(tmp_path.iterdir())
