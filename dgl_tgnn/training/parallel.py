"""Data-parallel training on ``torch.distributed`` (issue 21): the training step and the evaluation of
one process of ``G``.

Each step takes a window of ``G x B`` training events in time order (the batch of a single process
at ``--batch-size G x B``); process ``r`` embeds and scores its contiguous share of ``B`` events, and
``DistributedDataParallel`` all-reduces the gradients. What a single process at batch ``G x B``
computes, every process computes alike or for its share only:

- draws: the negatives of the whole window come from the sampler's generator on every process (the
  same stream, cheap), each keeps its rows; neighbours are drawn keyed by each root's (node, time) and
  the window (``Neighbourhoods(keyed=True)``), so a root draws what it draws in one process;
- the loss of a share is weighted by its share of the window, so that the averaged gradient is the
  window's; the reported loss is the window's (summed over processes);
- TGN: every process holds the whole memory and, after the step, stores the whole window's events
  as its pending messages (every process reads the window from its own copy of the stream, in the
  stream's (time, event id) order; ``distributed.gather_events`` merges events that only their own
  process holds), so every replica equals one process's memory;
- ``topk`` negatives: the candidate table split by rows (``ShardedTopKNegatives``; ``exclude_known``
  too, not ``similarity="decoder"``);
- pair features (``model.pair_history``): each process computes its share's, from the training
  events before the window's first;
- evaluation, at batch ``G x B`` (``window_config``): each process scores its share of each window,
  the scores and ranks are gathered (``ParallelEvaluator``), so the metrics are one process's. Under
  TGB's protocol a split is ranked through ``ParallelPredictor``: every process embeds the whole
  batch, as one process does, and decodes (and adds the pair features of) its share of the rows.

Not supported (``check_supported``): models that score pairs themselves (TPNet, DyGFormer), and
``similarity="decoder"`` topk negatives. Dropout masks are drawn per process: runs that compare
against one process use ``model.dropout: 0``.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dgl_tgnn.config import RunConfig
from dgl_tgnn.distributed.collectives import all_gather_rows
from dgl_tgnn.distributed.group import Parallel
from dgl_tgnn.distributed.negatives import ShardedTopKNegatives
from dgl_tgnn.evaluation import Evaluator
from dgl_tgnn.events import EventBatch
from dgl_tgnn.link import LinkModel
from dgl_tgnn.model_predictor import ModelPredictor
from dgl_tgnn.negatives import TopKNegatives
from dgl_tgnn.neighbourhoods import Embedder, Neighbourhoods
from dgl_tgnn.registry import MODELS
from dgl_tgnn.training.build import RunData
from dgl_tgnn.training.step import TrainingStep

_DDP_OPTIONS = inspect.signature(DistributedDataParallel.__init__).parameters


def check_supported(config: RunConfig) -> None:
    """A ValueError in one line for a setting that several processes do not support."""
    c = config
    if MODELS[c.model.name].pairs:
        raise ValueError(
            f"model {c.model.name} scores pairs itself: not supported with several processes; use --nproc 1"
        )
    if c.negatives.kind == "topk":
        ShardedTopKNegatives.check_supported(c.negatives.similarity)


class _Forward(nn.Module):
    """The model and the forward pass of a step as one module, for ``DistributedDataParallel``
    (one forward pass per backward pass, whatever the step embeds in between)."""

    def __init__(self, model: LinkModel, step: ParallelStep) -> None:
        super().__init__()
        self.model = model
        self._step = [step]  # (not a submodule)

    def forward(self, window: EventBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self._step[0].forward_share(window)


class ParallelStep(TrainingStep):
    """The training step of process ``parallel.rank`` of ``parallel.world`` (module docstring):
    ``step(window)`` trains on a window of ``G x B`` events and returns its loss.

    Built as ``TrainingStep`` (without CUDA graphs); ``topk`` negatives become
    ``ShardedTopKNegatives``.
    """

    def __init__(
        self,
        config: RunConfig,
        data: RunData,
        model: LinkModel,
        optimizer: torch.optim.Optimizer,
        neighbourhoods: Neighbourhoods,
        device: torch.device,
        parallel: Parallel,
    ) -> None:
        super().__init__(config, data, model, optimizer, neighbourhoods, device, cuda_graph=False)
        self.parallel = parallel
        if isinstance(self.negatives, TopKNegatives):
            self.negatives = ShardedTopKNegatives.of(self.negatives, parallel)
        # TGN's memory buffers are the same on every process by construction: never broadcast.
        sync = "forward_sync_buffers" if "forward_sync_buffers" in _DDP_OPTIONS else "broadcast_buffers"
        self.ddp = DistributedDataParallel(
            _Forward(model, self),
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=model.has_memory,  # TGN's memory modules idle at an epoch's start
            **{sync: False},
        )

    def __call__(self, window: EventBatch) -> torch.Tensor:
        """Trains on this process's share of ``window``; returns the window's loss (0-dim, detached,
        the same on every process). A collective: every process calls it with the same window."""
        self.neighbourhoods.next_round()
        weighted, loss, z, roots = self.ddp(window)
        self.optimizer.zero_grad(set_to_none=True)
        weighted.backward()
        self.optimizer.step()
        if isinstance(self.negatives, ShardedTopKNegatives):
            self.negatives.observe_share(roots, z.detach(), self._positions(window))
        self.model.observe(window, self.edge_feat)
        return self.parallel.sum(loss.detach())

    def _positions(self, window: EventBatch) -> torch.Tensor:
        """``[(2 + n) * B_r]`` the positions of this share's roots (sources, destinations, negatives)
        among the roots one process embeds for ``window`` (all sources, destinations, negatives)."""
        size, n = len(window), self.negatives.num_negatives
        lo, hi = self.parallel.bounds(size)
        events = torch.arange(lo, hi)
        negatives = (events[:, None] * n + torch.arange(n)).flatten()
        return torch.cat([events, size + events, 2 * size + negatives])

    def forward_share(
        self, window: EventBatch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The forward pass of this process's share of ``window``: ``(weighted, loss, z, roots)``,
        the loss to differentiate (the share's, times ``G x`` its share of the window: DDP averages
        the gradients), the share's part of the window's loss, the embeddings ``[(2 + n) B_r, d]``
        and their roots."""
        size, n = len(window), self.negatives.num_negatives
        lo, hi = self.parallel.bounds(size)
        share = hi - lo
        src, dst, t = window.src[lo:hi], window.dst[lo:hi], window.t[lo:hi]
        t0 = float(window.t[0])
        times = torch.full_like(t, t0) if self.tgb else t
        sharded = isinstance(self.negatives, ShardedTopKNegatives)
        if sharded and self.negatives.wants_queries:
            with self.model.sharing_memory_update():
                z_pos = self.embedder(torch.cat([src, dst]), torch.cat([times, times]), t0)
                neg = self.negatives.sample_share(window, lo, hi, z_pos[:share].detach())
                z = torch.cat([z_pos, self.embedder(neg.flatten(), times.repeat_interleave(n), t0)])
        else:
            if sharded:
                neg = self.negatives.sample_share(window, lo, hi, None)
            else:
                neg = self.negatives.sample(window)[lo:hi]
            roots = torch.cat([src, dst, neg.flatten()])
            z = self.embedder(roots, torch.cat([times, times, times.repeat_interleave(n)]), t0)
        roots = torch.cat([src, dst, neg.flatten()])
        if share == 0:  # nothing to score; every parameter takes a zero gradient
            zero = sum(p.sum() for p in self.model.parameters()) * 0.0 + z.sum() * 0.0
            return zero, zero, z, roots
        pair = self._pair_logits(src, t, dst, neg, window.t[0])
        loss = self._loss(z, share, n, pair) * (share / size)
        return loss * self.parallel.world, loss, z, roots


class ParallelEvaluator(Evaluator):
    """``Evaluator`` of process ``parallel.rank``: each process scores its share of each batch of
    ``G x B`` events and the scores and ranks are gathered, so every process computes the metrics
    of one process at batch ``G x B``. Candidate tables (``eval.negatives all``) are embedded in
    shares and gathered. A collective: every process evaluates the same streams."""

    def __init__(self, parallel: Parallel, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parallel = parallel

    def share(self, size: int) -> tuple[int, int]:
        return self.parallel.bounds(size)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(all_gather_rows(x.to(self.parallel.device))).to(x.device)

    def candidate_table(self, embed: Embedder, t0: float) -> torch.Tensor:
        lo, hi = self.parallel.bounds(self.candidates.numel())
        return self.gather(embed.at(self.candidates[lo:hi], t0))


class ParallelPredictor(ModelPredictor):
    """``ModelPredictor`` of process ``parallel.rank``, ranking a split under TGB's protocol:
    ``score`` of a batch embeds what one process embeds for the whole batch (its sources and
    candidates at its earliest time, in the same sampler calls: the same draws) and scores this
    process's share of the rows only (decoder and pair features: the bulk of the work against every
    destination); the shares are gathered, so every process gets one process's scores. A
    collective: every process scores the same batches. Not for models that score pairs themselves
    (``check_supported``)."""

    def __init__(self, parallel: Parallel, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parallel = parallel

    def _score(self, src: torch.Tensor, t: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        lo, hi = self.parallel.bounds(src.shape[0])
        t_ref = t.min()
        table, z_src, rows = self._embed_with(src, candidates.reshape(-1), t_ref)
        logits = self.model.score_table(z_src[lo:hi], table, rows.reshape(candidates.shape)[lo:hi])
        logits = self._plus_pair_logits(logits, src[lo:hi], t[lo:hi], t_ref, candidates[lo:hi])
        return torch.cat(all_gather_rows(logits.to(self.parallel.device))).to(logits.device)


def window_config(config: RunConfig, processes: int) -> RunConfig:
    """``config`` at the batch of one process equal to ``processes`` (G) processes: ``G x B`` events."""
    batch_size = processes * config.train.batch_size
    return dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=batch_size))
