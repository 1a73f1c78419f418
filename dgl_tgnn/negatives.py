"""Negative destinations for link prediction, behind one interface.

Every sampler draws, for each event of an :class:`~dgl_tgnn.events.EventBatch`, ``num_negatives``
destination node ids from a candidate pool, with its own seeded ``torch.Generator`` (its state is
part of :meth:`NegativeSampler.state_dict`, so a resumed run draws what an uninterrupted one would):

* :class:`UniformNegatives`: uniformly from the pool.
* :class:`HistoricalNegatives`: as DyGLib's "historical" strategy: half of the batch's negatives
  are destinations the source interacted with before the batch (and not in the batch), the
  rest, and every slot whose source has no such history, uniform.
* :class:`InductiveNegatives`: as DyGLib's "inductive" strategy: destinations the source met
  before the batch but never in training, topped up with uniform ones. Over a training stream
  nothing precedes the batch outside training, so it draws uniform negatives there.
* :class:`DegreeNegatives`: with probability proportional to each candidate's degree.
* :class:`TopKNegatives`: hard negatives (Gupta and Bedathur, arXiv 2402.09239): the ``K``
  candidates most similar to the (detached) source embedding, from a table of candidate
  embeddings refreshed every ``refresh`` batches and fed by each batch's embeddings.

The historical and inductive samplers, and ``topk`` with ``exclude_known``, look up a source's
earlier destinations in a :class:`PairHistory` of the stream. Each kind is registered in
:data:`~dgl_tgnn.registry.NEGATIVES` (``negatives.kind``) with a builder that makes the training
sampler from :class:`SamplerInputs`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from dgl_tgnn.config import SIMILARITIES, NegativeConfig
from dgl_tgnn.devices import to_device
from dgl_tgnn.events import EventBatch, EventStream
from dgl_tgnn.registry import NEGATIVES

EmbedFn = Callable[[torch.Tensor, float], torch.Tensor]
"""``embed(nodes [N] int64, time) -> [N, d]``: embeddings of ``nodes`` at ``time`` (seconds)."""
ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``score(queries [B, d], candidates [C, d]) -> [B, C]``: link logits of every (query, candidate)."""


@dataclass(frozen=True)
class SamplerInputs:
    """What a registered builder makes a training sampler from.

    Attributes:
        candidates: ``[N_c]`` int64 pool of negative destinations.
        train: the training stream (histories, degrees).
        num_nodes: ``N``, the dataset's node count.
        config: the ``negatives`` section of the run config.
        seed: seed of the sampler's generator.
        embed: embeddings of nodes at a time (with the model being trained).
        score: link logits of queries against candidates (the model's decoder).
    """

    candidates: torch.Tensor
    train: EventStream
    num_nodes: int
    config: NegativeConfig
    seed: int
    embed: EmbedFn
    score: ScoreFn

    @property
    def count(self) -> int:
        """Negatives per event: ``n_hard + n_rand``."""
        return self.config.n_hard + self.config.n_rand


SamplerBuilder = Callable[[SamplerInputs], "NegativeSampler"]
"""What ``NEGATIVES`` holds: the training sampler of a kind, from the run's inputs."""


class DeviceDraws(Protocol):
    """A sampler's draws on a GPU (``NegativeSampler.device_draws``): ``sample`` split in two,
    ``begin_batch`` on the host, then ``draw_on_device`` with fixed shapes and no host
    synchronisation, so that a CUDA graph can hold it."""

    def begin_batch(self, batch: EventBatch) -> None:
        """The host part of ``sample`` for ``batch``, before the draws."""

    def generator_on(self, device: torch.device) -> torch.Generator:
        """The generator of the draws on GPU ``device``: always the same object (a graph holds it)."""

    def draw_on_device(self, dst: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """``[B, num_negatives]`` int64 negatives on the GPU of ``queries [B, d]``, for events with
        destinations ``dst [B]`` there."""


class NegativeSampler:
    """Base class: a candidate pool, a count and a seeded generator.

    Args:
        candidates: ``[N_c]`` int64 node ids negatives are drawn from (distinct).
        num_negatives: negatives per event (``>= 1``).
        seed: seed of the sampler's generator.
    """

    observes: bool = False
    """True when the sampler keeps embeddings of its whole pool: it refreshes them with
    ``embed(candidates, time)`` and takes those each training batch computes through ``observe``."""
    refresh_seconds: float = 0.0
    """Seconds spent refreshing the pool's embeddings (reset by the training loop each epoch)."""

    def __init__(self, candidates: torch.Tensor, num_negatives: int, seed: int) -> None:
        candidates = torch.as_tensor(candidates, dtype=torch.int64).cpu()
        if candidates.dim() != 1 or candidates.numel() == 0:
            raise ValueError(f"candidates must be non-empty and 1-D, got shape {tuple(candidates.shape)}")
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
        self.candidates = candidates
        self.num_negatives = num_negatives
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0

    @property
    def wants_queries(self) -> bool:
        """True when :meth:`sample` needs the batch's source embeddings as ``queries``."""
        return False

    def start_epoch(self, epoch: int) -> None:
        """Called before the first batch of each training epoch (0-based)."""
        self.epoch = epoch

    def sample(self, batch: EventBatch, queries: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, num_negatives]`` int64 negative destination ids for the ``B`` events of ``batch``."""
        return self.uniform(len(batch), self.num_negatives)

    def observe(self, nodes: torch.Tensor, embeddings: torch.Tensor) -> None:
        """Receives the embeddings ``[n, d]`` a training batch computed for ``nodes [n]`` (called
        when ``observes``)."""

    def device_draws(self) -> DeviceDraws | None:
        """The draws on a GPU that a CUDA graph can hold, or None when the sampler draws on the host."""
        return None

    def uniform(self, rows: int, cols: int) -> torch.Tensor:
        """``[rows, cols]`` candidates drawn uniformly with replacement."""
        index = torch.randint(self.candidates.numel(), (rows, cols), generator=self.generator)
        return self.candidates[index]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.epoch = state["epoch"]


class UniformNegatives(NegativeSampler):
    """Destinations drawn uniformly (with replacement) from the pool; the true one is not excluded."""


@NEGATIVES.register("uniform", "uniformly from the pool")
def _uniform(inputs: SamplerInputs) -> NegativeSampler:
    return UniformNegatives(inputs.candidates, inputs.count, inputs.seed)


def _pick_valid(valid: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``[B, count]`` column indices drawn uniformly without replacement among the True entries of
    ``valid [B, m]`` (``-1`` where a row has fewer than ``count``)."""
    keys = torch.rand(valid.shape, generator=generator, dtype=torch.float64, device=valid.device)
    keys = torch.where(valid, keys, 2.0)
    chosen_keys, chosen = torch.topk(keys, min(count, valid.shape[1]), dim=1, largest=False)
    chosen = torch.where(chosen_keys < 2.0, chosen, -1)
    if chosen.shape[1] < count:
        pad = torch.full(
            (valid.shape[0], count - chosen.shape[1]), -1, dtype=torch.int64, device=valid.device
        )
        chosen = torch.cat([chosen, pad], dim=1)
    return chosen


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


class _PairNegatives(NegativeSampler):
    """Shared by the historical and inductive samplers: half the slots (at random) are drawn among
    the eligible destinations of the event's source, the rest uniformly."""

    def __init__(self, candidates: torch.Tensor, num_negatives: int, seed: int, history: PairHistory) -> None:
        super().__init__(candidates, num_negatives, seed)
        self.history = history

    def eligible(self, batch: EventBatch, known: torch.Tensor) -> torch.Tensor:
        """``[B, m]`` bool: which of ``known`` (the sources' earlier destinations) may be drawn."""
        raise NotImplementedError

    def sample(self, batch: EventBatch, queries: torch.Tensor | None = None) -> torch.Tensor:
        rows, n = len(batch), self.num_negatives
        negatives = self.uniform(rows, n)
        slots = torch.randperm(rows * n, generator=self.generator)[: rows * n // 2]
        if slots.numel() == 0:
            return negatives
        src = batch.src.cpu()
        known = self.history.known(src, batch.start)
        # A pair of the current batch is not a negative; neither is a node outside the pool.
        batch_keys = (src << 32) + batch.dst.cpu()
        valid = (known >= 0) & ~torch.isin((src[:, None] << 32) + known, batch_keys)
        valid &= torch.isin(known, self.candidates) & self.eligible(batch, known)
        slot_rows = slots // n
        pick = _pick_valid(valid[slot_rows], 1, self.generator)[:, 0]
        drawn = known[slot_rows, pick.clamp(min=0)]
        flat = negatives.reshape(-1)
        flat[slots] = torch.where(pick >= 0, drawn, flat[slots])
        return flat.reshape(rows, n)


class HistoricalNegatives(_PairNegatives):
    """DyGLib's historical negatives over a stream.

    Args:
        history: the (src, dst) pairs of the stream the batches are cut from.
    """

    def eligible(self, batch: EventBatch, known: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(known, dtype=torch.bool)


@NEGATIVES.register("historical", "destinations the source met before (DyGLib's), topped up with uniform")
def _historical(inputs: SamplerInputs) -> NegativeSampler:
    train = inputs.train
    return HistoricalNegatives(
        inputs.candidates, inputs.count, inputs.seed, PairHistory(train.src, train.dst)
    )


class InductiveNegatives(_PairNegatives):
    """DyGLib's inductive negatives: earlier destinations of the source never seen with it in training.

    Args:
        history: the (src, dst) pairs of the stream the batches are cut from.
        training: the (src, dst) pairs of the training stream.
    """

    def __init__(
        self,
        candidates: torch.Tensor,
        num_negatives: int,
        seed: int,
        history: PairHistory,
        training: PairHistory,
    ) -> None:
        super().__init__(candidates, num_negatives, seed, history)
        self.training = training

    def eligible(self, batch: EventBatch, known: torch.Tensor) -> torch.Tensor:
        trained = self.training.known(batch.src.cpu(), self.training.length)
        seen = (known[:, :, None] == trained[:, None, :]) & (trained[:, None, :] >= 0)
        return ~seen.any(dim=2)


@NEGATIVES.register(
    "inductive", "destinations the source met before, not in training (DyGLib's), topped up with uniform"
)
def _inductive(inputs: SamplerInputs) -> NegativeSampler:
    history = PairHistory(inputs.train.src, inputs.train.dst)  # (over the training stream: uniform)
    return InductiveNegatives(inputs.candidates, inputs.count, inputs.seed, history, history)


class DegreeNegatives(NegativeSampler):
    """Candidates drawn (with replacement) with probability proportional to their degree.

    Args:
        degree: ``[num_nodes]`` degree of every node (e.g. its number of training events); the
            pool's total degree must be positive.
    """

    def __init__(self, candidates: torch.Tensor, num_negatives: int, seed: int, degree: torch.Tensor) -> None:
        super().__init__(candidates, num_negatives, seed)
        weights = torch.as_tensor(degree, dtype=torch.float64).cpu()[self.candidates]
        if (weights < 0).any() or not weights.sum() > 0:
            raise ValueError("degree must be >= 0 with a positive total over the candidates")
        cdf = torch.cumsum(weights, 0)
        self._cdf = cdf / cdf[-1]

    def sample(self, batch: EventBatch, queries: torch.Tensor | None = None) -> torch.Tensor:
        u = torch.rand((len(batch), self.num_negatives), generator=self.generator, dtype=torch.float64)
        index = torch.searchsorted(self._cdf, u, right=True).clamp(max=self.candidates.numel() - 1)
        return self.candidates[index]


@NEGATIVES.register("degree", "proportional to degree")
def _degree(inputs: SamplerInputs) -> NegativeSampler:
    train = inputs.train
    degree = torch.bincount(torch.cat([train.src, train.dst]), minlength=inputs.num_nodes)
    return DegreeNegatives(inputs.candidates, inputs.count, inputs.seed, degree)


def topk_by_score(
    score: ScoreFn, queries: torch.Tensor, table: torch.Tensor, k: int, exclude: torch.Tensor, chunk: int
) -> torch.Tensor:
    """``[B, k]`` rows of ``table`` with the largest ``score(queries, rows)``, ``exclude [B, m]``
    rows (``-1`` padded) left out, scanning ``chunk`` rows of ``table`` at a time; ``-1`` where a
    query has fewer than ``k`` rows left."""
    best_values = torch.full((queries.shape[0], 0), float("-inf"), device=queries.device)
    best_index = torch.zeros((queries.shape[0], 0), dtype=torch.int64, device=queries.device)
    exclude = exclude.to(queries.device)
    for lo in range(0, table.shape[0], chunk):
        hi = min(lo + chunk, table.shape[0])
        values = score(queries, table[lo:hi]).float()
        columns = torch.arange(lo, hi, device=queries.device)
        excluded = (exclude[:, :, None] == columns[None, None, :]).any(dim=1)
        values = values.masked_fill(excluded, float("-inf"))
        values = torch.cat([best_values, values], dim=1)
        index = torch.cat([best_index, columns.expand(queries.shape[0], -1)], dim=1)
        best_values, pos = torch.topk(values, min(k, values.shape[1]), dim=1)
        best_index = torch.gather(index, 1, pos)
    return torch.where(torch.isfinite(best_values), best_index, -1)


class TopKNegatives(NegativeSampler):
    """Hard negatives from the ``k`` candidates nearest to each source (arXiv 2402.09239).

    Each batch draws ``n_hard`` negatives uniformly without replacement among the ``k`` candidates
    most similar to the batch's (detached) source embeddings, and ``n_rand`` uniform ones. The
    candidates' embeddings live in a table ``[N_c, d]`` that is recomputed with ``embed`` (no
    gradient) at the batch's first event time every ``refresh`` batches and at each epoch's first
    batch, and between refreshes is fed by :meth:`observe` with the embeddings each training batch
    computes anyway. The true destination is never a hard negative; with ``exclude_known``,
    neither is any destination the source interacted with up to the end of the batch. During the
    first ``warmup_epochs`` epochs all ``n_hard + n_rand`` negatives are uniform.

    Args:
        candidates: ``[N_c]`` int64 pool node ids.
        n_hard, n_rand: hard and uniform negatives per event.
        k: size of the nearest set (``n_hard <= k <= N_c``).
        refresh: full table refresh every this many batches (``>= 1``).
        warmup_epochs: epochs of uniform negatives before hard ones.
        similarity: ``"dot"``, ``"cosine"`` (both through the fused ``topk_dot``), or ``"decoder"``
            (``score``, the model's own link logits, in chunks of ``chunk`` candidates).
        embed: embeddings of the pool at a time, for the refresh.
        history: the (src, dst) pairs of the training stream (needed by ``exclude_known``).
        score: link logits of queries against candidates (needed by ``similarity="decoder"``).
    """

    def __init__(
        self,
        candidates: torch.Tensor,
        *,
        n_hard: int,
        n_rand: int,
        k: int,
        refresh: int,
        warmup_epochs: int,
        similarity: str,
        exclude_known: bool,
        embed: EmbedFn,
        seed: int,
        history: PairHistory | None = None,
        score: ScoreFn | None = None,
        chunk: int = 4096,
    ) -> None:
        super().__init__(candidates, n_hard + n_rand, seed)
        num_candidates = self.candidates.numel()
        if not 1 <= n_hard <= k:
            raise ValueError(f"n_hard must be in [1, k={k}], got {n_hard}")
        if n_rand < 0:
            raise ValueError(f"n_rand must be >= 0, got {n_rand}")
        if k > num_candidates:
            raise ValueError(f"k must be <= the {num_candidates} candidates, got {k}")
        if refresh < 1:
            raise ValueError(f"refresh must be >= 1, got {refresh}")
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        if similarity == "decoder" and score is None:
            raise ValueError("similarity='decoder' needs the score function")
        if exclude_known and history is None:
            raise ValueError("exclude_known needs the training stream's history")
        self.n_hard, self.n_rand, self.k = n_hard, n_rand, k
        self.refresh, self.warmup_epochs = refresh, warmup_epochs
        self.similarity, self.exclude_known = similarity, exclude_known
        self.embed, self.score, self.history, self.chunk = embed, score, history, chunk
        self.row_of = torch.full((int(self.candidates.max()) + 1,), -1, dtype=torch.int64)
        self.row_of[self.candidates] = torch.arange(num_candidates)
        self.seed = seed
        # On a GPU (queries on CUDA, no exclude_known) negatives are drawn there, with a generator
        # of the GPU (seeded with ``seed``; restored from ``load_state_dict`` when first used).
        self._on_device: dict[str, torch.Tensor] = {}  # candidates and row_of on the GPU
        self._device_generator: torch.Generator | None = None
        self._device_generator_state: torch.Tensor | None = None
        self.table: torch.Tensor | None = None
        self.batches_since_refresh = 0
        self.refreshes = 0

    observes = True

    @property
    def warming_up(self) -> bool:
        return self.epoch < self.warmup_epochs

    def device_draws(self) -> DeviceDraws | None:
        """Itself, but None with ``exclude_known``: its history lives on the host."""
        return None if self.exclude_known else self

    @property
    def wants_queries(self) -> bool:
        return not self.warming_up

    def start_epoch(self, epoch: int) -> None:
        super().start_epoch(epoch)
        self.batches_since_refresh = 0

    def rows(self, nodes: torch.Tensor) -> torch.Tensor:
        """Table row of each node id (``-1`` for nodes outside the pool or ``-1`` ids), on the device
        of ``nodes`` (on a GPU without synchronising)."""
        row_of = self.on_device("row_of", nodes.device) if nodes.is_cuda else self.row_of
        inside = (nodes >= 0) & (nodes < row_of.numel())
        return torch.where(inside, row_of[nodes.clamp(0, row_of.numel() - 1)], -1)

    def _refresh(self, time_s: float) -> None:
        began = time.perf_counter()
        with torch.no_grad():
            table = self.embed(self.candidates, time_s).detach()
        if self.table is not None and self.table.is_cuda and self.table.shape == table.shape:
            self.table.copy_(table)  # in place: a CUDA graph reads the table where it was captured
        else:
            self.table = table
        self.refreshes += 1
        self.refresh_seconds += time.perf_counter() - began

    def _nearest(self, queries: torch.Tensor, exclude: torch.Tensor, check: bool = True) -> torch.Tensor:
        """``[B, k]`` table rows nearest to ``queries [B, d]`` by ``similarity``, never those of
        ``exclude [B, m]`` (``-1`` pads); on the device of ``queries``. ``check``: as ``topk_dot``'s."""
        from dgl_tgnn.topk import topk_dot

        assert self.table is not None
        queries = queries.detach().to(self.table.dtype)
        exclude = to_device(exclude, queries.device)
        if self.similarity == "decoder":
            assert self.score is not None
            with torch.no_grad():
                return topk_by_score(self.score, queries, self.table, self.k, exclude, self.chunk)
        cosine = self.similarity == "cosine"
        _, index = topk_dot(queries, self.table, self.k, exclude=exclude, normalize=cosine, check=check)
        return index

    def _draw(self, nearest: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The negatives of events whose nearest table rows are ``nearest [B, k]`` (``-1``: none):
        ``n_hard`` drawn uniformly without replacement among those rows (uniformly from the pool
        where too few), then ``n_rand`` uniform ones; ``[B, n_hard + n_rand]`` node ids, drawn
        with ``generator`` on the device of ``nearest``."""
        device, rows = nearest.device, nearest.shape[0]
        candidates = self.on_device("candidates", device)
        pick = _pick_valid(nearest >= 0, self.n_hard, generator)
        hard_rows = torch.gather(nearest, 1, pick.clamp(min=0))
        fallback = torch.randint(candidates.numel(), (rows, self.n_hard), generator=generator, device=device)
        hard = torch.where(pick >= 0, candidates[hard_rows.clamp(min=0)], candidates[fallback])
        uniform = torch.randint(candidates.numel(), (rows, self.n_rand), generator=generator, device=device)
        return torch.cat([hard, candidates[uniform]], dim=1)

    def sample(self, batch: EventBatch, queries: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, n_hard + n_rand]`` int64 negatives; on the GPU of ``queries`` when they are on one
        (and ``exclude_known`` is off: its history lives on the host), else on the host."""
        rows = len(batch)
        if self.warming_up:
            return self.uniform(rows, self.num_negatives)
        if queries is None or queries.shape[0] != rows:
            got = None if queries is None else tuple(queries.shape)
            raise ValueError(f"topk negatives need queries [{rows}, d], got {got}")
        self.begin_batch(batch)
        if queries.is_cuda and not self.exclude_known:
            return self.draw_on_device(to_device(batch.dst, queries.device), queries)
        exclude = self.rows(batch.dst)[:, None]
        if self.exclude_known:
            assert self.history is not None
            known = self.history.known(batch.src, batch.stop)
            exclude = torch.cat([exclude, torch.where(known >= 0, self.rows(known), -1)], dim=1)
        return self._draw(self._nearest(queries, exclude).cpu(), self.generator)

    def on_device(self, name: str, device: torch.device) -> torch.Tensor:
        """``candidates`` or ``row_of`` on ``device`` (copied once; the same tensor every call, which
        a CUDA graph may hold). ``cuda`` names the current GPU."""
        if name not in ("candidates", "row_of"):
            raise ValueError(f"name must be 'candidates' or 'row_of', got {name!r}")
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if name not in self._on_device or self._on_device[name].device != device:
            self._on_device[name] = getattr(self, name).to(device)
        return self._on_device[name]

    def begin_batch(self, batch: EventBatch) -> None:
        """The part of ``sample`` before the draws (after the warm-up): the table refresh when due
        (every ``refresh`` batches and at an epoch's first), and the count of batches."""
        if self.batches_since_refresh % self.refresh == 0:
            self._refresh(float(batch.t[0]))
        self.batches_since_refresh += 1

    def generator_on(self, device: torch.device) -> torch.Generator:
        """The generator of the draws on GPU ``device`` (one GPU: the first asked for): seeded with
        ``seed`` when first made, then always the same object (a CUDA graph holds it), restored by
        ``load_state_dict``."""
        if self._device_generator is None:
            self._device_generator = torch.Generator(device).manual_seed(self.seed)
            if self._device_generator_state is not None:
                self._device_generator.set_state(self._device_generator_state)
                self._device_generator_state = None
        return self._device_generator

    def draw_on_device(self, dst: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """The draws of ``sample`` (after ``begin_batch``) on the GPU of ``queries`` ``[B, d]``, for
        events with destinations ``dst`` ``[B]`` there: the same draws in distribution as on the
        host, from ``generator_on``; fixed shapes and no host synchronisation (a CUDA graph can
        hold it). Returns ``[B, n_hard + n_rand]`` int64 node ids on that GPU."""
        exclude = self.rows(dst)[:, None]  # in [-1, N_c): valid by construction
        nearest = self._nearest(queries, exclude, check=False)
        return self._draw(nearest, self.generator_on(queries.device))

    def observe(self, nodes: torch.Tensor, embeddings: torch.Tensor) -> None:
        """Writes ``embeddings [n, d]`` (detached) into the table rows of ``nodes [n]`` in the pool (a
        node's last occurrence wins), with ``nodes``, ``embeddings`` and the table on one device.
        With fixed shapes, so that on a GPU nothing synchronises: every occurrence of a row writes
        the value of the row's last occurrence, and nodes outside the pool rewrite row 0 with its
        final value."""
        if self.table is None or self.warming_up:
            return
        rows = self.rows(nodes)
        positions = torch.arange(rows.shape[0], device=rows.device)
        # last[r + 1]: the last occurrence of row r, -1 if none (last[0] gathers the rows outside).
        last = torch.full((self.table.shape[0] + 1,), -1, dtype=torch.int64, device=rows.device)
        last = last.scatter_reduce_(0, rows + 1, positions, "amax")
        target = rows.clamp(min=0)
        source = last[target + 1]
        new = embeddings.detach()[source.clamp(min=0)].to(self.table.dtype)
        value = torch.where((source >= 0)[:, None], new, self.table[target])
        self.table.index_put_((target,), value)

    def state_dict(self) -> dict:
        generator = self._device_generator
        return super().state_dict() | {
            "table": self.table,
            "batches_since_refresh": self.batches_since_refresh,
            "refreshes": self.refreshes,
            "device_generator": self._device_generator_state if generator is None else generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.table = state["table"]
        self.batches_since_refresh = state["batches_since_refresh"]
        self.refreshes = state["refreshes"]
        generator_state = state["device_generator"]  # None: no device generator made yet
        if self._device_generator is None:
            self._device_generator_state = generator_state
        elif generator_state is None:
            self._device_generator.manual_seed(self.seed)
        else:  # the same object: a CUDA graph may hold it
            self._device_generator.set_state(generator_state)


@NEGATIVES.register("topk", "hard negatives of arXiv 2402.09239")
def _topk(inputs: SamplerInputs) -> NegativeSampler:
    n, train = inputs.config, inputs.train
    return TopKNegatives(
        inputs.candidates,
        n_hard=n.n_hard,
        n_rand=n.n_rand,
        k=n.k,
        refresh=n.refresh,
        warmup_epochs=n.warmup_epochs,
        similarity=n.similarity,
        exclude_known=n.exclude_known,
        embed=inputs.embed,
        seed=inputs.seed,
        history=PairHistory(train.src, train.dst) if n.exclude_known else None,
        score=inputs.score,
    )
