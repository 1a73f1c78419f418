"""topk_dot on the CPU: exact agreement with the float64 reference, tie rule, exclusions, errors."""

import pytest
import torch

from dgl_tgnn import topk_dot
from dgl_tgnn.topk import topk_dot_reference


def randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def assert_same(got: tuple[torch.Tensor, torch.Tensor], expected: tuple[torch.Tensor, torch.Tensor]) -> None:
    values, indices = got
    ref_values, ref_indices = expected
    assert values.dtype == torch.float32 and indices.dtype == torch.int64
    assert values.shape == ref_values.shape and indices.shape == ref_indices.shape
    assert torch.equal(indices, ref_indices)
    torch.testing.assert_close(values, ref_values, rtol=1e-5, atol=0.0)


def brute_force(
    q: torch.Tensor, e: torch.Tensor, k: int, excluded: list[set[int]] | None = None
) -> list[list]:
    """Per query, [(score, id)] of the k best by (score desc, id asc), from float64 scores in Python."""
    scores = (q.double() @ e.double().T).float().tolist()
    out = []
    for b, row in enumerate(scores):
        pairs = [(s, j) for j, s in enumerate(row) if excluded is None or j not in excluded[b]]
        pairs.sort(key=lambda p: (-p[0], p[1]))
        out.append(pairs[:k])
    return out


@pytest.mark.parametrize(
    ("b", "n", "d", "k"),
    [
        (1, 1, 1, 1),  # smallest
        (1, 9, 5, 9),  # B = 1, k = N
        (7, 100, 16, 100),  # k = N, N < tile
        (40, 5000, 100, 50),  # several tiles, the last one partial
        (13, 700, 172, 300),  # k > 256
        (3, 2049, 3, 1),  # tile boundary + 1
    ],
)
def test_matches_reference_on_random_data(b: int, n: int, d: int, k: int) -> None:
    q, e = randn(b, d, seed=b * 1000 + n), randn(n, d, seed=n * 7 + d)
    assert_same(topk_dot(q, e, k), topk_dot_reference(q, e, k))


def test_matches_python_brute_force() -> None:
    q, e = randn(6, 20, seed=1), randn(300, 20, seed=2)
    values, indices = topk_dot(q, e, 12)
    for b, pairs in enumerate(brute_force(q, e, 12)):
        assert indices[b].tolist() == [j for _, j in pairs]
        assert values[b].tolist() == [s for s, _ in pairs]


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_queries_split_among_threads_give_the_same_result(threads: int) -> None:
    # The training table's shape: one tile of candidates, so the queries are split into blocks
    # (of at least 16; the last one partial) to feed the threads.
    q, e = randn(203, 40, seed=21), randn(1000, 40, seed=22)
    exclude = torch.randint(-1, 1000, (203, 2), generator=torch.Generator().manual_seed(23))
    excluded = [set(row.tolist()) for row in exclude]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        values, indices = topk_dot(q, e, 50, exclude=exclude)
    finally:
        torch.set_num_threads(before)
    for b, pairs in enumerate(brute_force(q, e, 50, excluded)):
        assert indices[b].tolist() == [j for _, j in pairs]
        assert values[b].tolist() == [s for s, _ in pairs]


def test_hand_computed_example() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    e = torch.tensor([[3.0, 1.0], [1.0, 3.0], [3.0, -5.0], [-1.0, 1.0]])
    values, indices = topk_dot(q, e, 3)
    # query 0 scores [3, 1, 3, -1]; query 1 scores [2, 6, -10, 2]
    assert indices.tolist() == [[0, 2, 1], [1, 0, 3]]
    assert values.tolist() == [[3.0, 3.0, 1.0], [6.0, 2.0, 2.0]]


def test_many_candidates_against_float64_topk() -> None:
    q, e = randn(30, 64, seed=3), randn(20000, 64, seed=4)
    scores = q.double() @ e.double().T  # continuous data: no ties, torch.topk's order is unambiguous
    expected = scores.topk(40, dim=1)
    values, indices = topk_dot(q, e, 40)
    assert torch.equal(indices, expected.indices)
    torch.testing.assert_close(values, expected.values.float(), rtol=1e-6, atol=0.0)


def test_forced_ties_rank_the_smaller_index_first() -> None:
    g = torch.Generator().manual_seed(5)
    q = torch.randint(-2, 3, (25, 6), generator=g).float()
    e = torch.randint(-2, 3, (3000, 6), generator=g).float()  # integer scores: thousands of exact ties
    values, indices = topk_dot(q, e, 200)
    assert_same((values, indices), topk_dot_reference(q, e, 200))
    for b, pairs in enumerate(brute_force(q, e, 200)):
        assert indices[b].tolist() == [j for _, j in pairs]
    same = values[:, 1:] == values[:, :-1]
    assert same.any()
    assert (indices[:, 1:] > indices[:, :-1])[same].all()


def test_duplicate_candidate_rows() -> None:
    q = randn(9, 32, seed=6)
    base = randn(50, 32, seed=7)
    e = base[torch.randint(0, 50, (2000,), generator=torch.Generator().manual_seed(8))]
    values, indices = topk_dot(q, e, 64)
    assert_same((values, indices), topk_dot_reference(q, e, 64))
    same = values[:, 1:] == values[:, :-1]
    assert same.sum() > 100
    assert (indices[:, 1:] > indices[:, :-1])[same].all()


def test_exclusions_covering_almost_all_candidates() -> None:
    b, n, keep = 6, 400, 5
    q, e = randn(b, 24, seed=9), randn(n, 24, seed=10)
    g = torch.Generator().manual_seed(11)
    exclude = torch.stack([torch.randperm(n, generator=g)[: n - keep] for _ in range(b)])
    values, indices = topk_dot(q, e, 10, exclude=exclude)
    assert_same((values, indices), topk_dot_reference(q, e, 10, exclude=exclude))
    excluded = [set(row.tolist()) for row in exclude]
    for r, pairs in enumerate(brute_force(q, e, 10, excluded)):
        assert len(pairs) == keep
        assert indices[r, :keep].tolist() == [j for _, j in pairs]
    assert (indices[:, keep:] == -1).all()
    assert (values[:, keep:] == float("-inf")).all()


def test_exclusions_with_padding_and_duplicates() -> None:
    q, e = randn(4, 8, seed=12), randn(600, 8, seed=13)
    best = topk_dot(q, e, 3)[1]
    pad = torch.full((4, 2), -1)
    exclude = torch.cat([best[:, :1], pad, best[:, :2], best[:, :1]], dim=1)  # -1 padding, repeats
    values, indices = topk_dot(q, e, 5, exclude=exclude)
    assert_same((values, indices), topk_dot_reference(q, e, 5, exclude=exclude))
    assert torch.equal(indices[:, 0], best[:, 2])
    assert not (indices[:, :, None] == best[:, None, :2]).any()


def test_every_candidate_excluded() -> None:
    q, e = randn(2, 4, seed=14), randn(3, 4, seed=15)
    values, indices = topk_dot(q, e, 2, exclude=torch.tensor([[0, 1, 2], [2, -1, 1]]))
    assert indices.tolist() == [[-1, -1], [0, -1]]
    assert values[0].tolist() == [float("-inf")] * 2
    assert values[1, 1].item() == float("-inf")


def test_cosine_similarity() -> None:
    q, e = randn(11, 40, seed=16), randn(3000, 40, seed=17)
    e[5] = 0.0  # a zero vector scores 0, as with F.normalize
    e[7] *= 1000.0  # the scale of a candidate must not matter
    values, indices = topk_dot(q, e, 20, normalize=True)
    assert_same((values, indices), topk_dot_reference(q, e, 20, normalize=True))
    qn, en = torch.nn.functional.normalize(q.double()), torch.nn.functional.normalize(e.double())
    expected = (qn @ en.T).topk(20, dim=1)
    assert torch.equal(indices, expected.indices)
    torch.testing.assert_close(values, expected.values.float(), rtol=1e-6, atol=1e-7)


def test_non_contiguous_inputs() -> None:
    q = randn(48, 5, seed=18).T  # queries [5, 48] as the transpose of [d, B]
    e_big = randn(2 * 1500, 2 * 48, seed=19)
    e = e_big[::2, ::2]  # strided rows and columns
    assert not q.is_contiguous() and not e.is_contiguous()
    exclude = torch.randint(-1, 1500, (5, 7), generator=torch.Generator().manual_seed(20))
    got = topk_dot(q, e, 30, exclude=exclude.T.contiguous().T)
    assert_same(got, topk_dot(q.contiguous(), e.contiguous(), 30, exclude=exclude))
    assert_same(got, topk_dot_reference(q.contiguous(), e.contiguous(), 30, exclude=exclude))
    row_view = e_big[1::2, 48:]  # element stride 1, row stride 4 d, offset start
    assert_same(topk_dot(q, row_view, 30), topk_dot_reference(q, row_view.contiguous(), 30))


def test_query_block_boundary() -> None:
    q, e = randn(1030, 4, seed=21), randn(70, 4, seed=22)  # more queries than one score tile holds
    assert_same(topk_dot(q, e, 7), topk_dot_reference(q, e, 7))


def test_nan_candidates_are_never_returned() -> None:
    q, e = randn(3, 6, seed=23), randn(20, 6, seed=24)
    e[4, 2] = float("nan")
    values, indices = topk_dot(q, e, 20)
    assert_same((values, indices), topk_dot_reference(q, e, 20))
    assert (indices[:, -1] == -1).all() and not (indices == 4).any()


def test_first_tile_floor_with_exclusions_and_nan() -> None:
    """The first tile's floor (k-th largest group maximum of lower bounds) must leave out excluded
    and NaN candidates: here the 30 best of each query are excluded and every 7th row is NaN."""
    q, e = randn(8, 12, seed=27), randn(3000, 12, seed=28)
    e[::7, 0] = float("nan")
    best = topk_dot(q, e, 30)[1]
    exclude = torch.cat([best, torch.full((8, 3), -1)], dim=1)
    values, indices = topk_dot(q, e, 25, exclude=exclude)
    assert_same((values, indices), topk_dot_reference(q, e, 25, exclude=exclude))
    nan_rows = set(range(0, 3000, 7))  # NaN scores are never returned
    excluded = [set(row.tolist()) | nan_rows for row in exclude]
    for b, pairs in enumerate(brute_force(q, e, 25, excluded)):
        assert indices[b].tolist() == [j for _, j in pairs]


def test_no_queries_and_no_gradient() -> None:
    e = randn(10, 3, seed=25)
    values, indices = topk_dot(torch.empty(0, 3), e, 4)
    assert values.shape == (0, 4) and indices.shape == (0, 4)
    q = randn(2, 3, seed=26).requires_grad_()
    values, _ = topk_dot(q, e, 4)
    assert not values.requires_grad


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((torch.ones(2, 3), torch.ones(5, 3), 0), {}, "k must be in"),
        ((torch.ones(2, 3), torch.ones(5, 3), 6), {}, "k must be in"),
        ((torch.ones(2, 3), torch.ones(0, 3), 1), {}, "k must be in"),
        ((torch.ones(2, 3), torch.ones(5, 4), 1), {}, "same dimension"),
        ((torch.ones(3), torch.ones(5, 3), 1), {}, "queries must be 2-D"),
        ((torch.ones(2, 3), torch.ones(5, 3, 1), 1), {}, "candidates must be 2-D"),
        ((torch.ones(2, 3), torch.ones(5, 3, dtype=torch.float64), 1), {}, "float32 but candidates"),
        ((torch.ones(2, 3, dtype=torch.float64), torch.ones(5, 3, dtype=torch.float64), 1), {}, "float32 or"),
        ((torch.ones(2, 3, dtype=torch.bfloat16), torch.ones(5, 3, dtype=torch.bfloat16), 1), {}, "CUDA"),
        ((torch.ones(2, 3), torch.ones(5, 3, device="meta"), 1), {}, "on cpu but candidates on meta"),
        ((torch.ones(2, 3), torch.ones(5, 3), 1), {"exclude": torch.tensor([[0], [5]])}, "got 5"),
        ((torch.ones(2, 3), torch.ones(5, 3), 1), {"exclude": torch.tensor([[0], [-2]])}, "got -2"),
        ((torch.ones(2, 3), torch.ones(5, 3), 1), {"exclude": torch.tensor([[0, 1]])}, "shape \\[B=2"),
        ((torch.ones(2, 3), torch.ones(5, 3), 1), {"exclude": torch.tensor([[0.0], [1.0]])}, "int64"),
        ((torch.ones(2, 3), torch.ones(5, 3), 1), {"exclude": torch.tensor([0, 1])}, "shape"),
    ],
)
def test_errors(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        topk_dot(*args, **kwargs)


def test_type_errors() -> None:
    with pytest.raises(TypeError, match="queries must be a torch.Tensor"):
        topk_dot([[1.0]], torch.ones(2, 1), 1)
    with pytest.raises(TypeError, match="k must be an int"):
        topk_dot(torch.ones(1, 1), torch.ones(2, 1), 1.5)
    with pytest.raises(TypeError, match="normalize must be a bool"):
        topk_dot(torch.ones(1, 1), torch.ones(2, 1), 1, normalize=1)


def test_extension_checks_its_inputs() -> None:
    from dgl_tgnn import ops

    with pytest.raises(ValueError, match="k must be in"):
        ops.topk_dot(torch.ones(2, 3), torch.ones(5, 3), 9)
    with pytest.raises(ValueError, match="exclude must be int64"):
        ops.topk_dot(torch.ones(2, 3), torch.ones(5, 3), 1, torch.zeros(2, 1))
