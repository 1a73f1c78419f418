"""Features of (source, candidate) pairs from their recent histories: what lets a model see that
*this* source met *this* candidate before, how often, how recently, how habitual the source is, and
how busy the candidate is now.

For a source ``s`` queried at time ``t`` (histories read strictly before ``t_ref <= t``, the batch's
start) and a candidate ``c``: ``n_s`` of the ``H`` most recent events of ``s`` exist (``u_s`` distinct
partners among them, ``count`` of them with ``c``, the latest at ``last(s, c)``), and ``n_c`` of the
``H`` most recent events of ``c`` (``u_c`` distinct partners). Times are in the dataset's unit;
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
    """

    def __init__(self, graph: TemporalGraph, history: int, device: torch.device) -> None:
        self.history = history
        self.device = device
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
        using the events strictly before ``t_ref`` (0-dim float64, ``<= t``)."""
        device = self.device
        src, t, candidates = src.to(device), t.to(device, torch.float64), candidates.to(device)
        t_ref = t_ref.to(device, torch.float64)
        size, width = candidates.shape
        (mine,) = self.recent.sample(src, t_ref.expand(size).contiguous(), check=False)
        nbr, nbr_t, mask = mine.nbr_nodes, mine.nbr_times, mine.mask  # [B, H], most recent first
        match = (nbr[:, None, :] == candidates[:, :, None]) & mask[:, None, :]  # [B, C, H]
        count = match.sum(-1)
        has = count > 0
        last = torch.where(match, nbr_t[:, None, :], float("-inf")).amax(-1)  # [B, C]
        first_seen = _first_seen_times(nbr, nbr_t, mask)  # [B, H]
        rank = (first_seen[:, None, :] > last[:, :, None]).sum(-1)  # [B, C]
        activity, explore, latest, oldest = _history_stats(mask, nbr_t, first_seen, self.history)
        active = mask[:, 0]

        nodes, inverse = torch.unique(candidates, return_inverse=True)
        (theirs,) = self.recent.sample(nodes, t_ref.expand(nodes.shape[0]).contiguous(), check=False)
        their_first_seen = _first_seen_times(theirs.nbr_nodes, theirs.nbr_times, theirs.mask)  # [U, H]
        stats = _history_stats(theirs.mask, theirs.nbr_times, their_first_seen, self.history)
        c_activity, c_explore, c_latest, c_oldest = (x[inverse] for x in stats)  # [B, C] each
        c_active = theirs.mask[:, 0][inverse]
        c_rank = (their_first_seen[inverse] > last[:, :, None]).sum(-1)  # [B, C]
        met_by_them = ((theirs.nbr_nodes[inverse] == src[:, None, None]) & theirs.mask[inverse]).sum(-1)

        at = t[:, None]  # [B, 1]
        per_source = [
            activity,
            explore,
            torch.where(active, _log_time(t - latest), 0.0),
            torch.where(active, _log_time(t - oldest), 0.0),
        ]
        features = [
            has.double(),
            torch.log1p(count.double()),
            torch.where(has, _log_time(at - last), 0.0),
            torch.where(has, 1.0 / (1.0 + rank.double()), 0.0),
            c_active.double(),
            torch.where(c_active, _log_time(at - c_latest), 0.0),
            torch.where(has, 1.0 / (1.0 + c_rank.double()), 0.0),
            *(x[:, None].expand(size, width) for x in per_source),
            count.double() / mask.sum(-1, keepdim=True).clamp(min=1),
            *(torch.log1p(match[..., :w].sum(-1).double()) for w in _SHORT_WINDOWS),
            c_activity,
            c_explore,
            torch.where(c_active, _log_time(at - c_oldest), 0.0),
            torch.log1p(met_by_them.double()),
        ]
        return torch.stack(features, dim=-1).float()


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
