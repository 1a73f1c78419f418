"""DyGFormer (Yu et al., NeurIPS 2023, "Towards Better Dynamic Graph Learning: New Architecture and
Unified Library"): a Transformer over the recent interactions of both endpoints of a link.

**Sequences.** A root ``a`` at its time ``t`` has the sequence of ``L = 1 + k`` tokens: ``a`` itself
(no event, ``dt = 0``; DyGLib's first slot) and its ``k`` most recent neighbours (the hop block's
slots; empty slots are padding and never count nor attend). A token ``w`` is
``[node features of w, event features, phi(t - t_e), c(w)]``.

**Co-occurrence.** For a pair ``(u, v)`` the token ``w`` of either sequence has the counts
``n_u(w)``, ``n_v(w)`` of its node among the valid tokens of ``u``'s and ``v``'s sequences, and
``c(w) = f(n_u(w)) + f(n_v(w))`` with ``f`` an MLP ``1 -> D -> D`` of one count.

**Patches and Transformer.** Each sequence is cut into ``ceil(L / P)`` patches of ``P`` tokens; each
of the four feature groups of a patch (its ``P`` tokens' features side by side) is projected to
``C`` channels and the four are concatenated (``4 C`` wide). The patches of ``u`` and ``v`` together
pass through pre-norm Transformer encoder layers (patches without a valid token are masked out of
attention and pooling; DyGLib attends to them), each side's patches are averaged and mapped to
``h_u``, ``h_v`` (``out_dim``), and the logit is ``MLP([h_u, h_v])`` (DyGLib's merge layer).

**Cost.** Only ``c`` depends on the pair. The projection of a patch's ``c`` is linear in the ``f``
of each of its tokens' counts, so it is ``sum_j W_j f(n_self) + sum_j W_j f(n_other)``: the first sum
is computed once per root, the second is read from a table of ``W_j f(n)`` for ``n = 0..L``; the
other three groups are computed once per root. Per pair only the cross counts (a ``[L, L]``
comparison) and the Transformer remain, computed in chunks of pairs to a memory budget.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from dgl_tgnn.nn.blocks import HopBlock
from dgl_tgnn.nn.time_encoding import TimeEncoding


def cooccurrence_counts(
    ids: torch.Tensor, mask: torch.Tensor, other_ids: torch.Tensor, other_mask: torch.Tensor
) -> torch.Tensor:
    """``[..., L]`` int64: how many valid tokens of ``other_ids [..., M]`` (``other_mask``) hold the
    node of each token of ``ids [..., L]``; ``0`` where ``mask [..., L]`` is False. Leading dims
    broadcast; one ``[..., L, M]`` comparison, no Python loop."""
    same = (ids.unsqueeze(-1) == other_ids.unsqueeze(-2)) & other_mask.unsqueeze(-2)
    return same.sum(-1) * mask


def _projection(width: int, channels: int) -> nn.Linear:
    """``Linear(width, channels)``; at ``width`` 0 its output is its bias alone, a learnt constant
    (whose empty weight PyTorch warns it cannot initialise)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Initializing zero-element tensors is a no-op")
        return nn.Linear(width, channels)


class _Sequences:
    """What one side of the pairs reads that does not depend on the pair, for ``R`` roots of a hop
    block: the sequences' node ids and mask ``[R, L]`` (root first), the patches' valid mask
    ``[R, Np]``, and the patches' projections without the pair's co-occurrence part ``[R, Np, 4C]``
    (the node, event and time groups, and the root's own counts ``f(n_self)``)."""

    def __init__(
        self,
        model: DyGFormer,
        block: HopBlock,
        node_feat: torch.Tensor,
        edge_feat: torch.Tensor,
        table: torch.Tensor,
    ) -> None:
        roots = block.root_nodes
        size = roots.shape[0]
        valid_root = (roots >= 0)[:, None]
        self.ids = torch.cat([roots[:, None], block.nbr_nodes], dim=1)  # [R, L]
        self.mask = torch.cat([valid_root, block.mask], dim=1)
        length = self.ids.shape[1]
        patch = model.patch_size
        pad = -length % patch
        self.mask = F.pad(self.mask, (0, pad))  # [R, Np * P]
        self.ids = F.pad(self.ids, (0, pad), value=-1)
        self.patch_mask = self.mask.view(size, -1, patch).any(-1)  # [R, Np]
        keep = self.mask[..., None]
        groups = [model.node_proj(model.patches(node_feat[self.ids.clamp(min=0)] * keep))]
        eids = F.pad(torch.cat([block.nbr_eids.new_full((size, 1), -1), block.nbr_eids], 1), (0, pad))
        feats = edge_feat[eids.clamp(min=0)] * (keep & (eids >= 0)[..., None])
        groups.append(model.edge_proj(model.patches(feats)))
        dt = F.pad(torch.cat([block.dt.new_zeros(size, 1), block.dt], dim=1), (0, pad))
        groups.append(model.time_proj(model.patches(model.time_enc(dt) * keep)))
        own = cooccurrence_counts(self.ids, self.mask, self.ids, self.mask)  # [R, Np * P]
        groups.append(model.cooc_patch(own, self.mask, table) + model.cooc_proj.bias)
        self.static = torch.cat(groups, dim=-1)  # [R, Np, 4 C]


class _EncoderLayer(nn.Module):
    """Pre-norm Transformer encoder layer over ``[P, T, D]`` with a key mask ``[P, T]``: multi-head
    self-attention, then a feed-forward ``D -> 4D -> D`` (GELU), each with dropout and a residual."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, 4 * dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(4 * dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        size, tokens, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(size, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        drop = self.dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :], dropout_p=drop)
        attended = attended.transpose(1, 2).reshape(size, tokens, dim)
        x = x + F.dropout(self.out(attended), drop, self.training)
        return x + self.ffn(self.norm2(x))


class DyGFormer(nn.Module):
    """DyGFormer's pair encoder (module docstring), a ``link.PairEncoder`` without state.

    Its ``forward`` gives node-level embeddings (what hard negatives are drawn by): a root's sequence
    alone through the Transformer (cross counts 0), averaged and mapped to ``out_dim``.

    Args:
        node_dim, edge_dim: widths of the node and event features (0 when none: that group of every
            patch is then a learnt constant, the bias of its projection, as DyGLib's zero features
            give it; the patch width is ``4 C`` either way, as DyGLib's).
        time_dim: width of the time encoding of ``t - t_e`` (seconds, as DyGLib: no log).
        neighbours: ``k``, recent neighbours per root (the hop block's fanout); ``L = 1 + k``.
        patch_size: ``P``.
        channels: ``C``, channels of each feature group of a patch (DyGLib: 50).
        cooc_dim: ``D``, width of ``f`` (DyGLib: 50).
        layers, heads, dropout: of the Transformer.
        out_dim: width of ``h_u``, ``h_v`` (DyGLib: the node feature width, 172).
        learnable_time: learnable time encoding frequencies.
    """

    pair_budget: dict[str, int] = {"cpu": 1 << 23, "cuda": 1 << 29}  # noqa: RUF012 (read only)
    """Floats of the activations of one chunk of pairs (about ``64 Np W`` per pair: ``Np`` patches a
    side, of width ``W``), by device type."""

    def __init__(
        self,
        node_dim: int,
        edge_dim: int,
        *,
        time_dim: int,
        neighbours: int,
        patch_size: int,
        channels: int,
        cooc_dim: int,
        layers: int,
        heads: int,
        dropout: float,
        out_dim: int,
        learnable_time: bool,
    ) -> None:
        super().__init__()
        width = 4 * channels
        if patch_size < 1 or neighbours < 1 or width % heads:
            raise ValueError(
                f"dygformer needs patch_size >= 1, neighbours >= 1 and heads dividing the patch width "
                f"{width}; got {patch_size}, {neighbours}, {heads}"
            )
        self.node_dim, self.edge_dim, self.patch_size = node_dim, edge_dim, patch_size
        self.neighbours, self.width = neighbours, width
        self.length = 1 + neighbours
        self.num_patches = -(-self.length // patch_size)
        self.time_enc = TimeEncoding(time_dim, learnable_time)
        self.node_proj = _projection(patch_size * node_dim, channels)
        self.edge_proj = _projection(patch_size * edge_dim, channels)
        self.time_proj = nn.Linear(patch_size * time_dim, channels)
        self.cooc = nn.Sequential(nn.Linear(1, cooc_dim), nn.ReLU(), nn.Linear(cooc_dim, cooc_dim))
        self.cooc_proj = nn.Linear(patch_size * cooc_dim, channels)
        self.layers = nn.ModuleList(_EncoderLayer(width, heads, dropout) for _ in range(layers))
        self.output = nn.Linear(width, out_dim)
        self.merge = nn.Sequential(nn.Linear(2 * out_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, 1))

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """``[R, Np, P F]``: token features ``[R, Np P, F]`` side by side within each patch."""
        return x.reshape(x.shape[0], x.shape[1] // self.patch_size, self.patch_size * x.shape[-1])

    def cooc_table(self) -> torch.Tensor:
        """``[P, L + 1, C]``: ``W_j f(n)`` for patch position ``j`` and count ``n = 0..L`` (no bias)."""
        counts = torch.arange(self.length + 1, dtype=torch.float32, device=self.cooc_proj.weight.device)
        f = self.cooc(counts[:, None])  # [L + 1, D]
        w = self.cooc_proj.weight.view(self.cooc_proj.out_features, self.patch_size, -1)  # [C, P, D]
        return torch.einsum("nd,cpd->pnc", f, w)

    def cooc_patch(self, counts: torch.Tensor, mask: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """``[..., Np, C]``: ``sum_j W_j f(counts)`` over each patch's valid tokens (``counts``,
        ``mask`` ``[..., Np P]``; ``table`` from ``cooc_table``), without the bias."""
        lead = counts.shape[:-1]
        counts = counts.view(*lead, -1, self.patch_size)
        position = torch.arange(self.patch_size, device=counts.device)
        values = table[position, counts] * mask.view(*lead, -1, self.patch_size, 1)  # [..., Np, P, C]
        return values.sum(-2)

    def _encode(self, x: torch.Tensor, mask: torch.Tensor, sides: int) -> torch.Tensor:
        """``[sides, P, out_dim]``: the Transformer over patches ``x [P, sides Np, W]`` (key mask
        ``mask``), each side's valid patches averaged and mapped to ``out_dim``."""
        for layer in self.layers:
            x = layer(x, mask)
        x = x.view(x.shape[0], sides, -1, self.width)
        keep = mask.view(mask.shape[0], sides, -1, 1).to(x.dtype)
        pooled = (x * keep).sum(-2) / keep.sum(-2).clamp(min=1)
        return self.output(pooled).transpose(0, 1)

    def _check(self, block: HopBlock) -> None:
        if block.fanout != self.neighbours:
            raise ValueError(
                f"DyGFormer was built for {self.neighbours} neighbours per node, not {block.fanout}"
            )

    def forward(
        self, blocks: list[HopBlock], node_feat: torch.Tensor, edge_feat: torch.Tensor
    ) -> torch.Tensor:
        """``[R0, out_dim]`` node-level embeddings of ``blocks[0]``'s roots (class docstring)."""
        self._check(blocks[0])
        table = self.cooc_table()
        side = _Sequences(self, blocks[0], node_feat, edge_feat, table)
        channels = self.cooc_proj.out_features
        cross = self.cooc_patch(torch.zeros_like(side.ids), side.mask, table)
        x = torch.cat([side.static[..., :-channels], side.static[..., -channels:] + cross], dim=-1)
        return self._encode(x, side.patch_mask, 1)[0]

    def pair_logits(
        self,
        src_block: HopBlock,
        cand_block: HopBlock,
        index: torch.Tensor,
        time: torch.Tensor,
        node_feat: torch.Tensor,
        edge_feat: torch.Tensor,
    ) -> torch.Tensor:
        """``[B, C]`` logits of sources (``src_block``'s ``B`` roots) with candidates ``index [B, C]``
        (rows of ``cand_block``'s roots). Nothing but the blocks is read (no state): ``time`` is
        unused, the blocks' ``dt`` already relate each neighbour to its root's time."""
        self._check(src_block)
        self._check(cand_block)
        size, width = index.shape
        if size * width == 0:
            return torch.zeros(size, width, device=index.device)
        table = self.cooc_table()
        src = _Sequences(self, src_block, node_feat, edge_feat, table)
        cand = _Sequences(self, cand_block, node_feat, edge_feat, table)
        rows = torch.arange(size, device=index.device)[:, None].expand(size, width).reshape(-1)
        cols = index.reshape(-1)
        budget = self.pair_budget.get(index.device.type, self.pair_budget["cpu"])
        chunk = max(1, budget // (64 * self.num_patches * self.width))
        out = [
            self._pairs(src, cand, rows[lo : lo + chunk], cols[lo : lo + chunk], table)
            for lo in range(0, rows.shape[0], chunk)
        ]
        return torch.cat(out).view(size, width)

    def _pairs(
        self, src: _Sequences, cand: _Sequences, rows: torch.Tensor, cols: torch.Tensor, table: torch.Tensor
    ) -> torch.Tensor:
        """``[P]`` logits of the pairs (source row ``rows``, candidate row ``cols``) ``[P]``."""
        channels = self.cooc_proj.out_features
        u_ids, u_mask, v_ids, v_mask = src.ids[rows], src.mask[rows], cand.ids[cols], cand.mask[cols]
        sides = []
        for side, idx, ids, mask, other_ids, other_mask in (
            (src, rows, u_ids, u_mask, v_ids, v_mask),
            (cand, cols, v_ids, v_mask, u_ids, u_mask),
        ):
            cross = self.cooc_patch(cooccurrence_counts(ids, mask, other_ids, other_mask), mask, table)
            sides.append(
                torch.cat([side.static[idx, :, :-channels], side.static[idx, :, -channels:] + cross], -1)
            )
        x = torch.cat(sides, dim=1)  # [P, 2 Np, W]
        mask = torch.cat([src.patch_mask[rows], cand.patch_mask[cols]], dim=1)
        h = self._encode(x, mask, 2)
        return self.merge(torch.cat([h[0], h[1]], dim=-1)).squeeze(-1)
