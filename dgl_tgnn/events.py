"""Chronological event streams cut into batches, and the per-source history of a stream."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class EventBatch:
    """Events ``[start, stop)`` of a chronological stream.

    Attributes:
        src, dst: ``[B]`` int64 node ids.
        t: ``[B]`` float64 times (non-decreasing).
        eids: ``[B]`` int64 positions of the events in the dataset's event arrays (edge ids).
        start, stop: positions of the batch in the stream it was cut from.
    """

    src: torch.Tensor
    dst: torch.Tensor
    t: torch.Tensor
    eids: torch.Tensor
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


class EventStream:
    """A chronological sequence of a dataset's events (e.g. its training split).

    Args:
        src, dst: ``[E]`` int64 node ids of all the dataset's events.
        t: ``[E]`` float64 times, sorted.
        eids: ``[S]`` int64 increasing positions of this stream's events among the ``E``.
    """

    def __init__(self, src: torch.Tensor, dst: torch.Tensor, t: torch.Tensor, eids: torch.Tensor) -> None:
        eids = torch.as_tensor(eids, dtype=torch.int64)
        self.eids = eids
        self.src = torch.as_tensor(src)[eids].to(torch.int64)
        self.dst = torch.as_tensor(dst)[eids].to(torch.int64)
        self.t = torch.as_tensor(t)[eids].to(torch.float64)

    def __len__(self) -> int:
        return int(self.eids.shape[0])

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def batch(self, start: int, stop: int) -> EventBatch:
        """Events ``[start, stop)`` of the stream."""
        return EventBatch(
            self.src[start:stop], self.dst[start:stop], self.t[start:stop], self.eids[start:stop], start, stop
        )

    def batches(self, batch_size: int, first: int = 0) -> Iterator[EventBatch]:
        """Consecutive batches of ``batch_size`` events (the last may be shorter), from batch ``first``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for start in range(first * batch_size, len(self), batch_size):
            yield self.batch(start, min(start + batch_size, len(self)))


class PairHistory:
    """The distinct (src, dst) pairs of a stream, each with the stream position where it first occurs.

    ``known(nodes, stop)`` answers, without a Python loop, "which destinations had each node
    interacted with among stream positions ``< stop``".

    Args:
        src, dst: ``[S]`` int64 node ids in stream order.
    """

    def __init__(self, src: torch.Tensor, dst: torch.Tensor) -> None:
        src_np = np.asarray(src, dtype=np.int64)
        dst_np = np.asarray(dst, dtype=np.int64)
        self.num_nodes = int(max(src_np.max(initial=-1), dst_np.max(initial=-1))) + 1
        self.length = int(src_np.shape[0])
        keys = src_np * self.num_nodes + dst_np
        unique_keys, first = np.unique(keys, return_index=True)
        pair_src, pair_dst = unique_keys // self.num_nodes, unique_keys % self.num_nodes
        order = np.lexsort((first, pair_src))
        self.pair_src = torch.from_numpy(pair_src[order])
        self.pair_dst = torch.from_numpy(pair_dst[order])
        self.pair_first = torch.from_numpy(first[order].astype(np.int64))
        # Sorted search key (src, first position) and each node's first pair.
        self._key = self.pair_src * (self.length + 1) + self.pair_first
        counts = torch.bincount(self.pair_src, minlength=self.num_nodes)
        self.ptr = torch.zeros(self.num_nodes + 1, dtype=torch.int64)
        self.ptr[1:] = torch.cumsum(counts, 0)

    def known(self, nodes: torch.Tensor, stop: int) -> torch.Tensor:
        """``[B, m]`` int64 distinct destinations of each of ``nodes [B]`` among stream positions
        ``< stop``, in order of first occurrence, ``-1`` padded (``m`` = the largest count, >= 1)."""
        nodes = nodes.to(torch.int64).cpu()
        inside = (nodes >= 0) & (nodes < self.num_nodes)
        safe = torch.where(inside, nodes, 0)
        lo = self.ptr[safe]
        hi = torch.searchsorted(self._key, safe * (self.length + 1) + stop)
        count = torch.where(inside, hi - lo, 0)
        width = max(int(count.max()) if count.numel() else 0, 1)
        slots = torch.arange(width)
        valid = slots[None, :] < count[:, None]
        index = torch.where(valid, lo[:, None] + slots[None, :], 0)
        if self.pair_dst.numel() == 0:
            return torch.full((nodes.shape[0], width), -1, dtype=torch.int64)
        return torch.where(valid, self.pair_dst[index], -1)
