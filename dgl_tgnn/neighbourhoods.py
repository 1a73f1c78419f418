"""Sampled neighbourhoods of (node, time) roots, and the embeddings a model computes over them.

:class:`Neighbourhoods` samples the hop blocks of roots from one graph (and times the sampler);
:class:`Embedder` runs a :class:`~dgl_tgnn.link.LinkModel` over them, in chunks.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch

from dgl_tgnn.devices import to_device
from dgl_tgnn.graph import TemporalGraph
from dgl_tgnn.link import LinkModel
from dgl_tgnn.sampling import TemporalBlock, TemporalSampler


class Neighbourhoods:
    """Samples the hop blocks of roots from one ``TemporalGraph`` and times it.

    With ``visible_batch`` (TGN's original code, TGLite, TGM) a root at time ``t`` sees every event
    strictly before ``t``, earlier events of its own batch included. Without it, neighbours are
    drawn strictly before the batch's first event time ``batch_start`` while the roots keep their
    own times for the time encoding (the graph as it was before the batch was inserted).

    Args:
        graph: the events neighbours are drawn from.
        fanouts: neighbours per hop.
        strategy: ``"uniform"`` or ``"recent"``.
        seed: seed of the sampler (uniform strategy).
        threads: sampler threads (None: its default).
        visible_batch: see above.
        device: where the blocks are returned.
        dedup: deduplicate the roots of deeper hops (``TemporalSampler(dedup=True)``).
        keyed: uniform draws keyed by each root's (node, time) and by the round, which ``next_round``
            advances once per batch (``TemporalSampler(keyed=True)``), not by the root's position
            and the call: the draws of a batch's roots do not depend on how the batch is split into
            calls, chunks or processes.
    """

    def __init__(
        self,
        graph: TemporalGraph,
        fanouts: list[int],
        strategy: str,
        seed: int,
        threads: int | None,
        visible_batch: bool,
        device: torch.device,
        *,
        dedup: bool = False,
        keyed: bool = False,
    ) -> None:
        self.sampler = TemporalSampler(
            graph,
            fanouts=fanouts,
            strategy=strategy,
            seed=seed,
            num_threads=threads,
            dedup=dedup,
            keyed=keyed,
        )
        self.visible_batch = visible_batch
        self.device = device
        self.seconds = 0.0

    def __call__(
        self, nodes: torch.Tensor, times: torch.Tensor, batch_start: float | torch.Tensor
    ) -> list[TemporalBlock]:
        """Blocks of roots ``nodes [R]`` int64 at ``times [R]`` float64 (``>= batch_start``, seconds:
        a float, or a 0-dim float64 tensor on ``device``, which a CUDA graph reads at each replay)."""
        began = time.perf_counter()
        # The sampler runs on the model's device (on a GPU without reading back its input check, one
        # synchronisation: the roots are valid node ids and finite times by construction).
        nodes, times = to_device(nodes, self.device), to_device(times, self.device)
        if self.visible_batch:
            blocks = self.sampler.sample(nodes, times, check=False)
        else:
            if isinstance(batch_start, torch.Tensor):
                start = batch_start.expand(times.shape).contiguous()
            else:
                start = torch.full_like(times, batch_start)
            blocks = self.sampler.sample(nodes, start, check=False)
            blocks[0] = dataclasses.replace(blocks[0], root_times=times)
        self.seconds += time.perf_counter() - began
        return blocks

    def next_round(self) -> None:
        """Keyed: the next batch's round (its draws); without keys each call draws anew anyway."""
        if self.sampler.keyed:
            self.sampler.calls += 1

    @property
    def replayable(self) -> bool:
        """True when a captured call may be replayed for other roots: nothing synchronises (no
        deduplication). Uniform draws too: on a GPU the kernels read the call number there."""
        return not self.sampler.dedup

    def count_replay(self, calls: int) -> None:
        """Count the sampler calls a replayed CUDA graph made, as ``state_dict`` records them."""
        self.sampler.count_replayed(calls)

    def state_dict(self) -> dict[str, int]:
        """The sampler's call counter (keyed: its round): its draws are a function of (seed, call
        number)."""
        return {"calls": self.sampler.calls}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.calls = state["calls"]


@dataclass
class Embedder:
    """Embeds roots with ``model`` over neighbourhoods from ``neighbourhoods``, in chunks."""

    model: LinkModel
    neighbourhoods: Neighbourhoods
    node_feat: torch.Tensor
    edge_feat: torch.Tensor
    chunk: int = 4096

    def __call__(self, nodes: torch.Tensor, times: torch.Tensor, batch_start: float) -> torch.Tensor:
        """``[R, embed_dim]`` embeddings of ``nodes [R]`` at ``times [R]`` float64."""
        if nodes.shape[0] <= self.chunk:
            blocks = self.neighbourhoods(nodes, times, batch_start)
            return self.model(blocks, self.node_feat, self.edge_feat)
        parts = [
            self(nodes[lo : lo + self.chunk], times[lo : lo + self.chunk], batch_start)
            for lo in range(0, nodes.shape[0], self.chunk)
        ]
        return torch.cat(parts)

    def at(self, nodes: torch.Tensor, time_s: float) -> torch.Tensor:
        """``[R, embed_dim]`` embeddings of ``nodes [R]``, all at ``time_s``."""
        return self(nodes, torch.full((nodes.shape[0],), time_s, dtype=torch.float64), time_s)


@dataclass
class PairLogits:
    """Logits of (source, candidate) pairs from a ``model`` that scores pairs itself
    (``LinkModel.scores_pairs``), over one-hop neighbourhoods from ``neighbourhoods``: the sources'
    at their times, each distinct candidate's once, at the reference time."""

    model: LinkModel
    neighbourhoods: Neighbourhoods
    node_feat: torch.Tensor
    edge_feat: torch.Tensor

    def __call__(
        self, src: torch.Tensor, times: torch.Tensor, t_ref: float | torch.Tensor, candidates: torch.Tensor
    ) -> torch.Tensor:
        """``[B, C]`` logits of sources ``src [B]`` at ``times [B]`` float64 (``>= t_ref``) with
        ``candidates [B, C]``, from the events and the model's state strictly before ``t_ref``."""
        device = self.neighbourhoods.device
        t_ref = torch.as_tensor(t_ref, dtype=torch.float64).to(device)
        nodes, index = torch.unique(candidates.to(device), return_inverse=True)
        (src_block,) = self.neighbourhoods(src, times, t_ref)
        (cand_block,) = self.neighbourhoods(nodes, t_ref.expand(nodes.shape[0]).contiguous(), t_ref)
        return self.model.pair_logits(src_block, cand_block, index, t_ref, self.node_feat, self.edge_feat)
