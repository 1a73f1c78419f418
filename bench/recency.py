"""The "most recently met destination first" heuristic under TGB's protocol: a reference that any
model ranking with the sources' histories should beat.

Each positive ``(s, d, t)`` of the split is ranked against every destination of the dataset except
the positives of the same ``(s, t)`` (what TGB does for tgbl-wiki-v2), with TGB's tie rule. A
candidate ``c`` scores ``1 / (1 + r)``, ``r`` the number of distinct partners ``s`` met after its
latest event with ``c`` among its ``--history`` most recent events, and 0 when ``s`` did not meet ``c``
there. The histories are read strictly before the batch's first event (``--batch-size`` events, the
information a model has when each batch is scored, then observed) and strictly before each event's
own time (when the earlier events of its batch are observed first). Plain loops over the events: an
independent reference, not the package's code.

    python bench/recency.py                        # wikipedia, test split
    python bench/recency.py --split val --history 100
"""

from __future__ import annotations

import argparse
import bisect
import sys
from collections import defaultdict

import numpy as np
from machine import describe
from record import add_results_dir, save_results

from dgl_tgnn.data import load_dataset, split_events


def reciprocal_ranks(
    src: np.ndarray, dst: np.ndarray, t: np.ndarray, rows: np.ndarray, history: int, batch_size: int
) -> np.ndarray:
    """``[P]`` reciprocal ranks of the positives ``rows`` (stream positions, in time order); histories
    cut at each batch's first time (``batch_size > 1``) or at each event's own time (``1``)."""
    events: dict[int, list[int]] = defaultdict(list)  # node -> its events, in stream (time) order
    for i in range(len(src)):
        events[int(src[i])].append(i)
        if dst[i] != src[i]:
            events[int(dst[i])].append(i)
    times = {node: [t[i] for i in ev] for node, ev in events.items()}
    positives: dict[tuple[int, float], set[int]] = defaultdict(set)
    for i in rows:
        positives[(int(src[i]), float(t[i]))].add(int(dst[i]))
    pool = len(np.unique(dst))
    out = np.empty(len(rows))
    for lo in range(0, len(rows), batch_size):
        batch = rows[lo : lo + batch_size]
        start = t[batch].min()
        for j, i in enumerate(batch):
            s, d = int(src[i]), int(dst[i])
            cut = start if batch_size > 1 else t[i]
            n = bisect.bisect_left(times[s], cut)
            rank: dict[int, int] = {}  # partner -> distinct partners met after it
            for e in reversed(events[s][max(0, n - history) : n]):
                partner = int(dst[e]) if src[e] == s else int(src[e])
                rank.setdefault(partner, len(rank))
            excluded = positives[(s, float(t[i]))] - {d}
            scores = {c: 1 / (1 + r) for c, r in rank.items() if c not in excluded and c != d}
            pos = 1 / (1 + rank[d]) if d in rank else 0.0
            negatives = pool - 1 - len(excluded)
            greater = sum(v > pos for v in scores.values())
            equal = sum(v == pos for v in scores.values()) if pos > 0 else negatives - len(scores)
            out[lo + j] = 1 / (1 + greater + 0.5 * equal)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="wikipedia", help="a built-in dataset (default wikipedia)")
    parser.add_argument("--split", choices=["val", "test"], default="test")
    parser.add_argument("--history", type=int, default=50, help="recent events of a source read (default 50)")
    parser.add_argument("--batch-size", type=int, default=200, help="events per batch (default 200)")
    add_results_dir(parser)
    args = parser.parse_args()
    ds = load_dataset(args.dataset)
    rows = getattr(split_events(ds, 0.15, 0.15, 0.0), args.split)
    results = []
    for batch_size, cut in ((args.batch_size, "batch start"), (1, "own time")):
        rr = reciprocal_ranks(ds.src, ds.dst, ds.t, rows, args.history, batch_size)
        results.append({"cut": cut, "mrr": float(rr.mean()), "recall@1": float((rr == 1).mean())})
    record = {"dataset": args.dataset, "split": args.split, "history": args.history, "results": results}
    save_results("recency", record, args.results_dir)
    print(f"# {describe()}\n# python {' '.join(sys.argv)}\n")
    print("| history read before | MRR | Recall@1 |\n|---|---:|---:|")
    for r in results:
        print(f"| {r['cut']} | {r['mrr']:.4f} | {r['recall@1']:.4f} |")


if __name__ == "__main__":
    main()
