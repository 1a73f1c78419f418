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

import torch

from dgl_tgnn import ops
from dgl_tgnn.devices import to_device
from dgl_tgnn.graph import TemporalGraph
from dgl_tgnn.sampling import TemporalSampler

NUM_PAIR_FEATURES = 18


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
        # (a CPU tensor reaches a GPU through a pinned copy: the host does not wait for the GPU)
        src, candidates = to_device(src, device), to_device(candidates, device)
        t, t_ref = to_device(t.double(), device), to_device(t_ref.double(), device)
        size, width = candidates.shape
        if size == 0 or width == 0:
            return torch.zeros(size, width, NUM_PAIR_FEATURES, device=device)
        cut = t if self.visible_batch else t_ref.expand(size).contiguous()
        (mine,) = self.recent.sample(src, cut, check=False)  # [B, H], most recent first
        nodes, inverse = _unique(candidates)  # [U], [B, C]
        (theirs,) = self.recent.sample(nodes, t_ref.expand(nodes.shape[0]).contiguous(), check=False)
        return ops.pair_features(
            src,
            t,
            candidates,
            inverse,
            mine.nbr_nodes,
            mine.nbr_times,
            mine.mask,
            theirs.nbr_nodes,
            theirs.nbr_times,
            theirs.mask,
            check=False,
        )


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
