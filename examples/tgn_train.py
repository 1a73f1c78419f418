"""TGN link prediction on a built-in dataset with dgl-tgnn's library API (the loop of PyG's TGN example).

    python examples/tgn_train.py                                  # wikipedia, all events, 3 epochs
    python examples/tgn_train.py --max-events 3000 --epochs 1     # a quick run on the first events

The events (src -> dst at time t) are split in time order: 70% train, 15% validation, 15% test. Each
batch, in time order: embed the sources, the destinations and uniform negative destinations at time t
from TGN's memory and their most recent past neighbours (events strictly before t), score the pairs
with an MLP decoder, step the optimizer on the binary cross-entropy (training), then hand the batch's
events to the memory, which sees them from the next batch on. Validation and test run the same loop
without gradients, each positive against ``--eval-negatives`` uniform destinations: AP of the
positives against the first negative of each (as TGN reports it) and MRR (mean reciprocal rank of the
positive among all its negatives).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from dgl_tgnn import TemporalGraph, TemporalSampler, load_dataset
from dgl_tgnn.metrics import average_precision, mrr, positive_ranks
from dgl_tgnn.negatives import UniformNegatives
from dgl_tgnn.nn import TGN, MLPDecoder

Events = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
"""``src``, ``dst`` int64, ``t`` float64 (seconds), ``eids`` int64 (edge feature rows), each ``[E]``."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="wikipedia", help="a built-in dataset (dgl-tgnn datasets)")
    parser.add_argument("--max-events", type=int, default=None, help="use only the first N events")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--fanout", type=int, default=10, help="most recent neighbours per node")
    parser.add_argument("--dim", type=int, default=100, help="memory, time encoding and embedding width")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument(
        "--eval-negatives", type=int, default=20, help="negatives per validation/test positive"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    return parser.parse_args()


def run(
    events: Events,
    model: TGN,
    decoder: MLPDecoder,
    sampler: TemporalSampler,
    negatives: UniformNegatives,
    feats: tuple[torch.Tensor, torch.Tensor],
    batch_size: int,
    num_negatives: int,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, float]:
    """One pass over ``events`` in batches, training when ``optimizer`` is given.

    ``feats``: node features ``[N, node_dim]`` and edge features ``[E, edge_dim]`` (float32). Returns the
    mean loss, the AP of the positives against the first negative of each and their MRR among all
    ``num_negatives`` negatives.
    """
    node_feat, edge_feat = feats
    losses, pos_scores, neg_scores = [], [], []
    for start in range(0, events[0].shape[0], batch_size):
        src, dst, t, eids = (x[start : start + batch_size] for x in events)
        size = src.shape[0]
        neg = negatives.uniform(size, num_negatives)  # [B, n]
        nodes = torch.cat([src, dst, neg.flatten()])
        times = torch.cat([t, t, t.repeat_interleave(num_negatives)])
        with torch.set_grad_enabled(optimizer is not None):
            z = model(sampler.sample(nodes, times), node_feat, edge_feat)  # [B * (2 + n), dim]
            z_src, z_dst, z_neg = z[:size], z[size : 2 * size], z[2 * size :].view(size, num_negatives, -1)
            pos = decoder(z_src, z_dst)  # [B] logits
            neg_logits = decoder(z_src[:, None, :], z_neg)  # [B, n]
            loss = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
            loss = loss + F.binary_cross_entropy_with_logits(neg_logits, torch.zeros_like(neg_logits))
        if optimizer is not None:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.update(src, dst, t, eids, edge_feat)  # the batch reaches the memory at the next batch
        losses.append(loss.item())
        pos_scores.append(pos.detach())
        neg_scores.append(neg_logits.detach())
    pos, neg = torch.cat(pos_scores), torch.cat(neg_scores)
    return {
        "loss": sum(losses) / len(losses),
        "ap": average_precision(pos, neg[:, 0]),
        "mrr": mrr(positive_ranks(pos, neg)),
    }


def main() -> None:
    args = parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ds = load_dataset(args.dataset)
    n = ds.num_events if args.max_events is None else min(args.max_events, ds.num_events)
    src, dst = torch.from_numpy(ds.src[:n]), torch.from_numpy(ds.dst[:n])
    t, eids = torch.from_numpy(ds.t[:n]), torch.arange(n)
    edge_feat = torch.zeros(n, 0) if ds.edge_feat is None else torch.from_numpy(ds.edge_feat[:n])
    node_feat = torch.zeros(ds.num_nodes, 0) if ds.node_feat is None else torch.from_numpy(ds.node_feat)
    feats = (node_feat, edge_feat)

    # Every event is in the graph: a root at time t only ever sees events strictly before t.
    graph = TemporalGraph(src, dst, t, num_nodes=ds.num_nodes)
    sampler = TemporalSampler(graph, fanouts=[args.fanout], strategy="recent", num_threads=args.threads)
    negatives = UniformNegatives(torch.from_numpy(ds.dst_candidates), 1, seed=args.seed)
    model = TGN(
        ds.num_nodes,
        node_feat.shape[1],
        edge_feat.shape[1],
        memory_dim=args.dim,
        time_dim=args.dim,
        embed_dim=args.dim,
        learnable_time=False,  # the library's default: cos(w dt + b) at fixed w, b
    )
    decoder = MLPDecoder(args.dim)
    optimizer = torch.optim.Adam([*model.parameters(), *decoder.parameters()], lr=args.lr)
    val_start, test_start = int(0.70 * n), int(0.85 * n)
    splits = {
        name: tuple(x[lo:hi] for x in (src, dst, t, eids))
        for name, lo, hi in (("train", 0, val_start), ("val", val_start, test_start), ("test", test_start, n))
    }
    print(
        f"{args.dataset}: {n:,} events, {ds.num_nodes:,} nodes; train / val / test {val_start} / "
        f"{test_start - val_start} / {n - test_start}"
    )

    for epoch in range(1, args.epochs + 1):
        began = time.perf_counter()
        model.reset_memory()  # each epoch replays the stream from its start
        model.train()
        train = run(splits["train"], model, decoder, sampler, negatives, feats, args.batch_size, 1, optimizer)
        model.eval()
        val = run(
            splits["val"], model, decoder, sampler, negatives, feats, args.batch_size, args.eval_negatives
        )
        print(
            f"epoch {epoch}: loss {train['loss']:.4f}, val AP {val['ap']:.4f}, val MRR {val['mrr']:.4f} "
            f"({time.perf_counter() - began:.1f} s)"
        )
    # The memory now holds the stream up to the test split.
    test = run(
        splits["test"], model, decoder, sampler, negatives, feats, args.batch_size, args.eval_negatives
    )
    print(f"test AP {test['ap']:.4f}, test MRR {test['mrr']:.4f}")


if __name__ == "__main__":
    main()
