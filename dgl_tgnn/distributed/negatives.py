"""``topk`` hard negatives with the candidate table split by rows across the processes of a run."""

from __future__ import annotations

import time

import torch

from dgl_tgnn.distributed.collectives import all_gather_rows
from dgl_tgnn.distributed.group import Parallel
from dgl_tgnn.distributed.topk import sharded_topk
from dgl_tgnn.events import EventBatch
from dgl_tgnn.negatives import TopKNegatives


class ShardedTopKNegatives(TopKNegatives):
    """``TopKNegatives`` whose table is split by rows: process ``r`` holds, refreshes and feeds rows
    ``[offset, offset + N_r)`` of the pool's table only (the refresh costs ``1 / G``), and the
    nearest rows of a query are ``sharded_topk``'s exact global ones. Every process draws the
    window's negatives from the same generator and keeps its share of them, so the draws are those
    of one process at batch ``G x B``.

    Made from a built ``TopKNegatives`` (``of``); ``similarity="decoder"`` is not supported
    (``check_supported``). ``embed`` is called with this process's rows of the pool.
    """

    parallel: Parallel
    offset: int

    @classmethod
    def of(cls, sampler: TopKNegatives, parallel: Parallel) -> ShardedTopKNegatives:
        """``sampler`` (not used after) as a sharded sampler of ``parallel``'s processes."""
        sharded = cls.__new__(cls)
        sharded.__dict__.update(sampler.__dict__)
        sharded.parallel = parallel
        sharded.offset, stop = parallel.bounds(sampler.candidates.numel())
        sharded.shard = sampler.candidates[sharded.offset : stop]
        return sharded

    @staticmethod
    def check_supported(similarity: str) -> None:
        """A ValueError in one line for what the sharded table does not do."""
        if similarity == "decoder":
            raise ValueError(
                "--similarity decoder is not supported with several processes; use dot or cosine"
            )

    def _refresh(self, time_s: float) -> None:
        began = time.perf_counter()
        with torch.no_grad():
            self.table = self.embed(self.shard, time_s).detach()
        self.refreshes += 1
        self.refresh_seconds += time.perf_counter() - began

    def sample_share(
        self, window: EventBatch, lo: int, hi: int, queries: torch.Tensor | None
    ) -> torch.Tensor:
        """``[hi - lo, n]`` negatives of events ``[lo, hi)`` of ``window``, whose source embeddings
        are ``queries`` ``[hi - lo, d]`` (None while warming up): those one process draws for the
        window, rows ``[lo, hi)``. A collective: every process calls it for its share."""
        if self.warming_up:
            return self.uniform(len(window), self.num_negatives)[lo:hi]
        self.begin_batch(window)
        assert queries is not None and self.table is not None
        device = self.table.device
        exclude = self.rows(window.dst[lo:hi].to(device))[:, None]
        if self.exclude_known:  # (known of the whole window: one width m on every process)
            assert self.history is not None
            known = self.history.known(window.src, window.stop)[lo:hi]
            exclude = torch.cat([exclude, torch.where(known >= 0, self.rows(known), -1).to(device)], dim=1)
        cosine = self.similarity == "cosine"
        _, nearest = sharded_topk(
            queries.detach().to(device, self.table.dtype), self.table, self.offset, self.k,
            exclude=exclude, normalize=cosine,
        )  # fmt: skip
        everyone = torch.cat(all_gather_rows(nearest)).cpu()
        return self._draw(everyone, self.generator)[lo:hi]

    def observe_share(self, nodes: torch.Tensor, embeddings: torch.Tensor, positions: torch.Tensor) -> None:
        """Every process's embeddings ``[n_r, d]`` of ``nodes`` ``[n_r]`` at their positions
        ``[n_r]`` among the roots one process embeds for the window, written into this process's
        rows (a node's last position wins, as in ``TopKNegatives.observe``). A collective."""
        if self.table is None or self.warming_up:
            return
        device = self.table.device
        nodes = torch.cat(all_gather_rows(nodes.to(device)))
        embeddings = torch.cat(all_gather_rows(embeddings.detach().to(device, self.table.dtype)))
        positions = torch.cat(all_gather_rows(positions.to(device)))
        rows = self.rows(nodes) - self.offset
        mine = (rows >= 0) & (rows < self.table.shape[0])
        rows, embeddings, positions = rows[mine], embeddings[mine], positions[mine]
        last = torch.full((self.table.shape[0],), -1, dtype=torch.int64, device=device)
        last = last.scatter_reduce_(0, rows, positions, "amax")
        keep = positions == last[rows]
        self.table[rows[keep]] = embeddings[keep]

    def state_dict(self) -> dict:
        """As ``TopKNegatives.state_dict``, with the whole table (a collective: the rows of every
        process, gathered)."""
        state = super().state_dict()
        if self.table is not None:
            state["table"] = torch.cat(all_gather_rows(self.table)).cpu()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if self.table is not None:
            stop = self.offset + self.shard.numel()
            self.table = self.table[self.offset : stop].to(self.parallel.device)
