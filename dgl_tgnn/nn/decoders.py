"""Link decoders: a score for each (source, destination) embedding pair."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Activations of one chunk of pairs, in floats (4 MB): scoring a large [B, C] in chunks of this size
# keeps each chunk's hidden layer in cache, where one pass over all of it went to memory several times
# (200 x 1,000 pairs on a 2-core CPU: 3-5x faster). Outputs are the same.
_CHUNK_FLOATS = 1 << 20


class MLPDecoder(nn.Module):
    """TGN's merge layer: ``W_2 relu(W_1 [z_src || z_dst] + b_1) + b_2``.

    ``W_1`` is kept as two halves so that ``z_src`` ``[..., d]`` and ``z_dst`` ``[..., d]`` broadcast
    against each other (e.g. ``[B, 1, d]`` sources with ``[B, n, d]`` negatives).
    Forward: ``z_src``, ``z_dst`` ``[B, d]`` float32 -> logits ``[B]`` (broadcast leading dims in general).
    """

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.src_hidden = nn.Linear(embed_dim, embed_dim)
        self.dst_hidden = nn.Linear(embed_dim, embed_dim, bias=False)
        self.out = nn.Linear(embed_dim, 1)

    def forward(self, z_src: torch.Tensor, z_dst: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.src_hidden(z_src) + self.dst_hidden(z_dst))).squeeze(-1)

    def score_table(self, z_src: torch.Tensor, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``forward(z_src[b], table[index[b, c]])`` as ``[B, C]``, from ``z_src [B, d]``, ``table [U, d]``
        and ``index [B, C]`` int64: the destination half of ``W_1`` runs once per table row, and the
        hidden layer ``[B, C, d]`` is formed a few sources at a time."""
        src, dst = self.src_hidden(z_src), self.dst_hidden(table)
        size, width = index.shape
        rows = max(1, _CHUNK_FLOATS // max(1, width * src.shape[1]))
        parts = [
            self.out((src[lo : lo + rows, None, :] + dst[index[lo : lo + rows]]).relu_()).squeeze(-1)
            for lo in range(0, size, rows)
        ]
        return torch.cat(parts) if parts else src.new_zeros(0, width)


class DotDecoder(nn.Module):
    """``z_src . z_dst``. Forward: ``[B, d]``, ``[B, d]`` -> logits ``[B]`` (leading dims broadcast)."""

    def forward(self, z_src: torch.Tensor, z_dst: torch.Tensor) -> torch.Tensor:
        return (z_src * z_dst).sum(-1)

    def score_table(self, z_src: torch.Tensor, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``forward(z_src[b], table[index[b, c]])`` as ``[B, C]`` (see ``MLPDecoder.score_table``)."""
        return (z_src @ table.T).gather(1, index)


class PairScorer(nn.Module):
    """A logit from features of a (source, candidate) pair, an MLP with two hidden layers:
    ``w_3 relu(W_2 relu(W_1 f + b_1) + b_2) + b_3``.

    Forward: ``features [..., num_features]`` float32 -> logits ``[...]``, added to the decoder's.
    """

    def __init__(self, num_features: int, hidden: int = 64) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(num_features, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 1),
        )
        self.hidden = hidden

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """In chunks of pairs whose hidden layers stay in cache (``_CHUNK_FLOATS``)."""
        flat = features.reshape(-1, features.shape[-1])
        rows = max(1, _CHUNK_FLOATS // self.hidden)
        if flat.shape[0] <= rows:
            return self.mlp(flat).view(features.shape[:-1])
        logits = torch.cat([self.mlp(flat[lo : lo + rows]) for lo in range(0, flat.shape[0], rows)])
        return logits.view(features.shape[:-1])


class DotHead(nn.Module):
    """A retrieval head beside a decoder: ``(W_q z_src) . (W_k z_dst)``, a dot product that
    ``topk_dot`` can search. Forward: ``[B, d]``, ``[B, d]`` -> logits ``[B]`` (leading dims broadcast).
    """

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(embed_dim, embed_dim, bias=False)
        self.key = nn.Linear(embed_dim, embed_dim, bias=False)

    def forward(self, z_src: torch.Tensor, z_dst: torch.Tensor) -> torch.Tensor:
        return (self.query(z_src) * self.key(z_dst)).sum(-1)
