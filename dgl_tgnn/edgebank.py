"""EdgeBank (Poursafaei et al., 2022), TGB's memorization baseline, as a ``LinkPredictor``.

A candidate scores 1 when the pair (source, candidate) is in memory, else 0:

* ``unlimited``: every observed pair;
* ``window``: pairs last seen at or after ``latest - window``, where ``latest`` is the latest
  observed time and ``window = window_ratio * (span of the first events observed)``; TGB computes
  the span over the training events that fill the memory first (``reset``).

Nothing is trained: "training" fills the memory with the training events.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dgl_tgnn.config import RunConfig
from dgl_tgnn.data import TemporalDataset
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

    def observe_stream(self, positions: np.ndarray) -> None:
        self.observe(
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
        if src.numel() == 0:
            return
        t = torch.as_tensor(t, dtype=torch.float64).cpu()
        if self.window is None:
            self.window = self.window_ratio * float(t.max() - t.min())
        self.latest = max(self.latest, float(t.max()))
        self.table.add(torch.as_tensor(src).cpu(), torch.as_tensor(dst).cpu(), t)

    def score(self, src: torch.Tensor, t: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        last = self.table.lookup(torch.as_tensor(src).cpu()[:, None], torch.as_tensor(candidates).cpu())
        if self.mode == "window" and self.window is not None:
            hit = last >= self.latest - self.window
        else:
            hit = last > float("-inf")
        return hit.to(torch.float32)
