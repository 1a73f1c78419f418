"""Forward+backward time per batch of TGAT / TGN, DGL engine vs dense engine, on CPU.

Random blocks shaped like a training batch: 600 roots (200 events: sources, destinations, one negative
each), fanout 10 per hop with 10% of slots empty, all widths 100. Prints the median (and minimum)
milliseconds of forward + backward per batch for each engine and the ratio of the medians dgl / dense.
With ``--device cuda`` it times the dense engine on the GPU (PyPI's DGL is CPU-only).

    python bench/model_speed.py [--threads 2] [--repeat 20] [--device cpu] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from record import add_results_dir, save_results

from dgl_tgnn.nn import TGAT, TGN
from dgl_tgnn.nn.attention import dgl_available
from dgl_tgnn.sampling import TemporalBlock

NUM_NODES = 10_000
NUM_EVENTS = 50_000
DIM = 100


def random_blocks(
    num_roots: int, fanout: int, num_layers: int, gen: torch.Generator, device: torch.device
) -> list[TemporalBlock]:
    roots = torch.randint(0, NUM_NODES, (num_roots,), generator=gen)
    times = 1e6 + 1e5 * torch.rand(num_roots, generator=gen, dtype=torch.float64)
    blocks = []
    for _ in range(num_layers):
        count = roots.shape[0]
        mask = (torch.rand(count, fanout, generator=gen) < 0.9) & (roots >= 0).unsqueeze(1)
        nbr = torch.where(mask, torch.randint(0, NUM_NODES, (count, fanout), generator=gen), -1)
        eids = torch.where(mask, torch.randint(0, NUM_EVENTS, (count, fanout), generator=gen), -1)
        nbr_times = torch.where(mask, times[:, None] - 1e4 * torch.rand(count, fanout, generator=gen), 0.0)
        blocks.append(TemporalBlock(roots, times, nbr, eids, nbr_times, mask))
        roots, times = nbr.flatten(), nbr_times.flatten()
    return [b.to(device) for b in blocks]


def set_engine(model: torch.nn.Module, engine: str) -> None:
    for module in model.modules():
        if hasattr(module, "engine"):
            module.engine = engine


def time_engines(model: torch.nn.Module, engines: list[str], blocks, node_feat, edge_feat, repeat: int):
    """Milliseconds of zero_grad + forward + backward per engine, engines interleaved in every
    repetition so that both see the same load; 3 warm-up rounds. Returns {engine: (median, min)}."""
    samples: dict[str, list[float]] = {engine: [] for engine in engines}
    for i in range(repeat + 3):
        for engine in engines:
            set_engine(model, engine)
            start = time.perf_counter()
            model.zero_grad(set_to_none=True)
            model(blocks, node_feat, edge_feat).sum().backward()
            if node_feat.is_cuda:
                torch.cuda.synchronize()
            if i >= 3:
                samples[engine].append((time.perf_counter() - start) * 1e3)
    return {engine: (statistics.median(times), min(times)) for engine, times in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--roots", type=int, default=600)
    parser.add_argument("--fanout", type=int, default=10)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda[:i] for the dense engine on a GPU")
    parser.add_argument("--json", action="store_true")
    add_results_dir(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    device = torch.device(args.device)
    node_feat = torch.randn(NUM_NODES, DIM, device=device)
    edge_feat = torch.randn(NUM_EVENTS, DIM, device=device)
    engines = ["dense", "dgl"] if device.type == "cpu" and dgl_available() else ["dense"]

    results = []
    for name, num_layers in (("tgat", 1), ("tgat", 2), ("tgn", 1)):
        if name == "tgat":
            model: torch.nn.Module = TGAT(DIM, DIM, DIM, DIM, num_layers=num_layers)
        else:
            model = TGN(NUM_NODES, DIM, DIM, DIM, DIM, DIM, num_layers=num_layers).to(device)
            events = args.roots // 3
            src = torch.randint(0, NUM_NODES, (events,), generator=gen)
            dst = torch.randint(0, NUM_NODES, (events,), generator=gen)
            t = 1e6 * torch.rand(events, generator=gen, dtype=torch.float64).sort().values
            eids = torch.randint(0, NUM_EVENTS, (events,), generator=gen)
            # pending messages, as in every batch but the first
            model.update(src.to(device), dst.to(device), t.to(device), eids.to(device), edge_feat)
        model.to(device)
        blocks = random_blocks(args.roots, args.fanout, num_layers, gen, device)
        row: dict = {"model": name, "layers": num_layers}
        for engine, (median, fastest) in time_engines(
            model, engines, blocks, node_feat, edge_feat, args.repeat
        ).items():
            row[f"{engine}_ms"] = median
            row[f"{engine}_min_ms"] = fastest
        if "dgl_ms" in row:
            row["dgl_over_dense"] = row["dgl_ms"] / row["dense_ms"]
        results.append(row)

    config = {
        "device": str(device),
        "threads": args.threads,
        "roots": args.roots,
        "fanout": args.fanout,
        "dim": DIM,
    }
    save_results("model_speed", {"config": config, "results": results}, args.results_dir)
    if args.json:
        print(json.dumps({"config": config, "results": results}))
        return
    print(f"forward+backward per batch, {config}")
    print("median (min) ms of zero_grad + forward + backward")
    print(f"{'model':<6} {'layers':>6} {'dense ms':>17} {'dgl ms':>17} {'dgl/dense':>9}")
    for row in results:
        dense = f"{row['dense_ms']:8.2f} ({row['dense_min_ms']:6.2f})"
        dgl_ms = f"{row['dgl_ms']:8.2f} ({row['dgl_min_ms']:6.2f})" if "dgl_ms" in row else f"{'-':>17}"
        ratio = f"{row['dgl_over_dense']:9.2f}" if "dgl_over_dense" in row else f"{'-':>9}"
        print(f"{row['model']:<6} {row['layers']:>6} {dense} {dgl_ms} {ratio}")


if __name__ == "__main__":
    main()
