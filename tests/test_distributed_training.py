"""Data-parallel training on two gloo processes: a run of G = 2 processes at batch B equals one
process at batch 2B (losses, metrics, TGN's memory, the topk table), for TGAT and TGN with uniform
and topk negatives, and under TGB's protocol with pair features; rank 0 alone writes the run
directory; resume with G = 2 equals an uninterrupted run; a killed process makes the other exit at
once with a one-line error; a refused setting is one line before any process starts; EdgeBank ranks
in one process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dgl_tgnn.config import apply_overrides, default_config
from dgl_tgnn.distributed.group import Parallel
from dgl_tgnn.distributed.launch import without_nproc
from dgl_tgnn.train import Trainer, evaluate_checkpoint, load_events

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo needed"
)

WORLD = 2
BATCH = 50  # per process: windows of 100 events
DEADLINE_S = 120
REPO = Path(__file__).resolve().parent.parent

CASES = [
    ("tgat", "uniform"),
    ("tgat", "topk"),
    ("tgn", "uniform"),
    ("tgn", "topk"),
]


def tiny(model: str, neg: str, batch: int, **overrides: object):
    """A small config on the first 1,000 Wikipedia events, without dropout (its masks are drawn per
    process), one thread, and an identity vector per node. Without those vectors every pair of
    never-seen nodes gets the same score, and a rank metric then hangs on how rounding (one ulp,
    which a batch's layout changes) splits such a tie: tgat/topk's validation AUC moved by 5e-4."""
    settings = {
        "data.max_events": 1000,
        "train.epochs": 1,
        "train.batch_size": batch,
        "train.threads": 1,
        "model.engine": "dense",
        "model.dropout": 0.0,
        "model.embed_dim": 16,
        "model.time_dim": 16,
        "model.memory_dim": 16,
        "model.node_embedding": 16,
        "model.fanouts": [5, 5] if model == "tgat" else [5],
        "negatives.kind": neg,
        "eval.negatives": 20,
    }
    if neg == "topk":
        settings |= {"negatives.k": 5, "negatives.refresh": 2, "negatives.n_rand": 1}
    settings |= overrides
    return apply_overrides(default_config(model), settings)


TGB_CASES = ["tgat", "tgn"]


def tgb(model: str, batch: int):
    """``tiny`` under TGB's protocol (every destination ranked) with pair features (as
    configs/*-tgb.yaml), two epochs (the test ranks the better one's weights)."""
    settings = {
        "eval.protocol": "tgb",
        "eval.negatives": "all",
        "model.pair_history": 10,
        "train.epochs": 2,
    }
    return tiny(model, "uniform", batch, **settings)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _summary(trainer: Trainer, result: dict | None) -> dict:
    """What must not depend on G: losses, metrics, TGN's memory, the whole topk table."""
    memory = trainer.model.backup_memory()
    table = trainer.negatives.state_dict().get("table")  # (sharded: gathered, a collective)
    return {
        "losses": [r["loss"] for r in trainer.history],
        "metrics": [{k: v for k, v in r.items() if k.startswith(("val", "test"))} for r in trainer.history],
        "result": result,
        "memory": None if memory is None else memory.state.clone(),
        "table": table,
    }


def _worker(rank: int, port: int, out: Path, job: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=timedelta(seconds=60),
    )
    parallel = Parallel(rank, WORLD, torch.device("cpu"))
    events = load_events(tiny("tgat", "uniform", BATCH).data)
    quiet = {"progress": False, "log": lambda line: None, "parallel": parallel}
    results = {}
    try:
        if job == "equal":
            for model, neg in CASES:
                trainer = Trainer(tiny(model, neg, BATCH), None, dataset=events, **quiet)
                results[(model, neg)] = _summary(trainer, trainer.fit())
        elif job == "tgb":
            for model in TGB_CASES:
                trainer = Trainer(tgb(model, BATCH), None, dataset=events, **quiet)
                results[model] = _summary(trainer, trainer.fit())
        else:  # resume: interrupted after 3 steps, resumed, against an uninterrupted run
            config = tiny("tgn", "topk", BATCH, **{"train.epochs": 2})
            run = out / "run" if rank == 0 else None
            if run is not None:
                run.mkdir()
            trainer = Trainer(config, run, dataset=events, **quiet)
            results["interrupted"] = trainer.fit(stop_after_batches=3)
            dist.barrier()
            resumed = Trainer.resume(out / "run", progress=False, log=lambda line: None, parallel=parallel)
            results["resumed"] = _summary(resumed, resumed.fit())
            whole = Trainer(config, None, dataset=events, **quiet)
            results["whole"] = _summary(whole, whole.fit())
        torch.save(results, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _launch(out: Path, job: str) -> list[dict]:
    context = mp.get_context("spawn")
    port = _free_port()
    processes = [context.Process(target=_worker, args=(rank, port, out, job)) for rank in range(WORLD)]
    for p in processes:
        p.start()
    deadline = time.monotonic() + DEADLINE_S
    for p in processes:
        p.join(max(deadline - time.monotonic(), 0.0))
        if p.is_alive():
            p.kill()
            p.join()
    assert [p.exitcode for p in processes] == [0] * WORLD
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]


def _assert_close(got: object, want: object, where: str) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for key in want:
            _assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            _assert_close(a, b, f"{where}[{i}]")
    elif isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor) and got.shape == want.shape, where
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=where)
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6), where
    else:
        assert got == want, where


def test_two_processes_equal_one_at_twice_the_batch(tmp_path: Path) -> None:
    outputs = _launch(tmp_path, "equal")
    events = load_events(tiny("tgat", "uniform", BATCH).data)
    for model, neg in CASES:
        single = Trainer(
            tiny(model, neg, WORLD * BATCH), None, dataset=events, progress=False, log=lambda line: None
        )
        want = _summary(single, single.fit())
        assert want["losses"] and want["metrics"][0]["val_mrr"] > 0
        for rank, got in enumerate(outputs):
            _assert_close(got[(model, neg)], want, f"{model}/{neg}/rank{rank}")


def test_two_processes_equal_one_at_twice_the_batch_under_tgb(tmp_path: Path) -> None:
    """TGB's protocol with pair features: the losses, the validation MRR of each epoch, and the test
    metrics of the best epoch (every destination ranked, each process scoring its share of each
    batch) equal one process's at twice the batch."""
    outputs = _launch(tmp_path, "tgb")
    events = load_events(tiny("tgat", "uniform", BATCH).data)
    for model in TGB_CASES:
        single = Trainer(
            tgb(model, WORLD * BATCH), None, dataset=events, progress=False, log=lambda line: None
        )
        want = _summary(single, single.fit())
        assert len(want["losses"]) == 2 and want["result"]["test_mrr"] > 0
        assert {"val_mrr", "val_ap"} <= want["metrics"][0].keys()
        assert {"test_mrr", "test_recall@10", "edgebank_test_mrr"} <= want["result"].keys()
        for rank, got in enumerate(outputs):
            _assert_close(got[model], want, f"{model}/rank{rank}")


def test_resume_on_two_processes_and_rank_zero_alone_writes(tmp_path: Path) -> None:
    outputs = _launch(tmp_path, "resume")
    for rank, got in enumerate(outputs):
        assert got["interrupted"] is None
        _assert_close(got["resumed"], got["whole"], f"rank{rank}")
    run = tmp_path / "run"
    assert (run / "checkpoint.pt").exists() and (run / "best.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0.pt", "rank1.pt", "run"]
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state["processes"] == WORLD
    # `dgl-tgnn evaluate` of the run, on one process: the run's own test metrics (at batch G x B)
    result = outputs[0]["resumed"]["result"]
    evaluated = evaluate_checkpoint(run, split="test")
    shared = [key for key in evaluated if key in result]
    assert {"test_ap", "test_mrr"} <= set(shared)
    for key in shared:
        assert evaluated[key] == pytest.approx(result[key], rel=1e-4, abs=1e-6), key
    assert torch.equal(state["negatives"]["table"], outputs[0]["resumed"]["table"])  # every row


def test_resume_with_another_process_count_is_refused(tmp_path: Path) -> None:
    """A checkpoint of a G = 2 run (from the test above's layout, written here by hand) is refused
    by one process with a one-line error naming --nproc 2."""
    config = tiny("tgat", "uniform", BATCH)
    events = load_events(config.data)
    run = tmp_path / "run"
    run.mkdir()
    trainer = Trainer(config, run, dataset=events, progress=False, log=lambda line: None)
    trainer.fit(stop_after_batches=1)
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    state["processes"] = 2
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(
        ValueError, match=r"written by a run on 2 process\(es\), resumed on 1; resume it with --nproc 2"
    ):
        Trainer.resume(run, progress=False, log=lambda line: None)


def test_without_nproc() -> None:
    assert without_nproc(["train", "--nproc", "2", "--epochs", "1", "--nproc=3"]) == [
        "train",
        "--epochs",
        "1",
    ]


def test_nproc_passes_on_the_arguments_the_command_was_called_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``main(args)`` (click's test runner here) starts its processes with ``args`` less ``--nproc``,
    not with the host program's ``sys.argv`` (pytest's)."""
    from click.testing import CliRunner

    from dgl_tgnn import cli
    from dgl_tgnn.distributed import launch

    started: list[tuple[int, list[str]]] = []
    monkeypatch.setattr(launch, "spawn", lambda nproc, argv, echo: started.append((nproc, argv)) or 0)
    args = ["train", "--model", "tgat", "--max-events", "1000", "--nproc", "2", "--runs-dir", str(tmp_path)]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.output
    assert started == [(2, ["train", "--model", "tgat", "--max-events", "1000", "--runs-dir", str(tmp_path)])]


def _train_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m dgl_tgnn train ARGS`` on the first 1,000 Wikipedia events, one thread, quietly."""
    command = [sys.executable, "-m", "dgl_tgnn", "train", "--dataset", "wikipedia", "--max-events", "1000"]
    return subprocess.Popen(
        [*command, "--threads", "1", "--no-progress", *args],
        env=os.environ | {"PYTHONPATH": str(REPO)} | (env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--model", "tpnet"], "model tpnet scores pairs itself: not supported with several processes"),
        (
            ["--model", "tgat", "--neg", "topk", "--similarity", "decoder"],
            "--similarity decoder is not supported",
        ),
    ],
)
def test_refused_setting_says_so_in_one_line_before_starting(
    tmp_path: Path, args: list[str], error: str
) -> None:
    process = _train_cli([*args, "--nproc", "2", "--runs-dir", str(tmp_path)])
    out, err = process.communicate(timeout=DEADLINE_S)
    assert process.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {error}"), err
    assert list(tmp_path.iterdir()) == []  # no run directory: no process was started


def _final(runs: Path) -> dict:
    (run,) = runs.iterdir()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["final"]


def test_edgebank_on_several_processes_ranks_in_one(tmp_path: Path) -> None:
    """EdgeBank has no parameters: with --nproc it ranks in the one process started (a line says
    so), as torchrun's process 0 alone (the other exits); the metrics are those of a plain run."""
    edgebank = ["--model", "edgebank"]
    plain = _train_cli([*edgebank, "--runs-dir", str(tmp_path / "plain")])
    nproc = _train_cli([*edgebank, "--nproc", "2", "--runs-dir", str(tmp_path / "nproc")])
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": str(WORLD)}
    torchrun = [
        _train_cli([*edgebank, "--runs-dir", str(tmp_path / "torchrun")], env | {"RANK": str(r)})
        for r in range(WORLD)
    ]
    outputs = [p.communicate(timeout=DEADLINE_S) for p in [plain, nproc, *torchrun]]
    assert [p.returncode for p in [plain, nproc, *torchrun]] == [0] * (2 + WORLD), outputs
    assert "--nproc 2: EdgeBank has no parameters to train; it ranks in this one process" in outputs[1][0]
    assert "EdgeBank has no parameters to train: process 0 ranks it alone" in outputs[2][0]
    assert outputs[3] == ("", "")  # process 1 says nothing
    want = _final(tmp_path / "plain")
    assert want["test_mrr"] > 0
    assert _final(tmp_path / "nproc") == want
    assert _final(tmp_path / "torchrun") == want


def test_killed_process_stops_the_other_with_one_line(tmp_path: Path) -> None:
    """Two processes of `python -m dgl_tgnn train`, as torchrun starts them; process 1 is killed
    while they train: process 0 exits at once with a one-line error (no hang, no traceback)."""
    port = _free_port()
    args = [
        sys.executable, "-m", "dgl_tgnn", "train", "--model", "tgat", "--dataset", "wikipedia",
        "--max-events", "2000", "--batch-size", "5", "--epochs", "3", "--threads", "1",
        "--runs-dir", str(tmp_path), "--no-progress",
    ]  # fmt: skip
    env = os.environ | {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "WORLD_SIZE": str(WORLD),
        "PYTHONPATH": str(REPO),
        "DGL_TGNN_DIST_TIMEOUT_S": "30",
    }
    processes = [
        subprocess.Popen(
            args,
            env=env | {"RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for r in range(WORLD)
    ]
    deadline = time.monotonic() + DEADLINE_S
    while not list(tmp_path.glob("*/config.yaml")) and time.monotonic() < deadline:
        time.sleep(0.2)  # rank 0 has made the run directory: training starts
    time.sleep(3.0)
    processes[1].send_signal(signal.SIGKILL)
    try:
        _, err = processes[0].communicate(timeout=60)
    finally:
        for p in processes:
            p.kill()
            p.wait()
    assert processes[0].returncode == 1
    lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, err
    assert "process 0 of 2: a collective failed, another process of the run died" in lines[0]
    assert "Traceback" not in err


def test_keyed_draws_do_not_depend_on_how_roots_are_split() -> None:
    """Keyed uniform draws: each root's neighbours are the same whichever roots share its call, in
    whatever order (what lets a process embed its share of a window); unkeyed ones are not."""
    from dgl_tgnn.graph import TemporalGraph
    from dgl_tgnn.sampling import TemporalSampler

    g = torch.Generator().manual_seed(0)
    src, dst = torch.randint(0, 30, (400,), generator=g), torch.randint(0, 30, (400,), generator=g)
    graph = TemporalGraph(src, dst, torch.arange(400, dtype=torch.float64), num_nodes=30)
    nodes, times = torch.randint(0, 30, (40,), generator=g), torch.full((40,), 399.0, dtype=torch.float64)
    for keyed in (True, False):
        sampler = TemporalSampler(graph, fanouts=[4, 3], strategy="uniform", seed=5, keyed=keyed)
        whole = sampler.sample(nodes, times)
        sampler.calls = 0
        back = sampler.sample(nodes[20:], times[20:])
        front = sampler.sample(nodes[:20], times[:20])
        for hop, (a, b, c) in enumerate(zip(whole, front, back, strict=True)):
            split = torch.cat([b.nbr_eids, c.nbr_eids])
            assert torch.equal(a.nbr_eids, split) == keyed, (keyed, hop)
