"""Speed of ``LinkPredictor.recommend``: exact vs two-stage (``shortlist``), against the brute-force
baseline (``score`` of every candidate, then ``torch.topk``), over pools of several sizes.

A TGN with a ``--decoder`` (dot; or mlp with a ``model.dot_head``) and pair features (untrained
weights, ``--embed-dim`` wide) over a synthetic stream: ``--users`` sources, each pool node a
destination of two events, every source of ``--events-per-user`` events. Per pool size and
method: latency of one query (p50 / p99 over ``--reps`` calls) and throughput (queries/s at
batches of ``--batch``); two-stage recall@k against exact; the first two-stage call's time (it
embeds the pool's keys once: stage 1 reads them until the state changes). The baseline's throughput
is skipped where its ``[B, C]`` scores would pass ``--baseline-bytes``; over pools above
``--exact-max-pool`` exact and baseline are not timed (each call embeds and scores the whole pool),
and recall is measured on the first ``--recall-queries`` queries of the batch. Then one two-stage query's
calls: the torch operators it dispatches (views left out), the host milliseconds of each of its
steps (``dgl_tgnn.predictor.STAGES``; measured under the profiler, which adds its own cost) and, on
a GPU, the kernel launches and host synchronisations the torch profiler records (what bounds one
query there). With ``--run RUN_DIR``
(integer ids), that trained run instead, over its own destination pool, the queries its stream's
sources (recall of a trained dot decoder or ``model.dot_head``).

    python bench/recommend_speed.py --pools 1000,10000,100000 --threads 2          # CPU
    python bench/recommend_speed.py --device cuda --pools 1000,100000,1000000 --batch 1000
    python bench/recommend_speed.py --run runs/<a run with a dot decoder or head> --shortlist 50
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from machine import describe
from record import add_results_dir, save_results
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from dgl_tgnn.config import default_config
from dgl_tgnn.link import LinkModel
from dgl_tgnn.model_predictor import ModelPredictor
from dgl_tgnn.predictor import STAGES, LinkPredictor


def make_predictor(pool: int, args: argparse.Namespace) -> ModelPredictor:
    """A TGN predictor over a synthetic stream whose destination pool has ``pool`` nodes."""
    rng = np.random.default_rng(0)
    users = args.users
    dst = np.r_[np.arange(pool), np.arange(pool), rng.integers(0, pool, users * args.events_per_user)]
    src = rng.integers(0, users, len(dst))
    rng.shuffle(dst)
    t = np.arange(len(dst), dtype=np.float64)
    config = default_config("tgn")
    m = config.model
    m.decoder, m.pair_history, m.embed_dim, m.memory_dim = args.decoder, 10, args.embed_dim, args.embed_dim
    m.engine = args.engine
    m.dot_head = 1.0 if args.decoder == "mlp" else 0.0
    device = torch.device(args.device)
    torch.manual_seed(0)
    num_nodes = users + pool
    model = LinkModel(m, num_nodes, 0, 0).to(device).eval()  # (as LinkPredictor.load's)
    feat = torch.zeros((num_nodes, 0), device=device)
    predictor = ModelPredictor(
        model, config, src, dst + users, t, feat, torch.zeros((len(t), 0), device=device), device
    )
    predictor.reset(float("inf"))
    return predictor


_VIEWS = ("view", "expand", "slice", "select", "squeeze", "unsqueeze", "transpose", "permute", "alias")
_VIEWS += ("detach", "as_strided", "_reshape_alias", "unbind", "split", "lift_fresh", "aten.t.")
_LAUNCHES = {"cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx"}
_SYNCS = {"cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize"}


class _OperatorCount(TorchDispatchMode):
    """Counts the torch operators dispatched within the scope, views left out."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        self.count += not any(view in str(func) for view in _VIEWS)
        return func(*args, **(kwargs or {}))


def calls_of(call: object, device: str) -> dict[str, object]:
    """One ``call()``'s dispatched torch operators and the host milliseconds of each of its steps
    (``dgl_tgnn.predictor.STAGES``, profiler ranges); on a GPU also its kernel launches and host
    synchronisations (means over 3 calls, after the caller's warm-up ones)."""
    with _OperatorCount() as ops:
        call()
    counts: dict[str, object] = {"torch_ops": float(ops.count)}
    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda
    with profile(activities=activities) as prof:
        for _ in range(3):
            call()
        if cuda:
            torch.cuda.synchronize()
    host = {e.key: e.cpu_time_total / 3e3 for e in prof.key_averages() if e.key.startswith("recommend.")}
    counts["host_ms_by_step"] = {name: host.get(f"recommend.{name}", 0.0) for name in STAGES}
    if cuda:
        names = [event.name for event in prof.events()]
        counts["kernel_launches"] = sum(name in _LAUNCHES for name in names) / 3
        counts["host_syncs"] = (sum(name in _SYNCS for name in names) - 1) / 3  # (less the last one)
    return counts


def timed(call: object, reps: int) -> list[float]:
    """Seconds of ``reps`` calls of ``call`` (after one warm-up call)."""
    call()
    times = []
    for _ in range(reps):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        began = time.perf_counter()
        call()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - began)
    return times


def bench(p: LinkPredictor, sources: torch.Tensor, args: argparse.Namespace) -> list[dict[str, object]]:
    """Prints one line per method (and returns them): ``p``'s destination pool, queries drawn from
    ``sources``."""
    t = float(p.stream_t[-1]) + 1.0
    one, batch = sources[:1], sources[torch.arange(args.batch) % len(sources)]
    candidates = p.node_ids.ids(torch.from_numpy(np.flatnonzero(p.destinations)))
    pool = len(candidates)

    def baseline(q: torch.Tensor) -> object:
        scores = p.score(q, torch.full(q.shape, t, dtype=torch.float64), candidates.expand(len(q), -1))
        return torch.topk(scores, args.k)

    methods = {
        "exact": lambda q: p.recommend(q, t, k=args.k),
        "two-stage": lambda q: p.recommend(q, t, k=args.k, shortlist=args.shortlist),
        "baseline": baseline,
    }
    p.score(one, torch.tensor([t], dtype=torch.float64), candidates[:1].expand(1, -1))  # state up to t
    began = time.perf_counter()
    short = methods["two-stage"](batch)
    first_ms = (time.perf_counter() - began) * 1e3
    timed_exact = pool <= args.exact_max_pool
    checked = batch if timed_exact else batch[: args.recall_queries]
    exact = methods["exact"](checked)
    pairs = zip(exact.nodes, short.nodes[: len(checked)], strict=True)
    hits = [len(set(a.tolist()) & set(b.tolist())) for a, b in pairs]
    recall = sum(hits) / (args.k * len(hits))
    print(
        f"# pool {pool}: first two-stage call (builds the key cache) {first_ms:.1f} ms; recall@k over "
        f"{len(checked)} queries"
    )
    if not timed_exact:
        print(
            f"# pool {pool}: exact and baseline not timed (pool above --exact-max-pool {args.exact_max_pool})"
        )
        methods = {"two-stage": methods["two-stage"]}
    rate, rows = {"baseline": float("nan")}, []
    for name, method in methods.items():
        latency = np.array(timed(lambda method=method: method(one), args.reps)) * 1e3
        if name == "baseline" and args.batch * pool * 4 * args.embed_dim > args.baseline_bytes:
            rate[name] = float("nan")  # its [B, C] scores would not fit
        else:
            rate[name] = args.batch / statistics.median(timed(lambda method=method: method(batch), args.reps))
        p50, p99 = np.percentile(latency, 50), np.percentile(latency, 99)
        shown = f"{recall:8.3f}" if name == "two-stage" else ""
        print(f"{pool:>9} {name:<10} {p50:>9.1f} {p99:>9.1f} {rate[name]:>10.1f} {shown}", flush=True)
        row = {"pool": pool, "method": name, "p50_ms": p50, "p99_ms": p99, "queries_per_s": rate[name]}
        extra = {"recall_at_k": recall, "recall_queries": len(checked), "first_call_ms": first_ms}
        rows.append(row | (extra if name == "two-stage" else {}))
    calls = calls_of(lambda: methods["two-stage"](one), args.device)
    steps = calls["host_ms_by_step"]
    counts = ", ".join(f"{k} {v:.0f}" for k, v in calls.items() if k != "host_ms_by_step")
    print(f"# pool {pool}: one two-stage query: {counts}")
    print(f"# pool {pool}: its host ms by step: " + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()))
    rows[[row["method"] for row in rows].index("two-stage")].update(calls)
    if rate["baseline"] == rate["baseline"]:
        ratios = ", ".join(f"{name} {rate[name] / rate['baseline']:.2f}x" for name in ("exact", "two-stage"))
        print(f"# pool {pool}: queries/s against the baseline: {ratios}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", default="1000,10000,100000", help="Pool sizes, comma-separated.")
    parser.add_argument("--batch", type=int, default=1000, help="Queries per call for throughput.")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--shortlist", type=int, default=100, help="Two-stage shortlist size.")
    parser.add_argument("--reps", type=int, default=5, help="Timed calls per measurement.")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--events-per-user", type=int, default=20)
    parser.add_argument("--embed-dim", type=int, default=100)
    parser.add_argument("--decoder", choices=["dot", "mlp"], default="dot")
    parser.add_argument(
        "--engine", choices=["auto", "dgl", "dense"], default="auto", help="The synthetic TGN's engine."
    )
    parser.add_argument("--baseline-bytes", type=float, default=2e9)
    parser.add_argument(
        "--exact-max-pool", type=int, default=100_000, help="Largest pool whose exact and baseline are timed."
    )
    parser.add_argument(
        "--recall-queries",
        type=int,
        default=100,
        help="Queries of recall@k over pools above --exact-max-pool.",
    )
    parser.add_argument("--run", help="A trained run directory to bench instead of the synthetic TGN.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    add_results_dir(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {describe()}; {args.threads} threads; load average {os.getloadavg()[0]:.2f}")
    synthetic = f"synthetic TGN, {args.decoder} decoder, embed_dim={args.embed_dim}, engine {args.engine}"
    model = f"run {args.run}" if args.run is not None else synthetic
    print(f"# k={args.k} shortlist={args.shortlist} batch={args.batch}; {model}")
    print(f"{'pool':>9} {'method':<10} {'p50 ms':>9} {'p99 ms':>9} {'queries/s':>10} {'recall@k':>8}")
    if args.run is not None:
        p = LinkPredictor.load(args.run, args.device)
        rows = bench(p, p.node_ids.ids(torch.from_numpy(np.unique(p.stream_src))), args)
    else:
        rows = []
        for pool in (int(x) for x in args.pools.split(",")):
            began = time.perf_counter()
            p = make_predictor(pool, args)
            print(f"# pool {pool}: predictor built in {time.perf_counter() - began:.1f} s")
            rows += bench(p, torch.arange(args.users), args)
    save_results("recommend_speed", rows, args.results_dir)


if __name__ == "__main__":
    main()
