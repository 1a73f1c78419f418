"""Chronological event streams cut into batches."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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
