"""EdgeBank (Poursafaei et al., 2022), TGB's memorization baseline, as a ``LinkPredictor``.

A candidate scores 1 when the pair (source, candidate) is in memory, else 0:

* ``unlimited``: every observed pair;
* ``window``: pairs last seen at or after ``latest - window``, where ``latest`` is the latest
  observed time and ``window = window_ratio * (span of the first events observed)``; TGB computes
  the span over the training events that fill the memory first (``reset``).

Nothing is trained: "training" fills the memory with the training events. Scores read every
observed event: scoring a time earlier than the latest observed event raises (``reset(until=...)``
first); events at the very time of a query count, as in TGB's EdgeBank.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dgl_tgnn.config import RunConfig
from dgl_tgnn.data import TemporalDataset
from dgl_tgnn.graph import as_times
from dgl_tgnn.node_ids import NodeIds
from dgl_tgnn.pair_table import PairTable
from dgl_tgnn.predictor import LinkPredictor

MODES = ("unlimited", "window")


class EdgeBank(LinkPredictor):
    """EdgeBank over a dataset's stream (``src``, ``dst``, ``t`` ``[E]`` numpy arrays).

    Args:
        mode: ``"unlimited"`` or ``"window"``.
        window_ratio: the window's length as a fraction of the first observed events' time span.
    """

    def __init__(
        self,
        src: np.ndarray,
        dst: np.ndarray,
        t: np.ndarray,
        mode: str = "unlimited",
        window_ratio: float = 0.15,
    ) -> None:
        super().__init__(src, dst, t)
        if mode not in MODES:
            raise ValueError(f"EdgeBank mode must be one of {', '.join(MODES)}; got {mode!r}")
        if not 0 < window_ratio <= 1:
            raise ValueError(f"window_ratio must be in (0, 1]; got {window_ratio}")
        self.mode, self.window_ratio = mode, window_ratio
        self.clear()

    @classmethod
    def from_run(
        cls, run_dir: Path, config: RunConfig, dataset: TemporalDataset, device: torch.device
    ) -> EdgeBank:
        return cls(dataset.src, dataset.dst, dataset.t, config.model.edgebank_mode, config.model.window_ratio)

    def clear(self) -> None:
        self.table = PairTable()
        self.window: float | None = None  # fixed by the first observed events
        self.latest = float("-inf")
        self.events: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # observed (rows)

    def observe_stream(self, positions: np.ndarray) -> None:
        self._observe(
            torch.from_numpy(self.stream_src[positions]),
            torch.from_numpy(self.stream_dst[positions]),
            torch.from_numpy(self.stream_t[positions]),
        )

    def observe(
        self,
        src: torch.Tensor,
        dst: torch.Tensor,
        t: torch.Tensor,
        edge_feat: torch.Tensor | None = None,
    ) -> None:
        t = as_times(t, "t").cpu()
        src_rows, dst_rows = self._add_nodes(src, dst, t, self.latest)
        self._observe(src_rows, dst_rows, t)

    def _observe(self, src: torch.Tensor, dst: torch.Tensor, t: torch.Tensor) -> None:
        """Events (rows) at ``t`` (``[n]`` float64), in time order, none before the latest observed
        event (``observe`` checks new ones)."""
        if src.numel() == 0:
            return
        if self.window is None:
            self.window = self.window_ratio * float(t.max() - t.min())
        self.latest = float(t.max())
        self.table.add(src, dst, t)
        self.events.append((src, dst, t))

    def score(self, src: torch.Tensor, t: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        src, t, candidates = self.score_arguments(src, t, candidates)
        if t.numel() and float(t.min()) < self.latest:
            raise ValueError(
                f"score at time {float(t.min())}: EdgeBank holds events up to {self.latest}; "
                "reset(until=...) to score earlier"
            )
        last = self.table.lookup(src[:, None], candidates)
        if self.mode == "window" and self.window is not None:
            hit = last >= self.latest - self.window
        else:
            hit = last > float("-inf")
        return hit.to(torch.float32)

    def observed_events(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if not self.events:
            empty = torch.empty(0, dtype=torch.int64)
            return empty, empty, torch.empty(0, dtype=torch.float64)
        return tuple(torch.cat(parts) for parts in zip(*self.events, strict=True))

    def state(self) -> dict[str, Any]:
        return {
            "model": "edgebank",
            "mode": self.mode,
            "window_ratio": self.window_ratio,
            "stream": [torch.from_numpy(a) for a in (self.stream_src, self.stream_dst, self.stream_t)],
            "events": [*self.observed_events()],
            "window": self.window,
            "destinations": torch.from_numpy(self.destinations),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> EdgeBank:
        src, dst, t = (x.numpy() for x in state["stream"])
        bank = cls(src, dst, t, state["mode"], state["window_ratio"])
        bank.node_ids = NodeIds.from_state(state["node_ids"])
        bank.destinations = state["destinations"].numpy().copy()
        bank._observe(*state["events"])
        bank.window = state["window"]  # fixed by the first observed events, not by this replay
        return bank
