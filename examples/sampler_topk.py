"""dgl-tgnn's temporal sampler and ``topk_dot`` in a DGL project: DGL blocks of past neighbourhoods,
message passing over them with ``dgl.function``, then the nearest candidates of each query.

    python examples/sampler_topk.py                                   # wikipedia, first 20,000 events
    python examples/sampler_topk.py --max-events 5000 --queries 200   # smaller

The task, with no training: for each of the last ``--queries`` events (user u -> page p at time t),
guess p from u's past. ``TemporalSampler`` samples u's neighbourhood strictly before t (hop 0: u's
events, hop 1: the events of the pages u met), each hop becomes a DGL block (``TemporalBlock.to_dgl``),
and a parameter-free two-layer mean aggregation over the blocks, run by DGL, embeds u as the mean of
what it met: every node has a fixed random vector ``x_v``; a page met by u is represented by ``x_page``
plus the mean of its own past neighbours, and u by the mean of those. ``topk_dot`` then ranks all
candidate pages by the dot product of their vector with u's embedding, without forming the
``[queries, pages]`` score matrix, and the script reports how often p is among the ``--k`` best
(against ``k / #pages`` for a random guess).
"""

from __future__ import annotations

import argparse

import torch

from dgl_tgnn import TemporalBlock, TemporalGraph, TemporalSampler, load_dataset, topk_dot

# DGL 2.1 needs a small bridge to import under current torch; dgl_tgnn's import of it applies it
# (a project whose DGL matches its torch can `import dgl` directly).
from dgl_tgnn._dgl import dgl


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="wikipedia", help="a built-in bipartite dataset")
    parser.add_argument("--max-events", type=int, default=20_000, help="use only the first N events")
    parser.add_argument("--queries", type=int, default=1000, help="how many of the last events to guess")
    parser.add_argument("--fanouts", default="10,5", help="neighbours per hop, comma-separated")
    parser.add_argument("--k", type=int, default=10, help="candidates returned per query")
    parser.add_argument("--dim", type=int, default=64, help="width of the random node vectors")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def mean_of_neighbours(block: TemporalBlock, h_src: torch.Tensor) -> torch.Tensor:
    """DGL message passing over one hop: each root's mean over its sampled neighbours.

    ``h_src``: ``[R + V, d]`` float32, the rows of the DGL block's src nodes (the ``R`` roots, then
    the ``V`` valid neighbours). Returns ``[R, d]``, zeros for a root without neighbours.
    """
    g = block.to_dgl()
    g.srcdata["h"] = h_src
    g.update_all(dgl.function.copy_u("h", "m"), dgl.function.mean("m", "h"))
    return g.dstdata["h"]


def embed(blocks: list[TemporalBlock], x: torch.Tensor) -> torch.Tensor:
    """Embeddings ``[R_0, d]`` of ``blocks[0]``'s roots, from node vectors ``x [N, d]``, innermost hop
    first. Hop ``i + 1``'s roots are hop ``i``'s slots, flattened, so the valid neighbours of hop ``i``
    (DGL src nodes ``R_i, R_i + 1, ...``, in row-major order of ``mask``) take the rows of hop ``i + 1``
    at the positions of ``mask``'s True entries."""
    deeper: torch.Tensor | None = None  # hop i + 1's root representations, [R_i * k_i, d]
    for block in reversed(blocks):
        valid = block.mask.flatten().nonzero().squeeze(1)  # slot -> valid neighbour, row-major
        nbr = x[block.nbr_nodes.flatten()[valid]] if deeper is None else deeper[valid]
        roots = x[block.root_nodes.clamp(min=0)] * (block.root_nodes >= 0)[:, None]  # padding roots: 0
        h = mean_of_neighbours(block, torch.cat([roots, nbr]))
        deeper = h if block is blocks[0] else roots + h
    assert deeper is not None
    return deeper


def main() -> None:
    args = parse_args()
    ds = load_dataset(args.dataset)
    n = min(args.max_events, ds.num_events)
    src, dst, t = (torch.from_numpy(a[:n]) for a in (ds.src, ds.dst, ds.t))
    graph = TemporalGraph(src, dst, t, num_nodes=ds.num_nodes)
    fanouts = [int(k) for k in args.fanouts.split(",")]
    sampler = TemporalSampler(graph, fanouts=fanouts, strategy="recent", seed=args.seed)
    x = torch.randn(ds.num_nodes, args.dim, generator=torch.Generator().manual_seed(args.seed))

    queries = torch.arange(n - min(args.queries, n), n)  # the last events
    blocks = sampler.sample(src[queries], t[queries])  # roots: the users, at their events' times
    z = embed(blocks, x)  # [Q, dim]

    pages = torch.from_numpy(ds.dst_candidates)  # candidate ids, [C]
    _, index = topk_dot(z, x[pages], args.k)  # [Q, k] rows of pages, best first
    hits = (pages[index] == dst[queries][:, None]).any(dim=1)
    print(
        f"{args.dataset}: {n:,} events; {queries.numel()} queries, fanouts {fanouts}, "
        f"{pages.numel():,} candidates"
    )
    print(f"hit@{args.k} {hits.float().mean().item():.4f} (random guess {args.k / pages.numel():.4f})")


if __name__ == "__main__":
    main()
