"""``LinkPredictor``: score candidate destinations of sources at given times, and keep a model current.

The public scoring API (code outside the repository is tested against it)::

    p = LinkPredictor.load(run_dir)        # model, config, best checkpoint, the dataset's event stream
    p.reset(until=t)                       # state after every event strictly before time t
    p.observe(src, dst, t, edge_feat=None) # newer events, in time order; unknown ids add nodes
    s = p.score(src, t, candidates)        # [B, C] float32
    top = p.recommend(src, t, k=10, candidates=None, exclude_seen=False)  # .nodes, .scores [B, k]
    p.save(path); LinkPredictor.load(path) # the state after observing, restored exactly

Times are in the dataset's own units (as loaded). Node ids are the user's original ids (integers
or strings, ``node_ids.npy`` of the run), or the rows where the run has none (or, for bipartite
built-in datasets, ids that users and items share). Every model of the package and the
``edgebank`` baseline implement it; the evaluator of ``--protocol tgb`` ranks through it.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.profiler import record_function

from dgl_tgnn.node_ids import IdArray, NodeIds

if TYPE_CHECKING:
    from dgl_tgnn.config import RunConfig
    from dgl_tgnn.data import TemporalDataset


STAGES = ("memory", "keys", "queries", "retrieve", "embed", "score", "rank")
"""The steps of a two-stage ``recommend`` call, in order, each a torch profiler range named
``recommend.<step>`` (``bench/recommend_speed.py`` times them): TGN's memory brought up to the
query time; the pool's retrieval keys (cached between calls); the sources embedded; stage 1, the
``topk_dot`` shortlist and the sources' recent partners; the shortlisted nodes found and embedded;
stage 2, their decoder and pair-feature scores; the sort and the ``[B, k]`` top moved to the CPU."""


def stage(name: str) -> contextlib.AbstractContextManager:
    """The profiler range of step ``name`` of ``STAGES`` while a torch profiler runs, else nothing: a
    range costs about 6 us whether or not one runs (on 2 CPU cores), 2% of a query of 2 ms."""
    assert name in STAGES, name
    return record_function(f"recommend.{name}") if torch.autograd.profiler._is_profiler_enabled else _NO_RANGE


_NO_RANGE = contextlib.nullcontext()


@dataclass(frozen=True)
class Recommendations:
    """The top ``k`` destinations of each query of ``LinkPredictor.recommend``.

    Attributes:
        nodes: ``[B, k]`` node ids, best first (an int64 tensor, or a numpy str array for string ids);
            ``-1`` (``""``) pads rows with fewer than ``k`` candidates left.
        scores: ``[B, k]`` float32 scores, sorted descending; ``-inf`` pads.
    """

    nodes: torch.Tensor | np.ndarray
    scores: torch.Tensor


class LinkPredictor(ABC):
    """Scores (source, candidate destination) pairs at given times from the events observed so far.

    Subclasses keep a state (a graph, TGN's memory, EdgeBank's memory) that ``observe`` moves forward
    and ``reset`` rebuilds from the dataset's stream. Subclasses map the user's ids to rows with
    ``self.node_ids`` in ``score`` and ``observe`` (the stream's arrays are rows).
    """

    visible_batch: bool = False
    """``score`` at time ``t`` reads each source's observed events strictly before ``t`` (for some
    features), so a batch of queries may be observed before it is scored (``ranking.rank_stream``
    does); else it reads only those before the call's earliest time, and a batch is scored first."""

    score_budget: int = 1 << 22
    """``recommend`` scores about this many (query, candidate) pairs at a time (divided by the floats
    a pair takes: an MLP decoder's and the pair scorer's hidden layers): memory stays bounded."""

    def __init__(self, stream_src: np.ndarray, stream_dst: np.ndarray, stream_t: np.ndarray) -> None:
        self.stream_src, self.stream_dst, self.stream_t = stream_src, stream_dst, stream_t
        rows = int(max(stream_src.max(initial=-1), stream_dst.max(initial=-1))) + 1
        self.node_ids = NodeIds(None, rows)
        self.destinations = np.zeros(rows, dtype=bool)
        self.destinations[stream_dst] = True
        self._destination_pool: tuple[np.ndarray, int, torch.Tensor] | None = None  # (_pool)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> LinkPredictor:
        """The predictor of a run directory (its ``config.yaml`` and best checkpoint), its state
        after every event of the dataset; or a predictor that ``save`` wrote to the file ``path``."""
        from dgl_tgnn import run_dir as rd
        from dgl_tgnn.train import load_events

        path = Path(path)
        if path.is_file():
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # any unreadable file: the one-line error below
                state = None
            if not isinstance(state, dict) or "predictor" not in state:
                raise ValueError(f"{path}: not a saved predictor (LinkPredictor.save) nor a run directory")
            return predictor_class(state["model"]).from_state(state, torch.device(device))
        config_path = path / rd.CONFIG
        if not config_path.exists():
            raise ValueError(f"{path}: not a run directory (no config.yaml)")
        config = rd.load_run_config(path)
        dataset = load_events(config.data)
        predictor = predictor_class(config.model.name).from_run(path, config, dataset, torch.device(device))
        ids = np.load(path / rd.NODE_IDS) if (path / rd.NODE_IDS).exists() else None
        predictor.node_ids = NodeIds.of_run(ids, dataset.num_nodes)
        predictor.destinations = np.zeros(dataset.num_nodes, dtype=bool)
        predictor.destinations[dataset.dst_candidates] = True
        predictor.reset(float("inf"))
        return predictor

    def save(self, path: str | Path) -> None:
        """Writes the predictor with its state (every observed event, grown nodes, TGN's memory) to
        the file ``path``; ``LinkPredictor.load(path)`` restores it exactly."""
        torch.save({"predictor": 1, "node_ids": self.node_ids.state(), **self.state()}, Path(path))

    def state(self) -> dict[str, Any]:
        """What ``save`` writes besides the node ids (``"model"``: the predictor class's model name;
        tensors, numbers, strings and containers of them only)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be saved")

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> LinkPredictor:
        """The predictor ``save`` wrote (``state``: what ``state()`` returned, plus ``node_ids``)."""
        raise NotImplementedError(f"{cls.__name__} cannot be loaded from a saved state")

    @property
    def edge_dim(self) -> int:
        """Width of the event features ``observe`` takes (0: none)."""
        return 0

    @property
    def num_nodes(self) -> int:
        """Node rows: the run's, and those unknown ids added through ``observe``."""
        return self.node_ids.num_rows

    def _add_nodes(
        self, src: IdArray, dst: IdArray, t: torch.Tensor, latest: float, origin: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of new events' endpoints ``src``, ``dst`` at ``t`` ``[n]`` (float64, the predictor's
        units), unknown ids added as new nodes (``grow``); the destinations join the destination pool.
        First, before anything changes, ``observe``'s checks: one length, and times in order, none
        before ``latest`` (the latest observed event's; ``origin`` added for the message)."""
        src, dst = _id_array(src), _id_array(dst)
        if not len(src) == len(dst) == t.numel():
            raise ValueError(
                f"observe: src, dst and t of one length expected; got {len(src)}, {len(dst)}, {t.numel()}"
            )
        if t.numel() and (float(t[0]) < latest or bool((t[1:] < t[:-1]).any())):
            raise ValueError(
                f"observe: events must come in time order, none before the latest observed one "
                f"(t {latest + origin})"
            )
        before = self.node_ids.num_rows
        rows = self.node_ids.add(np.concatenate([src, dst]), "observe")
        if self.node_ids.num_rows > before:
            self.grow(self.node_ids.num_rows)
        src_rows, dst_rows = rows[: len(rows) // 2], rows[len(rows) // 2 :]
        self.destinations = np.concatenate(
            [self.destinations, np.zeros(self.num_nodes - len(self.destinations), dtype=bool)]
        )
        self.destinations[dst_rows.numpy()] = True
        return src_rows, dst_rows

    def score_arguments(
        self, src: IdArray, t: np.ndarray | torch.Tensor, candidates: IdArray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``score``'s arguments as rows ``src [B]``, times ``t [B]`` float64 (the data's units) and
        rows ``candidates [B, C]``; one-line ValueErrors on shapes and unknown ids."""
        cand = candidates.cpu().numpy() if isinstance(candidates, torch.Tensor) else np.asarray(candidates)
        src_rows = self.node_ids.rows(_id_array(src), "score")
        t = torch.as_tensor(np.asarray(t, dtype=np.float64))
        if cand.ndim != 2 or cand.shape[0] != src_rows.shape[0] or t.shape != src_rows.shape:
            raise ValueError(
                f"score: src [B], t [B] and candidates [B, C] expected; got {tuple(src_rows.shape)}, "
                f"{tuple(t.shape)}, {tuple(cand.shape)}"
            )
        return src_rows, t, self.node_ids.rows(cand, "score").reshape(cand.shape)

    def grow(self, num_nodes: int) -> None:
        """Make room for node rows up to ``num_nodes`` (new nodes start empty); nothing by default."""
        return

    @torch.no_grad()
    def recommend(
        self,
        src: IdArray,
        t: np.ndarray | torch.Tensor | float,
        k: int = 10,
        candidates: IdArray | None = None,
        exclude_seen: bool = False,
        shortlist: int | None = None,
    ) -> Recommendations:
        """The ``k`` best destinations of sources ``src [B]`` at times ``t [B]`` (float64, the data's
        units; a number applies to every source), from the events observed so far.

        Exact by default: the ranking of ``score`` over every candidate (ties: the smaller id first),
        computed in chunks of candidates (about ``score_budget`` pair scores at a time).

        Args:
            candidates: ``[C]`` distinct node ids, or None for the destination pool (the dataset's
                destinations and every destination observed since).
            exclude_seen: leave out the destinations each source met (as source) strictly before its
                ``t``.
            shortlist: two stages: the ``shortlist`` candidates of each source with the largest
                dot product (``topk_dot``; a dot decoder's or a ``model.dot_head``'s) and its recent
                partners, re-ranked by ``score``. Not exact: what the first stage misses is lost.

        Raises:
            ValueError: unknown ids, mismatched shapes, ``k`` outside ``[1, C]``, ``shortlist`` below
                ``k`` or on a model without a dot-product decoder or head.
        """
        src_rows = self.node_ids.rows(_id_array(src), "recommend: src")
        t = torch.as_tensor(np.asarray(t, dtype=np.float64))
        t = t.expand(src_rows.shape) if t.dim() == 0 else t
        if t.shape != src_rows.shape:
            raise ValueError(
                f"recommend: src [B] and t [B] expected; got {tuple(src_rows.shape)}, {tuple(t.shape)}"
            )
        pool = self._pool(candidates)
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= len(pool):
            raise ValueError(f"recommend: k must be an int in [1, {len(pool)}] (the candidates); got {k!r}")
        seen = self._seen_positions(src_rows, t, pool) if exclude_seen else None
        if shortlist is None:
            best, best_pos = self._exact_top(src_rows, t, pool, k, seen)
        else:
            refusal = self.shortlist_refusal(shortlist, k)
            if refusal is not None:
                raise ValueError(refusal)
            positions, scores = self.shortlist_scores(src_rows, t, pool, int(shortlist), seen)
            with stage("rank"):
                positions, order = positions.sort(dim=1)  # ties to the smaller id, as the exact path
                # sorted where they were scored: only the [B, k] top comes to the CPU
                best, best_pos = (x.cpu() for x in _top(scores.gather(1, order), positions, k))
        rows = torch.where(best == float("-inf"), -1, pool[best_pos.clamp(min=0)])
        return Recommendations(self.node_ids.ids(rows), best)

    def _exact_top(
        self, src: torch.Tensor, t: torch.Tensor, pool: torch.Tensor, k: int, seen: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, k]`` best scores and their pool positions over every candidate, chunk by chunk."""
        size = src.shape[0]
        best = torch.empty(size, 0, dtype=torch.float32)
        best_pos = torch.empty(size, 0, dtype=torch.int64)
        for lo, scores in self.pool_scores(src, t, pool):
            hi = lo + scores.shape[1]
            if seen is not None:
                inside = (seen[1] >= lo) & (seen[1] < hi)
                scores[seen[0][inside], seen[1][inside] - lo] = float("-inf")
            positions = torch.cat([best_pos, torch.arange(lo, hi).expand(size, -1)], dim=1)
            best, best_pos = _top(torch.cat([best, scores], dim=1), positions, k)
        return best, best_pos

    def shortlist_scores(
        self,
        src: torch.Tensor,
        t: torch.Tensor,
        pool: torch.Tensor,
        shortlist: int,
        seen: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, S]`` pool positions of each query's shortlist (``-1`` pads) and their ``[B, S]`` float32
        scores (``-inf`` pads), ``seen`` (``[2, P]`` query, position) left out; both on the CPU or
        both on the model's device."""
        raise ValueError(self.shortlist_unsupported())

    def shortlist_refusal(self, shortlist: object, k: int) -> str | None:
        """Why ``recommend(..., k=k, shortlist=shortlist)`` cannot shortlist, or None if it can."""
        if isinstance(shortlist, bool) or not isinstance(shortlist, int | np.integer) or shortlist < k:
            return f"recommend: shortlist must be an int >= k ({k}); got {shortlist!r}"
        return self.shortlist_unsupported()

    def shortlist_unsupported(self) -> str | None:
        """Why this predictor's model has no dot-product shortlist, or None if it has one."""
        return f"recommend: {type(self).__name__} has no dot-product shortlist (shortlist=None)"

    def _pool(self, candidates: IdArray | None) -> torch.Tensor:
        """``[C]`` int64 rows of the candidates (default: the destination pool), in ascending id order."""
        if candidates is not None:
            rows = self.node_ids.rows(_id_array(candidates), "recommend: candidates")
            if torch.unique(rows).numel() != rows.numel():
                raise ValueError("recommend: candidates must be distinct")
            return self._in_id_order(rows)
        # kept while ``destinations`` is the same array with as many destinations (the pool only
        # grows): sorting the ids is most of one query's time over 1e6 candidates
        count = int(np.count_nonzero(self.destinations))
        cached = self._destination_pool
        if cached is None or cached[0] is not self.destinations or cached[1] != count:
            rows = torch.from_numpy(np.flatnonzero(self.destinations))
            cached = self._destination_pool = self.destinations, count, self._in_id_order(rows)
        return cached[2]

    def _in_id_order(self, rows: torch.Tensor) -> torch.Tensor:
        """``rows [C]`` sorted by their node ids."""
        ids = self.node_ids.ids(rows)
        if isinstance(ids, np.ndarray):
            return rows[torch.from_numpy(np.argsort(ids, kind="stable"))]
        return rows[torch.argsort(ids, stable=True)]

    def pool_scores(
        self, src: torch.Tensor, t: torch.Tensor, pool: torch.Tensor
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """``(lo, [B, c] float32 scores)`` of rows ``src [B]`` at ``t [B]`` with consecutive chunks
        ``pool[lo:lo + c]`` of the candidate rows ``pool [C]``: ``score``'s values. Subclasses
        override it to share work across chunks."""
        chunk = max(1, self.score_budget // max(1, src.shape[0]))
        src_ids = self.node_ids.ids(src)
        for lo in range(0, pool.shape[0], chunk):
            part = self.node_ids.ids(pool[lo : lo + chunk])
            yield lo, self.score(src_ids, t, _expand_ids(part, src.shape[0])).float()

    def _seen_positions(self, src: torch.Tensor, t: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        """``[2, P]`` int64 (query, pool position) of the destinations each query's source met strictly
        before its time (``observed_events``)."""
        ev_src, ev_dst, ev_t = (x.numpy() for x in self.observed_events())
        q_src, q_t = src.numpy(), t.numpy()
        relevant = np.flatnonzero(np.isin(ev_src, q_src))
        by_src = np.argsort(q_src, kind="stable")
        lo = np.searchsorted(q_src[by_src], ev_src[relevant], side="left")
        hi = np.searchsorted(q_src[by_src], ev_src[relevant], side="right")
        counts = hi - lo
        events = np.repeat(relevant, counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        queries = by_src[np.repeat(lo, counts) + within]
        keep = ev_t[events] < q_t[queries]
        position = np.full(self.num_nodes, -1, dtype=np.int64)
        position[pool.numpy()] = np.arange(pool.shape[0])
        pairs = np.stack([queries[keep], position[ev_dst[events[keep]]]])
        return torch.from_numpy(pairs[:, pairs[1] >= 0])

    def observed_events(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``src``, ``dst`` ``[E]`` int64 rows and ``t`` ``[E]`` float64 (the data's units) of the
        events observed so far (``exclude_seen``)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no record of its events")

    @classmethod
    @abstractmethod
    def from_run(
        cls, run_dir: Path, config: RunConfig, dataset: TemporalDataset, device: torch.device
    ) -> LinkPredictor:
        """The predictor of ``run_dir`` (state: none observed)."""

    def reset(self, until: float) -> None:
        """State after every event of the dataset's stream with ``t < until``."""
        self.clear()
        keep = self.stream_t < until
        if keep.any():
            self.observe_stream(np.flatnonzero(keep))

    @abstractmethod
    def clear(self) -> None:
        """State with no event observed."""

    @abstractmethod
    def observe_stream(self, positions: np.ndarray) -> None:
        """Observe the stream's events at ``positions`` (ascending)."""

    @abstractmethod
    def observe(
        self,
        src: torch.Tensor,
        dst: torch.Tensor,
        t: torch.Tensor,
        edge_feat: torch.Tensor | None = None,
    ) -> None:
        """Newer events ``src``, ``dst`` ``[n]`` node ids at ``t`` ``[n]`` (time order, not before the
        last observed event), with their ``edge_feat [n, edge_dim]`` when the model uses features.
        Unknown ids become new nodes (``grow``; no history, zero memory and identity vector)."""

    @abstractmethod
    def score(self, src: torch.Tensor, t: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` float32 scores (higher: more likely) of sources ``src [B]`` at ``t [B]`` with
        each row of ``candidates [B, C]`` (node ids), from the events observed so far; a one-line
        ValueError on an unknown id (``score_arguments``)."""


def _top(values: torch.Tensor, positions: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest ``values [B, n]`` of each row with their ``positions [B, n]``: a stable sort,
    so equal values keep their order (positions ascending: the smaller id first)."""
    order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
    return values.gather(1, order), positions.gather(1, order)


def exclusion_matrix(seen: torch.Tensor, size: int) -> torch.Tensor:
    """``[B, m]`` int64 positions of each query's pairs in ``seen`` (``[2, P]`` query, position),
    ``-1`` padding the shorter rows (``topk_dot``'s ``exclude``)."""
    queries, positions = seen[0], seen[1]
    order = torch.argsort(queries, stable=True)
    queries, positions = queries[order], positions[order]
    counts = torch.bincount(queries, minlength=size)
    starts = torch.cumsum(counts, 0) - counts
    out = torch.full((size, int(counts.max()) if len(queries) else 0), -1, dtype=torch.int64)
    out[queries, torch.arange(len(queries)) - starts[queries]] = positions
    return out


def _id_array(ids: IdArray) -> np.ndarray:
    """Node ids (tensor, numpy array or sequence) as a 1-D numpy array."""
    return ids.cpu().numpy().reshape(-1) if isinstance(ids, torch.Tensor) else np.asarray(ids).reshape(-1)


def _expand_ids(ids: torch.Tensor | np.ndarray, rows: int) -> torch.Tensor | np.ndarray:
    """``ids [c]`` repeated as ``[rows, c]``."""
    if isinstance(ids, np.ndarray):
        return np.broadcast_to(ids, (rows, ids.shape[0]))
    return ids.expand(rows, -1)


def predictor_class(model: str) -> type[LinkPredictor]:
    """The predictor class of a model name (``edgebank`` or a trained model)."""
    if model == "edgebank":
        from dgl_tgnn.edgebank import EdgeBank

        return EdgeBank
    from dgl_tgnn.model_predictor import ModelPredictor

    return ModelPredictor
