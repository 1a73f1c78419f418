"""Ranking speed of the pair models under ``train.precision`` (float32, tf32, bf16), alternated.

A model of ``configs/<model>-tgb.yaml`` (untrained weights, seed 0) on the built-in wikipedia: its
predictor observes the training events, then scores the first ``--batches`` validation batches of
``--batch`` sources against every destination (1,000 on wikipedia), as the validation ranking of a
training epoch does. Each precision scores the same batches from the same state, the precisions
taking turns ``--rounds`` times; printed per precision: milliseconds per batch (median of the
rounds), the speed-up over float32, and how its scores depart from float32's (largest absolute
difference, and the share of batch rows whose top-1 destination is the same).

    python bench/precision_speed.py --device cuda --models tpnet,dygformer
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from machine import describe
from record import add_results_dir, save_results

from dgl_tgnn.config import apply_overrides, load_config
from dgl_tgnn.data import load_dataset
from dgl_tgnn.link import LinkModel
from dgl_tgnn.model_predictor import ModelPredictor
from dgl_tgnn.precision import PRECISIONS, precision
from dgl_tgnn.registry import MODELS

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PAIR_MODELS = tuple(name for name in MODELS.names() if MODELS[name].pairs)  # they score pairs themselves


def scores_of(
    p: ModelPredictor, batches: list[tuple[torch.Tensor, torch.Tensor]], pool: torch.Tensor, start: float
):
    """``[batches x batch, C]`` scores of every batch against ``pool``, the state reset to ``start``
    first; the seconds each batch took (the device synchronised)."""
    p.reset(until=start)
    out, seconds = [], []
    for src, t in batches:
        began = time.perf_counter()
        s = p.score(src, t, pool.expand(len(src), -1))
        if s.is_cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - began)
        out.append(s.float().cpu())
    return torch.cat(out), seconds


def bench(model_name: str, args: argparse.Namespace) -> list[dict[str, object]]:
    device = torch.device(args.device)
    config = apply_overrides(load_config(CONFIGS / f"{model_name}-tgb.yaml"), {"train.device": args.device})
    ds = load_dataset("wikipedia")
    torch.manual_seed(0)
    model = LinkModel(config.model, ds.num_nodes, 0, 0).eval()
    p = ModelPredictor.from_model(model, config, ds, device)
    t = ds.t - ds.t[0]
    val_start = float(np.quantile(t, 0.70))
    first = int(np.searchsorted(t, val_start))
    batches = []
    for b in range(args.batches):
        rows = slice(first + b * args.batch, first + (b + 1) * args.batch)
        batches.append((torch.from_numpy(ds.src[rows]), torch.from_numpy(ds.t[rows])))
    pool = torch.from_numpy(np.unique(ds.dst))
    names = args.precisions.split(",")
    per_round: dict[str, list[float]] = {name: [] for name in names}
    scores: dict[str, torch.Tensor] = {}
    start = float(ds.t[first])
    with torch.no_grad():
        for round_ in range(args.rounds + 1):  # round 0 warms up (kernels, caches)
            for name in names:
                with precision(name, device):
                    got, seconds = scores_of(p, batches, pool, start)
                if round_ > 0:
                    per_round[name].append(1e3 * sum(seconds) / len(seconds))
                scores[name] = got
    rows = []
    reference = scores["float32"]
    base = statistics.median(per_round["float32"])
    for name in names:
        ms = statistics.median(per_round[name])
        same_top1 = (scores[name].argmax(1) == reference.argmax(1)).double().mean().item()
        rows.append(
            {
                "model": model_name,
                "precision": name,
                "ms_per_batch": ms,
                "ms_per_round": per_round[name],
                "speedup": base / ms,
                "max_abs_diff": (scores[name] - reference).abs().max().item(),
                "same_top1": same_top1,
                "pairs_per_batch": args.batch * len(pool),
            }
        )
        print(
            f"{model_name:10s} {name:8s} {ms:9.1f} ms/batch  x{base / ms:5.2f}  "
            f"max |diff| {rows[-1]['max_abs_diff']:.2e}  same top-1 {same_top1:.3f}",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="tpnet", help="Pair models, comma-separated (tpnet, dygformer).")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="Comma-separated; float32 first.")
    parser.add_argument("--batches", type=int, default=5, help="Validation batches scored per round.")
    parser.add_argument("--batch", type=int, default=200, help="Sources per batch.")
    parser.add_argument("--rounds", type=int, default=3, help="Timed rounds (after one warm-up round).")
    parser.add_argument("--device", default="cuda")
    add_results_dir(parser)
    args = parser.parse_args()
    names = args.precisions.split(",")
    if names[0] != "float32" or not set(names) <= set(PRECISIONS):
        parser.error(
            f"--precisions: names among {', '.join(PRECISIONS)}, float32 first; got {args.precisions!r}"
        )
    for model in args.models.split(","):
        if model not in PAIR_MODELS:
            parser.error(f"--models: unknown {model!r} (choose from {', '.join(PAIR_MODELS)})")
    print(describe(), flush=True)
    rows = [row for name in args.models.split(",") for row in bench(name, args)]
    save_results("precision_speed", rows, args.results_dir)


if __name__ == "__main__":
    main()
