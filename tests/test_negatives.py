"""Negative samplers: distributions (chi-square, fixed seeds), exclusions, warm-up, refresh cadence."""

import pytest
import torch
from scipy.stats import chisquare

from dgl_tgnn.events import EventStream
from dgl_tgnn.negatives import (
    DegreeNegatives,
    HistoricalNegatives,
    InductiveNegatives,
    PairHistory,
    TopKNegatives,
    UniformNegatives,
    topk_by_score,
)


def stream(src, dst):
    n = len(src)
    return EventStream(
        torch.tensor(src), torch.tensor(dst), torch.arange(n, dtype=torch.float64), torch.arange(n)
    )


def test_pair_history_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    src = torch.randint(0, 6, (80,), generator=g)
    dst = torch.randint(0, 9, (80,), generator=g)
    history = PairHistory(src, dst)
    nodes = torch.tensor([0, 1, 2, 3, 4, 5, 8, 42])
    for stop in (0, 1, 17, 80):
        known = history.known(nodes, stop)
        for row, v in enumerate(nodes.tolist()):
            expected = []
            for i in range(stop):
                if src[i] == v and int(dst[i]) not in expected:
                    expected.append(int(dst[i]))
            got = [d for d in known[row].tolist() if d >= 0]
            assert got == expected, (v, stop)


def test_uniform_is_uniform_and_seeded():
    pool = torch.arange(10, 20)
    batch = stream([0] * 500, [1] * 500).batch(0, 500)
    draws = UniformNegatives(pool, 40, seed=3).sample(batch)
    assert draws.shape == (500, 40) and draws.dtype == torch.int64
    counts = torch.bincount(draws.flatten() - 10, minlength=10)
    assert counts.sum() == 20000 and chisquare(counts.numpy()).pvalue > 1e-3
    assert torch.equal(draws, UniformNegatives(pool, 40, seed=3).sample(batch))
    assert not torch.equal(draws, UniformNegatives(pool, 40, seed=4).sample(batch))


def test_uniform_chi_square_detects_a_skew():
    # The check above can fail: a skewed sample is rejected.
    skewed = torch.cat([torch.arange(10).repeat(1900), torch.zeros(1000, dtype=torch.int64)])
    counts = torch.bincount(skewed, minlength=10)
    assert chisquare(counts.numpy()).pvalue < 1e-3


def test_degree_follows_degree():
    pool = torch.tensor([2, 3, 5, 7, 8])
    degree = torch.zeros(10)
    degree[pool] = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.0])
    batch = stream([0] * 1000, [1] * 1000).batch(0, 1000)
    draws = DegreeNegatives(pool, 20, seed=1, degree=degree).sample(batch)
    assert not (draws == 8).any(), "a node of degree 0 is never drawn"
    counts = torch.tensor([(draws == v).sum() for v in [2, 3, 5, 7]])
    expected = torch.tensor([1.0, 2.0, 3.0, 4.0]) / 10 * draws.numel()
    assert chisquare(counts.numpy(), expected.numpy()).pvalue > 1e-3
    uniform = torch.full((4,), draws.numel() / 4.0)
    assert chisquare(counts.numpy(), uniform.numpy()).pvalue < 1e-3
    with pytest.raises(ValueError, match="degree"):
        DegreeNegatives(pool, 1, seed=0, degree=torch.zeros(10))


def test_historical_draws_earlier_destinations_not_in_the_batch():
    # Source 0 met 5, 6, 7 before the batch; the batch has (0, 6): only 5 and 7 are historical.
    # Source 1 has no history: its negatives are uniform.
    s = stream([0, 0, 0, 2] + [0, 1] * 50, [5, 6, 7, 9] + [6, 8] * 50)
    pool = torch.arange(20)
    sampler = HistoricalNegatives(pool, 2, seed=0, history=PairHistory(s.src, s.dst))
    batch = s.batch(4, 104)
    counts = torch.zeros(20)
    for _ in range(20):
        negatives = sampler.sample(batch)
        counts += torch.bincount(negatives[batch.src == 0].flatten(), minlength=20)
        # Half of all 200 slots are historical, about 50 of source 0's 100; a uniform draw hits 5 or 7
        # with probability 1/10: the share of 5 and 7 is about 0.5 + 0.5 * 0.1.
        share = ((negatives == 5) | (negatives == 7))[batch.src == 0].float().mean()
        assert 0.4 < share < 0.7
    assert counts[5] > 400 and counts[7] > 400
    assert counts[6] < 0.05 * counts.sum()


def test_inductive_draws_only_pairs_unseen_in_training():
    # Training: (0, 5). Later, before the batch: (0, 5) again and (0, 7). Only 7 is inductive.
    s = stream([0, 0, 0] + [0] * 40, [5, 5, 7] + [9] * 40)
    training = PairHistory(torch.tensor([0]), torch.tensor([5]))
    sampler = InductiveNegatives(
        torch.arange(12), 1, seed=0, history=PairHistory(s.src, s.dst), training=training
    )
    negatives = sampler.sample(s.batch(3, 43))
    assert (negatives == 7).sum() >= 20  # the 20 historical slots all find 7
    assert (negatives == 5).sum() < 10
    # Over the training stream itself nothing is eligible: all uniform.
    train_only = InductiveNegatives(torch.arange(12), 1, seed=0, history=training, training=training)
    assert train_only.sample(s.batch(3, 43)).shape == (40, 1)


class CountingEmbed:
    """Candidate embeddings fixed per node (one-hot scaled), counting calls and recording times."""

    def __init__(self, dim: int) -> None:
        self.calls: list[float] = []
        self.dim = dim

    def __call__(self, nodes: torch.Tensor, time_s: float) -> torch.Tensor:
        self.calls.append(time_s)
        return node_vectors(nodes, self.dim)


def node_vectors(nodes: torch.Tensor, dim: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    table = torch.randn(100, dim, generator=g)
    return table[nodes]


def topk_sampler(embed, **overrides):
    settings = dict(
        n_hard=2, n_rand=1, k=4, refresh=3, warmup_epochs=1, similarity="dot", exclude_known=False
    )
    settings.update(overrides)
    return TopKNegatives(torch.arange(30), embed=embed, seed=0, **settings)


def batches_of(s: EventStream, size: int):
    return list(s.batches(size))


def test_warmup_is_uniform_and_never_refreshes():
    embed = CountingEmbed(8)
    sampler = topk_sampler(embed, warmup_epochs=2)
    s = stream(list(range(40)), [1] * 40)
    for epoch in range(2):
        sampler.start_epoch(epoch)
        assert not sampler.wants_queries
        for batch in batches_of(s, 10):
            assert sampler.sample(batch).shape == (10, 3)
    assert embed.calls == []
    sampler.start_epoch(2)
    assert sampler.wants_queries
    batch = s.batch(0, 10)
    sampler.sample(batch, node_vectors(batch.src, 8))
    assert embed.calls == [0.0]


def test_refresh_cadence_counts_calls():
    embed = CountingEmbed(8)
    sampler = topk_sampler(embed, warmup_epochs=0, refresh=3)
    s = stream(list(range(70)), [1] * 70)
    sampler.start_epoch(0)
    for batch in batches_of(s, 10):  # 7 batches: refreshes before batches 0, 3 and 6
        sampler.sample(batch, node_vectors(batch.src, 8))
    assert embed.calls == [0.0, 30.0, 60.0] and sampler.refreshes == 3
    sampler.start_epoch(1)  # a new epoch refreshes at its first batch
    for batch in batches_of(s, 10)[:2]:
        sampler.sample(batch, node_vectors(batch.src, 8))
    assert embed.calls == [0.0, 30.0, 60.0, 0.0]
    assert sampler.refresh_seconds > 0


def brute_nearest(query: torch.Tensor, table: torch.Tensor, k: int, excluded: set[int]) -> set[int]:
    scores = table @ query
    order = [int(i) for i in torch.argsort(scores, descending=True) if int(i) not in excluded]
    return set(order[:k])


@pytest.mark.parametrize("similarity", ["dot", "cosine", "decoder"])
def test_hard_negatives_come_from_the_k_nearest_and_exclude_the_destination(similarity):
    embed = CountingEmbed(6)
    pool = torch.arange(30)
    sampler = TopKNegatives(
        pool,
        n_hard=3,
        n_rand=2,
        k=4,
        refresh=1,
        warmup_epochs=0,
        similarity=similarity,
        exclude_known=False,
        embed=embed,
        seed=0,
        score=lambda q, c: q @ c.T,
    )
    src = torch.arange(40, 60)
    dst = torch.arange(20) % 30
    s = EventStream(src, dst, torch.zeros(20, dtype=torch.float64), torch.arange(20))
    batch = s.batch(0, 20)
    queries = node_vectors(batch.src, 6)
    sampler.start_epoch(0)
    negatives = sampler.sample(batch, queries)
    assert negatives.shape == (20, 5)
    table = node_vectors(pool, 6)
    if similarity == "cosine":
        table = torch.nn.functional.normalize(table, dim=1)
    for row in range(20):
        nearest = brute_nearest(queries[row], table, 4, {int(dst[row])})
        hard = negatives[row, :3].tolist()
        assert set(hard) <= nearest and len(set(hard)) == 3
        assert int(dst[row]) not in hard


def test_exclude_known_leaves_out_every_known_destination():
    embed = CountingEmbed(6)
    # Source 50 knows 0..9 (earlier events); with exclude_known none of them is a hard negative.
    src = [50] * 10 + [50]
    dst = list(range(10)) + [10]
    s = EventStream(
        torch.tensor(src), torch.tensor(dst), torch.arange(11, dtype=torch.float64), torch.arange(11)
    )
    sampler = TopKNegatives(
        torch.arange(30),
        n_hard=5,
        n_rand=0,
        k=5,
        refresh=1,
        warmup_epochs=0,
        similarity="dot",
        exclude_known=True,
        embed=embed,
        seed=0,
        history=PairHistory(s.src, s.dst),
    )
    batch = s.batch(10, 11)
    # Query equal to the mean of the known destinations' vectors: they would be the nearest.
    query = node_vectors(torch.arange(10), 6).sum(0, keepdim=True)
    negatives = sampler.sample(batch, query)
    table = node_vectors(torch.arange(30), 6)
    assert set(negatives[0].tolist()) == brute_nearest(query[0], table, 5, set(range(11)))
    unexcluded = TopKNegatives(
        torch.arange(30),
        n_hard=5,
        n_rand=0,
        k=5,
        refresh=1,
        warmup_epochs=0,
        similarity="dot",
        exclude_known=False,
        embed=embed,
        seed=0,
    ).sample(batch, query)
    assert set(unexcluded[0].tolist()) & set(range(10)), "without exclusion known destinations are nearest"


def test_observe_feeds_the_table_between_refreshes():
    embed = CountingEmbed(4)
    sampler = topk_sampler(embed, warmup_epochs=0, refresh=100)
    s = stream([40, 41], [1, 2])
    sampler.start_epoch(0)
    sampler.sample(s.batch(0, 2), torch.zeros(2, 4))
    nodes = torch.tensor([3, 99, 3, 5])  # 99 is outside the pool; node 3 twice: the last wins
    sampler.observe(nodes, torch.arange(16, dtype=torch.float32).reshape(4, 4))
    assert torch.equal(sampler.table[3], torch.tensor([8.0, 9.0, 10.0, 11.0]))
    assert torch.equal(sampler.table[5], torch.tensor([12.0, 13.0, 14.0, 15.0]))
    assert torch.equal(sampler.table[4], node_vectors(torch.tensor([4]), 4)[0])


def test_state_dict_resumes_the_same_draws():
    embed = CountingEmbed(8)
    s = stream(list(range(60)), [1] * 60)
    batches = batches_of(s, 10)
    first = topk_sampler(embed, warmup_epochs=0, refresh=4)
    first.start_epoch(0)
    drawn = [first.sample(b, node_vectors(b.src, 8)) for b in batches]
    second = topk_sampler(embed, warmup_epochs=0, refresh=4)
    second.start_epoch(0)
    for b in batches[:3]:
        second.sample(b, node_vectors(b.src, 8))
    third = topk_sampler(embed, warmup_epochs=0, refresh=4)
    third.load_state_dict(second.state_dict())
    resumed = [third.sample(b, node_vectors(b.src, 8)) for b in batches[3:]]
    assert all(torch.equal(a, b) for a, b in zip(drawn[3:], resumed, strict=True))


def test_topk_by_score_matches_full_sort():
    g = torch.Generator().manual_seed(5)
    q, table = torch.randn(7, 3, generator=g), torch.randn(50, 3, generator=g)
    exclude = torch.tensor([[0, 1, -1]] * 7)
    index = topk_by_score(lambda a, b: a @ b.T, q, table, 6, exclude, chunk=8)
    scores = q @ table.T
    scores[:, :2] = float("-inf")
    assert torch.equal(torch.sort(index, 1).values, torch.sort(torch.topk(scores, 6).indices, 1).values)


def test_invalid_settings_raise():
    embed = CountingEmbed(4)
    with pytest.raises(ValueError, match="n_hard"):
        topk_sampler(embed, n_hard=5, k=4)
    with pytest.raises(ValueError, match="k must be"):
        topk_sampler(embed, k=31, n_hard=1)
    with pytest.raises(ValueError, match="refresh"):
        topk_sampler(embed, refresh=0)
    with pytest.raises(ValueError, match="similarity"):
        topk_sampler(embed, similarity="l2")
    with pytest.raises(ValueError, match="num_negatives"):
        UniformNegatives(torch.arange(3), 0, seed=0)


def test_on_device_names_only_the_pool_tensors():
    sampler = topk_sampler(lambda nodes, t: torch.zeros(len(nodes), 2))
    assert torch.equal(sampler.on_device("row_of", torch.device("cpu")), sampler.row_of)
    with pytest.raises(ValueError, match="^name must be 'candidates' or 'row_of', got 'table'$"):
        sampler.on_device("table", torch.device("cpu"))


def test_samplers_declare_what_the_training_step_needs():
    """The step asks ``observes`` and ``device_draws``, never a sampler's class."""
    uniform = UniformNegatives(torch.arange(30), 3, seed=0)
    assert not uniform.observes and uniform.device_draws() is None and uniform.refresh_seconds == 0.0
    topk = topk_sampler(CountingEmbed(4))
    assert topk.observes and topk.device_draws() is topk
    history = PairHistory(torch.tensor([0]), torch.tensor([1]))
    known = topk_sampler(CountingEmbed(4), exclude_known=True, history=history)
    assert known.observes and known.device_draws() is None  # its history is on the host
