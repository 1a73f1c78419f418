"""TPNet (Lu et al., NeurIPS 2024, "Improving Temporal Link Prediction via Temporal Walk Matrix
Projection"): time-decayed temporal walk matrices kept as random projections, and a pair encoder
over the recent neighbours of both endpoints of a link.

**Walk matrices.** For the events ``(x, y, t_e)`` seen so far and a time ``t``, ``A_k(t)[a, b]`` sums
over the temporal walks ``a = w_0 - w_1 - ... - w_k = b`` of ``k`` events (undirected) whose events
lie in strictly earlier batches along the walk, the weight ``exp(-lambda * sum_i (t - t_i))``;
``A_0 = I``. With one event per batch and distinct times these are the paper's temporal walks (event
times decreasing along the walk). Each node ``a`` keeps ``P_k[a] = A_k[a, :] R`` for ``k = 0..K``,
with ``R`` ``[N, d]`` random features shared by all nodes (entries ``N(0, 1/d)``), so that
``<P_i[a], P_j[b]>`` estimates ``(A_i A_j^T)[a, b]`` (exactly, for orthonormal ``R``, ``d = N``).
A batch of events whose latest time is ``t'`` moves the state from time ``s`` to ``t'``::

    P_k <- g^k P_k + M (g^(k-1) P_(k-1)),   g = exp(-lambda (t' - s)),   k = K..1,

where ``M[x, y]`` sums ``exp(-lambda (t' - t_e))`` over the batch's events between ``x`` and ``y``
(both directions): each event extends the walks that were there before the batch. Reads decay the
state to the query time (``P_k`` by ``exp(-lambda (t - s))^k``).

**Pair encoder.** The relation of nodes ``a`` and ``b`` is ``r(a, b) = MLP(log(1 + relu(G)))``, ``G``
the ``(2K+2) x (2K+2)`` Gram matrix of ``[P_0..P_K of a; P_0..P_K of b]``. A link ``(u, v)`` encodes
each of the ``H`` most recent neighbours ``w`` of ``u`` (and of ``v``) as a token
``[node features of w, event features, phi(log(1 + dt)), r(w, u), r(w, v)]``, projects it to
``C`` channels, mixes each side's tokens with MLP-Mixer layers and averages them: ``z_u``, ``z_v``
(both depend on the pair). The logit is ``MLP([z_u, z_v, r(u, v)])``.

Everything is computed for ``[B, C]`` (source, candidate) pairs at once, in chunks of pairs; what does
not depend on the pair (the tokens' features, each node's relation to its own neighbours, the parts
of the relation MLP's first layer that read one node only) is computed once per call.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from dgl_tgnn.nn.blocks import HopBlock
from dgl_tgnn.nn.memory import MemoryState
from dgl_tgnn.nn.time_encoding import TimeEncoding


def log_relu(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + relu(x))``: the scaling of walk-count inner products (TPNet's code)."""
    return torch.log1p(x.clamp(min=0))


class WalkMatrices(nn.Module):
    """The random projections ``P_1..P_K`` of the time-decayed temporal walk matrices (module docstring),
    carried from batch to batch like TGN's memory: ``update`` stores a batch as pending and applies the
    previous pending one; reads see both; ``discard_pending`` drops the pending batch.

    Args:
        num_nodes: ``N``.
        length: ``K``, the longest walk (``>= 1``).
        dim: ``d``, random features per node.
        decay: ``lambda`` per time unit (``>= 0``).
        features: ``[N, d]`` float32 ``R`` (default: drawn ``N(0, 1/d)`` from torch's generator). It is
            a buffer of the state dict: a saved model keeps its features.
    """

    def __init__(
        self, num_nodes: int, length: int, dim: int, decay: float, features: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        if length < 1 or dim < 1 or num_nodes < 1 or not decay >= 0:
            raise ValueError(
                f"walk matrices need K >= 1, d >= 1, N >= 1, lambda >= 0; got {length}, {dim}, "
                f"{num_nodes}, {decay}"
            )
        if features is None:
            features = torch.randn(num_nodes, dim) / math.sqrt(dim)
        self.length, self.decay = length, decay
        self.register_buffer("features", features.to(torch.float32).clone())
        self.register_buffer("walks", torch.zeros(length, *features.shape), persistent=False)
        self.register_buffer("time", torch.zeros((), dtype=torch.float64), persistent=False)
        self.pending: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._view: tuple[torch.Tensor, torch.Tensor] | None = None  # the state with pending applied

    @property
    def num_nodes(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def redraw(self) -> None:
        """New random features ``R`` (``N(0, 1/d)``, torch's generator of their device)."""
        drawn = torch.randn(self.features.shape, device=self.features.device)
        self.features.copy_(drawn / math.sqrt(self.dim))

    def reset(self) -> None:
        """No events: ``P_k = 0`` for ``k >= 1``, at time 0."""
        self.walks.zero_()
        self.time.zero_()
        self.pending, self._view = None, None

    def update(self, src: torch.Tensor, dst: torch.Tensor, t: torch.Tensor) -> None:
        """Applies the pending batch, then keeps events ``src``, ``dst``, ``t`` ``[B]`` pending."""
        if self.pending is not None:
            self.walks, self.time = self.view()
        self.pending, self._view = (src.clone(), dst.clone(), t.to(torch.float64).clone()), None
        if src.numel() == 0:
            self.pending = None

    def discard_pending(self) -> None:
        self.pending, self._view = None, None

    def view(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``P_1..P_K`` ``[K, N, d]`` with the pending batch applied, and their time (0-dim float64)."""
        if self.pending is None:
            return self.walks, self.time
        if self._view is None:
            self._view = self._applied(*self.pending)
        return self._view

    def _applied(
        self, src: torch.Tensor, dst: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The committed state after the batch ``src``, ``dst``, ``t`` (module docstring)."""
        latest = t.max()
        powers = torch.arange(1, self.length + 1, device=t.device, dtype=torch.float64)
        scale = torch.exp(-self.decay * (latest - self.time) * powers).to(torch.float32)
        walks = self.walks * scale[:, None, None]
        before = torch.cat([self.features[None], walks[:-1]])  # P_0..P_(K-1) before the batch
        weight = torch.exp(-self.decay * (latest - t)).to(torch.float32)[None, :, None]
        walks = walks.index_add(1, src, before[:, dst] * weight).index_add(1, dst, before[:, src] * weight)
        return walks, latest

    def read(self, nodes: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        """``[..., K + 1, d]`` projections ``P_0..P_K`` of ``nodes [...]`` (``-1``: zeros) decayed to
        ``time`` (float64, 0-dim or broadcasting against ``nodes``; not before the state's time)."""
        walks, at = self.view()
        rows = nodes.clamp(min=0)
        powers = torch.arange(1, self.length + 1, device=rows.device, dtype=torch.float64)
        elapsed = (torch.as_tensor(time, dtype=torch.float64, device=rows.device) - at).clamp(min=0)
        scale = torch.exp(-self.decay * elapsed[..., None] * powers).to(torch.float32)  # [..., K]
        higher = walks[:, rows].movedim(0, -2) * scale[..., None]  # [..., K, d]
        out = torch.cat([self.features[rows].unsqueeze(-2), higher], dim=-2)
        return out * (nodes >= 0)[..., None, None]

    def backup(self) -> MemoryState:
        """The state with the pending batch applied (restoring it and then applying the next batch
        gives what this object gives), as a ``MemoryState``: ``state`` ``[K, N, d]``, ``last_update``
        the 0-dim time, no pending messages."""
        walks, at = self.view()
        return MemoryState(walks.clone(), at.clone(), None)

    def restore(self, backup: MemoryState) -> None:
        self.walks = backup.state.to(self.features.device).clone()
        self.time = backup.last_update.to(self.features.device, torch.float64).clone()
        self.pending, self._view = None, None

    @contextlib.contextmanager
    def sharing_update(self, keep: bool = False) -> Iterator[None]:
        """Nothing to share: reads do not depend on the parameters, and the pending batch's view is
        kept until the state changes (``Memory.sharing_update``)."""
        yield

    def grow(self, num_nodes: int) -> None:
        """Rows for nodes ``num_nodes..``: no walks yet, random features drawn from a generator seeded
        with the old node count (a predictor grows alike every time)."""
        extra = num_nodes - self.num_nodes
        generator = torch.Generator().manual_seed(self.num_nodes)
        new = torch.randn(extra, self.dim, generator=generator) / math.sqrt(self.dim)
        self.features = torch.cat([self.features, new.to(self.features.device)])
        self.walks, self.time = self.view()
        self.walks = torch.cat([self.walks, self.walks.new_zeros(self.length, extra, self.dim)], dim=1)
        self.pending, self._view = None, None


class Relation(nn.Module):
    """``r(a, b) = MLP(log(1 + relu(G)))`` of the Gram matrix ``G`` of ``[P(a); P(b)]`` (``n = K + 1``
    rows each): ``(2n)^2 -> 4 (2n)^2 -> (2n)^2``. The first layer is applied by parts: the blocks of
    ``G`` that read ``a`` only, ``b`` only, and both (``G`` is symmetric: its two cross blocks are one)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        width = (2 * n) ** 2
        self.hidden = nn.Linear(width, 4 * width)
        self.out = nn.Linear(4 * width, width)

    @property
    def width(self) -> int:
        return self.out.out_features

    def _weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = self.n
        w = self.hidden.weight.view(-1, 2 * n, 2 * n)
        cross = w[:, :n, n:] + w[:, n:, :n].transpose(1, 2)
        return w[:, :n, :n].reshape(-1, n * n), w[:, n:, n:].reshape(-1, n * n), cross.reshape(-1, n * n)

    def first(self, gram: torch.Tensor) -> torch.Tensor:
        """``[..., 4 w]``: the first layer's part from the self Gram ``[..., n, n]`` of ``a``."""
        return log_relu(gram).flatten(-2) @ self._weights()[0].T

    def second(self, gram: torch.Tensor) -> torch.Tensor:
        """``[..., 4 w]``: the part from the self Gram of ``b`` (with the bias)."""
        return log_relu(gram).flatten(-2) @ self._weights()[1].T + self.hidden.bias

    def cross(self, gram: torch.Tensor) -> torch.Tensor:
        """``[..., 4 w]``: the part from the cross Gram ``[..., n, n]`` (``<P_i(a), P_j(b)>``)."""
        return log_relu(gram).flatten(-2) @ self._weights()[2].T

    def finish(self, hidden: torch.Tensor) -> torch.Tensor:
        """``r`` ``[..., w]`` from the summed first-layer parts ``[..., 4 w]``."""
        return self.out(torch.relu(hidden))

    def forward(self, pa: torch.Tensor, pb: torch.Tensor) -> torch.Tensor:
        """``r(a, b)`` ``[..., w]`` of projections ``pa``, ``pb`` ``[..., n, d]`` (the plain MLP)."""
        stacked = torch.cat([pa, pb], dim=-2)
        gram = stacked @ stacked.transpose(-1, -2)
        return self.out(torch.relu(self.hidden(log_relu(gram).flatten(-2))))


class _FeedForward(nn.Sequential):
    def __init__(self, dim: int, factor: float, dropout: float) -> None:
        hidden = max(1, int(factor * dim))
        super().__init__(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )


class MixerLayer(nn.Module):
    """MLP-Mixer layer over ``[..., T tokens, C channels]``: token mixing (LayerNorm over tokens,
    ``T -> T/2 -> T``), then channel mixing (``C -> 4C -> C``), each with a residual connection.

    Token mixing has two equal computations (float32 rounding apart): the normalisation and the MLP
    over a transposed ``[..., C, T]`` copy, and ``token_mixing_in_place`` without the copy. The second
    runs on a GPU for inputs without gradient (ranking: PyTorch's LayerNorm over rows of ``T = 20`` is
    slow there), the first everywhere else (GPU training epochs took about twice as long once the
    second trained too; attributed to it by elimination, not yet by an A/B: ``docs/benchmarks.md``)."""

    def __init__(self, tokens: int, channels: int, dropout: float) -> None:
        super().__init__()
        self.token_norm = nn.LayerNorm(tokens)
        self.token_mlp = _FeedForward(tokens, 0.5, dropout)
        self.channel_norm = nn.LayerNorm(channels)
        self.channel_mlp = _FeedForward(channels, 4.0, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda and not x.requires_grad:
            x = x + self.token_mixing_in_place(x)
        else:
            x = x + self.token_mixing_transposed(x)
        return x + self.channel_mlp(self.channel_norm(x))

    def token_mixing_transposed(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., T, C]``: the token MLP of ``x [..., T, C]`` normalised over its tokens, through a
        transposed copy."""
        return self.token_mlp(self.token_norm(x.transpose(-1, -2))).transpose(-1, -2)

    def token_mixing_in_place(self, x: torch.Tensor) -> torch.Tensor:
        """``token_mixing_transposed`` in ``x``'s own ``[..., T, C]`` layout: the normalisation as
        reductions over dimension ``-2`` (at least in float32, as autocast runs a LayerNorm), the MLP's layers
        as products on the token axis."""
        norm, (first, act, drop_hidden, second, drop_out) = self.token_norm, self.token_mlp
        x = x.to(torch.promote_types(x.dtype, torch.float32))
        mean = x.mean(-2, keepdim=True)
        var = x.var(-2, unbiased=False, keepdim=True)
        normed = (x - mean) * torch.rsqrt(var + norm.eps) * norm.weight[:, None] + norm.bias[:, None]
        hidden = drop_hidden(act(torch.einsum("ut,...tc->...uc", first.weight, normed) + first.bias[:, None]))
        return drop_out(torch.einsum("tu,...uc->...tc", second.weight, hidden) + second.bias[:, None])


class _Side:
    """What a side of the pairs reads that does not depend on the pair: for ``R`` roots with ``H``
    neighbours, the roots' and neighbours' projections ``[R, n, d]``, ``[R, H, n, d]``, the first-layer
    parts of the neighbours' self Grams ``[R, H, 4w]`` and of the roots' ``[R, 4w]``, the tokens'
    projection without the pair's relation ``[R, H, 2C]``, and the mask ``[R, H]``."""

    def __init__(
        self,
        model: TPNet,
        block: HopBlock,
        time: torch.Tensor,
        node_feat: torch.Tensor,
        edge_feat: torch.Tensor,
        own_slot: int,
    ) -> None:
        walks, relation = model.memory, model.relation
        nbr, mask = block.nbr_nodes, block.mask
        self.mask = mask
        self.root = walks.read(block.root_nodes, time)  # [R, n, d]
        self.nbr = walks.read(torch.where(mask, nbr, -1), time)  # [R, H, n, d]
        self.root_self = self.root @ self.root.transpose(-1, -2)  # [R, n, n]
        nbr_self = self.nbr @ self.nbr.transpose(-1, -2)  # [R, H, n, n]
        self.nbr_first = relation.first(nbr_self)  # [R, H, 4w]
        self.root_second = relation.second(self.root_self)  # [R, 4w]
        # The relation of each neighbour to its own root: r(w, root), in the token's slot own_slot.
        own_cross = self.nbr @ self.root[:, None].transpose(-1, -2)  # [R, H, n, n]
        own = relation.finish(self.nbr_first + self.root_second[:, None] + relation.cross(own_cross))
        feats = []
        rows = nbr.clamp(min=0)
        if node_feat.shape[1]:
            feats.append(node_feat[rows])
        if edge_feat.shape[1]:
            feats.append(edge_feat[block.nbr_eids.clamp(min=0)])
        feats.append(model.time_enc(torch.log1p(block.dt)))
        static = torch.cat(feats, dim=-1) * mask[..., None]
        w_static, w_first, w_second = model.token_weights()
        w_own = w_first if own_slot == 0 else w_second
        self.tokens = static @ w_static.T + own @ w_own.T + model.project[0].bias  # [R, H, 2C]


class TPNet(nn.Module):
    """TPNet: walk matrices (``memory``, a :class:`WalkMatrices`) and the pair encoder (module docstring).

    A stateful encoder (``link.StatefulEncoder``) that scores pairs itself (``pair_logits``); its
    ``forward`` gives node-level embeddings (``[R, d]``: ``P_0 + ... + P_K`` of each root at its time,
    whose dot products sum the decayed walk counts between two nodes), what hard negatives are drawn by.

    Args:
        num_nodes: ``N``.
        node_dim, edge_dim: widths of the node and event features (0 when none).
        channels: ``C``, the mixer's channels (the paper: the node feature width, 172).
        time_dim: width of the time encoding of ``log(1 + dt)``.
        neighbours: ``H``, recent neighbours per endpoint (the hop blocks' fanout).
        mixer_layers: MLP-Mixer layers.
        dropout: in the mixers.
        walk_length, walk_dim, decay: ``K``, ``d``, ``lambda`` of the walk matrices.
        learnable_time: learnable time encoding frequencies.
    """

    pair_budget: dict[str, int] = {"cpu": 1 << 23, "cuda": 1 << 28}  # noqa: RUF012 (read only)
    """Floats of the activations of one chunk of pairs (about ``32 H C`` per pair), by device type."""

    def __init__(
        self,
        num_nodes: int,
        node_dim: int,
        edge_dim: int,
        *,
        channels: int,
        time_dim: int,
        neighbours: int,
        mixer_layers: int,
        dropout: float,
        walk_length: int,
        walk_dim: int,
        decay: float,
        learnable_time: bool,
    ) -> None:
        super().__init__()
        self.memory = WalkMatrices(num_nodes, walk_length, walk_dim, decay)
        self.relation = Relation(walk_length + 1)
        self.time_enc = TimeEncoding(time_dim, learnable_time)
        self.static_dim = node_dim + edge_dim + time_dim
        width = self.relation.width
        self.project = nn.Sequential(
            nn.Linear(self.static_dim + 2 * width, 2 * channels), nn.ReLU(), nn.Linear(2 * channels, channels)
        )
        self.mixers = nn.ModuleList(MixerLayer(neighbours, channels, dropout) for _ in range(mixer_layers))
        self.decoder = nn.Sequential(
            nn.Linear(2 * channels + width, channels), nn.ReLU(), nn.Linear(channels, 1)
        )
        self.neighbours, self.channels = neighbours, channels

    def token_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The token projection's first layer by columns: static features, ``r(w, u)``, ``r(w, v)``."""
        w, width = self.project[0].weight, self.relation.width
        return w[:, : self.static_dim], w[:, self.static_dim : self.static_dim + width], w[:, -width:]

    # -- the stateful encoder (link.StatefulEncoder)
    def update(
        self,
        src: torch.Tensor,
        dst: torch.Tensor,
        t: torch.Tensor,
        eids: torch.Tensor,
        edge_feat: torch.Tensor,
    ) -> None:
        self.memory.update(src, dst, t)

    def reset_memory(self) -> None:
        self.memory.reset()

    def start_epoch(self) -> None:
        """Empty walk matrices over newly drawn random features, as the paper's code starts each
        training epoch: the pair encoder cannot fit one draw's noise."""
        self.memory.redraw()
        self.memory.reset()

    def backup_memory(self) -> MemoryState:
        return self.memory.backup()

    def restore_memory(self, state: MemoryState) -> None:
        self.memory.restore(state)

    def forward(
        self, blocks: list[HopBlock], node_feat: torch.Tensor, edge_feat: torch.Tensor
    ) -> torch.Tensor:
        """``[R0, d]`` node-level embeddings of ``blocks[0]``'s roots (class docstring)."""
        block = blocks[0]
        return self.memory.read(block.root_nodes, block.root_times).sum(-2)

    # -- the pair encoder
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
        (rows of ``cand_block``'s roots), the walk matrices read at ``time`` (0-dim float64)."""
        if src_block.fanout != self.neighbours or cand_block.fanout != self.neighbours:
            raise ValueError(
                f"TPNet was built for {self.neighbours} neighbours per node, not {src_block.fanout}"
            )
        size, width = index.shape
        if size * width == 0:
            return torch.zeros(size, width, device=index.device)
        src = _Side(self, src_block, time, node_feat, edge_feat, own_slot=0)
        cand = _Side(self, cand_block, time, node_feat, edge_feat, own_slot=1)
        rows = torch.arange(size, device=index.device)[:, None].expand(size, width).reshape(-1)
        cols = index.reshape(-1)
        budget = self.pair_budget.get(index.device.type, self.pair_budget["cpu"])
        chunk = max(1, budget // (32 * self.neighbours * self.channels))
        out = [
            self._pairs(src, cand, rows[lo : lo + chunk], cols[lo : lo + chunk])
            for lo in range(0, rows.shape[0], chunk)
        ]
        return torch.cat(out).view(size, width)

    def _pairs(self, src: _Side, cand: _Side, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """``[P]`` logits of the pairs (source row ``rows``, candidate row ``cols``) ``[P]``."""
        relation = self.relation
        _, w_first, w_second = self.token_weights()
        pu, pv = src.root[rows], cand.root[cols]  # [P, n, d]
        # r(w, v) for the source's neighbours w, r(w', u) for the candidate's neighbours w'
        to_v = relation.finish(
            src.nbr_first[rows]
            + cand.root_second[cols, None]
            + relation.cross(src.nbr[rows] @ pv[:, None].transpose(-1, -2))
        )
        to_u = relation.finish(
            cand.nbr_first[cols]
            + src.root_second[rows, None]
            + relation.cross(cand.nbr[cols] @ pu[:, None].transpose(-1, -2))
        )
        z_u = self._encode(src.tokens[rows] + to_v @ w_second.T, src.mask[rows])
        z_v = self._encode(cand.tokens[cols] + to_u @ w_first.T, cand.mask[cols])
        # r(u, v)
        uv = relation.finish(
            relation.first(src.root_self[rows])
            + cand.root_second[cols]
            + relation.cross(pu @ pv.transpose(-1, -2))
        )
        return self.decoder(torch.cat([z_u, z_v, uv], dim=-1)).squeeze(-1)

    def _encode(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[P, C]``: the mixers over the projected tokens (first-layer pre-activations ``[P, H, 2C]``;
        empty slots zeroed before mixing), averaged over the ``H`` slots."""
        x = self.project[2](torch.relu(tokens)) * mask[..., None]
        for mixer in self.mixers:
            x = mixer(x)
        return x.mean(-2)
