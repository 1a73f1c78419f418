"""topk_dot's fused CUDA kernel: bfloat16 against the float64 reference (near-ties may swap), float32
exact (filter pass + exact rescoring): equal to the CPU kernel bit for bit and to the reference."""

import pytest
import torch

from dgl_tgnn import ops, topk_dot
from dgl_tgnn.topk import topk_dot_reference

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not (torch.cuda.is_available() and ops.WITH_CUDA), reason="needs a CUDA device and the CUDA extension"
    ),
]

CUDA = torch.device("cuda")


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator(device=CUDA).manual_seed(seed)
    return torch.randn(*shape, generator=g, device=CUDA).to(dtype)


def randint(lo: int, hi: int, shape: tuple, seed: int, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator(device=CUDA).manual_seed(seed)
    return torch.randint(lo, hi, shape, generator=g, device=CUDA).to(dtype)


def exact_scores(
    q: torch.Tensor, e: torch.Tensor, indices: torch.Tensor, normalize: bool = False
) -> torch.Tensor:
    """float64 scores of the chosen candidates ([B, k]; -inf where the index is -1)."""
    qd, ed = q.double(), e.double()
    if normalize:
        qd, ed = torch.nn.functional.normalize(qd), torch.nn.functional.normalize(ed)
    picked = ed[indices.clamp_min(0)]
    scores = (picked * qd[:, None, :]).sum(-1)
    return scores.masked_fill(indices < 0, float("-inf"))


def check_near_exact(q, e, k, exclude=None, normalize=False, tol=2e-5, min_match=0.99):
    """Kernel result vs the exact reference, allowing swaps only between near-equal scores.

    tol is relative to |q| |e| (the scale of the scores' rounding error). Checks: values sorted and
    within tol of the chosen candidates' exact scores; every chosen candidate valid, distinct, not
    excluded and within tol of the reference's k-th score; at least min_match of the indices equal.
    Returns the fraction of equal indices.
    """
    values, indices = topk_dot(q, e, k, exclude=exclude, normalize=normalize)
    ref_values, ref_indices = topk_dot_reference(q, e, k, exclude=exclude, normalize=normalize)
    assert values.shape == (q.shape[0], k) and indices.dtype == torch.int64
    assert torch.equal(indices < 0, ref_indices < 0)  # as many results per query
    scale = 1.0 if normalize else (q.double().norm(dim=1)[:, None] * e.double().norm(dim=1).max())
    err = tol * scale
    valid = indices >= 0
    exact = exact_scores(q, e, indices, normalize)
    assert (values[:, 1:] <= values[:, :-1]).all()
    assert ((values.double() - exact).abs() <= err)[valid].all()
    kth = ref_values.double().masked_fill(ref_indices < 0, float("inf")).min(dim=1, keepdim=True).values
    assert (exact >= kth - err)[valid].all()
    sorted_idx = indices.sort(dim=1).values
    assert not ((sorted_idx[:, 1:] == sorted_idx[:, :-1]) & (sorted_idx[:, 1:] >= 0)).any()
    if exclude is not None:
        assert not ((indices[:, :, None] == exclude[:, None, :]) & valid[:, :, None]).any()
    match = (indices == ref_indices).double().mean().item()
    assert match >= min_match
    return match


def check_float32_exact(q, e, k, exclude=None, normalize=False, cpu=True):
    """float32 kernel result == the CPU kernel's (values and indices bit for bit; cpu=False: the
    reference's values instead) and the float64 reference's indices; returns the result."""
    values, indices = topk_dot(q, e, k, exclude=exclude, normalize=normalize)
    assert values.dtype == torch.float32 and indices.dtype == torch.int64
    ref_values, ref_indices = topk_dot_reference(q, e, k, exclude=exclude, normalize=normalize)
    assert torch.equal(indices, ref_indices)
    if cpu:
        ex = None if exclude is None else exclude.cpu()
        cpu_values, cpu_indices = topk_dot(q.cpu(), e.cpu(), k, exclude=ex, normalize=normalize)
        assert torch.equal(indices.cpu(), cpu_indices)
        assert torch.equal(values.cpu(), cpu_values)
    else:
        assert torch.equal(values, ref_values)
    return values, indices


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize(
    ("b", "n", "d", "k"),
    [
        (1, 1, 1, 1),
        (1, 100, 16, 100),  # B = 1, k = N < tile
        (37, 5000, 172, 50),
        (300, 20000, 100, 50),  # several row blocks and splits
        (64, 3000, 64, 64),
        (20, 3000, 64, 65),  # lists of 128
        (20, 3000, 32, 129),  # lists of 256
        (9, 1000, 48, 256),
        (5, 1000, 24, 300),  # beyond the kernel's k: chunked fallback
        (8, 777, 33, 40),  # odd d: one zero column (bfloat16)
        (40, 3000, 256, 50),  # bfloat16: 3 pipeline stages (4 do not fit in shared memory)
        # bfloat16, k <= 64: the wgmma kernels on H100/H200 (sm_90a code), mma.sync elsewhere
        (130, 2000, 8, 10),  # one k16-step per tile; a second row block of 2 rows
        (70, 1000, 72, 64),  # a last chunk of one k16-step; k = list capacity
        (3, 100, 40, 50),  # N < one tile
        (40, 3000, 264, 50),  # too wide for the wgmma kernels' shared memory on H100: mma.sync
    ],
)
def test_random_data_matches_reference(dtype, b, n, d, k) -> None:
    q, e = randn(b, d, seed=b + n, dtype=dtype), randn(n, d, seed=n + d, dtype=dtype)
    check_near_exact(q, e, k)
    if dtype == torch.float32:
        check_float32_exact(q, e, k)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_integer_data_is_exact_with_ties(dtype) -> None:
    # small integers: products and sums are exact in both kernels, so results must equal the
    # reference exactly, thousands of ties included
    q = randint(-3, 4, (150, 40), seed=1, dtype=dtype)
    e = randint(-3, 4, (6000, 40), seed=2, dtype=dtype)
    for k in (1, 50, 100, 256):
        values, indices = topk_dot(q, e, k)
        ref_values, ref_indices = topk_dot_reference(q, e, k)
        assert torch.equal(indices, ref_indices)
        assert torch.equal(values, ref_values)
    same = values[:, 1:] == values[:, :-1]
    assert same.sum() > 1000
    assert (indices[:, 1:] > indices[:, :-1])[same].all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_duplicate_rows_rank_by_index(dtype) -> None:
    q = randn(40, 64, seed=3, dtype=dtype)
    base = randn(100, 64, seed=4, dtype=dtype)
    pick = torch.randint(0, 100, (50000,), generator=torch.Generator().manual_seed(5)).to(CUDA)
    e = base[pick]
    values, indices = topk_dot(q, e, 60)
    ref_values, ref_indices = topk_dot_reference(q, e, 60)
    # copies of one row score bit-identically in the kernel; the ranking among distinct rows
    # agrees where their scores are not near-ties (checked on the sets of chosen base rows)
    same = values[:, 1:] == values[:, :-1]
    assert same.sum() > 500
    assert (indices[:, 1:] > indices[:, :-1])[same].all()
    assert (pick[indices] == pick[ref_indices]).double().mean() >= 0.99


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_exclusions_covering_almost_all_candidates(dtype) -> None:
    b, n, keep = 70, 3000, 7
    q, e = randn(b, 32, seed=6, dtype=dtype), randn(n, 32, seed=7, dtype=dtype)
    g = torch.Generator().manual_seed(8)
    exclude = torch.stack([torch.randperm(n, generator=g)[: n - keep] for _ in range(b)]).to(CUDA)
    exclude[:, :100] = -1  # padding: 100 more candidates stay
    check_near_exact(q, e, 120, exclude=exclude)
    values, indices = topk_dot(q, e, 120, exclude=exclude)
    assert ((indices >= 0).sum(dim=1) == keep + 100).all()
    assert (values[:, keep + 100 :] == float("-inf")).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_cosine_similarity(dtype) -> None:
    q, e = randn(50, 100, seed=9, dtype=dtype), randn(8000, 100, seed=10, dtype=dtype)
    e[3] = 0
    e[11] *= 64
    check_near_exact(q, e, 50, normalize=True, tol=2e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_non_contiguous_and_misaligned_inputs(dtype) -> None:
    q = randn(24, 30, seed=11, dtype=dtype).T  # [30, 24] transposed view
    big = randn(4001, 3 * 24 + 1, seed=12, dtype=dtype)
    views = [
        big[1::2, 1:25],  # row stride 73 elements, start offset one element (misaligned rows)
        big[:, ::3][:, :24],  # element stride 3
        big[:4000, :24],  # aligned start, odd row stride
    ]
    for e in views:
        values, indices = topk_dot(q, e, 33)
        ref = topk_dot(q.contiguous(), e.contiguous(), 33)
        assert torch.equal(indices, ref[1]) and torch.equal(values, ref[0])
        check_near_exact(q, e, 33)


def test_bfloat16_recall_against_float64() -> None:
    q, e = randn(600, 172, seed=13, dtype=torch.bfloat16), randn(100000, 172, seed=14, dtype=torch.bfloat16)
    _, indices = topk_dot(q, e, 50)
    _, ref_indices = topk_dot_reference(q, e, 50)
    hits = (indices[:, :, None] == ref_indices[:, None, :]).any(-1).double().mean().item()
    assert hits >= 0.99


def test_peak_memory_is_far_below_a_score_matrix() -> None:
    b, n, d, k = 2000, 2_000_000, 64, 50
    q, e = randn(b, d, seed=15, dtype=torch.bfloat16), randn(n, d, seed=16, dtype=torch.bfloat16)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    _, indices = topk_dot(q, e, k)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - before
    assert extra < b * n * 4 / 500  # 16 GB for float32 scores; the kernel needs a few MB
    sample = torch.arange(0, b, 97, device=CUDA)
    _, ref_indices = topk_dot_reference(q[sample], e, k)
    hits = (indices[sample][:, :, None] == ref_indices[:, None, :]).any(-1).double().mean().item()
    assert hits >= 0.99


# ---- seeded threshold: a first pass bounds each query's k-th score (sizes for which the kernel plans one)


# (B, N, k): one row block per multiprocessor or more (one candidate split each) with a seed
# slice of one tile, the same with groups of several tiles, and a few row blocks with many splits
SEEDED = [(17000, 5000, 8), (17000, 200_000, 8), (100, 600_000, 50)]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize(("b", "n", "k"), SEEDED)
def test_seeded_integer_data_is_exact_with_ties_at_the_kth_value(dtype, b, n, k) -> None:
    # integer scores in [-40, 40]: many candidates tie with a query's k-th score, so the seed bound
    # (a score of the data) often equals the k-th score exactly; ties at the bound must pass
    q = randint(-1, 2, (b, 40), seed=b + n, dtype=dtype)
    e = randint(-1, 2, (n, 40), seed=n + k, dtype=dtype)
    values, indices = topk_dot(q, e, k)
    ref_values, ref_indices = topk_dot_reference(q, e, k)
    assert torch.equal(indices, ref_indices)
    assert torch.equal(values, ref_values)
    # in most rows some candidates that tie with the k-th value are left out (ties across the cut)
    rows = torch.arange(0, b, max(1, b // 50), device=CUDA)
    scores = q[rows].double() @ e.double().T
    kth = values[rows, -1:].double()
    across = (scores == kth).sum(dim=1) > (values[rows] == values[rows, -1:]).sum(dim=1)
    assert across.double().mean() >= 0.25


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize(("b", "n", "k"), SEEDED[::2])
def test_seeded_random_data_matches_reference(dtype, b, n, k) -> None:
    q, e = randn(b, 64, seed=b + 1, dtype=dtype), randn(n, 64, seed=n + 2, dtype=dtype)
    check_near_exact(q, e, k)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize(("b", "n", "k"), SEEDED[::2])
def test_seed_ignores_excluded_candidates(dtype, b, n, k) -> None:
    # the best candidates of every query sit in the first tiles (the seed slice) and are all
    # excluded: a bound taken over them would exceed every remaining score and lose the answer
    q = randint(-3, 4, (b, 40), seed=b + 3, dtype=dtype)
    e = randint(-3, 4, (n, 40), seed=n + 4, dtype=dtype)
    top = 300
    e[:top] = 8 * q[torch.arange(top, device=CUDA) % b]  # candidate j scores 8 |q_j|^2 for query j % b
    e[:top:2] = 30 * torch.sign(q.float().sum(0)).to(dtype)  # and the even ones high for most queries
    exclude = torch.arange(top, device=CUDA).expand(b, top).clone()
    exclude[:, 1::7] = -1  # padding: some of them stay
    values, indices = topk_dot(q, e, k, exclude=exclude)
    ref_values, ref_indices = topk_dot_reference(q, e, k, exclude=exclude)
    assert torch.equal(indices, ref_indices)
    assert torch.equal(values, ref_values)
    kept = torch.arange(1, top, 7, device=CUDA)
    assert torch.isin(indices, kept).any()  # some non-excluded seed-slice candidates made it


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_seeded_rows_with_fewer_than_k_candidates_left(dtype) -> None:
    b, n, k, keep = 17000, 4200, 8, 5
    q = randint(-3, 4, (b, 16), seed=20, dtype=dtype)
    e = randint(-3, 4, (n, 16), seed=21, dtype=dtype)
    # rows 0..63 keep only `keep` candidates, 2 of them in the first tile (fewer than k group maxima
    # in the seed slice: no bound); the others lose the first half of the first tile
    exclude = torch.full((b, n - keep), -1, dtype=torch.int64, device=CUDA)
    exclude[:, :64] = torch.arange(64, device=CUDA)
    g = torch.Generator().manual_seed(22)
    for r in range(64):
        inside = torch.randperm(128, generator=g)[:2]
        stay = torch.cat([inside, 128 + torch.randperm(n - 128, generator=g)[: keep - 2]])
        others = torch.ones(n, dtype=torch.bool)
        others[stay] = False
        exclude[r] = others.nonzero().squeeze(1).to(CUDA)
    values, indices = topk_dot(q, e, k, exclude=exclude)
    ref_values, ref_indices = topk_dot_reference(q, e, k, exclude=exclude)
    assert torch.equal(indices, ref_indices)
    assert torch.equal(values, ref_values)
    assert ((indices[:64] >= 0).sum(dim=1) == keep).all()
    assert (values[:64, keep:] == float("-inf")).all() and (indices[:64, keep:] == -1).all()
    assert (indices[64:] >= 64).all()


@pytest.mark.parametrize("normalize", [False, True])
def test_seeded_cosine_and_misaligned_candidates(normalize) -> None:
    b, n, k = 100, 600_000, 50
    q = randn(b, 33, seed=23, dtype=torch.bfloat16)
    e = randn(n, 35, seed=24, dtype=torch.bfloat16)[:, 1:34]  # odd d, rows start one element in
    check_near_exact(q, e, k, normalize=normalize)


# ---- float32: exact (filter with an error bound, exact rescoring of the survivors, fallback)


@pytest.mark.parametrize(
    ("b", "n", "d", "k"),
    [
        (1, 5, 3, 5),  # k = N < one tile; rows of 12 bytes (the wgmma copier's scalar loads)
        (64, 10_000, 34, 20),  # rows of 136 bytes (its 8-byte loads)
        (1, 50_000, 172, 50),  # B = 1, seeded splits
        (1, 1_000_000, 100, 10),  # B = 1 over recommend's largest pool: a split per multiprocessor
        (600, 100_000, 172, 50),  # the benchmark's shape, smaller N: seeded, several row blocks
        (129, 30_000, 100, 64),  # a row block of one query; k = list capacity
        (50, 40_000, 172, 100),  # lists of 128 (mma.sync filter), seeded
        (7, 20_000, 31, 200),  # lists of 256, odd d
    ],
)
def test_float32_equals_the_cpu_kernel(b, n, d, k) -> None:
    q, e = randn(b, d, seed=b + 2 * n), randn(n, d, seed=3 * n + d)
    check_float32_exact(q, e, k)


def test_float32_cosine_equals_the_cpu_kernel() -> None:
    q, e = randn(70, 172, seed=30), randn(60_000, 172, seed=31)
    e[5] = 0  # zero rows: norm clamped to eps, score 0
    q[3] = 0
    e[7::1000] *= 1e4  # long rows score like short ones under cosine
    e[9::1000] *= 1e-20  # and so do very short ones (their norm is below the margin floor)
    check_float32_exact(q, e, 50, normalize=True)


def test_float32_exclusions_equal_the_cpu_kernel() -> None:
    b, n = 90, 40_000
    q, e = randn(b, 64, seed=32), randn(n, 64, seed=33)
    _, best = topk_dot(q, e, 40)
    g = torch.Generator().manual_seed(34)
    exclude = torch.cat([best[:, ::2], torch.randint(-1, n, (b, 300), generator=g).to(CUDA)], dim=1)
    _, indices = check_float32_exact(q, e, 40, exclude=exclude)
    assert not (indices[:, :, None] == exclude[:, None, :]).any()


def test_float32_near_ties_overflow_the_survivors_and_fall_back() -> None:
    # 70,000 candidates whose scores differ by far less than the filter's bound sit at the top of
    # every query: all of them survive, more than a query's survivor buffer holds (at most 65,536), so
    # every row takes the exact fallback; exact duplicates among them rank by index
    b, n, d, k = 20, 120_000, 172, 50
    q = randn(b, d, seed=35).abs()
    e = randn(n, d, seed=36)
    near = torch.arange(1000, 71_000, device=CUDA)
    e[near] = 3.0 + 1e-6 * randn(near.numel(), d, seed=37)  # > 3 |q|_1 scores, spread ~1e-6 |q|
    e[near[::3]] = e[near[0]].clone()  # a third of them identical (a copy: the source row is among them)
    values, indices = check_float32_exact(q, e, k)
    assert torch.isin(indices, near).all()
    same = values[:, 1:] == values[:, :-1]
    assert same.any() and (indices[:, 1:] > indices[:, :-1])[same].all()


def test_float32_all_candidates_tie() -> None:
    q = randn(33, 40, seed=38)
    e = randn(1, 40, seed=39).expand(30_000, 40)  # one row, 30,000 times (row stride 0)
    values, indices = check_float32_exact(q, e, 64)
    assert torch.equal(indices, torch.arange(64, device=CUDA).expand(33, 64))
    assert (values == values[:, :1]).all()


@pytest.mark.parametrize("scale", [1e17, 1e19, 1e-22])
def test_float32_large_and_tiny_norms(scale) -> None:
    # 1e17: scores near 1e36, finite in float32. 1e19: sums overflow float32 (tensor-core scores are
    # inf or NaN: unbounded, so they survive; exact scores are +-inf or finite, and -inf is never
    # returned). 1e-22: products are subnormal (the bound's floor covers them; exact scores are
    # subnormal floats). At these two the CPU kernel's own float32 filter has no valid bound (NaN or
    # underflowed scores), so the float64 reference's values are the comparison.
    q = randn(40, 172, seed=40) * scale
    e = randn(20_000, 172, seed=41) * scale
    values, _ = check_float32_exact(q, e, 50, cpu=scale == 1e17)
    if scale == 1e17:
        assert values.isfinite().all() and values.abs().max() > 1e35
    if scale == 1e19:
        assert (values == float("inf")).any()
    if scale == 1e-22:
        assert (values != 0).all() and (values.abs() < 1e-38).all()


def test_float32_subnormal_and_nan_rows() -> None:
    q, e = randn(50, 64, seed=42), randn(30_000, 64, seed=43)
    e[100:200] = 1e-40  # subnormal elements: no relative bound on their rounding (always survive)
    e[100:200, 0] = 40.0  # and a large one that puts them at the top
    e[300:310] = float("nan")  # never returned
    values, indices = check_float32_exact(q, e, 60)
    assert not ((indices >= 300) & (indices < 310)).any()
    assert values.isfinite().all()


def test_float32_rows_with_fewer_than_k_candidates_left() -> None:
    b, n, k = 40, 50_000, 30
    q, e = randn(b, 32, seed=44), randn(n, 32, seed=45)
    exclude = torch.arange(n - 10, device=CUDA).expand(b, n - 10).clone()  # 10 left per row
    exclude[::2, :5] = -1  # even rows: 15 left
    values, indices = check_float32_exact(q, e, k, exclude=exclude)
    left = (indices >= 0).sum(dim=1)
    assert (left[1::2] == 10).all() and (left[::2] == 15).all()
    assert (values[indices < 0] == float("-inf")).all()
