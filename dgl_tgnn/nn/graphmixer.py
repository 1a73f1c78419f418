"""GraphMixer (Cong et al., ICLR 2023, "Do We Really Need Complicated Model Architectures for Temporal
Networks?"): an MLP-mixer over each node's most recent links, and the mean of its neighbours' features.

The model reads one hop of the sampler: the ``K`` most recent earlier events of each root (``[R, K]``,
most recent first, strategy ``recent``). Each slot is a token: the event's features next to a fixed
cosine encoding of its age ``root time - event time``. The tokens of empty slots are zero vectors,
the mixer's output is mean-pooled over all ``K`` tokens (empty ones included), as in the authors' code.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dgl_tgnn.nn.attention import gather_rows
from dgl_tgnn.nn.blocks import HopBlock
from dgl_tgnn.nn.dropout import Dropout
from dgl_tgnn.nn.time_encoding import harmonic


def mixer_frequencies(dim: int) -> torch.Tensor:
    """The paper's fixed frequencies ``w_i = alpha^(-(i - 1) / beta)``, ``i = 1..dim``, with
    ``alpha = beta = sqrt(dim)``: ``[dim]`` float32, from 1 down to ``dim^(-(dim - 1) / (2 sqrt(dim)))``
    (``10^-9.9`` for ``dim = 100``; the authors' code spaces the exponents over ``[0, 9]`` instead)."""
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    alpha = beta = math.sqrt(dim)
    exponents = -torch.arange(dim, dtype=torch.float64) / beta
    return (alpha**exponents).to(torch.float32)


class MixerTimeEncoding(nn.Module):
    """``cos(dt * w)`` with the fixed ``w`` of :func:`mixer_frequencies` (no parameters).

    Forward: ``dt`` ``[...]`` float (seconds, or the events' time unit) -> ``[..., dim]`` float32.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("weight", mixer_frequencies(dim))
        self.register_buffer("bias", torch.zeros(dim))

    def forward(self, dt: torch.Tensor) -> torch.Tensor:
        flat = dt.reshape(-1).to(torch.float32)
        return harmonic(flat, self.weight, self.bias).view(*dt.shape, self.dim)


class FeedForward(nn.Sequential):
    """``Linear(dim, expansion * dim) -> GELU -> dropout -> Linear(., dim) -> dropout`` over the last
    dimension."""

    def __init__(self, dim: int, expansion: float, dropout: float) -> None:
        hidden = max(1, int(expansion * dim))
        super().__init__(
            nn.Linear(dim, hidden), nn.GELU(), Dropout(dropout), nn.Linear(hidden, dim), Dropout(dropout)
        )


class MixerBlock(nn.Module):
    """One MLP-mixer layer over ``[R, K, C]`` tokens: token mixing (a ``FeedForward`` across the ``K``
    tokens of each channel), then channel mixing (across the ``C`` channels of each token), each on
    the layer-normed input (over the channels) and added to it.

    Args:
        num_tokens: ``K``.
        channels: ``C``.
        token_expansion, channel_expansion: hidden widths of the two feed-forwards, as multiples of
            ``K`` and ``C`` (the paper's 0.5 and 4).
        dropout: after each linear map of the feed-forwards.
    """

    def __init__(
        self, num_tokens: int, channels: int, token_expansion: float, channel_expansion: float, dropout: float
    ) -> None:
        super().__init__()
        self.token_norm = nn.LayerNorm(channels)
        self.token_mix = FeedForward(num_tokens, token_expansion, dropout)
        self.channel_norm = nn.LayerNorm(channels)
        self.channel_mix = FeedForward(channels, channel_expansion, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mix(self.token_norm(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mix(self.channel_norm(x))


class GraphMixer(nn.Module):
    """GraphMixer's link and node encoders; their outputs, concatenated, go through one linear map.

    * Link encoder: token ``j`` of root ``v`` is ``Linear([e_j, cos(w (t - t_j))])`` (``e_j`` the
      edge features of the ``j``-th most recent event of ``v``, ``w`` fixed:
      :class:`MixerTimeEncoding`), a zero vector for an empty slot; ``num_layers`` :class:`MixerBlock`,
      a layer norm, then the mean over the ``K`` tokens: ``[R, embed_dim]``.
    * Node encoder: ``x_v`` plus the mean of ``x_u`` over the valid neighbours ``u`` of those ``K``
      events (0 without any): ``[R, node_dim]`` (absent when ``node_dim == 0``). The paper averages the
      neighbours of a time window; these are the same ``K`` recent ones.

    Args:
        node_dim: width of the node features (may be 0).
        edge_dim: width of the edge features (may be 0).
        time_dim: width of the time encoding.
        embed_dim: width of the tokens' channels and of the output.
        num_tokens: ``K``, the hop's fanout (the token-mixing layers are ``K`` wide).
        num_layers: mixer blocks.
        dropout: in the mixer's feed-forwards.
        token_expansion, channel_expansion: see :class:`MixerBlock`.

    Forward:
        blocks: one hop block ``[R, K]`` (the roots' most recent events).
        node_feat: ``[N, node_dim]`` float32, indexed by node id.
        edge_feat: ``[E, edge_dim]`` float32, indexed by event id.
        returns ``[R, embed_dim]`` float32 embeddings of ``blocks[0].root_nodes`` at ``root_times``.
    """

    def __init__(
        self,
        node_dim: int,
        edge_dim: int,
        time_dim: int,
        embed_dim: int,
        num_tokens: int,
        num_layers: int = 2,
        dropout: float = 0.1,
        token_expansion: float = 0.5,
        channel_expansion: float = 4.0,
    ) -> None:
        super().__init__()
        if num_tokens < 1 or num_layers < 1:
            raise ValueError(f"num_tokens and num_layers must be >= 1, got {num_tokens}, {num_layers}")
        self.node_dim, self.edge_dim, self.num_tokens = node_dim, edge_dim, num_tokens
        self.time_encoding = MixerTimeEncoding(time_dim)
        self.tokens = nn.Linear(edge_dim + time_dim, embed_dim)
        self.mixers = nn.ModuleList(
            MixerBlock(num_tokens, embed_dim, token_expansion, channel_expansion, dropout)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.out = nn.Linear(embed_dim + node_dim, embed_dim)

    def forward(
        self, blocks: list[HopBlock], node_feat: torch.Tensor, edge_feat: torch.Tensor
    ) -> torch.Tensor:
        if len(blocks) != 1:
            raise ValueError(f"GraphMixer reads one hop block, got {len(blocks)}")
        (block,) = blocks
        if block.fanout != self.num_tokens:
            raise ValueError(f"the block must have {self.num_tokens} slots per root, got {block.fanout}")
        if node_feat.dim() != 2 or node_feat.shape[1] != self.node_dim:
            raise ValueError(f"node_feat must have shape [N, {self.node_dim}], got {tuple(node_feat.shape)}")
        if edge_feat.dim() != 2 or edge_feat.shape[1] != self.edge_dim:
            raise ValueError(f"edge_feat must have shape [E, {self.edge_dim}], got {tuple(edge_feat.shape)}")
        mask = block.mask.unsqueeze(-1)  # [R, K, 1]
        parts = [gather_rows(edge_feat, block.nbr_eids), self.time_encoding(block.dt)]
        tokens = self.tokens(torch.cat(parts, dim=-1)) * mask  # [R, K, C], zero where empty
        for mixer in self.mixers:
            tokens = mixer(tokens)
        link = self.norm(tokens).mean(dim=1)  # [R, C]
        if self.node_dim == 0:
            return self.out(link)
        neighbours = (gather_rows(node_feat, block.nbr_nodes) * mask).sum(dim=1)
        count = mask.sum(dim=1).clamp(min=1)  # [R, 1]
        nodes = gather_rows(node_feat, block.root_nodes) + neighbours / count
        return self.out(torch.cat([link, nodes], dim=-1))
