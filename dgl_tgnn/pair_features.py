"""Features of (source, candidate) pairs from their recent histories: what lets a model see that
*this* source met *this* candidate before, how often, how recently, how habitual the source is, and
how busy the candidate is now.

For a source ``s`` queried at time ``t`` and a candidate ``c`` (the source's history read strictly
before ``t`` with ``visible_batch``, else strictly before ``t_ref <= t``, the batch's start; the
candidate's strictly before ``t_ref``): ``n_s`` of the ``H`` most recent events of ``s`` exist
(``u_s`` distinct partners among them, ``count`` of them with ``c``, the latest at ``last(s, c)``),
and ``n_c`` of the ``H`` most recent events of ``c`` (``u_c`` distinct partners). Times are in the
dataset's unit;
``lt(x) = log(1 + x) / 16`` keeps time differences of up to ~9e6 (months in seconds) near [0, 1], and
``ln(x) = log(1 + x) / log(1 + H)`` counts in [0, 1].

==  ==============================================================================================
0   1 if ``count > 0``
1   ``log(1 + count)``
2   ``lt(t - last(s, c))`` (0 when ``count = 0``)
3   ``1 / (1 + r)``, ``r`` = distinct partners of ``s`` met after ``last(s, c)`` (0 when
    ``count = 0``): the "most recently met first" order
4   1 if ``c`` has an event before ``t_ref``
5   ``lt(t - last(c))``: time since ``c``'s latest event (0 when none)
6   ``1 / (1 + q)``, ``q`` = distinct partners of ``c`` among its ``H`` most recent events met after
    ``last(s, c)`` (0 when ``count = 0``): whether ``s`` is still ``c``'s latest partner
7   ``ln(n_s)``: how active the source is
8   ``u_s / n_s``: how exploratory it is (0 when ``n_s = 0``)
9   ``lt(t - last(s))``: time since the source's latest event (0 when none)
10  ``lt(t - first(s))``: span of the source's ``H`` most recent events, from ``t`` (0 when none)
11  ``count / n_s``: the share of the source's recent events that are with ``c`` (0 when ``n_s = 0``)
12  ``log(1 + count among the 5 most recent events of s)``
13  ``log(1 + count among the 10 most recent events of s)``
14  ``ln(n_c)``: how active the candidate is
15  ``u_c / n_c`` (0 when ``n_c = 0``)
16  ``lt(t - first(c))``: span of the candidate's ``H`` most recent events, from ``t`` (0 when none)
17  ``log(1 + s's events among the H most recent of c)``
==  ==============================================================================================
"""

from __future__ import annotations

import math

import torch

from dgl_tgnn.graph import TemporalGraph
from dgl_tgnn.sampling import TemporalSampler

NUM_PAIR_FEATURES = 18
_TIME_SCALE = 16.0
_SHORT_WINDOWS = (5, 10)


class PairFeatures:
    """``[B, C, 18]`` float32 features (module docstring) of sources ``[B]`` with candidates ``[B, C]``.

    Args:
        graph: the events the histories are read from (strictly before ``t_ref``).
        history: ``H``, the most recent events of a source or candidate scanned.
        device: where the features are computed and returned.
        visible_batch: read each source's history up to its own time ``t`` (earlier events of its
            batch included, as ``train.visible_batch`` lets neighbours do), not up to ``t_ref``.
    """

    def __init__(
        self, graph: TemporalGraph, history: int, device: torch.device, *, visible_batch: bool
    ) -> None:
        self.history = history
        self.device = device
        self.visible_batch = visible_batch
        self.set_graph(graph)

    def set_graph(self, graph: TemporalGraph) -> None:
        """Read histories from ``graph`` from now on."""
        self.recent = TemporalSampler(graph, fanouts=[self.history], strategy="recent")

    def __call__(
        self,
        src: torch.Tensor,
        t: torch.Tensor,
        t_ref: torch.Tensor,
        candidates: torch.Tensor,
    ) -> torch.Tensor:
        """Features of ``src [B]`` int64 at ``t [B]`` float64 with ``candidates [B, C]`` int64 (ids >= 0),
        from the events strictly before ``t_ref`` (0-dim float64, ``<= t``), and the sources' events
        strictly before ``t`` with ``visible_batch``."""
        device = self.device
        src, t, candidates = src.to(device), t.to(device, torch.float64), candidates.to(device)
        t_ref = t_ref.to(device, torch.float64)
        size, width = candidates.shape
        if size == 0 or width == 0:
            return torch.zeros(size, width, NUM_PAIR_FEATURES, device=device)
        cut = t if self.visible_batch else t_ref.expand(size).contiguous()
        (mine,) = self.recent.sample(src, cut, check=False)
        nbr, nbr_t, mask = mine.nbr_nodes, mine.nbr_times, mine.mask  # [B, H], most recent first
        first_seen = _first_seen_times(nbr, nbr_t, mask)  # [B, H]
        activity, explore, latest, oldest = _history_stats(mask, nbr_t, first_seen, self.history)
        active = mask[:, 0]
        nodes, inverse = _unique(candidates)  # [U], [B, C]
        (theirs,) = self.recent.sample(nodes, t_ref.expand(nodes.shape[0]).contiguous(), check=False)
        their_first_seen = _first_seen_times(theirs.nbr_nodes, theirs.nbr_times, theirs.mask)  # [U, H]
        stats = _history_stats(theirs.mask, theirs.nbr_times, their_first_seen, self.history)
        c_activity, c_explore, c_latest, c_oldest = (x[inverse] for x in stats)  # [B, C] each
        c_active = theirs.mask[:, 0][inverse]

        # Each row's partners sorted, looked up for each candidate: [B, C] binary searches, not
        # [B, C, H] comparisons.
        span = int(torch.maximum(candidates.max(), nbr.max()).clamp(min=0)) + 1
        mine_sorted = _SortedRows(nbr, mask, span)
        left, right = mine_sorted.find(candidates)  # [B, C]
        count = (right - left).double()
        found = count > 0
        last = torch.where(found, mine_sorted.gather(nbr_t, left), float("-inf"))
        b, c = found.nonzero(as_tuple=True)  # the pairs met before: the rank features
        rank = torch.zeros_like(count)
        rank[b, c] = (first_seen[b] > last[b, c, None]).sum(-1).double()
        c_rank = torch.zeros_like(count)
        c_rank[b, c] = (their_first_seen[inverse[b, c]] > last[b, c, None]).sum(-1).double()
        short = []
        for window in _SHORT_WINDOWS:
            lo, hi = _SortedRows(nbr[:, :window], mask[:, :window], span).find(candidates)
            short.append((hi - lo).double())
        lo, hi = _SortedRows(theirs.nbr_nodes, theirs.mask, span).find(src[:, None], rows=inverse)
        met_by_them = (hi - lo).double()

        at = t[:, None]  # [B, 1]
        has = found
        n_src = mask.sum(-1, keepdim=True).clamp(min=1)
        columns = [
            has,
            torch.log1p(count),
            torch.where(has, _log_time(at - last), 0.0),
            torch.where(has, 1.0 / (1.0 + rank), 0.0),
            c_active,
            torch.where(c_active, _log_time(at - c_latest), 0.0),
            torch.where(has, 1.0 / (1.0 + c_rank), 0.0),
            activity[:, None],
            explore[:, None],
            torch.where(active, _log_time(t - latest), 0.0)[:, None],
            torch.where(active, _log_time(t - oldest), 0.0)[:, None],
            count / n_src,
            *(torch.log1p(x) for x in short),
            c_activity,
            c_explore,
            torch.where(c_active, _log_time(at - c_oldest), 0.0),
            torch.log1p(met_by_them),
        ]
        features = torch.empty(size, width, NUM_PAIR_FEATURES, dtype=torch.float32, device=device)
        for j, column in enumerate(columns):
            features[:, :, j] = column
        return features


class _SortedRows:
    """The ids of each row of ``ids [R, H]`` (``mask``-ed slots left out), sorted, for counting a
    row's slots that hold a given id by binary search. Ids are in ``[0, span)``."""

    def __init__(self, ids: torch.Tensor, mask: torch.Tensor, span: int) -> None:
        self.span = span + 1  # ``span`` marks a masked slot: no query matches it
        rows = torch.arange(ids.shape[0], device=ids.device)[:, None]
        sorted_ids, self.order = torch.where(mask, ids, span).sort(dim=1, stable=True)
        self.keys = (rows * self.span + sorted_ids).reshape(-1)  # ascending: rows, then ids
        self.width = ids.shape[1]

    def find(
        self, queries: torch.Tensor, rows: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[left, right)`` flat positions of the slots holding ``queries [B, C]`` in row ``b`` (or in
        row ``rows[b, c]``, broadcast against ``queries``): ``right - left`` of them, the most recent
        (lowest slot) at ``left`` since the sort is stable."""
        if rows is None:
            rows = torch.arange(queries.shape[0], device=queries.device)[:, None]
        keys = rows * self.span + queries
        return torch.searchsorted(self.keys, keys), torch.searchsorted(self.keys, keys, right=True)

    def gather(self, values: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
        """``values [R, H]`` of the slots at flat sorted positions ``at`` (clamped into range)."""
        at = at.clamp(max=self.keys.shape[0] - 1)
        row, col = at // self.width, at % self.width
        return values[row, self.order[row, col]]


def _unique(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(values, return_inverse=True)`` for ids ``>= 0``, by a presence table of
    ``max + 1`` entries rather than a sort (sources against every destination: ``B x C`` ids, few
    distinct)."""
    flat = values.reshape(-1)
    if flat.numel() == 0:
        return flat, values.clone()
    present = torch.zeros(int(flat.max()) + 1, dtype=torch.bool, device=values.device)
    present[flat] = True
    nodes = present.nonzero().squeeze(1)
    position = torch.empty(present.shape[0], dtype=torch.int64, device=values.device)
    position[nodes] = torch.arange(nodes.shape[0], device=values.device)
    return nodes, position[values]


def _log_time(dt: torch.Tensor) -> torch.Tensor:
    """``log(1 + dt) / 16`` of time differences ``dt >= 0`` (negatives clamp to 0)."""
    return torch.log1p(dt.clamp(min=0)) / _TIME_SCALE


def _history_stats(
    mask: torch.Tensor, nbr_t: torch.Tensor, first_seen: torch.Tensor, history: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Of recent-events rows ``mask``, ``nbr_t [R, H]`` (most recent first): ``ln(n)``, ``u / n`` (0 when
    ``n = 0``), and the latest and oldest event times (meaningless when ``n = 0``), each ``[R]``."""
    n = mask.sum(-1).double()
    distinct = (first_seen > float("-inf")).sum(-1).double()
    oldest = torch.where(mask, nbr_t, float("inf")).amin(-1)
    return torch.log1p(n) / math.log1p(history), distinct / n.clamp(min=1), nbr_t[:, 0], oldest


def _first_seen_times(nbr: torch.Tensor, nbr_t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[R, H]`` times of the slots of ``nbr [R, H]`` (most recent first) that hold their partner's
    latest event, ``-inf`` elsewhere: counting those after a time counts the distinct partners met
    since."""
    same = (nbr[:, :, None] == nbr[:, None, :]) & mask[:, None, :]  # [R, H, H]
    earlier = torch.ones_like(same[0], dtype=torch.bool).tril(-1)  # [j, k]: k < j
    first = mask & ~(same & earlier).any(-1)
    return torch.where(first, nbr_t, float("-inf"))
