"""Hardening (issue 17): checkpoints never run code, NaN is never a hit, one-line CLI errors,
signals and concurrent resumes, silent wrong results refused."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from dgl_tgnn import run_dir as rd
from dgl_tgnn.cli import main
from dgl_tgnn.config import apply_overrides, default_config, load_config
from dgl_tgnn.train import (
    BEST_KEYS,
    CheckpointError,
    RunDirError,
    Trainer,
    TrainingDiverged,
    load_checkpoint,
    load_events,
)

pytest.importorskip("dgl")


def tiny(model: str = "tgat", **overrides):
    """A small, fast config on the first 1,200 Wikipedia events."""
    settings = {
        "data.max_events": 1200,
        "train.epochs": 1,
        "train.batch_size": 100,
        "train.threads": 1,
        "model.engine": "dense",
        "model.embed_dim": 16,
        "model.time_dim": 16,
        "model.memory_dim": 16,
        "model.fanouts": [5, 5] if model == "tgat" else [5],
        "eval.negatives": 20,
    }
    settings.update(overrides)
    return apply_overrides(default_config(model), settings)


@pytest.fixture(scope="module")
def events():
    return load_events(tiny().data)


def quiet(line: str) -> None:
    pass


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, events) -> Path:
    """A finished 1-epoch TGN run directory (do not modify: copy it)."""
    path = tmp_path_factory.mktemp("trained") / "run"
    path.mkdir()
    Trainer(tiny("tgn"), path, dataset=events, progress=False, log=quiet).fit()
    return path


class Payload:
    """Unpickling it runs ``touch marker``: what a crafted checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def one_line_failure(result) -> str:
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) >= 1 and lines[-1].startswith("Error: "), result.output
    return lines[-1]


# ----------------------------------------------------------------- 1. checkpoints run no code
@pytest.mark.parametrize("legacy", [False, True])
def test_a_crafted_checkpoint_runs_no_code(tmp_path, legacy):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "best.pt"
    payload = {"config": {}, "epoch": 1, "model": Payload(marker)}
    torch.save(payload, crafted, _use_new_zipfile_serialization=not legacy)
    # The payload is live: the old loader ran it.
    torch.load(crafted, weights_only=False)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(crafted, BEST_KEYS)
    line = one_line_failure(CliRunner().invoke(main, ["evaluate", str(crafted)]))
    assert "refused" in line and "system" in line
    resumed = tmp_path / "run"
    resumed.mkdir()
    (resumed / rd.CONFIG).write_text("data:\n  max_events: 1200\n")
    torch.save(payload | {"batch": 0, "optimizer": {}}, resumed / rd.CHECKPOINT)
    one_line_failure(CliRunner().invoke(main, ["train", "--resume", str(resumed)]))
    assert not marker.exists()


def test_checkpoints_hold_only_tensors_and_plain_containers(trained_run):
    for name, keys in ((rd.BEST, BEST_KEYS), (rd.CHECKPOINT, ("optimizer", "memory", "negatives"))):
        saved = torch.load(trained_run / name, weights_only=True)
        assert all(key in saved for key in keys)
    memory = torch.load(trained_run / rd.BEST, weights_only=True)["val_memory"]
    assert isinstance(memory, dict) and isinstance(memory["state"], torch.Tensor)


# ----------------------------------------------------------------- 2. NaN stops training
QUICK = "--max-events 1200 --epochs 1 --batch-size 100 --threads 1 --engine dense --embed-dim 16".split()
QUICK += "--fanouts 5,5 --eval-negs 20 --no-progress".split()


def test_a_diverging_run_stops_with_one_line_and_saves_nothing(tmp_path):
    result = CliRunner().invoke(main, ["train", "--runs-dir", str(tmp_path), *QUICK, "--lr", "1e6"])
    line = one_line_failure(result)
    assert "diverged" in line and "batch 2 of" in line and "--lr" in line and "features" in line
    (run,) = tmp_path.iterdir()
    assert not (run / rd.BEST).exists() and not (run / rd.CHECKPOINT).exists()
    assert "AP" not in result.output and not (run / rd.METRICS).exists()


def test_a_nan_loss_names_its_batch(tmp_path, events):
    (tmp_path / "run").mkdir()
    trainer = Trainer(tiny(), tmp_path / "run", dataset=events, progress=False, log=quiet)
    step, calls = trainer._train_batch, []

    def poisoned_at_the_fourth_batch(batch):
        calls.append(1)
        if len(calls) == 4:
            with torch.no_grad():
                trainer.model.decoder.out.weight.fill_(float("nan"))
        return step(batch)

    trainer._train_batch = poisoned_at_the_fourth_batch
    with pytest.raises(TrainingDiverged, match="epoch 1, batch 4 of"):
        trainer.fit()
    assert not (tmp_path / "run" / rd.BEST).exists()


# ----------------------------------------------------------------- 5. one-line CLI errors
def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def final_result(run: Path) -> dict:
    return rd.read_metrics(run)[-1]["final"]


@pytest.mark.parametrize("damage", ["empty", "truncated", "flipped", "text", "tensor", "foreign dict"])
def test_damaged_or_foreign_checkpoints_fail_in_one_line(tmp_path, trained_run, damage):
    run = copy_run(trained_run, tmp_path / "run")
    best = run / rd.BEST
    data = best.read_bytes()
    if damage == "empty":
        best.write_bytes(b"")
    elif damage == "truncated":
        best.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        best.write_bytes(data[:100] + bytes(b ^ 0xFF for b in data[100:4000]) + data[4000:])
    elif damage == "text":
        best.write_text("model: not a checkpoint\n")
    elif damage == "tensor":
        torch.save(torch.zeros(3), best)
    else:
        torch.save({"state_dict": {}}, best)
    line = one_line_failure(CliRunner().invoke(main, ["evaluate", str(run)]))
    assert str(best) in line
    debug = CliRunner().invoke(main, ["evaluate", str(run), "--debug"])
    assert debug.exit_code != 0 and isinstance(debug.exception, CheckpointError)


def test_resume_refuses_a_config_that_no_longer_matches_its_checkpoint(tmp_path, trained_run):
    run = copy_run(trained_run, tmp_path / "run")
    config = run / rd.CONFIG
    config.write_text(config.read_text().replace("embed_dim: 16", "embed_dim: 32"))
    line = one_line_failure(CliRunner().invoke(main, ["train", "--resume", str(run)]))
    assert "model.embed_dim is 32" in line and "16" in line


def test_an_unwritable_runs_dir_fails_in_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    line = one_line_failure(
        CliRunner().invoke(main, ["train", "--runs-dir", str(tmp_path / "file" / "runs")])
    )
    assert "cannot create a run directory" in line and "--runs-dir" in line


def test_a_run_dir_lost_mid_run_keeps_the_epoch_elsewhere(tmp_path, trained_run, events):
    run = tmp_path / "run"
    run.mkdir()
    trainer = Trainer(tiny("tgn"), run, dataset=events, progress=False, log=quiet)
    step, calls = trainer._train_batch, []

    def remove_the_run_dir(batch):
        calls.append(1)
        if len(calls) == 2:
            shutil.rmtree(run)  # as a read-only remount or a full disk would
        return step(batch)

    trainer._train_batch = remove_the_run_dir
    with pytest.raises(RunDirError, match="cannot write to the run directory") as error:
        trainer.fit()
    rescue = Path(str(error.value).split("is saved in ")[1].split(":")[0])
    assert {p.name for p in rescue.iterdir()} == {rd.CONFIG, rd.METRICS, rd.BEST, rd.CHECKPOINT}
    moved = copy_run(rescue, tmp_path / "moved")
    shutil.rmtree(rescue)
    resumed = Trainer.resume(moved, progress=False, log=quiet)
    resumed.dataset = events
    assert resumed.fit() == final_result(trained_run)


def test_yaml_values_are_typed(tmp_path):
    def load(text: str):
        (tmp_path / "c.yaml").write_text(text)
        return load_config(tmp_path / "c.yaml")

    assert load("train:\n  lr: 1e-3\n").train.lr == 1e-3  # a string to PyYAML
    assert load("train:\n  lr: 2\n").train.lr == 2.0
    assert load("data:\n  src_col: 0\n").data.src_col == "0"
    for text, message in [
        ("train:\n  epochs: true\n", "train.epochs must be an integer; got True"),
        ("train:\n  threads: two\n", "train.threads must be an integer"),
        ("train:\n  lr: fast\n", "train.lr must be a number"),
        ("model:\n  fanouts: [10, x]\n", "model.fanouts must be a list of ints"),
        ("data:\n  features: 1\n", "data.features must be true or false"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            load(text)
    line = one_line_failure(
        CliRunner().invoke(main, ["train", "--config", str(tmp_path / "c.yaml"), "--runs-dir", str(tmp_path)])
    )
    assert "data.features" in line


@pytest.mark.parametrize(
    "device, message",
    [("cuda", "CUDA is not available"), ("gpu", "unknown device"), ("mps", "not supported")],
)
def test_unusable_devices_fail_in_one_line(tmp_path, device, message):
    if device == "cuda" and torch.cuda.is_available():
        device, message = f"cuda:{torch.cuda.device_count()}", "CUDA device(s)"
    line = one_line_failure(
        CliRunner().invoke(main, ["train", "--runs-dir", str(tmp_path), *QUICK, "--device", device])
    )
    assert message in line and "--device" in line
    assert not any(tmp_path.iterdir())  # no run directory left behind


# ----------------------------------------------------------------- 6. signals and concurrency
def signal_at_the_second_batch(monkeypatch, signum):
    step = Trainer._train_batch
    calls = []

    def step_then_signal(self, batch):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signum)
        return step(self, batch)

    monkeypatch.setattr(Trainer, "_train_batch", step_then_signal)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_save_then_exit_128_plus_the_signal(tmp_path, monkeypatch, signum, code):
    signal_at_the_second_batch(monkeypatch, signum)
    result = CliRunner().invoke(main, ["train", "--runs-dir", str(tmp_path), *QUICK])
    assert result.exit_code == code, result.output
    (run,) = tmp_path.iterdir()
    assert (run / rd.CHECKPOINT).exists() and not (run / "checkpoint.tmp").exists()
    assert torch.load(run / rd.CHECKPOINT, weights_only=True)["batch"] == 2
    assert "--resume" in result.output


def test_a_second_ctrl_c_during_a_save_leaves_a_whole_checkpoint(tmp_path, monkeypatch):
    from dgl_tgnn import train as train_module

    path = tmp_path / rd.CHECKPOINT
    train_module.save_atomically({"n": torch.zeros(1)}, path)
    real_save = torch.save

    def interrupted_save(obj, file):
        # Ctrl-C, delivered to this (the main) thread: os.kill may hand a process signal to another
        # thread, whose handler can run after the save on a busy machine (the race made this flaky).
        signal.raise_signal(signal.SIGINT)  # the default handler raises KeyboardInterrupt
        real_save(obj, file)

    monkeypatch.setattr(torch, "save", interrupted_save)
    # Python's own Ctrl-C handler, also where the suite started with SIGINT ignored (a shell's
    # background job), which save_atomically rightly keeps
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            train_module.save_atomically({"n": torch.ones(1)}, path)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert torch.load(path, weights_only=True)["n"].item() == 1.0  # the save completed first
    assert not path.with_suffix(".tmp").exists()


def test_a_second_resume_of_one_run_dir_refuses(tmp_path, events):
    run = tmp_path / "run"
    run.mkdir()
    Trainer(tiny(), run, dataset=events, progress=False, log=quiet).fit(stop_after_batches=2)
    first = Trainer.resume(run, progress=False, log=quiet)
    with pytest.raises(ValueError, match="in use by another dgl-tgnn process"):
        Trainer.resume(run, progress=False, log=quiet)
    line = one_line_failure(CliRunner().invoke(main, ["train", "--resume", str(run)]))
    assert f"pid {os.getpid()}" in line
    first.fit()  # releases the lock at its end
    assert Trainer.resume(run, progress=False, log=quiet)._lock is not None


def test_checkpoints_inside_an_epoch_resume_exactly(tmp_path, trained_run, events):
    """kill -9 after the in-epoch checkpoint of batch 3: resuming gives the uninterrupted result."""
    run = tmp_path / "run"
    run.mkdir()
    trainer = Trainer(tiny("tgn"), run, dataset=events, progress=False, log=quiet)
    trainer.checkpoint_every_s = 0.0  # after every batch
    save = trainer._save_checkpoint

    def save_and_snapshot():
        save()
        if trainer.epoch == 0 and trainer.batch == 3:
            copy_run(run, tmp_path / "killed")

    trainer._save_checkpoint = save_and_snapshot
    assert trainer.fit() == final_result(trained_run)
    assert torch.load(tmp_path / "killed" / rd.CHECKPOINT, weights_only=True)["batch"] == 3
    assert Trainer.resume(tmp_path / "killed", progress=False, log=quiet).fit() == final_result(trained_run)
    assert Trainer.checkpoint_every_s == 300.0


# ----------------------------------------------------------------- 7. silent wrong results
def test_an_empty_test_split_is_refused_with_the_split_sizes(tmp_path, events):
    config = tiny(**{"data.test_ratio": 0.0})
    with pytest.raises(ValueError, match=r"empty test split \(train \d+, val \d+, test 0 events\)"):
        Trainer(config, None, dataset=events, progress=False, log=quiet).fit()


def test_evaluate_builds_no_trainer(tmp_path, trained_run, monkeypatch):
    """A saved model is evaluated from its data, model and evaluator: no optimizer, no sampler."""
    from dgl_tgnn.train import evaluate_checkpoint

    expected = final_result(trained_run)

    def refused(*args, **kwargs):
        raise AssertionError("evaluate built a Trainer")

    monkeypatch.setattr(Trainer, "__init__", refused)
    result = evaluate_checkpoint(copy_run(trained_run, tmp_path / "run"))
    assert result["test_ap"] == pytest.approx(expected["test_ap"], abs=1e-6)


def test_evaluate_refuses_data_that_changed_since_training(tmp_path, trained_run, events):
    run = copy_run(trained_run, tmp_path / "run")
    assert torch.load(run / rd.BEST, weights_only=True)["data_hash"]
    config = run / rd.CONFIG
    # the same built-in data, one event fewer: another content
    config.write_text(config.read_text().replace("max_events: 1200", "max_events: 1199"))
    best = torch.load(run / rd.BEST, weights_only=True)
    best["config"]["data"]["max_events"] = 1199
    torch.save(best, run / rd.BEST)
    line = one_line_failure(CliRunner().invoke(main, ["evaluate", str(run)]))
    assert "changed since training" in line


@pytest.mark.parametrize("flag, value", [("--format", "csv"), ("--src-col", "0"), ("--delimiter", ";")])
def test_data_file_flags_are_refused_with_a_built_in_dataset(tmp_path, flag, value):
    line = one_line_failure(CliRunner().invoke(main, ["train", "--dataset", "uci", flag, value, *QUICK]))
    assert flag in line and "--dataset" in line


# ----------------------------------------------------------------- 8. busy machines
def test_training_uses_one_thread_while_another_process_is_busy(tmp_path, events):
    """The default thread count (train.threads unset) drops to 1 while others keep a core busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    trainer = Trainer(tiny(**{"train.threads": None}), None, dataset=events, progress=False, log=quiet)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        trainer.threads.adapt()
        assert trainer.threads.default == 2
        time.sleep(0.5)
        trainer.threads.adapt()
        assert torch.get_num_threads() == 1
    finally:
        busy.kill()
        busy.wait()
        torch.set_num_threads(before)
    # an explicit thread count is left alone
    pinned = Trainer(tiny(**{"train.threads": 1}), None, dataset=events, progress=False, log=quiet)
    pinned.threads.adapt()
    assert pinned.threads.mark is None


def test_a_sampler_call_too_large_for_memory_is_refused_before_allocating():
    """Fanouts whose blocks exceed half the machine's memory: a ValueError saying how much, at once."""
    import os

    from dgl_tgnn import TemporalGraph, TemporalSampler

    graph = TemporalGraph(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([1.0, 2.0]))
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    fanout = int((ram / 25) ** 0.5) + 1  # two hops: fanout^2 slots of 25 bytes exceed the RAM
    sampler = TemporalSampler(graph, fanouts=[fanout, fanout], strategy="recent")
    with pytest.raises(ValueError, match=r"GiB of neighbour slots.*lower the fanouts"):
        sampler.sample(torch.tensor([2]), torch.tensor([3.0]))
    small = TemporalSampler(graph, fanouts=[4, 4], strategy="recent")
    assert small.sample(torch.tensor([2]), torch.tensor([3.0]))[0].nbr_nodes.shape == (1, 4)
