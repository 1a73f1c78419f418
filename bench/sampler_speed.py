"""Temporal sampler throughput on the ``zipf-1m`` workload, against a vectorised searchsorted baseline.

Workload (issue 3): the stream in batches of 200 consecutive events; each batch's roots are the
events' sources, destinations and one random node each, at the events' times (600 roots a batch,
3,000,000 over the whole stream). Fanout 10 per hop, 1 and 2 hops, ``recent``, ``uniform``
(without replacement) and ``labor`` (correlated, issue 20), 1 and 2 CPU threads.

Baseline, timed in the same run: the same semantics in vectorised torch (a global searchsorted over
(node, time) keys of its own T-CSR built by lexsort, gathers for ``recent``, a vectorised Floyd draw
for ``uniform``). It runs on every ``--baseline-every``-th batch (its rate is per root, so ratios are
comparable) and checks our answers there: ``recent`` equal, ``uniform`` and ``labor`` valid (past
events of the root, distinct, min(n, k) of them); ``labor``'s baseline is the uniform one. The CPU
baseline runs on one thread, like numpy: torch's OpenMP regions stall whenever another process holds
a core (on a shared 2-core machine its 2-thread runs were 30x slower than 1 thread).
Neighbours = valid (unmasked) sampled neighbours over all hops;
slots = all ``[R_i, k_i]`` output slots. TGL's figures from issue 3 (2 threads, same workload) are
printed next to ours.

GPU section (when CUDA is present): 2 hops [10, 10], batches of 1,800 and 60,000 roots; per call
latency (synchronised after every call) and back-to-back throughput, ours (check=False: no host
synchronisation; check=True: one flag read back) against the same torch baseline on the GPU.

``--distinct wikipedia,zipf-1m`` (issue 20) instead counts, per TGAT batch (200 events: sources,
destinations, one random negative each, at the events' times; 2 hops [10, 10], ``dedup=True``), the
distinct (node, time) roots of hop 1 and of hop 2 (the rows a 2-layer TGAT embeds) for ``uniform``
and ``labor``, and times the dedup sampling of those batches.

    python bench/sampler_speed.py [--quick] [--json] [--threads 1,2] [--strategies recent,uniform,labor]
    python bench/sampler_speed.py --distinct wikipedia,zipf-1m [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch
from record import add_results_dir, save_results

from dgl_tgnn import TemporalGraph, TemporalSampler, ops
from dgl_tgnn.data import load_dataset

EVENTS_PER_BATCH = 200
FANOUT = 10
# TGL's C++ sampler on this workload, measured on a machine like ours (issue 3): (threads, hops, strategy)
TGL_ROOTS_PER_S = {(2, 2, "uniform"): 189e3, (2, 1, "recent"): 1.86e6}


class SearchsortedBaseline:
    """Temporal sampling by vectorised searchsorted over (node, time) keys (exact for integer times
    and num_nodes * time span < 2**53, as in zipf-1m)."""

    def __init__(self, src: np.ndarray, dst: np.ndarray, t: np.ndarray, num_nodes: int, device: str) -> None:
        eid = np.arange(len(src), dtype=np.int64)
        keep = src != dst  # undirected: both endpoints, a self-loop once
        rows = np.concatenate([src, dst[keep]])
        nbrs = np.concatenate([dst, src[keep]])
        eids = np.concatenate([eid, eid[keep]])
        ts = np.concatenate([t, t[keep]])
        order = np.lexsort((eids, ts, rows))
        self.indptr = torch.from_numpy(
            np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=num_nodes))])
        )
        self.nbr, self.eid, self.ts = (torch.from_numpy(x[order]) for x in (nbrs, eids, ts))
        self.t_min, self.span = float(t.min()), float(t.max() - t.min()) + 2.0
        keys = torch.from_numpy(rows[order]).double() * self.span + (self.ts - self.t_min)
        self.indptr, self.nbr, self.eid, self.ts, self.keys = (
            x.to(device) for x in (self.indptr, self.nbr, self.eid, self.ts, keys)
        )

    def candidates(self, nodes: torch.Tensor, times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per root: index just past its last event strictly before its time, and their number."""
        valid = nodes >= 0
        v = nodes.clamp(min=0)
        clamped = times.clamp(self.t_min, self.t_min + self.span - 1.0)
        end = torch.searchsorted(self.keys, v.double() * self.span + (clamped - self.t_min))
        n = torch.where(valid, end - self.indptr[v], 0)
        return end, n

    def sample(
        self,
        nodes: torch.Tensor,
        times: torch.Tensor,
        fanouts: list[int],
        strategy: str,
        gen: torch.Generator,
    ) -> list[tuple[torch.Tensor, ...]]:
        hops = []
        for k in fanouts:
            end, n = self.candidates(nodes, times)
            slots = torch.arange(k, device=nodes.device)
            offset = (n[:, None] - 1 - slots).clamp(min=-1)  # recent; -1 = empty
            if strategy == "uniform":
                offset = torch.where(n[:, None] > k, self.floyd(n, k, gen), offset)
            mask = offset >= 0
            idx = (end - n)[:, None] + offset.clamp(min=0)
            idx = idx.clamp(max=max(self.nbr.numel() - 1, 0))
            nbr_nodes = torch.where(mask, self.nbr[idx], -1)
            nbr_eids = torch.where(mask, self.eid[idx], -1)
            nbr_times = torch.where(mask, self.ts[idx], 0.0)
            hops.append((nbr_nodes, nbr_eids, nbr_times, mask))
            nodes, times = nbr_nodes.flatten(), nbr_times.flatten()
        return hops

    @staticmethod
    def floyd(n: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
        """k distinct offsets in [0, n) per row (rows with n > k matter), most recent first."""
        out = torch.empty(n.shape[0], k, dtype=torch.int64, device=n.device)
        for j in range(k):
            top = (n - k + j).clamp(min=0)
            r = (
                torch.rand(n.shape[0], generator=gen, device=n.device, dtype=torch.float64) * (top + 1)
            ).long()
            taken = (out[:, :j] == r[:, None]).any(1)
            out[:, j] = torch.where(taken, top, r)
        return out.sort(dim=1, descending=True).values


def batches(ds, num_batches: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """[num_batches, 600] roots and times: each batch's sources, destinations, random nodes."""
    rng = np.random.default_rng(seed)
    e = num_batches * EVENTS_PER_BATCH
    shape = (num_batches, EVENTS_PER_BATCH)
    src, dst, t = ds.src[:e].reshape(shape), ds.dst[:e].reshape(shape), ds.t[:e].reshape(shape)
    rand = rng.integers(0, ds.num_nodes, shape)
    return np.concatenate([src, dst, rand], 1), np.concatenate([t, t, t], 1)


def baseline_strategy(strategy: str) -> str:
    """The baseline's strategy for ours: labor samples are timed against uniform draws."""
    return "uniform" if strategy == "labor" else strategy


def distinct_rows(ds, strategy: str, threads: int, num_batches: int) -> dict:
    """Mean distinct (node, time) roots of hops 1 and 2 per TGAT batch (dedup=True, [10, 10]) over
    num_batches batches spread evenly over the stream, and the seconds spent sampling them."""
    g = TemporalGraph(ds.src, ds.dst, ds.t, num_nodes=ds.num_nodes)
    roots, times = batches(ds, len(ds.src) // EVENTS_PER_BATCH)
    picked = np.linspace(0, len(roots) - 1, num_batches).astype(np.int64)
    sampler = TemporalSampler(g, [FANOUT, FANOUT], strategy, seed=0, num_threads=threads, dedup=True)
    hop1, hop2, seconds = [], [], 0.0
    for i in picked:
        nodes, ts = torch.from_numpy(roots[i]), torch.from_numpy(times[i]).double()
        start = time.perf_counter()
        blocks = sampler.sample(nodes, ts)
        seconds += time.perf_counter() - start
        last = blocks[1]
        hop1.append(last.num_roots)
        hop2.append(int(ops.dedup_roots(last.nbr_nodes.flatten(), last.nbr_times.flatten())[0].shape[0]))
    return {
        "strategy": strategy,
        "batches": num_batches,
        "hop1_rows": float(np.mean(hop1)),
        "hop2_rows": float(np.mean(hop2)),
        "sample_ms_per_batch": seconds / num_batches * 1e3,
    }


def run_distinct(names: list[str], threads: int, num_batches: int, say) -> list[dict]:
    """distinct_rows for uniform and labor on each dataset, side by side."""
    say(
        f"Distinct (node, time) rows per TGAT batch (2 hops [10, 10], dedup, {num_batches} batches, "
        f"{threads} threads)"
    )
    say(f"{'dataset':>10} {'strategy':>8} | {'hop-1 rows':>10} {'hop-2 rows':>10} | {'ms/batch':>8}")
    out = []
    for name in names:
        ds = load_dataset(name)
        results = {s: distinct_rows(ds, s, threads, num_batches) for s in ("uniform", "labor")}
        for s, r in results.items():
            r["dataset"] = name
            out.append(r)
            say(
                f"{name:>10} {s:>8} | {r['hop1_rows']:>10.0f} {r['hop2_rows']:>10.0f} | "
                f"{r['sample_ms_per_batch']:>8.2f}"
            )
        u, lab = results["uniform"], results["labor"]
        say(
            f"{name:>10} uniform/labor: hop-1 {u['hop1_rows'] / lab['hop1_rows']:.2f}x, "
            f"hop-2 {u['hop2_rows'] / lab['hop2_rows']:.2f}x fewer rows, sampling time "
            f"{lab['sample_ms_per_batch'] / u['sample_ms_per_batch']:.2f}x uniform's"
        )
    return out


def check(ours: list, base: list, baseline: SearchsortedBaseline, g: TemporalGraph, strategy: str) -> None:
    """Raises unless our blocks equal the baseline (recent) or are valid samples (uniform, labor)."""
    for b, (nbr_nodes, nbr_eids, nbr_times, mask) in zip(ours, base, strict=True):
        if strategy == "recent":
            for x, y in (
                (b.nbr_nodes, nbr_nodes),
                (b.nbr_eids, nbr_eids),
                (b.nbr_times, nbr_times),
                (b.mask, mask),
            ):
                if not torch.equal(x.cpu(), y.cpu()):
                    raise AssertionError("recent: ours differs from the searchsorted baseline")
            continue
        _, n = baseline.candidates(b.root_nodes, b.root_times)
        count = b.mask.sum(1)
        e = b.nbr_eids.clamp(min=0)
        src, dst, t = (x.to(e.device)[e] for x in (g.src, g.dst, g.t))
        v = b.root_nodes[:, None]
        ok = (count == n.clamp(max=b.fanout)).all()
        ok &= (~b.mask | ((t < b.root_times[:, None]) & (t == b.nbr_times))).all()
        ok &= (~b.mask | ((src == v) & (dst == b.nbr_nodes)) | ((dst == v) & (src == b.nbr_nodes))).all()
        ok &= (b.mask[:, :-1] | ~b.mask[:, 1:]).all()  # valid slots first
        srt = torch.where(b.mask, b.nbr_eids, -1 - torch.arange(b.fanout, device=e.device)).sort(1).values
        ok &= (srt[:, 1:] != srt[:, :-1]).all()  # distinct
        if not bool(ok):
            raise AssertionError(f"{strategy}: ours returned an invalid sample")


def run_cpu(g, baseline, roots, times, threads, hops, strategy, every) -> dict:
    fanouts = [FANOUT] * hops
    sampler = TemporalSampler(g, fanouts, strategy, seed=0, num_threads=threads)
    node_batches = torch.from_numpy(roots)
    time_batches = torch.from_numpy(times)
    sampler.sample(node_batches[0], time_batches[0])  # warm-up
    start = time.perf_counter()
    for nodes, ts in zip(node_batches, time_batches, strict=True):
        sampler.sample(nodes, ts)
    ours = time.perf_counter() - start

    torch.set_num_threads(1)  # see the module docstring
    gen = torch.Generator().manual_seed(0)
    subset = range(0, len(roots), every)
    base_time, valid, slots = 0.0, 0, 0
    for i in subset:
        start = time.perf_counter()
        base = baseline.sample(node_batches[i], time_batches[i], fanouts, baseline_strategy(strategy), gen)
        base_time += time.perf_counter() - start
        blocks = sampler.sample(node_batches[i], time_batches[i])
        check(blocks, base, baseline, g, strategy)
        valid += sum(int(b.mask.sum()) for b in blocks)
        slots += sum(b.mask.numel() for b in blocks)
    checked_roots = len(subset) * roots.shape[1]
    total_roots = roots.size
    rate = total_roots / ours
    base_rate = checked_roots / base_time
    return {
        "device": "cpu",
        "threads": threads,
        "hops": hops,
        "strategy": strategy,
        "roots": total_roots,
        "seconds": ours,
        "roots_per_s": rate,
        "neighbours_per_s": rate * valid / checked_roots,
        "slots_per_s": rate * slots / checked_roots,
        "baseline_roots_per_s": base_rate,
        "ratio": rate / base_rate,
        "checked_roots": checked_roots,
    }


def run_gpu(g, ds, baseline, num_roots, strategy, repeat) -> dict:
    dev = torch.device("cuda")
    e0 = len(ds.src) // 2
    n_ev = num_roots // 3
    rng = np.random.default_rng(1)
    nodes = np.concatenate(
        [ds.src[e0 : e0 + n_ev], ds.dst[e0 : e0 + n_ev], rng.integers(0, ds.num_nodes, n_ev)]
    )
    times = np.concatenate([ds.t[e0 : e0 + n_ev]] * 3)
    nodes, times = torch.from_numpy(nodes).to(dev), torch.from_numpy(times).to(dev)
    fanouts = [FANOUT, FANOUT]
    sampler = TemporalSampler(g, fanouts, strategy, seed=0)
    gen = torch.Generator(device=dev).manual_seed(0)
    cpu_blocks = TemporalSampler(g, fanouts, strategy, seed=0).sample(nodes.cpu(), times.cpu())
    gpu_blocks = TemporalSampler(g, fanouts, strategy, seed=0).sample(nodes, times)
    for c, d in zip(cpu_blocks, gpu_blocks, strict=True):
        if not (torch.equal(c.nbr_eids, d.nbr_eids.cpu()) and torch.equal(c.mask, d.mask.cpu())):
            raise AssertionError(f"{strategy}: GPU samples differ from CPU samples")
    base_blocks = baseline.sample(nodes, times, fanouts, baseline_strategy(strategy), gen)
    check(gpu_blocks, base_blocks, baseline, g, strategy)

    calls = {
        "ours": lambda: sampler.sample(nodes, times, check=False),
        "ours_checked": lambda: sampler.sample(nodes, times, check=True),
        "baseline": lambda: baseline.sample(nodes, times, fanouts, baseline_strategy(strategy), gen),
    }
    result = {"device": torch.cuda.get_device_name(), "hops": 2, "strategy": strategy, "roots": num_roots}
    slots = num_roots * FANOUT * (1 + FANOUT)
    valid = sum(int(b.mask.sum()) for b in gpu_blocks)
    for name, call in calls.items():
        for _ in range(20):
            call()
        torch.cuda.synchronize()
        latencies = []
        for _ in range(repeat):
            start = time.perf_counter()
            call()
            torch.cuda.synchronize()
            latencies.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(repeat):
            call()
        torch.cuda.synchronize()
        back_to_back = (time.perf_counter() - start) / repeat
        result[f"{name}_latency_us"] = float(np.median(latencies)) * 1e6
        result[f"{name}_throughput_us"] = back_to_back * 1e6
        result[f"{name}_slots_per_s"] = slots / back_to_back
        result[f"{name}_neighbours_per_s"] = valid / back_to_back
    result["ratio_latency"] = result["baseline_latency_us"] / result["ours_latency_us"]
    result["ratio_throughput"] = result["baseline_throughput_us"] / result["ours_throughput_us"]
    return result


def warm_up_gpu(g: TemporalGraph, ds, seconds: float = 2.0) -> None:
    """Keeps the GPU busy for a while so that clocks are up before anything is timed."""
    nodes = torch.from_numpy(ds.src[:60000]).cuda()
    times = torch.from_numpy(ds.t[:60000]).cuda()
    sampler = TemporalSampler(g, [FANOUT, FANOUT], "uniform")
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        sampler.sample(nodes, times, check=False)
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 batches (600k roots) instead of 5,000")
    parser.add_argument("--threads", default="1,2", help="comma-separated CPU thread counts")
    parser.add_argument("--baseline-every", type=int, default=10, help="run the baseline on every n-th batch")
    parser.add_argument("--no-cpu", action="store_true", help="GPU section only")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--strategies", default="recent,uniform,labor", help="strategies to time")
    parser.add_argument("--distinct", default="", help="datasets: distinct rows only")
    parser.add_argument("--distinct-batches", type=int, default=200, help="batches a dataset")
    add_results_dir(parser)
    args = parser.parse_args()
    say = (lambda *a: None) if args.json else print
    strategies = args.strategies.split(",")
    if args.distinct:
        threads = int(args.threads.split(",")[-1])
        out = run_distinct(args.distinct.split(","), threads, args.distinct_batches, say)
        save_results("sampler_speed", {"distinct": out}, args.results_dir)
        if args.json:
            print(json.dumps({"distinct": out}, indent=1))
        return

    ds = load_dataset("zipf-1m")
    builds = []
    for _ in range(3):
        start = time.perf_counter()
        g = TemporalGraph(ds.src, ds.dst, ds.t, num_nodes=ds.num_nodes)
        builds.append(time.perf_counter() - start)
    start = time.perf_counter()
    baseline = SearchsortedBaseline(ds.src, ds.dst, ds.t, ds.num_nodes, "cpu")
    base_build = time.perf_counter() - start
    for ours, theirs in zip(
        g.packed_csr(), (baseline.indptr, baseline.nbr, baseline.eid, baseline.ts), strict=True
    ):
        if not torch.equal(ours, theirs):
            raise AssertionError("T-CSR differs from the lexsort baseline")
    build = {
        "events": len(ds.src),
        "nodes": ds.num_nodes,
        "ours_s": min(builds),
        "baseline_lexsort_s": base_build,
        "ratio": base_build / min(builds),
    }
    say(
        f"T-CSR build of zipf-1m ({len(ds.src):,} events): ours {min(builds):.3f} s (best of 3), "
        f"numpy lexsort baseline {base_build:.3f} s, ratio {build['ratio']:.1f}x; identical arrays"
    )

    cpu = []
    if not args.no_cpu:
        roots, times = batches(ds, 1000 if args.quick else len(ds.src) // EVENTS_PER_BATCH)
        say(
            f"\nCPU: {roots.size:,} roots in batches of {roots.shape[1]}, fanout {FANOUT}; baseline on every "
            f"{args.baseline_every}th batch (checked there)"
        )
        say(
            f"{'thr':>3} {'hops':>4} {'strategy':>8} | {'roots/s':>10} {'nbrs/s':>11} {'slots/s':>11} | "
            f"{'base roots/s':>12} {'ratio':>6}"
        )
        for threads in (int(x) for x in args.threads.split(",")):
            for hops in (1, 2):
                for strategy in strategies:
                    r = run_cpu(g, baseline, roots, times, threads, hops, strategy, args.baseline_every)
                    cpu.append(r)
                    say(
                        f"{threads:>3} {hops:>4} {strategy:>8} | {r['roots_per_s']:>10.3g} "
                        f"{r['neighbours_per_s']:>11.3g} {r['slots_per_s']:>11.3g} | "
                        f"{r['baseline_roots_per_s']:>12.3g} {r['ratio']:>5.1f}x"
                    )
        for r in cpu:
            tgl = TGL_ROOTS_PER_S.get((r["threads"], r["hops"], r["strategy"]))
            if tgl is not None:
                r["tgl_roots_per_s"], r["ratio_tgl"] = tgl, r["roots_per_s"] / tgl
                say(
                    f"vs TGL ({r['threads']} threads, {r['hops']}-hop {r['strategy']}): {tgl:.3g} roots/s, "
                    f"ours {r['ratio_tgl']:.2f}x (target 2x)"
                )

    gpu = []
    if torch.cuda.is_available() and ops.WITH_CUDA:
        baseline_gpu = SearchsortedBaseline(ds.src, ds.dst, ds.t, ds.num_nodes, "cuda")
        warm_up_gpu(g, ds)
        say(
            f"\nGPU {torch.cuda.get_device_name()}: 2 hops [10, 10]; latency = median of synchronised calls, "
            "tput = back-to-back mean; ours unchecked (no host sync) / checked (one flag read)"
        )
        say(
            f"{'roots':>6} {'strategy':>8} | {'ours us':>8} {'checked':>8} {'base us':>8} {'ratio':>6} | "
            f"{'tput us':>8} {'slots/s':>9} {'base slots/s':>12} {'ratio':>6}"
        )
        for num_roots in (1800, 60000):
            for strategy in strategies:
                r = run_gpu(g, ds, baseline_gpu, num_roots, strategy, repeat=200)
                gpu.append(r)
                say(
                    f"{num_roots:>6} {strategy:>8} | {r['ours_latency_us']:>8.1f} "
                    f"{r['ours_checked_latency_us']:>8.1f} {r['baseline_latency_us']:>8.1f} "
                    f"{r['ratio_latency']:>5.1f}x | {r['ours_throughput_us']:>8.1f} "
                    f"{r['ours_slots_per_s']:>9.3g} {r['baseline_slots_per_s']:>12.3g} "
                    f"{r['ratio_throughput']:>5.1f}x"
                )
        gpu_peak = torch.cuda.max_memory_allocated() / 2**20
        say(f"peak GPU memory allocated: {gpu_peak:.0f} MiB")

    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    say(f"\npeak RSS: {peak_rss:.0f} MiB")
    rows = {"build": build, "cpu": cpu, "gpu": gpu, "peak_rss_mib": peak_rss}
    save_results("sampler_speed", rows, args.results_dir)
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
