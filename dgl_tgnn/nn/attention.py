"""TGAT's temporal attention layer, with a DGL engine and a dense engine that compute the same function."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from dgl_tgnn import ops
from dgl_tgnn.nn.blocks import HopBlock
from dgl_tgnn.nn.dropout import Dropout
from dgl_tgnn.nn.time_encoding import TimeEncoding

ENGINES = ("auto", "dgl", "dense")


@functools.cache
def dgl_available() -> bool:
    """True when DGL imports (through ``dgl_tgnn._dgl``); imported at most once per process."""
    try:
        from dgl_tgnn._dgl import dgl  # noqa: F401
    except ImportError:
        return False
    return True


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    return engine


def resolve_engine(engine: str, device: torch.device) -> str:
    """``"auto"`` -> ``"dgl"`` on CPU tensors when DGL imports (PyPI's DGL is CPU-only), else ``"dense"``."""
    if engine == "auto":
        return "dgl" if device.type == "cpu" and dgl_available() else "dense"
    return engine


def gather_rows(table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``table[ids]``: ``table`` ``[N, d]``, ``ids`` ``[...]`` int64 -> ``[..., d]``.

    ``-1`` ids (empty slots, padding roots) read row 0, or zeros from an empty table (where every
    id is ``-1``); callers never let those rows reach a result (attention masks them out, padding
    roots are never read back).
    """
    if table.shape[0] == 0:
        return table.new_zeros(*ids.shape, *table.shape[1:])
    # index_select, not [ ]: several times faster on CPU, and its backward is index_add_, not the
    # accumulating index_put_ of advanced indexing.
    rows = table.index_select(0, ids.clamp(min=0).flatten())
    return rows.view(*ids.shape, *table.shape[1:])


def _fused(qk: torch.Tensor, mask: torch.Tensor, parts: tuple[torch.Tensor, ...]) -> bool:
    """Whether the fused kernels take these inputs (else the batched products run)."""
    if not all(x.dtype == torch.float32 for x in (qk, *parts)):
        return False
    if qk.device.type == "cpu":
        return True
    return (
        qk.is_cuda
        and ops.WITH_CUDA
        and len(parts) <= ops.CUDA_ATTENTION_MAX_PARTS
        and qk.shape[1] * mask.shape[1] <= ops.CUDA_ATTENTION_MAX_WEIGHTS
    )


def masked_attention(qk: torch.Tensor, mask: torch.Tensor, *parts: torch.Tensor) -> torch.Tensor:
    """Attention of each root over its valid slots, on the slots' inputs directly.

    ``qk`` ``[R, H, I]``, ``mask`` ``[R, k]`` bool, ``parts`` the column blocks of the slot inputs
    ``x = [part_0 || part_1 || ...]``, each ``[R, k, I_p]`` with ``I_p >= 1`` and ``sum I_p = I``.
    Returns ``agg`` ``[R, H, I]``::

        alpha[r, h, j] = softmax over valid j of  qk[r, h] . x[r, j]    (0 where the slot is empty)
        agg[r, h]      = sum_j alpha[r, h, j] x[r, j]                   (0 for a root without slots)

    ``x`` is never concatenated, and its gradient is computed only for the parts that need one
    (typically the time encoding, not raw features). float32 tensors go through the fused op
    ``dgl_tgnn.ops.masked_attention`` (``csrc/core/attention.h`` on CPU: each root's slots read once
    per pass; ``csrc/cuda/attention.h`` on a GPU in a CUDA build: one launch per pass instead of a
    dozen); other dtypes, and inputs beyond the CUDA kernels' limits, through batched products.
    Inputs of mixed dtypes (bf16 autocast: a bfloat16 ``qk`` beside float32 features) meet in the
    widest of them.
    """
    dtype = functools.reduce(torch.promote_types, (part.dtype for part in parts), qk.dtype)
    qk, parts = qk.to(dtype), tuple(part.to(dtype) for part in parts)
    if _fused(qk, mask, parts):
        agg, _ = ops.masked_attention(
            qk.contiguous(), mask.contiguous(), [part.contiguous() for part in parts]
        )
        return agg
    return BatchedMaskedAttention.apply(qk, mask, *parts)


class BatchedMaskedAttention(torch.autograd.Function):
    """``masked_attention`` by batched products, for any dtype and device.

    Its backward pass is written out so that every batched product has contiguous operands and both
    rank-``H`` updates of a part's gradient run as one product (autograd's default layouts make
    MKL's small batched products several times slower).
    """

    @staticmethod
    def forward(ctx, qk: torch.Tensor, mask: torch.Tensor, *parts: torch.Tensor) -> torch.Tensor:
        widths = [part.shape[2] for part in parts]
        qk_parts = qk.split(widths, dim=2)
        score = torch.bmm(qk_parts[0], parts[0].transpose(1, 2))  # [R, H, k]
        for qk_part, part in zip(qk_parts[1:], parts[1:], strict=True):
            score = score.baddbmm_(qk_part, part.transpose(1, 2))
        valid = mask.unsqueeze(1)  # [R, 1, k]
        # finfo.min (not -inf) keeps fully masked rows finite; their weights are then zeroed by the mask.
        score = score.masked_fill_(~valid, torch.finfo(score.dtype).min)
        alpha = torch.softmax(score, dim=2).mul_(valid)
        ctx.widths = widths
        ctx.save_for_backward(qk, alpha, *parts)
        return torch.cat([torch.bmm(alpha, part) for part in parts], dim=2)

    @staticmethod
    def backward(ctx, grad_agg: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        qk, alpha, *parts = ctx.saved_tensors
        grad_parts = [grad.contiguous() for grad in grad_agg.split(ctx.widths, dim=2)]
        grad_alpha = torch.bmm(grad_parts[0], parts[0].transpose(1, 2))  # [R, H, k]
        for grad, part in zip(grad_parts[1:], parts[1:], strict=True):
            grad_alpha = grad_alpha.baddbmm_(grad, part.transpose(1, 2))
        grad_score = alpha * (grad_alpha - (grad_alpha * alpha).sum(2, keepdim=True))
        grad_qk = None
        if ctx.needs_input_grad[0]:
            grad_qk = torch.cat([torch.bmm(grad_score, part) for part in parts], dim=2)
        left = torch.cat([alpha, grad_score], dim=1).transpose(1, 2).contiguous()  # [R, k, 2H]
        grad_inputs = []
        for i, qk_part in enumerate(qk.split(ctx.widths, dim=2)):
            if ctx.needs_input_grad[2 + i]:
                grad_inputs.append(torch.bmm(left, torch.cat([grad_parts[i], qk_part], dim=1)))
            else:
                grad_inputs.append(None)
        return grad_qk, None, *grad_inputs


class TemporalAttention(nn.Module):
    """One TGAT layer: multi-head attention of each root over its sampled temporal neighbours.

    For a root ``v`` embedded at time ``t`` with valid neighbours ``u_j`` (event ``e_j`` at ``t_j``)::

        x_q   = [h_v || phi(0)]                                  node_dim + time_dim
        x_j   = [h_{u_j} || f(e_j) || phi(t - t_j)]              node_dim + edge_dim + time_dim
        q     = W_q x_q,   k_j = W_k x_j,   v_j = W_v x_j          num_heads heads of d = out_dim / num_heads
        alpha = softmax_j(q . k_j / sqrt(d))                     per head, over valid neighbours only
        a     = concat_heads(sum_j alpha_j v_j)                  zero when v has no neighbour
        h     = LayerNorm(dropout(W_o a) + x_q)                  residual on the query input
        out   = W_2 relu(W_1 [h || h_v])                         TGAT's merge layer

    Keys and values are never formed: with ``qk = W_k^T q / sqrt(d)`` per head, ``q . k_j / sqrt(d) =
    qk . x_j`` and ``sum_j alpha_j v_j = W_v (sum_j alpha_j x_j)``, which replaces the two
    ``[R * k, I] x [I, out_dim]`` products by ``[R, k, I]`` reductions (about ``k`` times fewer
    multiply-adds for the same function). A root without neighbours takes the zero-message path
    (``a = 0``): finite, never NaN.

    Engines (same function; tests hold them equal to 1e-5):
        ``"dgl"``: the block as a ``dgl.DGLBlock`` (``block.to_dgl()``): ``x_j`` on its source nodes,
        ``qk`` on its roots, per head scores by ``u_dot_v``, ``dgl.nn.functional.edge_softmax``, and
        ``update_all(u_mul_e, sum)``.
        ``"dense"``: masked softmax over the ``k`` axis of the ``[R, k]`` views; runs on any device.
        ``"auto"``: ``"dgl"`` when DGL imports and the tensors are on CPU, ``"dense"`` otherwise.

    Args:
        node_dim: width of ``h`` (may be 0: no node features).
        edge_dim: width of the event features ``f(e)`` (may be 0).
        time_dim: width of the time encoding ``phi`` (its own ``TimeEncoding``).
        out_dim: width of the output and of the attention (split over the heads).
        num_heads: attention heads; must divide ``out_dim``.
        dropout: rate of the dropout on ``W_o a`` (training mode only).
        engine: ``"auto"``, ``"dgl"`` or ``"dense"``.
        learnable_time: train ``phi``'s frequencies and phases (the paper), or keep them fixed.

    Forward:
        block: a ``TemporalBlock`` with ``R`` roots and ``k`` slots.
        root_feat: ``[R, node_dim]`` float32, ``h_v`` of the roots.
        nbr_feat: ``[R * k, node_dim]`` float32, ``h_u`` of the slots, rows aligned with
            ``block.nbr_nodes.flatten()`` (rows of empty slots are ignored; they must be finite).
        edge_feat: ``[R, k, edge_dim]`` float32 features of the slots' events (empty slots ignored).
        returns ``[R, out_dim]`` float32.
    """

    def __init__(
        self,
        node_dim: int,
        edge_dim: int,
        time_dim: int,
        out_dim: int,
        num_heads: int = 2,
        dropout: float = 0.1,
        engine: str = "auto",
        learnable_time: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("node_dim", node_dim), ("edge_dim", edge_dim)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if num_heads < 1 or out_dim < 1 or out_dim % num_heads != 0:
            raise ValueError(
                "out_dim must be a positive multiple of num_heads, "
                f"got out_dim={out_dim}, num_heads={num_heads}"
            )
        self.node_dim = node_dim
        self.edge_dim = edge_dim
        self.out_dim = out_dim
        self.num_heads = num_heads
        self.head_dim = out_dim // num_heads
        self.engine = check_engine(engine)
        query_dim = node_dim + time_dim
        self.input_dim = node_dim + edge_dim + time_dim
        self.time_enc = TimeEncoding(time_dim, learnable_time)
        self.w_q = nn.Linear(query_dim, out_dim, bias=False)
        self.w_k = nn.Linear(self.input_dim, out_dim, bias=False)
        self.w_v = nn.Linear(self.input_dim, out_dim, bias=False)
        self.w_o = nn.Linear(out_dim, query_dim)
        self.norm = nn.LayerNorm(query_dim)
        self.merge_hidden = nn.Linear(query_dim + node_dim, out_dim)
        self.merge_out = nn.Linear(out_dim, out_dim)
        self.dropout = Dropout(dropout)

    def forward(
        self,
        block: HopBlock,
        root_feat: torch.Tensor,
        nbr_feat: torch.Tensor,
        edge_feat: torch.Tensor,
    ) -> torch.Tensor:
        num_roots, fanout = block.num_roots, block.fanout
        expected = {
            "root_feat": (num_roots, self.node_dim),
            "nbr_feat": (num_roots * fanout, self.node_dim),
            "edge_feat": (num_roots, fanout, self.edge_dim),
        }
        for name, tensor in (("root_feat", root_feat), ("nbr_feat", nbr_feat), ("edge_feat", edge_feat)):
            if tuple(tensor.shape) != expected[name]:
                raise ValueError(f"{name} must have shape {expected[name]}, got {tuple(tensor.shape)}")

        phi_zero = self.time_enc(root_feat.new_zeros(1))
        # Without node features every root's query input is phi(0): one row, formed once.
        x_q = torch.cat([root_feat, phi_zero.expand(num_roots, -1)], dim=1) if self.node_dim > 0 else phi_zero
        query = self.w_q(x_q).view(x_q.shape[0], self.num_heads, self.head_dim)
        w_k = self.w_k.weight.view(self.num_heads, self.head_dim, self.input_dim)
        qk = torch.einsum("rhd,hdi->rhi", query / math.sqrt(self.head_dim), w_k)  # [R or 1, H, I]
        qk = qk.expand(num_roots, -1, -1)
        if resolve_engine(self.engine, root_feat.device) == "dgl":
            agg = self._dgl_aggregate(block, qk.contiguous(), nbr_feat, edge_feat)
        else:
            agg = self._dense_aggregate(block, qk, nbr_feat, edge_feat)
        w_v = self.w_v.weight.view(self.num_heads, self.head_dim, self.input_dim)
        attended = torch.einsum("rhi,hdi->rhd", agg, w_v).reshape(num_roots, self.out_dim)
        h = self.norm(self.dropout(self.w_o(attended)) + x_q)
        return self.merge_out(F.relu(self.merge_hidden(torch.cat([h, root_feat], dim=1))))

    def _slot_inputs(self, nbr_feat: torch.Tensor, edge_feat: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        """``x = [h_u || f(e) || phi(dt)]``: ``[n, node_dim]``, ``[n, edge_dim]``, ``[n]`` -> ``[n, I]``."""
        return torch.cat([nbr_feat, edge_feat, self.time_enc(dt)], dim=1)

    def _dense_aggregate(
        self, block: HopBlock, qk: torch.Tensor, nbr_feat: torch.Tensor, edge_feat: torch.Tensor
    ) -> torch.Tensor:
        """Masked softmax over the ``k`` axis. Returns ``agg`` ``[R, H, I]``."""
        num_roots, fanout = block.num_roots, block.fanout
        parts = [
            nbr_feat.view(num_roots, fanout, self.node_dim),
            edge_feat,
            self.time_enc(block.dt),
        ]
        return masked_attention(qk, block.mask, *(part for part in parts if part.shape[2] > 0))

    def _dgl_aggregate(
        self, block: HopBlock, qk: torch.Tensor, nbr_feat: torch.Tensor, edge_feat: torch.Tensor
    ) -> torch.Tensor:
        """Message passing on ``block.to_dgl()``, whose source node ``R + j`` (edge ``j``) is the
        ``j``-th valid slot. Returns ``agg`` ``[R, H, I]``."""
        from dgl_tgnn._dgl import dgl

        num_roots, fanout = block.num_roots, block.fanout
        graph = block.to_dgl()
        valid = block.mask.flatten()
        x = self._slot_inputs(
            nbr_feat[valid],
            edge_feat.reshape(num_roots * fanout, self.edge_dim)[valid],
            graph.edata["dt"],
        )
        # Source nodes 0..R-1 are the roots themselves: no edge leaves them, their rows stay zero.
        inputs = torch.cat([x.new_zeros(num_roots, self.input_dim), x])
        qk = qk.to(x.dtype)  # DGL's kernels take one dtype (under bf16 autocast qk comes as bfloat16)
        fn = dgl.function
        if not torch.is_grad_enabled():  # one pass over all heads, x broadcast across them
            graph.srcdata["x"] = inputs.unsqueeze(1)  # [N, 1, I]
            graph.dstdata["qk"] = qk  # [R, H, I]
            graph.apply_edges(fn.u_dot_v("x", "qk", "score"))  # [E, H, 1]
            graph.edata["alpha"] = dgl.nn.functional.edge_softmax(graph, graph.edata["score"])
            graph.update_all(fn.u_mul_e("x", "alpha", "m"), fn.sum("m", "agg"))
            return graph.dstdata["agg"]
        # With autograd, one pass per head: DGL's backward of a broadcast over heads materialises
        # [E, H, I].
        graph.srcdata["x"] = inputs
        per_head = []
        for head in range(self.num_heads):
            graph.dstdata["qk"] = qk[:, head]
            graph.apply_edges(fn.u_dot_v("x", "qk", "score"))  # [E, 1]
            graph.edata["alpha"] = dgl.nn.functional.edge_softmax(graph, graph.edata["score"])
            graph.update_all(fn.u_mul_e("x", "alpha", "m"), fn.sum("m", "agg"))
            per_head.append(graph.dstdata["agg"])
        return torch.stack(per_head, dim=1)
