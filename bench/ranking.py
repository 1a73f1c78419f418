"""Ranking under TGB's protocol on built-in datasets (wikipedia by default): TGN and TGAT, several
negative samplers, several seeds; test MRR, Recall@1 and AP as mean +- std, EdgeBank's MRR beside
them.

Each run trains ``configs/<model>-tgb.yaml`` (node embeddings, pair features, early stop on
validation MRR) with the setting's negatives, in its own child process (``--jobs`` at a time; on
CUDA all share the one GPU). Every finished run appends one JSON line to ``--out`` (by default a
new ``ranking-<time>.jsonl`` in ``--results-dir``); with
``--log-dir``, each run also writes its epoch lines as they come to
``<dataset>-<model>-<setting>-s<seed>.log`` there (the progress of runs cut short).

    python bench/ranking.py --device cuda --jobs 15 --seeds 0,1,2
    python bench/ranking.py --models tgn --settings uniform --seeds 0 --max-events 20000   # quick, CPU
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import yaml
from machine import describe
from record import add_results_dir, save_results

ROOT = Path(__file__).resolve().parent.parent
SETTINGS: dict[str, dict[str, Any]] = {
    "uniform": {"negatives.kind": "uniform", "negatives.n_hard": 5, "negatives.n_rand": 0},
    "historical": {"negatives.kind": "historical", "negatives.n_hard": 5, "negatives.n_rand": 0},
    **{
        f"topk{k}": {
            "negatives.kind": "topk",
            "negatives.k": k,
            "negatives.n_hard": 1,
            "negatives.n_rand": 4,
            "negatives.warmup_epochs": 0,  # validation MRR peaks after the first epoch
        }
        for k in (5, 20, 50)
    },
}


def train_one(spec: dict[str, Any], log_path: str | None) -> dict[str, Any]:
    """One run in this process: the final test metrics and the per-epoch validation MRR; the
    trainer's lines (one per epoch) appended to ``log_path`` as they come, when given."""
    from dgl_tgnn.config import apply_overrides, load_config
    from dgl_tgnn.train import Trainer

    config = load_config(ROOT / "configs" / f"{spec['model']}-tgb.yaml")
    overrides = {
        "data.dataset": spec["dataset"],
        "train.seed": spec["seed"],
        "train.device": spec["device"],
        "data.max_events": spec["max_events"],
        **SETTINGS[spec["setting"]],
        **spec["set"],
    }
    with open(log_path or os.devnull, "a", buffering=1) as log:
        trainer = Trainer(
            apply_overrides(config, overrides), None, progress=False, log=lambda line: print(line, file=log)
        )
        began = time.perf_counter()
        metrics = trainer.fit()
    return {
        "metrics": metrics,
        "val_mrr": [h.get("val_mrr") for h in trainer.history],
        "train_seconds": [h["train_seconds"] for h in trainer.history],
        "eval_seconds": [h["eval_seconds"] for h in trainer.history],
        "seconds": time.perf_counter() - began,
    }


def run_child(spec: dict[str, Any], log_dir: str | None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", json.dumps(spec)]
    if log_dir is not None:
        name = f"{spec['dataset']}-{spec['model']}-{spec['setting']}-s{spec['seed']}.log"
        command += ["--child-log", str(Path(log_dir) / name)]
    proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        return {**spec, "status": "ok", **json.loads(lines[-1])}
    return {**spec, "status": "failed", "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def format_table(records: list[dict[str, Any]]) -> str:
    """Markdown: one row per (dataset, model, setting), mean ± std over seeds."""
    rows = [
        "| dataset | model | negatives | seeds | test MRR | test Recall@1 | test AP | EdgeBank MRR "
        "| s per run |"
    ]
    rows.append("|---|---|---|---:|---:|---:|---:|---:|---:|")
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r["status"] == "ok":
            groups.setdefault((r["dataset"], r["model"], r["setting"]), []).append(r)
    for (dataset, model, setting), runs in sorted(groups.items()):
        m = [r["metrics"] for r in runs]
        rows.append(
            f"| {dataset} | {model.upper()} | {setting} | {len(runs)} | "
            f"{_mean_std([x['test_mrr'] for x in m])} | "
            f"{_mean_std([x['test_recall@1'] for x in m])} | {_mean_std([x['test_ap'] for x in m])} | "
            f"{m[0]['edgebank_test_mrr']:.3f} | {statistics.mean(r['seconds'] for r in runs):.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="wikipedia", help="built-in datasets, comma-separated")
    parser.add_argument("--models", default="tgn,tgat")
    parser.add_argument("--settings", default="uniform,topk5,topk20,topk50")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-events", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--out",
        type=Path,
        help="JSON lines file each finished run is appended to (default: ranking-<UTC time>.jsonl in "
        "--results-dir)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. model.node_embedding=0",
    )
    parser.add_argument("--log-dir", help="write each run's epoch lines to a file here as they come")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-log", help=argparse.SUPPRESS)
    add_results_dir(parser)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(train_one(json.loads(args.child), args.child_log)))
        return
    settings = args.settings.split(",")
    for setting in settings:
        if setting not in SETTINGS:
            parser.error(f"--settings: unknown {setting!r} (choose from {', '.join(SETTINGS)})")
    if args.log_dir is not None:
        try:
            Path(args.log_dir).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            parser.error(f"--log-dir {args.log_dir}: cannot make this folder ({err.strerror or err})")
    overrides = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)}
    specs = [
        {
            "dataset": d,
            "model": m,
            "setting": s,
            "seed": int(seed),
            "device": args.device,
            "max_events": args.max_events,
            "set": overrides,
        }
        for d in args.datasets.split(",")
        for m in args.models.split(",")
        for s in settings
        for seed in args.seeds.split(",")
    ]
    records = []
    if args.out is None:
        args.results_dir.mkdir(parents=True, exist_ok=True)
        args.out = args.results_dir / f"ranking-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.jsonl"
    print(f"finished runs: {args.out}", file=sys.stderr)
    # Each record is written as its run finishes, so a run cut short keeps what had finished.
    with open(args.out, "a") as out, ThreadPoolExecutor(args.jobs) as pool:
        for done in as_completed([pool.submit(run_child, spec, args.log_dir) for spec in specs]):
            record = done.result()
            out.write(json.dumps(record) + "\n")
            out.flush()
            records.append(record)
            print(
                f"{record['dataset']} {record['model']} {record['setting']} seed {record['seed']}: "
                f"{record['status']}",
                file=sys.stderr,
            )
    save_results("ranking", {"runs": records}, args.results_dir)
    print(f"# {describe()}; {time.strftime('%Y-%m-%d')}\n# python {shlex.join(sys.argv)}\n")
    print(format_table(records))


if __name__ == "__main__":
    main()
