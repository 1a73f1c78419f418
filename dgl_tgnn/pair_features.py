"""Features of (source, candidate) pairs from the source's recent history: what lets a model see
that *this* source met *this* candidate before, how often, how recently, and how busy the
candidate is now.

For a source ``s`` queried at time ``t`` (its history read strictly before ``t_ref <= t``, the
batch's start) and a candidate ``c``, from the ``H`` most recent events of ``s`` and the latest event
of ``c``:

==  ==============================================================================================
0   1 if ``c`` is among the partners of those ``H`` events
1   ``log(1 + count)``: how many of them are with ``c``
2   ``log(1 + t - last(s, c)) / 16``: time since the latest of them (0 when none)
3   ``1 / (1 + r)``, ``r`` = distinct partners of ``s`` met after ``last(s, c)`` (0 when none): the
    "most recently met first" order
4   1 if ``c`` has an event before ``t_ref``
5   ``log(1 + t - last(c)) / 16``: time since ``c``'s latest event (0 when none)
6   ``1 / (1 + q)``, ``q`` = distinct partners of ``c`` among its ``H`` most recent events met after
    ``last(s, c)`` (0 when ``s`` never met ``c``): whether ``s`` is still ``c``'s latest partner
==  ==============================================================================================
"""

from __future__ import annotations

import torch

from dgl_tgnn.graph import TemporalGraph
from dgl_tgnn.sampling import TemporalSampler

NUM_PAIR_FEATURES = 7
_TIME_SCALE = 16.0  # log1p of time differences of up to ~9e6 (months in seconds) stays near [0, 1]


class PairFeatures:
    """``[B, C, 7]`` float32 features (module docstring) of sources ``[B]`` with candidates ``[B, C]``.

    Args:
        graph: the events the histories are read from (strictly before ``t_ref``).
        history: ``H``, the source's most recent events scanned.
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
        (block,) = self.recent.sample(src, t_ref.expand(size).contiguous(), check=False)
        nbr, nbr_t, mask = block.nbr_nodes, block.nbr_times, block.mask  # [B, H], most recent first
        match = (nbr[:, None, :] == candidates[:, :, None]) & mask[:, None, :]  # [B, C, H]
        count = match.sum(-1)
        has = count > 0
        last = torch.where(match, nbr_t[:, None, :], float("-inf")).amax(-1)  # [B, C]
        rank = (_first_seen_times(nbr, nbr_t, mask)[:, None, :] > last[:, :, None]).sum(-1)  # [B, C]
        dt_pair = torch.where(has, t[:, None] - last, 0.0)
        nodes, inverse = torch.unique(candidates, return_inverse=True)
        (recent,) = self.recent.sample(nodes, t_ref.expand(nodes.shape[0]).contiguous(), check=False)
        cand_has = recent.mask[:, 0][inverse]
        cand_last = recent.nbr_times[:, 0][inverse]
        dt_cand = torch.where(cand_has, t[:, None] - cand_last, 0.0)
        cand_first = _first_seen_times(recent.nbr_nodes, recent.nbr_times, recent.mask)  # [U, H]
        cand_rank = (cand_first[inverse] > last[:, :, None]).sum(-1)  # [B, C]
        features = [
            has.double(),
            torch.log1p(count.double()),
            torch.log1p(dt_pair.clamp(min=0)) / _TIME_SCALE,
            torch.where(has, 1.0 / (1.0 + rank.double()), 0.0),
            cand_has.double(),
            torch.log1p(dt_cand.clamp(min=0)) / _TIME_SCALE,
            torch.where(has, 1.0 / (1.0 + cand_rank.double()), 0.0),
        ]
        return torch.stack(features, dim=-1).float()


def _first_seen_times(nbr: torch.Tensor, nbr_t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[R, H]`` times of the slots of ``nbr [R, H]`` (most recent first) that hold their partner's
    latest event, ``-inf`` elsewhere: counting those after a time counts the distinct partners met
    since."""
    same = (nbr[:, :, None] == nbr[:, None, :]) & mask[:, None, :]  # [R, H, H]
    earlier = torch.ones_like(same[0], dtype=torch.bool).tril(-1)  # [j, k]: k < j
    first = mask & ~(same & earlier).any(-1)
    return torch.where(first, nbr_t, float("-inf"))
