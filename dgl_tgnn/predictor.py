"""``LinkPredictor``: score candidate destinations of sources at given times, and keep a model current.

The public scoring API (code outside the repository is tested against it)::

    p = LinkPredictor.load(run_dir)        # model, config, best checkpoint, the dataset's event stream
    p.reset(until=t)                       # state after every event strictly before time t
    p.observe(src, dst, t, edge_feat=None) # newer events, in time order
    s = p.score(src, t, candidates)        # [B, C] float32

Times are in the dataset's own units (as loaded). Every model of the package and the ``edgebank``
baseline implement it; the evaluator of ``--protocol tgb`` ranks through it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from dgl_tgnn.config import RunConfig
    from dgl_tgnn.data import TemporalDataset


class LinkPredictor(ABC):
    """Scores (source, candidate destination) pairs at given times from the events observed so far.

    Subclasses keep a state (a graph, TGN's memory, EdgeBank's memory) that ``observe`` moves forward
    and ``reset`` rebuilds from the dataset's stream.
    """

    def __init__(self, stream_src: np.ndarray, stream_dst: np.ndarray, stream_t: np.ndarray) -> None:
        self.stream_src, self.stream_dst, self.stream_t = stream_src, stream_dst, stream_t

    @classmethod
    def load(cls, run_dir: str | Path, device: str | torch.device = "cpu") -> LinkPredictor:
        """The predictor of a run directory (its ``config.yaml`` and best checkpoint), its state
        after every event of the dataset."""
        from dgl_tgnn.config import load_config
        from dgl_tgnn.train import load_events

        run_dir = Path(run_dir)
        config_path = run_dir / "config.yaml"
        if not config_path.exists():
            raise ValueError(f"{run_dir}: not a run directory (no config.yaml)")
        config = load_config(config_path)
        dataset = load_events(config.data)
        predictor = predictor_class(config.model.name).from_run(
            run_dir, config, dataset, torch.device(device)
        )
        predictor.reset(float("inf"))
        return predictor

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
        """Newer events ``src``, ``dst`` ``[n]`` int64 at ``t`` ``[n]`` (time order, not before the
        last observed event), with their ``edge_feat [n, edge_dim]`` when the model uses features."""

    @abstractmethod
    def score(self, src: torch.Tensor, t: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` float32 scores (higher: more likely) of sources ``src [B]`` at ``t [B]`` with
        each row of ``candidates [B, C]`` int64, from the events observed so far."""


def predictor_class(model: str) -> type[LinkPredictor]:
    """The predictor class of a model name (``edgebank`` or a trained model)."""
    if model == "edgebank":
        from dgl_tgnn.edgebank import EdgeBank

        return EdgeBank
    from dgl_tgnn.model_predictor import ModelPredictor

    return ModelPredictor
