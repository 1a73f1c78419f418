"""What the temporal layers read from a hop of sampled neighbourhoods.

:class:`~dgl_tgnn.sampling.TemporalBlock` (from ``TemporalSampler``) is one; the layers depend on
this protocol, not on the sampler.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class HopBlock(Protocol):
    """One hop of ``R`` roots with ``k`` neighbour slots each."""

    @property
    def root_nodes(self) -> torch.Tensor:
        """``[R]`` int64 node ids (``-1`` for padding roots of deeper hops)."""

    @property
    def nbr_nodes(self) -> torch.Tensor:
        """``[R, k]`` int64 neighbour ids, ``-1`` where a slot is empty."""

    @property
    def nbr_eids(self) -> torch.Tensor:
        """``[R, k]`` int64 event ids of the neighbours (rows of the edge features), ``-1`` where empty."""

    @property
    def mask(self) -> torch.Tensor:
        """``[R, k]`` bool, True where a slot holds a neighbour."""

    @property
    def nbr_index(self) -> torch.Tensor | None:
        """None, or ``[R, k]`` int64 row of each slot among the next hop's (deduplicated) roots."""

    @property
    def num_roots(self) -> int:
        """``R``."""

    @property
    def fanout(self) -> int:
        """``k``."""

    @property
    def dt(self) -> torch.Tensor:
        """``[R, k]`` float64 seconds from each neighbour's event to its root's time, ``0`` where empty."""

    def to_dgl(self) -> Any:
        """This hop as a ``dgl.DGLBlock`` (see ``TemporalBlock.to_dgl``)."""
