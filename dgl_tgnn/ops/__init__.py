"""The native operators of dgl-tgnn as torch ops (``torch.ops.dgl_tgnn.*``).

This package is the only importer of the extension ``dgl_tgnn._C``, whose import registers the
library ``dgl_tgnn``: every op's schema and its CPU and (in a CUDA build) CUDA kernels, chosen by
the dispatcher from the inputs' device. Arguments are checked once, in C++, raising ``ValueError``
with a one-line message. Here each op gets a fake kernel (shapes only, for ``torch.compile`` and
meta tensors) and, where it has a gradient, an autograd formula; the functions below are its typed
entry points. Shapes: ``R`` roots, ``k`` slots per root, ``H`` heads, ``B`` queries, ``N``
candidates, ``d`` their width, ``D`` encoding width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dgl_tgnn import _C

WITH_CUDA: bool = bool(_C.with_cuda)
"""Whether the extension was compiled with its CUDA kernels."""
CUDA_ATTENTION_MAX_PARTS: int = _C.cuda_attention_max_parts
"""Most slot-input parts the fused CUDA attention takes."""
CUDA_ATTENTION_MAX_WEIGHTS: int = _C.cuda_attention_max_weights
"""Most (head, slot) weights per root the fused CUDA attention takes."""

_ops = torch.ops.dgl_tgnn

Hop = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
"""One sampled hop, each ``[R, k]``: ``nbr_nodes``, ``nbr_eids`` int64, ``nbr_times`` float64, ``mask``."""


# ---- temporal graph and sampler


def tcsr_build(
    src: torch.Tensor,
    dst: torch.Tensor,
    t: torch.Tensor,
    num_nodes: int,
    undirected: bool,
    num_threads: int = 0,
) -> torch.ScriptObject:
    """The T-CSR (``torch.classes.dgl_tgnn.TCSR``) of events ``src``, ``dst`` int64 and ``t`` float64,
    each ``[E]`` contiguous on the CPU; event id = position. ValueError names a bad event.

    The object pickles as its packed arrays (``tcsr_pack``), ``num_events``, ``undirected`` and
    ``max_time``; unpickling checks that state whole (ValueError naming what is inconsistent) and
    makes a T-CSR that samples and appends exactly as the original (inductor's benchmark harness
    pickles the graph constants it is given). ``TemporalGraph`` pickles its events instead."""
    return _ops.tcsr_build(src, dst, t, num_nodes, undirected, num_threads)


def tcsr_append(tcsr: torch.ScriptObject, src: torch.Tensor, dst: torch.Tensor, t: torch.Tensor) -> None:
    """Adds events ``[n]`` no older than ``tcsr.max_time()``; their ids continue after ``num_events``."""
    _ops.tcsr_append(tcsr, src, dst, t)


def tcsr_pack(tcsr: torch.ScriptObject, num_threads: int = 0) -> tuple[torch.Tensor, ...]:
    """Packed CPU copy: ``indptr [N + 1]``, ``nbr [M]``, ``eid [M]`` int64 and ``ts [M]`` float64."""
    return tuple(_ops.tcsr_pack(tcsr, num_threads))


def _int64(seed: int) -> int:
    """A seed in ``[0, 2**64)`` as the int64 of the same bits (the schema's ``int``)."""
    return seed - 2**64 if seed >= 2**63 else seed


def _hops(flat: list[torch.Tensor]) -> list[Hop]:
    return [tuple(flat[i : i + 4]) for i in range(0, len(flat), 4)]  # type: ignore[misc]


def sample_cpu(
    tcsr: torch.ScriptObject,
    nodes: torch.Tensor,
    times: torch.Tensor,
    fanouts: Sequence[int],
    strategy: int,
    replace: bool,
    seed: int,
    call: int,
    num_threads: int = 0,
    first_hop: int = 0,
    keyed: bool = False,
) -> list[Hop]:
    """Multi-hop temporal sampling on the CPU around roots ``nodes`` int64 / ``times`` float64 ``[R]``.

    Hop ``h`` is ``[R_h, fanouts[h]]`` with ``R_0 = R`` and ``R_{h+1} = R_h * fanouts[h]`` (hop ``h``'s
    slots, flattened, are hop ``h + 1``'s roots). ``strategy``: 0 recent, 1 uniform, 2 labor. The draws
    of hop ``h`` are a function of ``(seed, call, first_hop + h)``; labor's of ``(seed, call)``, the same
    in every hop. ``keyed``: a uniform root's draws are keyed by its (node, time), not by its position
    among the roots (so a root draws alike whichever roots share its call).
    """
    flat = _ops.sample_cpu(
        tcsr,
        nodes,
        times,
        list(fanouts),
        strategy,
        replace,
        _int64(seed),
        call,
        num_threads,
        first_hop,
        keyed,
    )
    return _hops(flat)


def sample_cuda(
    packed: Sequence[torch.Tensor],
    nodes: torch.Tensor,
    times: torch.Tensor,
    fanouts: Sequence[int],
    strategy: int,
    replace: bool,
    seed: int,
    call: torch.Tensor,
    first_hop: int = 0,
    check: bool = False,
    keyed: bool = False,
) -> tuple[list[Hop], torch.Tensor]:
    """``sample_cpu`` on the GPU of ``nodes`` from ``packed`` (``tcsr_pack``'s arrays on that GPU).

    ``call`` (int64 ``[1]`` there) holds the call number, read by the kernels. Returns ``(hops,
    error)``: with ``check``, ``error`` is a new int32 ``[1]`` tensor on that GPU holding 1 ORed in
    for a root id out of range and 2 for a NaN time (0 when every root is valid); without, int32
    ``[0]``. Nothing synchronises with the host, and no argument is written: inside a captured CUDA
    graph, ``error`` is the graph's output tensor, rewritten by each replay.
    """
    indptr, nbr, eid, ts = packed
    *flat, error = _ops.sample_cuda(
        indptr,
        nbr,
        eid,
        ts,
        nodes,
        times,
        list(fanouts),
        strategy,
        replace,
        _int64(seed),
        call,
        first_hop,
        check,
        keyed,
    )
    return _hops(flat), error


@torch._library.register_fake_class("dgl_tgnn::TCSR")
class _FakeTCSR:
    """What ``torch.compile`` traces in place of a T-CSR: its sizes (``__obj_flatten__`` in C++)."""

    def __init__(self, num_nodes: int, num_entries: int) -> None:
        self._num_nodes, self._num_entries = num_nodes, num_entries

    @classmethod
    def __obj_unflatten__(cls, flat: tuple[tuple[str, int], ...]) -> _FakeTCSR:
        return cls(**dict(flat))

    def num_nodes(self) -> int:
        return self._num_nodes

    def num_entries(self) -> int:
        return self._num_entries


@torch.library.register_fake("dgl_tgnn::tcsr_pack")
def _(tcsr, num_threads=0):
    nodes, entries = tcsr.num_nodes(), tcsr.num_entries()
    return (
        torch.empty(nodes + 1, dtype=torch.int64),
        torch.empty(entries, dtype=torch.int64),
        torch.empty(entries, dtype=torch.int64),
        torch.empty(entries, dtype=torch.float64),
    )


def _fake_hops(nodes: torch.Tensor, fanouts: list[int]) -> list[torch.Tensor]:
    out, roots = [], nodes.shape[0]
    for k in fanouts:
        out += [nodes.new_empty(roots, k), nodes.new_empty(roots, k)]
        out += [nodes.new_empty(roots, k, dtype=torch.float64), nodes.new_empty(roots, k, dtype=torch.bool)]
        roots = roots * k
    return out


@torch.library.register_fake("dgl_tgnn::sample_cpu")
def _(tcsr, nodes, times, fanouts, strategy, replace, seed, call, num_threads, first_hop=0, keyed=False):
    return _fake_hops(nodes, fanouts)


@torch.library.register_fake("dgl_tgnn::sample_cuda")
def _(
    indptr,
    nbr,
    eid,
    ts,
    nodes,
    times,
    fanouts,
    strategy,
    replace,
    seed,
    call,
    first_hop=0,
    check=False,
    keyed=False,
):
    return _fake_hops(nodes, fanouts) + [nodes.new_empty(1 if check else 0, dtype=torch.int32)]


def dedup_roots(nodes: torch.Tensor, times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct (node, time) pairs of roots ``nodes`` int64 / ``times`` float64 ``[R]`` (ids ``< 0``
    left out) in order of first occurrence: ``(nodes [U], times [U], inverse [R])``."""
    return _ops.dedup_roots(nodes, times)


@torch.library.register_fake("dgl_tgnn::dedup_roots")
def _(nodes, times):
    unique = torch.library.get_ctx().new_dynamic_size()
    return nodes.new_empty(unique), times.new_empty(unique), torch.empty_like(nodes)


# ---- top-K


def topk_dot(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    k: int,
    exclude: torch.Tensor | None = None,
    normalize: bool = False,
    check_exclude: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values [B, k] float32, indices [B, k] int64)``: the ``k`` best of candidates ``[N, d]`` for each
    of queries ``[B, d]`` (see ``dgl_tgnn.topk_dot``); ``check_exclude`` reads the ids' range back."""
    return _ops.topk_dot(queries, candidates, k, exclude, normalize, check_exclude)


@torch.library.register_fake("dgl_tgnn::topk_dot")
def _(queries, candidates, k, exclude=None, normalize=False, check_exclude=True):
    torch._check(queries.dim() == 2 and candidates.dim() == 2, lambda: "queries and candidates must be 2-D")
    torch._check_value(
        queries.device == candidates.device,
        lambda: f"queries are on {queries.device} but candidates on {candidates.device}",
    )
    rows = queries.shape[0]
    return (
        queries.new_empty(rows, k, dtype=torch.float32),
        queries.new_empty(rows, k, dtype=torch.int64),
    )


# ---- masked attention


def masked_attention(
    qk: torch.Tensor, mask: torch.Tensor, parts: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of each root over its valid slots: ``(agg [R, H, I], alpha [R, H, k])``.

    ``qk [R, H, I]``, ``mask [R, k]`` bool, ``parts`` column blocks ``[R, k, I_p]`` of the slot inputs
    (``sum I_p = I``), float32, contiguous. ``agg`` is differentiable (in ``qk`` and the parts),
    ``alpha`` is not.
    """
    return _ops.masked_attention(qk, mask, list(parts))


@torch.library.register_fake("dgl_tgnn::masked_attention")
def _(qk, mask, parts):
    return qk.new_empty(qk.shape), qk.new_empty(qk.shape[0], qk.shape[1], mask.shape[1])


@torch.library.register_fake("dgl_tgnn::masked_attention_backward")
def _(qk, mask, parts, alpha, grad_agg, need_qk, need_parts):
    grads = [torch.empty_like(qk)] if need_qk else []
    return grads + [torch.empty_like(part) for part, need in zip(parts, need_parts, strict=True) if need]


def _attention_setup_context(ctx, inputs, output) -> None:  # noqa: ANN001
    qk, mask, parts = inputs
    _, alpha = output
    ctx.mark_non_differentiable(alpha)
    ctx.save_for_backward(qk, mask, alpha, *parts)


def _attention_backward(ctx, grad_agg: torch.Tensor, _grad_alpha: torch.Tensor | None):  # noqa: ANN001, ANN202
    qk, mask, alpha, *parts = ctx.saved_tensors
    need_qk, _, need_parts = ctx.needs_input_grad
    grads = iter(
        _ops.masked_attention_backward(
            qk, mask, parts, alpha, grad_agg.contiguous(), need_qk, list(need_parts)
        )
    )
    grad_qk = next(grads) if need_qk else None
    return grad_qk, None, [next(grads) if need else None for need in need_parts]


torch.library.register_autograd(
    "dgl_tgnn::masked_attention", _attention_backward, setup_context=_attention_setup_context
)


# ---- dropout


def dropout_mask(x: torch.Tensor, p: float, seed: int) -> torch.Tensor:
    """A float32 CPU mask shaped like ``x`` (values unread): each element 0 with probability ``p`` in
    ``[0, 1)``, else ``1 / (1 - p)``, a function of ``(seed, element index)`` only."""
    return _ops.dropout_mask(x, p, _int64(seed))


@torch.library.register_fake("dgl_tgnn::dropout_mask")
def _(x, p, seed):
    return x.new_empty(x.shape, dtype=torch.float32)


# ---- time encoding


def harmonic_encoding(dt: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``cos(dt[:, None] * weight + bias)``: ``dt [n]``, ``weight``, ``bias [D]`` float32 on one device
    -> ``[n, D]``; differentiable in all three."""
    return _ops.harmonic_encoding(dt, weight, bias)


@torch.library.register_fake("dgl_tgnn::harmonic_encoding")
def _(dt, weight, bias):
    return dt.new_empty(dt.shape[0], weight.shape[0])


def _harmonic_setup_context(ctx, inputs, output) -> None:  # noqa: ANN001
    ctx.save_for_backward(*inputs)


def _harmonic_backward(ctx, grad: torch.Tensor):  # noqa: ANN001, ANN202
    """Four passes over ``[n, D]`` (autograd's own formula makes about nine): with ``s = -sin(arg) *
    grad``, the gradients of ``w`` and ``b`` come from one product ``[dt; 1] @ s``."""
    dt, weight, bias = ctx.saved_tensors
    minus_grad_arg = torch.addcmul(bias, dt.unsqueeze(1), weight).sin_().mul_(grad)  # d/d(arg) = -sin
    grad_dt = grad_weight = grad_bias = None
    if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
        grad_weight, grad_bias = (torch.stack([dt, torch.ones_like(dt)]) @ minus_grad_arg).neg_()
    if ctx.needs_input_grad[0]:
        grad_dt = (minus_grad_arg @ weight).neg_()
    return grad_dt, grad_weight, grad_bias


torch.library.register_autograd(
    "dgl_tgnn::harmonic_encoding", _harmonic_backward, setup_context=_harmonic_setup_context
)

# ---- pair features


def pair_features(
    src: torch.Tensor,
    t: torch.Tensor,
    candidates: torch.Tensor,
    inverse: torch.Tensor,
    nbr: torch.Tensor,
    times: torch.Tensor,
    mask: torch.Tensor,
    their_nbr: torch.Tensor,
    their_times: torch.Tensor,
    their_mask: torch.Tensor,
    check: bool = True,
) -> torch.Tensor:
    """``[B, C, 18]`` float32 features (``dgl_tgnn.pair_features``' columns) of sources ``src [B]``
    int64 at times ``t [B]`` float64 with ``candidates [B, C]`` int64, from the sources' blocks of
    recent events (``nbr`` int64, ``times`` float64, ``mask`` bool, each ``[B, H]``, most recent
    first) and the candidates' (``their_*``, ``[U, H']``; candidate ``(b, c)`` is row
    ``inverse[b, c]``), all on one device. ``check``: verify ``inverse``'s range (read back from a
    GPU)."""
    return _ops.pair_features(
        src, t, candidates, inverse, nbr, times, mask, their_nbr, their_times, their_mask, check
    )


@torch.library.register_fake("dgl_tgnn::pair_features")
def _(src, t, candidates, inverse, nbr, times, mask, their_nbr, their_times, their_mask, check=True):
    return times.new_empty(*candidates.shape, 18, dtype=torch.float32)


__all__ = [
    "CUDA_ATTENTION_MAX_PARTS",
    "CUDA_ATTENTION_MAX_WEIGHTS",
    "WITH_CUDA",
    "Hop",
    "dedup_roots",
    "dropout_mask",
    "harmonic_encoding",
    "masked_attention",
    "pair_features",
    "sample_cpu",
    "sample_cuda",
    "tcsr_append",
    "tcsr_build",
    "tcsr_pack",
    "topk_dot",
]
