"""Training epoch time and peak memory: uniform vs topk hard negatives, TGAT and TGN.

For each device (CPU with ``--threads`` threads, and CUDA when present), model and negative setting,
one training epoch runs in a fresh process (so that peak memory is that run's own): the uniform
epoch is the baseline; topk at the default refresh cadence and topk at the paper's setting
(``--refresh 1``) are reported as ratios to it, with the refresh time they add. ``no-dedup`` and
``learnable-time`` time the uniform epoch with that default reverted (``model.dedup: never``,
``model.time_encoding: learnable``); ``labor`` the uniform epoch with ``model.strategy: labor``.
With ``--repeats N`` the settings run in N alternating rounds and each reports the median of its N
epochs (the ratios are those of the medians), which a machine whose speed drifts between runs needs.

    python bench/train_speed.py                       # wikipedia, TGAT and TGN, CPU (2 threads) [+ CUDA]
    python bench/train_speed.py --max-events 20000 --json
    python bench/train_speed.py --devices cpu --settings uniform,no-dedup,learnable-time
    python bench/train_speed.py --devices cpu --models tgn --settings uniform,topk --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch
from machine import describe
from record import add_results_dir, save_results

from dgl_tgnn.config import apply_overrides, default_config

SETTINGS = {
    "uniform": {"negatives.kind": "uniform"},
    "topk": {"negatives.kind": "topk"},
    "topk-paper": {"negatives.kind": "topk", "negatives.refresh": 1},
    # uniform negatives with one default changed back, to time what that default buys
    "no-dedup": {"negatives.kind": "uniform", "model.dedup": "never"},
    "learnable-time": {"negatives.kind": "uniform", "model.time_encoding": "learnable"},
    # uniform negatives, neighbours by LABOR's shared numbers (TGAT: uniform neighbours by default)
    "labor": {"negatives.kind": "uniform", "model.strategy": "labor"},
}


def one_epoch(overrides: dict) -> dict:
    """Runs one training epoch in this process; returns its seconds and peak memory."""
    from dgl_tgnn.train import Trainer, peak_memory_mb

    model = overrides["model.name"]
    config = apply_overrides(default_config(model), overrides)
    trainer = Trainer(config, None, progress=False, log=lambda line: None)
    device = trainer.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    began = time.perf_counter()
    trainer.train_epoch()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return {
        "epoch_seconds": time.perf_counter() - began,
        "sampler_seconds": trainer.partial["sampler_seconds"],
        "refresh_seconds": getattr(trainer.negatives, "refresh_seconds", 0.0),
        "batches": len(trainer.partial["losses"]),
        "peak_memory_mb": peak_memory_mb(device),
    }


def summarize(runs: list[dict]) -> dict:
    """One setting's runs: medians of the seconds, the largest peak memory, every epoch's seconds."""
    return {
        "epoch_seconds": statistics.median(r["epoch_seconds"] for r in runs),
        "sampler_seconds": statistics.median(r["sampler_seconds"] for r in runs),
        "refresh_seconds": statistics.median(r["refresh_seconds"] for r in runs),
        "batches": runs[0]["batches"],
        "peak_memory_mb": max(r["peak_memory_mb"] for r in runs),
        "epoch_seconds_runs": [r["epoch_seconds"] for r in runs],
    }


def run_child(overrides: dict) -> dict:
    command = [sys.executable, __file__, "--child", json.dumps(overrides)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="wikipedia")
    parser.add_argument("--models", default="tgat,tgn", help="comma-separated: tgat,tgn")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch and sampler)")
    parser.add_argument(
        "--devices", default=None, help="comma-separated devices (default: cpu, and cuda if present)"
    )
    parser.add_argument("--max-events", type=int, default=None, help="first N events only (quick check)")
    parser.add_argument("--k", type=int, default=50, help="topk: nearest set size")
    parser.add_argument("--engine", default="dense", help="attention engine")
    parser.add_argument(
        "--settings",
        default="uniform,topk,topk-paper",
        help="settings: uniform (the baseline, first), topk (default refresh), topk-paper (refresh 1), "
        "no-dedup and learnable-time (uniform with that default reverted), labor (LABOR neighbours)",
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="alternating rounds of the settings; medians are reported"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    add_results_dir(parser)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.child is not None:
        print(json.dumps(one_epoch(json.loads(args.child))))
        return

    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] * torch.cuda.is_available())
    refresh_default = default_config("tgat").negatives.refresh
    rows = []
    for device in devices:
        for model in args.models.split(","):
            names = args.settings.split(",")
            runs: dict[str, list[dict]] = {name: [] for name in names}
            for _ in range(args.repeats):
                for name in names:
                    overrides = {
                        "model.name": model,
                        "data.dataset": args.dataset,
                        "data.max_events": args.max_events,
                        "model.engine": args.engine,
                        "negatives.k": args.k,
                        "train.device": device,
                        "train.threads": args.threads,
                        **SETTINGS[name],
                    }
                    runs[name].append(run_child(overrides))
            base = None
            for name in names:
                refresh = SETTINGS[name].get("negatives.refresh", refresh_default)
                label = f"topk (refresh {refresh})" if name.startswith("topk") else name
                result = summarize(runs[name])
                base = base or result["epoch_seconds"]
                rows.append(
                    {
                        "device": device,
                        "model": model,
                        "negatives": label,
                        **result,
                        "ratio_to_uniform": result["epoch_seconds"] / base,
                    }
                )
                if not args.json:
                    r = rows[-1]
                    each = ", ".join(f"{x:.2f}" for x in r["epoch_seconds_runs"]) if args.repeats > 1 else ""
                    print(
                        f"{device:<5} {model:<5} {label:<28} epoch {r['epoch_seconds']:7.2f} s  "
                        f"refresh {r['refresh_seconds']:6.2f} s  sampler {r['sampler_seconds']:5.2f} s  "
                        f"peak {r['peak_memory_mb']:7.0f} MB  x{r['ratio_to_uniform']:.2f} uniform"
                        + (f"  (runs: {each})" if each else ""),
                        flush=True,
                    )
    info = {
        "machine": describe(),
        "dataset": args.dataset,
        "threads": args.threads,
        "k": args.k,
        "date": time.strftime("%Y-%m-%d"),
        "rows": rows,
    }
    save_results("train_speed", rows, args.results_dir)
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        print(f"# {info['machine']}; {args.dataset}; {args.threads} CPU threads; k={args.k}; {info['date']}")


if __name__ == "__main__":
    main()
