"""`dgl-tgnn train` / `evaluate` from the command line: a 1-epoch run on a tiny built-in subset."""

import json
import subprocess
import sys

import numpy as np
import pytest
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


@pytest.mark.parametrize("flags, named", [(["--keep-ids"], "--keep-ids"), (["--no-header"], "--no-header")])
def test_data_file_flags_with_a_built_in_dataset_are_refused(tmp_path, flags, named):
    result = CliRunner().invoke(main, ["train", "--dataset", "uci", *flags, "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{named} describes a --data file" in result.output and not any(tmp_path.iterdir())
