"""Accuracy table: TGAT and TGN, uniform vs topk hard negatives (K = 5, 20, 50), built-in datasets.

Each (dataset, model, setting) is one training run of the model's default config
(``default_config``, as ``configs/<model>.yaml``) with ``--epochs``, ``--seed``, ``--device`` and
``--threads`` as given; the settings change only the training negatives (``uniform``; ``topk`` with
K = 5, 20 or 50, its other options at their defaults). The numbers are the Trainer's own final test
metrics of the best epoch (by validation AP): AP transductive and inductive (new nodes), both
against one seeded uniform negative per positive; MRR and Recall@1 against every candidate
destination when the pool holds at most 2,000 nodes, else against a seeded sample of 100 per
positive (the tables say which). The test split is evaluated only at the end
(``eval.test_every_epoch`` off: evaluation is seeded per call and leaves training untouched, so the
final metrics are the same either way, at less cost).

Runs execute in ``--jobs`` child processes of ``--threads`` threads each (on CUDA all share the one
GPU), small datasets first. Each finished run appends one JSON line to ``--out`` at once; runs
already finished in that file are skipped, so a second invocation resumes (failed runs are retried).
A failing run is reported as failed; the others go on.

    python bench/accuracy.py --out accuracy.jsonl --jobs 12 --threads 1        # the full table
    python bench/accuracy.py --datasets uci --max-events 20000 --epochs 1 --jobs 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from machine import describe
from record import add_results_dir, save_results

from dgl_tgnn.config import apply_overrides, default_config

# Built-in datasets and their event counts (docs/benchmarks.md, /work/shared/data/README.md): the runs
# go smallest first, so that a time limit cuts the largest.
DATASETS = {
    "bitcoinotc": 35_592,
    "uci": 59_835,
    "enron": 125_235,
    "wikipedia": 157_474,
    "mathoverflow": 506_550,
}
MODELS = ("tgat", "tgn")
SETTINGS: dict[str, dict[str, Any]] = {
    "uniform": {"negatives.kind": "uniform"},
    "topk5": {"negatives.kind": "topk", "negatives.k": 5},
    "topk20": {"negatives.kind": "topk", "negatives.k": 20},
    "topk50": {"negatives.kind": "topk", "negatives.k": 50},
}
SETTING_LABELS = {"uniform": "uniform", "topk5": "topk K=5", "topk20": "topk K=20", "topk50": "topk K=50"}
ALL_NEGATIVES_MAX_POOL = 2000  # rank against every candidate up to this many, else a sample
SAMPLED_NEGATIVES = 100
# (record key, table title) of the metrics tabulated, one table each.
METRICS = (
    ("test_ap", "test AP, transductive"),
    ("test_new_ap", "test AP, inductive (new nodes)"),
    ("test_mrr", "test MRR"),
    ("test_recall@1", "test Recall@1"),
)
# The fields that identify a run in the output file.
KEY_FIELDS = ("dataset", "model", "setting", "epochs", "max_events", "seed")
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")


def run_key(record: dict[str, Any]) -> tuple:
    return tuple(record[f] for f in KEY_FIELDS)


def train_one(spec: dict[str, Any]) -> dict[str, Any]:
    """Trains one run in this process; returns its final test metrics and what it ranked against.

    ``spec`` holds the ``KEY_FIELDS`` plus ``device`` and ``threads``.
    """
    from dgl_tgnn.train import Trainer, load_events

    began = time.perf_counter()
    overrides = {
        "data.dataset": spec["dataset"],
        "data.max_events": spec["max_events"],
        "train.epochs": spec["epochs"],
        "train.seed": spec["seed"],
        "train.device": spec["device"],
        "train.threads": spec["threads"],
        "eval.test_every_epoch": False,
        **SETTINGS[spec["setting"]],
    }
    config = apply_overrides(default_config(spec["model"]), overrides)
    dataset = load_events(config.data)
    # The evaluation pool: the destination side (config.data.candidates is "destinations").
    pool = len(dataset.dst_candidates)
    negatives: str | int = "all" if pool <= ALL_NEGATIVES_MAX_POOL else SAMPLED_NEGATIVES
    config = apply_overrides(config, {"eval.negatives": negatives})
    trainer = Trainer(config, None, dataset=dataset, progress=False, log=lambda line: None)
    metrics = trainer.fit()
    return {
        "metrics": metrics,
        "eval_negatives": negatives,
        "candidates": pool,
        "events": dataset.num_events,
        "val_ap": [h["val_ap"] for h in trainer.history],
        "epoch_seconds": [h["epoch_seconds"] for h in trainer.history],
        "seconds": time.perf_counter() - began,
    }


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs ``spec`` in a child process: its record, ``status`` "ok" or "failed" (with the error)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "MKL_NUM_THREADS": str(spec["threads"])}
    command = [sys.executable, __file__, "--child", json.dumps(spec)]
    began = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    record = {**spec, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "wall_seconds": time.perf_counter() - began}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        try:
            return {**record, "status": "ok", **json.loads(lines[-1])}
        except json.JSONDecodeError:
            pass
    stderr = proc.stderr.strip().splitlines()
    # The exception's line ("ValueError: ..."), not the tail of a long message that follows it.
    raised = [line for line in stderr if EXCEPTION_LINE.match(line)]
    error = (raised or stderr or [f"exit status {proc.returncode}, no output"])[-1][:300]
    return {
        **record,
        "status": "failed",
        "returncode": proc.returncode,
        "error": error,
        "stderr_tail": stderr[-20:],
    }


def read_records(path: Path) -> dict[tuple, dict[str, Any]]:
    """The records of ``path`` by run key (the last line of a key wins); {} when it does not exist.

    A line cut short (the script killed while writing it) is skipped with a warning."""
    records: dict[tuple, dict[str, Any]] = {}
    if path.exists():
        with open(path) as f:
            for number, line in enumerate(f, 1):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    print(f"{path}:{number}: not a JSON line, skipped", file=sys.stderr)
                    continue
                records[run_key(record)] = record
    return records


def progress_line(record: dict[str, Any]) -> str:
    what = f"{record['dataset']} {record['model']} {record['setting']}"
    if record["status"] != "ok":
        return f"FAILED {what}: {record['error']}"
    m = {k: record["metrics"].get(k, math.nan) for k in ("test_ap", "test_new_ap", "test_mrr")}
    done = f"test AP {m['test_ap']:.3f} / {m['test_new_ap']:.3f} (ind.), MRR {m['test_mrr']:.3f}"
    return f"done   {what}: {done} ({record['seconds']:.0f} s)"


def _cell(record: dict[str, Any] | None, key: str) -> str:
    if record is None:
        return "-"
    if record["status"] != "ok":
        return "failed"
    value = record["metrics"].get(key) if key != "seconds" else record["seconds"]
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.0f}" if key == "seconds" else f"{value:.3f}"


def _ranked_against(rows: list[dict[str, Any] | None]) -> str:
    done = [r for r in rows if r is not None and r["status"] == "ok"]
    if not done:
        return "-"
    r = done[0]
    if r["eval_negatives"] == "all":
        return f"all {r['candidates']:,}"
    return f"{r['eval_negatives']} sampled of {r['candidates']:,}"


def format_tables(
    records: dict[tuple, dict[str, Any]], grid: list[tuple[str, str]], settings: list[str], key_of: Any
) -> str:
    """Markdown: one table per metric (and one of seconds per run), rows ``grid`` (dataset, model),
    columns ``settings``; ``key_of(dataset, model, setting)`` gives a run's key."""
    out = []
    header = "| dataset | model | " + " | ".join(SETTING_LABELS[s] for s in settings) + " |"
    rule = "|---|---|" + "---:|" * len(settings)
    for key, title in (*METRICS, ("seconds", "seconds per run (training and evaluation)")):
        ranking = key in ("test_mrr", "test_recall@1")
        out.append(f"\n### {title}\n")
        out.append(header.replace("| model |", "| model | ranked against |") if ranking else header)
        out.append(rule.replace("|---|---|", "|---|---|---|") if ranking else rule)
        for dataset, model in grid:
            rows = [records.get(key_of(dataset, model, s)) for s in settings]
            cells = [_cell(r, key) for r in rows]
            lead = [dataset, model.upper()] + ([_ranked_against(rows)] if ranking else [])
            out.append("| " + " | ".join(lead + cells) + " |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="accuracy.jsonl", help="JSON lines file of finished runs (appended)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated built-in datasets")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: tgat,tgn")
    parser.add_argument(
        "--settings", default=",".join(SETTINGS), help="comma-separated: " + ",".join(SETTINGS)
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-events", type=int, default=None, help="first N events only (quick runs)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (child processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch and sampler threads per run")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    add_results_dir(parser)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(train_one(json.loads(args.child))))
        return

    choices = {"--datasets": (args.datasets, DATASETS), "--models": (args.models, MODELS)}
    choices["--settings"] = (args.settings, SETTINGS)
    chosen: dict[str, list[str]] = {}
    for flag, (value, allowed) in choices.items():
        chosen[flag] = value.split(",")
        bad = [v for v in chosen[flag] if v not in allowed]
        if bad:
            parser.error(f"{flag}: unknown {bad[0]!r} (choose from {', '.join(allowed)})")
    for flag, value in (("--epochs", args.epochs), ("--jobs", args.jobs), ("--threads", args.threads)):
        if value < 1:
            parser.error(f"{flag} must be >= 1; got {value}")
    datasets = sorted(chosen["--datasets"], key=DATASETS.__getitem__)
    models, settings = chosen["--models"], chosen["--settings"]

    def key_of(dataset: str, model: str, setting: str) -> tuple:
        return (dataset, model, setting, args.epochs, args.max_events, args.seed)

    out = Path(args.out)
    records = read_records(out)
    grid = [(d, m) for d in datasets for m in models]
    specs = [
        {
            **dict(zip(KEY_FIELDS, key_of(d, m, s), strict=True)),
            "device": args.device,
            "threads": args.threads,
        }
        for d, m in grid
        for s in settings
    ]
    todo = [s for s in specs if records.get(run_key(s), {}).get("status") != "ok"]
    print(
        f"{len(specs)} runs, {len(specs) - len(todo)} already done in {out}; running {len(todo)} "
        f"({args.jobs} jobs x {args.threads} threads, {args.device})",
        file=sys.stderr,
        flush=True,
    )
    pool = ThreadPoolExecutor(args.jobs)
    try:
        with open(out, "a") as f:
            for future in as_completed([pool.submit(run_child, s) for s in todo]):
                record = future.result()
                f.write(json.dumps(record) + "\n")
                f.flush()
                records[run_key(record)] = record
                print(progress_line(record), file=sys.stderr, flush=True)
    finally:
        # Ctrl-C: the running children get it too; the queued runs are dropped.
        pool.shutdown(wait=True, cancel_futures=True)

    command = "python " + shlex.join(sys.argv)
    info = {"machine": describe(), "date": time.strftime("%Y-%m-%d"), "command": command}
    runs = [records[run_key(s)] for s in specs if run_key(s) in records]
    save_results("accuracy", {"runs": runs}, args.results_dir)
    if args.json:
        print(json.dumps({**info, "runs": runs}, indent=1))
        return
    print(
        f"# {info['machine']}; {info['date']}\n# {command}\n# {args.epochs} epochs, seed {args.seed}, "
        f"{args.device}, {args.jobs} parallel runs x {args.threads} threads (seconds are under that load); "
        f"max events {args.max_events or 'all'}"
    )
    print(format_tables(records, grid, settings, key_of))


if __name__ == "__main__":
    main()
