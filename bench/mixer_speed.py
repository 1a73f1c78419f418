"""Speed of TPNet's two equal token mixings (``dgl_tgnn.nn.tpnet.MixerLayer``) on one device:
``transposed`` (PyTorch's LayerNorm and Linear over a transposed ``[P, C, T]`` copy, the CPU's) and
``in_place`` (reductions over dimension -2 and ``einsum``s in ``[P, T, C]``, the GPU's), on one chunk
of the pair encoder (``--pairs``; default: the chunk ``TPNet.pair_budget`` gives on that device), no
gradient, the two taking turns; ms a call and the ratio, and their largest difference.

    python bench/mixer_speed.py --threads 2          # CPU
    python3 bench/mixer_speed.py --device cuda
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable

import torch
from machine import describe
from record import add_results_dir, save_results

from dgl_tgnn.nn.tpnet import MixerLayer, TPNet


def time_ms(fn: Callable[[], torch.Tensor], reps: int, device: torch.device) -> float:
    """Mean ms of ``reps`` calls of ``fn`` (after one warm-up call), synchronised on a GPU."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    began = time.perf_counter()
    for _ in range(reps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - began) / reps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pairs", type=int, default=None, help="pairs in the chunk (default: TPNet's)")
    parser.add_argument("--tokens", type=int, default=20, help="T: recent neighbours per endpoint")
    parser.add_argument("--channels", type=int, default=172, help="C: the mixer's channels")
    parser.add_argument("--reps", type=int, default=20, help="timed calls per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on a CPU")
    add_results_dir(parser)
    args = parser.parse_args()
    for name in ("pairs", "tokens", "channels", "reps", "rounds", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be >= 1; got {value}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible (use --device cpu)")
    torch.set_num_threads(args.threads)
    budget = TPNet.pair_budget.get(device.type, TPNet.pair_budget["cpu"])
    pairs = args.pairs or max(1, budget // (32 * args.tokens * args.channels))

    torch.manual_seed(0)
    layer = MixerLayer(args.tokens, args.channels, dropout=0.1).to(device).eval()
    x = torch.randn(pairs, args.tokens, args.channels, device=device)
    methods = {"transposed": layer.token_mixing_transposed, "in_place": layer.token_mixing_in_place}
    times: dict[str, list[float]] = {name: [] for name in methods}
    with torch.no_grad():
        diff = float((methods["in_place"](x) - methods["transposed"](x)).abs().max())
        for _ in range(args.rounds):
            for name, fn in methods.items():
                times[name].append(time_ms(lambda fn=fn: fn(x), args.reps, device))
    best = {name: min(ms) for name, ms in times.items()}
    ratio = best["transposed"] / best["in_place"]
    rows = {
        "shape": [pairs, args.tokens, args.channels],
        "ms_per_round": times,
        "best_ms": best,
        "transposed_over_in_place": ratio,
        "max_abs_difference": diff,
    }
    path = save_results("mixer_speed", rows, args.results_dir)
    print(f"# {describe()}; {time.strftime('%Y-%m-%d')}\n# python {shlex.join(sys.argv)}\n")
    shape = f"[{pairs}, {args.tokens}, {args.channels}]"
    print(f"token mixing of {shape} on {device}, best of {args.rounds} rounds:")
    for name, ms in times.items():
        print(f"  {name:<10} {best[name]:8.3f} ms  (rounds: {', '.join(f'{m:.3f}' for m in ms)})")
    print(f"  transposed / in_place: {ratio:.2f}x; largest difference {diff:.1e}")
    print(f"raw results: {path}")


if __name__ == "__main__":
    main()
