"""Fused top-K dot product (``topk_dot``) against chunked ``matmul + torch.topk``, same inputs, one run.

Grid (issue 4): K = 50, d in {100, 172}, (N, B) in {(1e5, 600), (1e6, 600), (1e6, 4000), (1e7, 4000)};
on CUDA float32 and bfloat16, on the CPU float32 and only the sizes named by ``--cpu-sizes``
(default N = 1e5, B = 600: a couple of minutes on 2 cores).

Baseline: scores of a chunk of candidates ``Q @ E[j:j+C].T`` (C such that a chunk holds at most
2^28 scores on CUDA, 2^24 on the CPU), ``torch.topk`` of the chunk, merged with the running best by
one more ``torch.topk``. Both compute in the input dtype.

Time: median over repeats (CUDA events on the GPU, wall clock on the CPU) after one warm-up call.
Small candidate tables (< 256 MiB) rotate among three copies so that repeats do not run from L2.
Peak memory: bytes allocated beyond the inputs during one call. CUDA: the caching allocator's peak
counter. CPU: the resident-set high-water mark above its level before the call (reset through
``/proc/self/clear_refs``), measured for each method in a fresh child process with glibc's mmap
threshold pinned (``MALLOC_MMAP_THRESHOLD_``) so that freed blocks leave the resident set at once.
``recall`` is the fraction of the baseline's indices that ``topk_dot`` also returns. ``exact`` is the
share of sampled queries (64, evenly spaced) whose indices equal those of ``topk_dot_reference``
(exact float64 scores): 1 for float32, whose result is exact; bf16 scores are not.

Issue 18 (float32 >= 5x the baseline, bf16 <= 0.5 ms and <= 20 ms on an H200 at d = 172)::

    python bench/topk_speed.py --device cuda --gpu-sizes 1e6x600,1e7x4000 --dims 172 \
        --dtypes float32,bfloat16 --kernels

    python bench/topk_speed.py [--device cuda|cpu|all] [--cpu-sizes 1e5x600,1e6x600] [--gpu-sizes 1e6x600]
        [--dims 100,172] [--dtypes bfloat16,float32] [--kernels] [--json]

``--kernels``: also the GPU time per call of each CUDA kernel that ``topk_dot`` launches (torch.profiler).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from record import add_results_dir, save_results

from dgl_tgnn import ops, topk_dot
from dgl_tgnn.topk import topk_dot_reference

K = 50
DIMS = (100, 172)
GPU_SIZES = ((100_000, 600), (1_000_000, 600), (1_000_000, 4000), (10_000_000, 4000))


def baseline_topk(
    q: torch.Tensor, e: torch.Tensor, k: int, max_scores: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked ``matmul + torch.topk``: ``[B, k]`` values (float32) and int64 indices."""
    chunk = max(k, max_scores // max(q.shape[0], 1))
    best_v = best_i = None
    for j0 in range(0, e.shape[0], chunk):
        scores = q @ e[j0 : j0 + chunk].T
        v, i = scores.topk(min(k, scores.shape[1]), dim=1)
        i = i + j0
        if best_v is not None:
            v, i = torch.cat([best_v, v], dim=1), torch.cat([best_i, i], dim=1)
            v, order = v.topk(k, dim=1)
            i = i.gather(1, order)
        best_v, best_i = v, i
    return best_v.float(), best_i


def read_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def rss_peak_bytes(fn: Callable[[], object]) -> int:
    """Resident-set high-water mark above the level before ``fn()`` (VmHWM reset via clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = read_status_kib("VmRSS")
    fn()
    return (read_status_kib("VmHWM") - before) * 1024


def cpu_peak_bytes(method: str, d: int, n: int, b: int, seed: int) -> int:
    """rss_peak_bytes of one call of ``method`` (after a warm-up call) in a fresh child process."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    cmd = [sys.executable, __file__, "--peak-child", f"{method},{d},{n},{b},{seed}"]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1])


def gpu_peak_bytes(fn: Callable[[], object]) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def time_ms(fn: Callable[[int], object], device: str, copies: int, budget_s: float) -> float:
    """Median time of fn(i) over repeats (i rotates among the input copies)."""
    fn(0)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget_s and len(times) < 20):
        i = len(times) % copies
        if device == "cuda":
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            fn(i)
            end.record()
            end.synchronize()
            times.append(begin.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn(i)
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def kernel_times_us(fn: Callable[[], object], calls: int = 3) -> dict[str, float]:
    """GPU time per call (microseconds) of each CUDA kernel that ``fn()`` launches, by kernel name."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA], acc_events=True) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    times: dict[str, float] = {}
    for event in prof.key_averages():
        total = event.self_device_time_total
        if total > 0:
            name = event.key.replace("(anonymous namespace)::", "").replace("tgnn::cuda::", "")
            name = name.removeprefix("void ").split("(")[0]
            times[name] = round(times.get(name, 0.0) + total / calls, 1)
    return times


def inputs(
    device: str, dtype: torch.dtype, d: int, n: int, b: int, seed: int, copies: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator(device=device).manual_seed(seed)
    qs = [torch.randn(b, d, generator=g, device=device).to(dtype) for _ in range(copies)]
    es = [torch.randn(n, d, generator=g, device=device).to(dtype) for _ in range(copies)]
    return qs, es


def max_scores(device: str) -> int:
    return 2**28 if device == "cuda" else 2**24


def peak_child(spec: str) -> None:
    method, d, n, b, seed = spec.split(",")
    (q,), (e,) = inputs("cpu", torch.float32, int(d), int(n), int(b), int(seed), 1)
    if method == "ours":
        call = lambda: topk_dot(q, e, K)  # noqa: E731
    else:
        call = lambda: baseline_topk(q, e, K, max_scores("cpu"))  # noqa: E731
    call()
    print(rss_peak_bytes(call))


def run_case(device: str, dtype: torch.dtype, d: int, n: int, b: int, seed: int, kernels: bool) -> dict:
    copies = 3 if n * d * torch.finfo(dtype).bits // 8 < 256 * 2**20 else 1
    qs, es = inputs(device, dtype, d, n, b, seed, copies)
    budget = 2.0 if device == "cuda" else 10.0

    def ours(i: int):
        return topk_dot(qs[i], es[i], K)

    def base(i: int):
        return baseline_topk(qs[i], es[i], K, max_scores(device))

    if device == "cuda":
        ours_peak = gpu_peak_bytes(lambda: ours(0))
        base_peak = gpu_peak_bytes(lambda: base(0))
    else:
        ours_peak = cpu_peak_bytes("ours", d, n, b, seed)
        base_peak = cpu_peak_bytes("baseline", d, n, b, seed)
    _, got = ours(0)
    _, expected = base(0)
    recall = (got[:, :, None] == expected[:, None, :]).any(-1).double().mean().item()
    sample = torch.arange(0, b, max(1, b // 64), device=device)
    _, exact_indices = topk_dot_reference(qs[0][sample], es[0], K)
    exact = (got[sample] == exact_indices).all(dim=1).double().mean().item()
    ours_ms = time_ms(ours, device, copies, budget)
    base_ms = time_ms(base, device, copies, budget)
    extra = {"kernels_us": kernel_times_us(lambda: ours(0))} if kernels and device == "cuda" else {}
    return {
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "d": d,
        "N": n,
        "B": b,
        "k": K,
        "ours_ms": round(ours_ms, 3),
        "baseline_ms": round(base_ms, 3),
        "speedup": round(base_ms / ours_ms, 2),
        "ours_peak_mib": round(ours_peak / 2**20, 1),
        "baseline_peak_mib": round(base_peak / 2**20, 1),
        "recall": round(recall, 4),
        "exact": round(exact, 4),
        **extra,
    }


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        n, b = item.lower().split("x")
        sizes.append((int(float(n)), int(float(b))))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu", "all"), default="all")
    parser.add_argument("--cpu-sizes", default="1e5x600", help="comma-separated NxB for the CPU")
    parser.add_argument("--gpu-sizes", default=",".join(f"{n}x{b}" for n, b in GPU_SIZES))
    parser.add_argument("--dims", default=",".join(map(str, DIMS)), help="comma-separated d")
    parser.add_argument("--dtypes", default="bfloat16,float32", help="CUDA dtypes (the CPU runs float32)")
    parser.add_argument("--kernels", action="store_true", help="GPU time of each CUDA kernel of topk_dot")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--peak-child", help=argparse.SUPPRESS)  # internal: one CPU memory measure
    add_results_dir(parser)
    args = parser.parse_args()
    if args.peak_child:
        peak_child(args.peak_child)
        return

    dims = [int(d) for d in args.dims.split(",")]
    dtypes = [getattr(torch, name) for name in args.dtypes.split(",")]
    if any(dtype not in (torch.bfloat16, torch.float32) for dtype in dtypes):
        parser.error(f"--dtypes takes bfloat16 and float32, got {args.dtypes!r}")
    cases = []
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        for n, b in parse_sizes(args.gpu_sizes):
            for d in dims:
                for dtype in dtypes:
                    cases.append(("cuda", dtype, d, n, b))
    if args.device in ("cpu", "all"):
        for n, b in parse_sizes(args.cpu_sizes):
            for d in dims:
                cases.append(("cpu", torch.float32, d, n, b))

    header = (
        f"{'device':6} {'dtype':8} {'d':>4} {'N':>9} {'B':>5} {'ours ms':>10} {'base ms':>10} {'speedup':>7} "
        f"{'ours MiB':>9} {'base MiB':>9} {'recall':>6} {'exact':>6}"
    )
    results = []
    if not args.json:
        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
        print(
            f"topk_dot vs chunked matmul+topk, K={K}; torch {torch.__version__}; GPU {gpu}; "
            f"CPU threads {torch.get_num_threads()}; ops.WITH_CUDA={ops.WITH_CUDA}"
        )
        print(header)
    for seed, (device, dtype, d, n, b) in enumerate(cases):
        r = run_case(device, dtype, d, n, b, seed, args.kernels)
        results.append(r)
        if not args.json:
            print(
                f"{r['device']:6} {r['dtype']:8} {d:>4} {n:>9} {b:>5} {r['ours_ms']:>10.3f} "
                f"{r['baseline_ms']:>10.3f} {r['speedup']:>7.2f} {r['ours_peak_mib']:>9.1f} "
                f"{r['baseline_peak_mib']:>9.1f} {r['recall']:>6.4f} {r['exact']:>6.4f}",
                flush=True,
            )
            for name, us in r.get("kernels_us", {}).items():
                print(f"    {us:>10.1f} us  {name}", flush=True)
        if device == "cuda":
            torch.cuda.empty_cache()
    rows = {"k": K, "torch": torch.__version__, "results": results}
    save_results("topk_speed", rows, args.results_dir)
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
