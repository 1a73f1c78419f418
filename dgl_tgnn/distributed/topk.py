"""``topk_dot`` over a candidate table whose rows are split across the ranks of a process group."""

from __future__ import annotations

import torch
import torch.distributed as dist

from dgl_tgnn.distributed.collectives import all_gather_rows, all_gather_sizes
from dgl_tgnn.topk import topk_dot


def sharded_topk(
    queries: torch.Tensor,
    shard: torch.Tensor,
    shard_offset: int,
    k: int,
    group: dist.ProcessGroup | None = None,
    exclude: torch.Tensor | None = None,
    normalize: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact global ``topk_dot(queries, table, k)`` of each rank's queries, where each rank holds
    rows ``shard_offset .. shard_offset + N_r - 1`` of ``table`` ``[N, d]`` and the shards tile ``0..N-1``.

    Every rank's queries are gathered, each rank ranks them against its shard (at most ``min(k, N_r)``
    per query, padded to ``k`` with ``(-inf, -1)``), and the partial results, with global ids, are
    gathered and merged by score descending, then id ascending: ``topk_dot``'s order. On CPU scores
    are exact float32 roundings, independent of the other candidates, so the merge equals
    ``topk_dot`` on the whole table, ties included. A collective: every rank of ``group`` must call it.

    Args:
        queries: ``[B_r, d]`` this rank's queries (``B_r`` may differ between ranks and may be 0).
        shard: ``[N_r, d]`` this rank's rows of the table (``N_r`` may be 0), dtype and device of
            ``queries``.
        shard_offset: global id of ``shard``'s first row.
        k: candidates per query, ``1 <= k <= N``.
        group: the process group; None for the default one.
        exclude: ``[B_r, m]`` int64 global rows each query leaves out (``-1`` pads; ``m`` the same
            on every rank), as ``topk_dot``'s ``exclude``.
        normalize: rank by cosine similarity, as ``topk_dot``'s ``normalize``.

    Returns:
        ``(scores, ids)``: ``[B_r, k]`` float32 scores sorted descending and ``[B_r, k]`` int64 global
        candidate ids of this rank's queries; ``(-inf, -1)`` where fewer than ``k`` candidates remain.

    Raises:
        ValueError: (on every rank) ``queries`` or ``shard`` not 2-D, widths that differ between
            tensors or ranks, shards that do not tile ``0..N-1``, or ``k`` outside ``[1, N]``.
    """
    if queries.dim() != 2 or shard.dim() != 2:
        raise ValueError(
            f"queries and shard must be 2-D, got {tuple(queries.shape)} and {tuple(shard.shape)}"
        )
    batch, num_rows = queries.shape[0], shard.shape[0]
    meta = all_gather_sizes(
        [batch, num_rows, queries.shape[1], shard.shape[1], shard_offset], queries.device, group
    )
    batches, rows, widths, offsets = meta[:, 0], meta[:, 1], meta[:, 2:4], meta[:, 4]
    if (widths != widths[0, 0]).any():
        raise ValueError(f"queries and shards must have one width d on every rank, got {widths.tolist()}")
    order = torch.argsort(offsets, stable=True)
    starts = torch.cat([torch.zeros(1, dtype=torch.int64), rows[order].cumsum(0)[:-1]])
    if not torch.equal(offsets[order], starts):
        raise ValueError(
            f"shards must tile the table; got (offset, rows) per rank "
            f"{list(zip(offsets.tolist(), rows.tolist(), strict=True))}"
        )
    total = int(rows.sum())
    if not 1 <= k <= total:
        raise ValueError(f"k must be in [1, {total}] (the rows of all shards), got {k}")

    all_queries = torch.cat(all_gather_rows(queries, group, batches.tolist()))
    num_queries = all_queries.shape[0]
    local_exclude = None
    if exclude is not None:
        all_exclude = torch.cat(all_gather_rows(exclude.to(torch.int64), group, batches.tolist()))
        inside = (all_exclude >= shard_offset) & (all_exclude < shard_offset + num_rows)
        local_exclude = torch.where(inside, all_exclude - shard_offset, -1)
    scores = torch.full((num_queries, k), float("-inf"), dtype=torch.float32, device=queries.device)
    ids = torch.full((num_queries, k), -1, dtype=torch.int64, device=queries.device)
    if num_rows > 0 and num_queries > 0:
        local = min(k, num_rows)
        shard_scores, shard_ids = topk_dot(
            all_queries, shard, local, exclude=local_exclude, normalize=normalize
        )
        scores[:, :local] = shard_scores
        ids[:, :local] = torch.where(shard_ids >= 0, shard_ids + shard_offset, shard_ids)

    # Merge, for this rank's queries only, every rank's partial top-k of them.
    rank = dist.get_rank(group)
    start = int(batches[:rank].sum())
    sizes = [num_queries] * len(batches)
    part_scores = torch.cat([s[start : start + batch] for s in all_gather_rows(scores, group, sizes)], dim=1)
    part_ids = torch.cat([i[start : start + batch] for i in all_gather_rows(ids, group, sizes)], dim=1)
    # Score descending, then id ascending: a stable sort by id, then a stable sort by score.
    by_id = torch.sort(part_ids, dim=1, stable=True).indices
    part_scores, part_ids = part_scores.gather(1, by_id), part_ids.gather(1, by_id)
    best = torch.sort(part_scores, dim=1, descending=True, stable=True).indices[:, :k]
    best_scores, best_ids = part_scores.gather(1, best), part_ids.gather(1, best)
    return best_scores, best_ids.masked_fill(best_scores == float("-inf"), -1)
