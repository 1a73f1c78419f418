"""Would LABOR's Poisson variant (issue 20's ``labor-poisson``) sample fewer rows than ``labor``?

A numpy simulation of three one-call strategies on TGAT's batches (200 consecutive events: sources,
destinations and one random node each, at the events' times; 2 hops of fanout k = 10, each hop's
(node, time) roots deduplicated), counting the distinct (node, time) rows of hop 1 (the rows a
2-layer TGAT embeds) and of hop 2:

- ``uniform``: each root draws k of its n earlier events without replacement, independently;
- ``labor``: each event has one uniform number per call, shared by every root; a root takes the k
  smallest among its earlier events (what ``TemporalSampler(strategy="labor")`` does);
- ``poisson``: a root takes each earlier event whose number is at most k / n (all when n <= k), the
  smallest ``--cap`` x k of them if more (LABOR's Poisson sampling; the estimator would also need
  the importance weights 1 / min(1, k / n), left out here: only the row counts are measured).

The simulation's uniform and labor counts can be checked against the sampler's own
(``python bench/sampler_speed.py --distinct wikipedia,zipf-1m``).

    python bench/labor_poisson_rows.py --datasets wikipedia,zipf-1m --batches 200
"""

from __future__ import annotations

import argparse

import numpy as np
from record import add_results_dir, save_results

from dgl_tgnn.data import builtin_names, load_dataset

EVENTS_PER_BATCH = 200
FANOUT = 10
STRATEGIES = ("uniform", "labor", "poisson")


class Rows:
    """Each node's events (both directions), sorted by time: neighbour, event id, time."""

    def __init__(self, src: np.ndarray, dst: np.ndarray, t: np.ndarray, num_nodes: int) -> None:
        eid = np.arange(len(src))
        keep = src != dst  # a self-loop once
        rows = np.r_[src, dst[keep]]
        order = np.lexsort((np.r_[eid, eid[keep]], np.r_[t, t[keep]], rows))
        self.nbr = np.r_[dst, src[keep]][order]
        self.eid = np.r_[eid, eid[keep]][order]
        self.t = np.r_[t, t[keep]][order]
        self.indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=num_nodes))]


def hop(
    g: Rows,
    nodes: np.ndarray,
    times: np.ndarray,
    strategy: str,
    numbers: np.ndarray,
    cap: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """The (node, time) slots that ``strategy`` samples for roots ``nodes [R]`` at ``times [R]``."""
    picked_nodes, picked_times = [np.zeros(0, np.int64)], [np.zeros(0)]
    for v, at in zip(nodes, times, strict=True):
        lo, hi = g.indptr[v], g.indptr[v + 1]
        n = int(np.searchsorted(g.t[lo:hi], at, "left"))  # events strictly before the root's time
        if n <= FANOUT:
            chosen = np.arange(n)
        elif strategy == "uniform":
            chosen = rng.choice(n, FANOUT, replace=False)
        else:
            number = numbers[g.eid[lo : lo + n]]
            if strategy == "labor":
                chosen = np.argpartition(number, FANOUT)[:FANOUT]
            else:
                chosen = np.flatnonzero(number <= FANOUT / n)
                if len(chosen) > cap:
                    chosen = chosen[np.argpartition(number[chosen], cap)[:cap]]
        picked_nodes.append(g.nbr[lo + chosen])
        picked_times.append(g.t[lo + chosen])
    return np.concatenate(picked_nodes), np.concatenate(picked_times)


def distinct(nodes: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (node, time) pairs."""
    pairs = np.unique(np.stack([nodes.astype(np.float64), times], 1), axis=0)
    return pairs[:, 0].astype(np.int64), pairs[:, 1]


def measure(name: str, num_batches: int, cap_factor: float, seed: int) -> dict[str, list[float]]:
    """Mean hop-1 rows, hop-2 rows and hop-1 slots a root of each strategy over the batches."""
    ds = load_dataset(name)
    t = ds.t.astype(np.float64)
    g = Rows(ds.src, ds.dst, t, ds.num_nodes)
    rng = np.random.default_rng(seed)
    cap = int(cap_factor * FANOUT)
    starts = np.linspace(0, len(t) // EVENTS_PER_BATCH - 1, num_batches).astype(np.int64) * EVENTS_PER_BATCH
    counts: dict[str, list[list[float]]] = {s: [[], [], []] for s in STRATEGIES}
    for lo in starts:
        part = slice(lo, lo + EVENTS_PER_BATCH)
        roots = np.r_[ds.src[part], ds.dst[part], rng.integers(0, ds.num_nodes, EVENTS_PER_BATCH)]
        times = np.r_[t[part], t[part], t[part]]
        numbers = rng.random(len(t))  # one call: one number per event
        for s in STRATEGIES:
            first = hop(g, roots, times, s, numbers, cap, rng)
            hop1 = distinct(*first)
            hop2 = distinct(*hop(g, *hop1, s, numbers, cap, rng))
            counts[s][0].append(len(hop1[0]))
            counts[s][1].append(len(hop2[0]))
            counts[s][2].append(len(first[0]) / len(roots))
    return {s: [float(np.mean(c)) for c in per] for s, per in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="wikipedia,zipf-1m", help="built-in datasets, comma-separated")
    parser.add_argument("--batches", type=int, default=200, help="batches spread evenly over the stream")
    parser.add_argument("--cap", type=float, default=2.0, help="poisson: at most cap x k events a root")
    parser.add_argument("--seed", type=int, default=0)
    add_results_dir(parser)
    args = parser.parse_args()
    if args.batches < 1 or args.cap < 1:
        parser.error(f"--batches and --cap must be >= 1, got {args.batches} and {args.cap}")
    names = args.datasets.split(",")
    for name in names:
        if name not in builtin_names():
            parser.error(f"--datasets: unknown {name!r} (built-in: {', '.join(builtin_names())})")
    print(f"{'dataset':>10} {'strategy':>8} | {'hop-1 rows':>10} {'hop-2 rows':>10} | {'slots/root':>10}")
    rows = []
    for name in names:
        result = measure(name, args.batches, args.cap, args.seed)
        for s, (hop1, hop2, slots) in result.items():
            ratio = f" ({hop2 / result['labor'][1]:.3f}x labor's hop-2)" if s == "poisson" else ""
            print(f"{name:>10} {s:>8} | {hop1:10.1f} {hop2:10.1f} | {slots:10.2f}{ratio}")
            row = {"dataset": name, "strategy": s, "hop1_rows": hop1, "hop2_rows": hop2}
            rows.append(row | {"slots": slots})
    save_results("labor_poisson_rows", rows, args.results_dir)


if __name__ == "__main__":
    main()
