"""Fused top-K dot product: for each query, the K candidates with the largest dot product (or cosine
similarity), without materialising the ``[B, N]`` score matrix.

Order everywhere: larger score first, the smaller candidate index first among equal scores. A
candidate whose score is NaN or ``-inf`` is never returned; where fewer than ``k`` candidates remain
for a query, the tail of its row is index ``-1`` and value ``-inf``. Inputs are expected finite.

Precision:

- CPU (float32): the exact top-K of the scores rounded once to float32 (products exact in float64,
  their float64 sum far below float32 resolution), the same on any BLAS and thread count. Float32
  matmul tiles only filter, with a proven error bound; candidates near a query's K-th score are
  rescored in float64. Equal to ``topk_dot_reference``.
- CUDA, float32: exact, the same values and indices as the CPU kernel bit for bit. Tensor cores score
  the inputs rounded to bfloat16 (or tf32) as a filter with a proven error bound; each query's
  candidates that can still be in its top k are rescored exactly (float64 in the CPU kernel's order),
  and a query with too many of them (masses of near-ties) is scored exactly over all candidates.
- CUDA, bfloat16: scores from tensor cores with float32 accumulation (bfloat16 products are exact).
  Near-ties closer than the sums' rounding may order differently from the exact scores.
- ``topk_dot_reference``: exact scores in float64 rounded to float32, chunked over the candidates.
"""

from __future__ import annotations

import operator

import torch

from dgl_tgnn import ops

NORM_EPS = 1e-12
"""Cosine similarity divides by ``max(|x|, NORM_EPS)``, as ``torch.nn.functional.normalize``."""


def topk_dot(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    k: int,
    exclude: torch.Tensor | None = None,
    normalize: bool = False,
    check: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` best candidates of each query by dot product, never materialising ``[B, N]``.

    One op, ``torch.ops.dgl_tgnn.topk_dot`` (``torch.compile`` traces it whole): on CPU the exact
    kernel, on a GPU the fused kernel where it covers ``k`` and ``d`` (else chunked exact scores).

    Args:
        queries: ``[B, d]`` float32 (CPU or CUDA) or bfloat16 (CUDA); any strides.
        candidates: ``[N, d]``, same dtype and device; any strides.
        k: how many candidates per query, ``1 <= k <= N``.
        exclude: ``None`` or int64 ``[B, m]`` candidate ids never returned for the query of that row;
            ``-1`` pads rows with fewer exclusions.
        normalize: rank by cosine similarity ``q.e / (max(|q|, eps) max(|e|, eps))`` instead.
        check: read back the range of ``exclude`` to raise on bad ids (on a GPU a host
            synchronisation); False where they are valid by construction.

    Returns:
        ``(values, indices)``: ``[B, k]`` float32 scores sorted descending and ``[B, k]`` int64
        candidate ids, the smaller id first among equal scores; ``(-inf, -1)`` where fewer than ``k``
        candidates remain. No gradient flows through them.

    Raises:
        TypeError: non-tensor inputs, ``k`` not an int, ``normalize`` not a bool.
        ValueError: ``k`` outside ``[1, N]``, inputs not 2-D, different ``d``, devices or dtypes, an
            unsupported dtype, or exclusion ids outside ``[-1, N)`` (checked by the op).
    """
    for name, x in (("queries", queries), ("candidates", candidates)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if isinstance(k, bool) or not hasattr(type(k), "__index__"):
        raise TypeError(f"k must be an int, got {k!r}")
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a bool, got {normalize!r}")
    if exclude is not None and not isinstance(exclude, torch.Tensor):
        raise TypeError(f"exclude must be a torch.Tensor or None, got {type(exclude).__name__}")
    with torch.no_grad():
        return ops.topk_dot(queries, candidates, operator.index(k), exclude, normalize, check)


def topk_dot_reference(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    k: int,
    exclude: torch.Tensor | None = None,
    normalize: bool = False,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pure-torch ``topk_dot``: exact scores, chunked over the candidates.

    Each chunk's scores are ``Q @ E_chunk.T`` in float64 (exact products, sums far below float32
    resolution) rounded to float32, excluded ids and NaN set to ``-inf``; a stable descending sort of
    the running best and the chunk keeps the first ``k``, which ranks equal scores by index. Same
    arguments and results as ``topk_dot`` (arguments are not validated here); ``chunk_size``
    candidates per chunk, by default about 2^24 scores per chunk.
    """
    num_queries, n = queries.shape[0], candidates.shape[0]
    device = queries.device
    q = queries.detach().double()
    q_norm = q.norm(dim=1).clamp_min(NORM_EPS)
    if chunk_size is None:
        chunk_size = max(1024, (1 << 24) // max(num_queries, 1))
    best_values = torch.empty(num_queries, 0, dtype=torch.float32, device=device)
    best_indices = torch.empty(num_queries, 0, dtype=torch.int64, device=device)
    for j0 in range(0, n, chunk_size):
        e = candidates[j0 : j0 + chunk_size].detach().double()
        scores = q @ e.T
        if normalize:
            scores = scores / q_norm[:, None] / e.norm(dim=1).clamp_min(NORM_EPS)[None, :]
        scores = scores.float()
        scores.masked_fill_(scores.isnan(), float("-inf"))
        if exclude is not None:
            inside = (exclude >= j0) & (exclude < j0 + e.shape[0])
            rows = torch.arange(num_queries, device=device)[:, None].expand_as(exclude)
            scores[rows[inside], exclude[inside] - j0] = float("-inf")
        ids = torch.arange(j0, j0 + e.shape[0], device=device).expand(num_queries, -1)
        values = torch.cat([best_values, scores], dim=1)
        indices = torch.cat([best_indices, ids], dim=1)
        order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
        best_values = values.gather(1, order)
        best_indices = indices.gather(1, order)
    best_indices = best_indices.masked_fill(best_values == float("-inf"), -1)
    return best_values, best_indices
