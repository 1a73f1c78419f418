"""Data-parallel scaling (issue 21): training events/s and test MRR for G processes, TGAT and TGN,
uniform and topk negatives; G = 1 (one process, the baseline) runs in the same invocation.

Each run is ``python -m dgl_tgnn train --nproc G --batch-size B`` (G = 1: a plain run) in a fresh
process group; events/s is the training events of the epochs over their training seconds (from the
run's metrics.jsonl), MRR the final test MRR. Every G trains on windows of ``G x B`` events, so the
speed-up is against G = 1 at batch B and the MRR at batch ``G x B`` (as the issue's targets read).

    # one GPU (the baseline only) and two gloo processes on the CPU, as a smoke check:
    python bench/scaling.py --device cuda --nproc 1 --max-events 100000
    python bench/scaling.py --device cpu --nproc 1,2 --max-events 4000 --epochs 1 --models tgat --negs uniform
    # the measurement (a machine with 8 GPUs):
    python bench/scaling.py --device cuda --nproc 1,2,4,8 --datasets wikipedia,zipf-1m --json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def run(dataset: str, model: str, neg: str, nproc: int, args: argparse.Namespace) -> dict[str, float]:
    """One run's events/s, test MRR and wall seconds."""
    with tempfile.TemporaryDirectory(prefix="scaling-") as runs:
        command = [
            sys.executable, "-m", "dgl_tgnn", "train", "--model", model, "--dataset", dataset,
            "--neg", neg, "--device", args.device, "--epochs", str(args.epochs),
            "--batch-size", str(args.batch_size), "--runs-dir", runs, "--no-progress",
        ]  # fmt: skip
        if args.max_events:
            command += ["--max-events", str(args.max_events)]
        if nproc > 1:
            command += ["--nproc", str(nproc)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        [metrics] = Path(runs).glob("*/metrics.jsonl")
        records = [json.loads(line) for line in metrics.read_text().splitlines()]
    epochs = [r for r in records if "epoch" in r]
    final = next(r["final"] for r in records if "final" in r)
    events = args.train_events * len(epochs)
    seconds = sum(r["train_seconds"] for r in epochs)
    return {"events_per_s": events / seconds, "test_mrr": final.get("test_mrr", float("nan"))}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nproc", default="1,2", help="comma-separated G (1 first: the baseline)")
    parser.add_argument("--datasets", default="wikipedia")
    parser.add_argument("--models", default="tgat,tgn")
    parser.add_argument("--negs", default="uniform,topk")
    parser.add_argument("--batch-size", type=int, default=200, help="B, events per process and step")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-events", type=int)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [int(g) for g in args.nproc.split(",")]
    if counts[0] != 1:
        counts = [1, *counts]
    import torch

    from dgl_tgnn.config import apply_overrides, default_config
    from dgl_tgnn.training.build import build_data, load_events

    results = []
    for dataset in args.datasets.split(","):
        settings = {"data.dataset": dataset, "data.max_events": args.max_events}
        config = apply_overrides(default_config("tgat"), settings)
        data = build_data(config, load_events(config.data), torch.device("cpu"))
        args.train_events = len(data.split.train)
        for model in args.models.split(","):
            for neg in args.negs.split(","):
                base = None
                for g in counts:
                    r = run(dataset, model, neg, g, args)
                    base = base or r
                    r |= {"dataset": dataset, "model": model, "neg": neg, "nproc": g}
                    r["scaling"] = r["events_per_s"] / base["events_per_s"]
                    r["mrr_change"] = r["test_mrr"] - base["test_mrr"]
                    results.append(r)
                    if not args.json:
                        print(
                            f"{dataset} {model:4s} {neg:7s} G={g}: {r['events_per_s']:,.0f} events/s "
                            f"(x{r['scaling']:.2f}, target {0.9 if model == 'tgat' else 0.8:.1f} x G) "
                            f"test MRR {r['test_mrr']:.4f} ({r['mrr_change']:+.4f})",
                            flush=True,
                        )
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
