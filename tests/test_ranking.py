"""TGB's protocol (dgl_tgnn/ranking.py), EdgeBank, the pair table and the pair features, against
hand-computed examples, brute force, and TGB's published EdgeBank numbers."""

import numpy as np
import pytest
import torch

from dgl_tgnn.data import load_dataset, split_events
from dgl_tgnn.edgebank import EdgeBank
from dgl_tgnn.events import EventStream
from dgl_tgnn.graph import TemporalGraph
from dgl_tgnn.pair_features import PairFeatures
from dgl_tgnn.pair_table import PairTable
from dgl_tgnn.predictor import LinkPredictor
from dgl_tgnn.ranking import NegativeSets, rank_stream

# A hand-built stream: sources 0, 1; destinations 10..13. Events 2 and 3 share (src 1, t 2.0).
SRC = np.array([0, 1, 1, 1, 0, 0], dtype=np.int64)
DST = np.array([10, 11, 12, 13, 11, 10], dtype=np.int64)
T = np.array([1.0, 2.0, 2.0, 2.0, 3.0, 4.0])
POOL = np.arange(10, 14, dtype=np.int64)


def test_all_destinations_leave_out_the_positives_of_the_same_source_and_time():
    sets = NegativeSets.all_destinations(SRC, DST, T, POOL)
    cand, valid = sets.batch(0, 6)
    assert cand.tolist() == [POOL.tolist()] * 6
    # Positions 1, 2, 3 are (1, 2.0) with destinations 11, 12, 13: each keeps only 10 as a negative.
    expected = [
        [False, True, True, True],
        [True, False, False, False],
        [True, False, False, False],
        [True, False, False, False],
        [True, False, True, True],
        [False, True, True, True],
    ]
    assert valid.tolist() == expected
    # A batch in the middle sees the same rows.
    assert sets.batch(2, 5)[1].tolist() == expected[2:5]


def test_sampled_negatives_are_seeded_half_historical_and_never_a_same_query_positive():
    history_src = np.array([0, 0, 0, 1], dtype=np.int64)
    history_dst = np.array([11, 12, 13, 10], dtype=np.int64)
    pool = np.arange(10, 30, dtype=np.int64)
    a = NegativeSets.sampled(SRC, DST, T, pool, history_src, history_dst, 4, seed=3)
    b = NegativeSets.sampled(SRC, DST, T, pool, history_src, history_dst, 4, seed=3)
    assert torch.equal(a.candidates, b.candidates)
    cand = a.candidates.numpy()
    assert cand.shape == (6, 4)
    same_query = {i: set(DST[(SRC == SRC[i]) & (T == T[i])]) for i in range(6)}
    met = {0: {11, 12, 13}, 1: {10}}
    for i in range(6):
        assert not set(cand[i]) & same_query[i]
        assert set(cand[i]) <= set(pool)
        hist = met[SRC[i]] - same_query[i]
        n_hist = min(2, len(hist))
        assert set(cand[i, :n_hist]) <= hist and len(set(cand[i, :n_hist])) == n_hist
        assert not set(cand[i, n_hist:]) & met[SRC[i]]  # the random half is not historical


def test_negative_sets_round_trip_through_a_file(tmp_path):
    sets = NegativeSets.all_destinations(SRC, DST, T, POOL)
    sets.save(tmp_path / "n.npz")
    back = NegativeSets.load(tmp_path / "n.npz")
    assert back.candidates is None
    assert torch.equal(back.excluded, sets.excluded) and torch.equal(back.pool, sets.pool)


class _Fixed(LinkPredictor):
    """Scores from a fixed table ``score[src, candidate]``; records what it observed."""

    def __init__(self, table: dict[tuple[int, int], float]) -> None:
        super().__init__(SRC, DST, T)
        self.table = table
        self.seen: list[int] = []

    @classmethod
    def from_run(cls, run_dir, config, dataset, device):
        raise NotImplementedError

    def clear(self) -> None:
        self.seen = []

    def observe_stream(self, positions: np.ndarray) -> None:
        self.seen += positions.tolist()

    def observe(self, src, dst, t, edge_feat=None) -> None:
        self.seen += t.tolist()

    def score(self, src, t, candidates):
        pairs = zip(src.tolist(), candidates.tolist(), strict=True)
        return torch.tensor([[self.table.get((s, c), 0.0) for c in row] for s, row in pairs])


def _stream() -> EventStream:
    return EventStream(torch.from_numpy(SRC), torch.from_numpy(DST), torch.from_numpy(T), torch.arange(6))


def test_ranks_follow_tgbs_tie_rule_on_a_hand_computed_example():
    # Source 0 scores 10 -> 1, 11 -> 1, 12 -> 2, 13 -> 0; source 1 scores every candidate 0.
    table = {(0, 10): 1.0, (0, 11): 1.0, (0, 12): 2.0}
    sets = NegativeSets.all_destinations(SRC, DST, T, POOL)
    result = rank_stream(_Fixed(table), _stream(), sets, batch_size=4, recall_ks=[1, 2])
    # Position 0 (dst 10; negatives 11, 12, 13): 1 + 1 (12) + 0.5 (11 ties) = 2.5.
    # Positions 1-3 (source 1, one valid negative 10, tied): 1.5 each.
    # Position 4 (dst 11; negatives 10, 12, 13; 11 is not a same-query positive): 1 + 1 + 0.5 = 2.5.
    # Position 5 (dst 10; negatives 11, 12, 13): 2.5.
    ranks = np.array([2.5, 1.5, 1.5, 1.5, 2.5, 2.5])
    assert result["mrr"] == pytest.approx(np.mean(1 / ranks))
    assert result["recall@1"] == 0.0
    assert result["recall@2"] == pytest.approx(3 / 6)


def test_each_batch_is_scored_before_it_is_observed():
    predictor = _Fixed({})
    seen_at_scoring: list[list[float]] = []
    score = predictor.score

    def spy(src, t, candidates):
        seen_at_scoring.append(list(predictor.seen))
        return score(src, t, candidates)

    predictor.score = spy
    sets = NegativeSets.all_destinations(SRC, DST, T, POOL)
    rank_stream(predictor, _stream(), sets, batch_size=4, recall_ks=[1])
    assert seen_at_scoring == [[], [1.0, 2.0, 2.0, 2.0]]


def test_a_non_finite_score_stops_the_ranking():
    sets = NegativeSets.all_destinations(SRC, DST, T, POOL)
    with pytest.raises(ValueError, match="non-finite"):
        rank_stream(_Fixed({(0, 11): float("nan")}), _stream(), sets, batch_size=4, recall_ks=[1])


def test_pair_table_matches_a_dictionary():
    rng = np.random.default_rng(0)
    table, reference = PairTable(), {}
    for _ in range(5):
        src, dst = rng.integers(0, 6, 30), rng.integers(0, 6, 30)
        t = rng.random(30)
        table.add(torch.from_numpy(src), torch.from_numpy(dst), torch.from_numpy(t))
        for s, d, x in zip(src, dst, t, strict=True):
            reference[(s, d)] = max(reference.get((s, d), -np.inf), x)
        qs, qd = torch.arange(6)[:, None], torch.arange(6)[None, :]
        got = table.lookup(qs, qd)
        want = [[reference.get((s, d), -np.inf) for d in range(6)] for s in range(6)]
        assert got.tolist() == want


def test_edgebank_scores_by_hand():
    bank = EdgeBank(SRC, DST, T, mode="window", window_ratio=0.5)
    bank.observe(torch.tensor([0, 1]), torch.tensor([10, 11]), torch.tensor([0.0, 10.0]))  # window 5
    bank.observe(torch.tensor([0]), torch.tensor([12]), torch.tensor([12.0]))  # latest 12
    scores = bank.score(torch.tensor([0, 1]), torch.tensor([13.0, 13.0]), torch.tensor([[10, 12], [11, 10]]))
    assert scores.tolist() == [[0.0, 1.0], [1.0, 0.0]]  # (0, 10) at 0 < 12 - 5 is out of the window
    unlimited = EdgeBank(SRC, DST, T)
    unlimited.reset(until=2.5)  # events 0..3
    got = unlimited.score(torch.tensor([0, 1, 0]), torch.full((3,), 3.0), torch.tensor([[10], [12], [11]]))
    assert got.tolist() == [[1.0], [1.0], [0.0]]


def _brute_pair_features(src, dst, t, s, at, ref, c, history, src_cut):
    """The 18 pair features of ``(s, c)`` at ``at`` from ``s``'s events strictly before ``src_cut``
    and ``c``'s strictly before ``ref``, by loops."""

    def recent(node, cut):
        """The ``history`` most recent (time, event id, partner) of ``node`` before ``cut``."""
        events = [
            (t[i], i, dst[i] if src[i] == node else src[i])
            for i in range(len(src))
            if node in (src[i], dst[i])
        ]
        return sorted(x for x in events if x[0] < cut)[-history:]

    def lt(dt):
        return np.log1p(dt) / 16

    def ln(n):
        return np.log1p(n) / np.log1p(history)

    mine, theirs = recent(s, src_cut), recent(c, ref)
    partners = [p for _, _, p in mine]
    count = partners.count(c)
    last = max((x for x, _, p in mine if p == c), default=None)
    rank = None if last is None else len({p for x, _, p in mine if x > last})
    latest_of: dict[int, float] = {}
    for x, _, p in theirs:
        latest_of[p] = max(latest_of.get(p, -np.inf), x)
    newest_first = partners[::-1]
    n_s, n_c = len(mine), len(theirs)
    return [
        float(count > 0),
        np.log1p(count),
        lt(at - last) if last is not None else 0.0,
        1 / (1 + rank) if rank is not None else 0.0,
        float(n_c > 0),
        lt(at - theirs[-1][0]) if theirs else 0.0,
        1 / (1 + sum(x > last for x in latest_of.values())) if last is not None else 0.0,
        ln(n_s),
        len(set(partners)) / n_s if n_s else 0.0,
        lt(at - mine[-1][0]) if mine else 0.0,
        lt(at - mine[0][0]) if mine else 0.0,
        count / n_s if n_s else 0.0,
        np.log1p(newest_first[:5].count(c)),
        np.log1p(newest_first[:10].count(c)),
        ln(n_c),
        len({p for _, _, p in theirs}) / n_c if n_c else 0.0,
        lt(at - theirs[0][0]) if theirs else 0.0,
        np.log1p([p for _, _, p in theirs].count(s)),
    ]


@pytest.mark.parametrize("visible_batch", [False, True])
@pytest.mark.parametrize(("events", "history"), [(300, 7), (40, 12)])
def test_pair_features_match_brute_force(events, history, visible_batch):
    """Full and sparse histories; nodes 12 and 13 have no events at all. With ``visible_batch`` the
    source's history runs up to its own time (after the reference time 60 for most rows)."""
    rng = np.random.default_rng(1)
    nodes = 14
    src, dst = rng.integers(0, 12, events), rng.integers(0, 12, events)
    t = np.sort(rng.integers(0, 100, events)).astype(np.float64)
    graph = TemporalGraph(torch.from_numpy(src), torch.from_numpy(dst), torch.from_numpy(t), num_nodes=nodes)
    features = PairFeatures(graph, history=history, device=torch.device("cpu"), visible_batch=visible_batch)
    queries = torch.tensor([0, 3, 5, 11, 13])
    at = torch.tensor([60.0, 61.0, 75.0, 99.0, 80.0], dtype=torch.float64)
    ref = torch.tensor(60.0, dtype=torch.float64)
    candidates = torch.from_numpy(rng.integers(0, nodes, (5, 12)))
    candidates[:, 0] = 12
    got = features(queries, at, ref, candidates)
    assert got.shape == (5, 12, 18)
    for b in range(5):
        for j in range(12):
            cut = float(at[b]) if visible_batch else 60.0
            want = _brute_pair_features(
                src, dst, t, int(queries[b]), float(at[b]), 60.0, int(candidates[b, j]), history, cut
            )
            assert got[b, j].tolist() == pytest.approx(want, abs=1e-6), (b, j)


@pytest.mark.parametrize(
    ("mode", "val_mrr", "test_mrr"),
    [("unlimited", 0.527, 0.495), ("window", 0.600, 0.571)],
)
def test_edgebank_reproduces_tgbs_published_mrr_on_wikipedia(mode, val_mrr, test_mrr):
    """TGB's leaderboard for tgbl-wiki-v2 (EdgeBank): unlimited 0.527 val / 0.495 test, time window
    0.600 / 0.571, every destination a negative except the same-(src, t) positives."""
    ds = load_dataset("wikipedia")
    split = split_events(ds, 0.15, 0.15, 0.0)
    pool = np.arange(ds.dst.min(), ds.dst.max() + 1)
    bank = EdgeBank(ds.src, ds.dst, ds.t, mode=mode)
    bank.observe_stream(split.train)
    src, dst, t = (torch.from_numpy(a) for a in (ds.src, ds.dst, ds.t))
    got = {}
    for name in ("val", "test"):
        rows = getattr(split, name)
        sets = NegativeSets.all_destinations(ds.src[rows], ds.dst[rows], ds.t[rows], pool)
        stream = EventStream(src, dst, t, torch.from_numpy(rows))
        got[name] = rank_stream(bank, stream, sets, batch_size=200, recall_ks=[1])["mrr"]
    assert round(got["val"], 3) == val_mrr
    assert round(got["test"], 3) == test_mrr
