"""``LinkPredictor.recommend``, ``observe`` of new events and nodes, ``save`` / ``load`` and ``dgl-tgnn
recommend`` (issue 18), on tiny runs of the built-in wikipedia stream and of a user CSV with string ids."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dgl_tgnn import LinkPredictor, ops
from dgl_tgnn.cli import main
from dgl_tgnn.config import default_config
from dgl_tgnn.link import LinkModel
from dgl_tgnn.model_predictor import ModelPredictor
from dgl_tgnn.precision import precision

QUICK = ["--max-events", "2000", "--epochs", "1", "--batch-size", "100", "--threads", "1", "--no-progress"]
FLAGS = {
    "tgn": ["--model", "tgn", "--embed-dim", "16", "--node-embedding", "4", "--pair-history", "5"],
    "tgat": ["--model", "tgat", "--embed-dim", "16", "--fanouts", "5,5", "--engine", "dense"],
    "edgebank": ["--model", "edgebank"],
    "dot": ["--model", "tgn", "--embed-dim", "16", "--decoder", "dot", "--pair-history", "5"],
}


def _train(runs, *flags):
    result = CliRunner().invoke(main, ["train", "--protocol", "tgb", "--runs-dir", str(runs), *QUICK, *flags])
    assert result.exit_code == 0, result.output
    (run,) = runs.iterdir()
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny run per model on wikipedia (ids are rows there), and a TGN run on a string-id CSV."""
    root = tmp_path_factory.mktemp("runs")
    made = {name: _train(root / name, *flags) for name, flags in FLAGS.items()}
    rng = np.random.default_rng(0)
    lines = ["user,item,timestamp"]
    for i in range(600):
        lines.append(f"u{rng.integers(0, 40)},item-{rng.integers(0, 25)},{i * 10}")
    csv = root / "votes.csv"
    csv.write_text("\n".join(lines) + "\n")
    head = root / "head.yaml"
    head.write_text("model:\n  name: tgn\n  dot_head: 0.5\n")
    made["head"] = _train(root / "head", "--config", str(head), *FLAGS["tgn"])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DGL_TGNN_CACHE", str(root / "cache"))
        made["strings"] = _train(root / "strings", "--data", str(csv), *FLAGS["tgn"])
    return made


def _calls(predictor):
    """The sampler's call counter (its uniform draws are a function of it), None for EdgeBank."""
    return predictor.neighbourhoods.state_dict() if hasattr(predictor, "neighbourhoods") else None


def _rewind(predictor, calls):
    if calls is not None:
        predictor.neighbourhoods.load_state_dict(calls)


def _at_new_time(t, i):
    """The first position ``>= i`` of the time-sorted ``t`` whose time differs from the one before:
    a cut there splits no tie."""
    while t[i] == t[i - 1]:
        i += 1
    return i


def _brute_force(predictor, src, t, pool, k, seen=None):
    """Top ``k`` of ``score`` over the whole ``pool`` (ascending ids): ties to the smaller id."""
    scores = predictor.score(src, t, pool.expand(len(src), -1))
    if seen is not None:
        scores[seen] = float("-inf")
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    return pool[order], scores.gather(1, order)


@pytest.mark.parametrize("model", ["tgn", "tgat", "edgebank"])
def test_recommend_is_exactly_the_top_k_of_score_over_every_candidate(runs, model):
    p = LinkPredictor.load(runs[model])
    p.score_budget = 12 * 16 * 20  # chunks of 20 candidates (of about 1,000)
    src = torch.from_numpy(p.stream_src[-12:])
    t = torch.full((12,), float(p.stream_t[-1]) + 5.0, dtype=torch.float64)
    pool = torch.from_numpy(np.flatnonzero(p.destinations))
    calls = _calls(p)
    want_nodes, want_scores = _brute_force(p, src, t, pool, 10)
    _rewind(p, calls)
    top = p.recommend(src, t, k=10)
    assert top.nodes.dtype == torch.int64 and top.scores.dtype == torch.float32
    assert top.nodes.shape == top.scores.shape == (12, 10)
    assert torch.equal(top.nodes, want_nodes) and torch.equal(top.scores, want_scores)
    assert (top.scores[:, :-1] >= top.scores[:, 1:]).all()
    # exclude_seen drops what each source met before t; candidates restrict the pool.
    met = {(int(s), int(d)) for s, d in zip(p.stream_src, p.stream_dst, strict=True)}
    seen = torch.tensor([[(int(s), int(c)) in met for c in pool] for s in src])
    _rewind(p, calls)
    want_nodes, want_scores = _brute_force(p, src, t, pool, 10, seen)
    _rewind(p, calls)
    top = p.recommend(src, t, k=10, exclude_seen=True)
    assert torch.equal(top.nodes, want_nodes) and torch.equal(top.scores, want_scores)
    assert not any((int(s), int(d)) in met for s, row in zip(src, top.nodes, strict=True) for d in row)
    some = pool[::7].flip(0)  # any order in, ascending ids out
    _rewind(p, calls)
    want_nodes, want_scores = _brute_force(p, src, t, some.sort().values, 3)
    _rewind(p, calls)
    top = p.recommend(src, t, k=3, candidates=some)
    assert torch.equal(top.nodes, want_nodes) and torch.equal(top.scores, want_scores)


def test_two_stage_shortlist_reranks_the_dot_product_top_with_score(runs):
    p = LinkPredictor.load(runs["dot"])
    src = torch.from_numpy(p.stream_src[-12:])
    t = float(p.stream_t[-1]) + 5.0
    pool = torch.from_numpy(np.flatnonzero(p.destinations))
    calls = _calls(p)
    exact = p.recommend(src, t, k=10)
    _rewind(p, calls)
    whole = p.recommend(src, t, k=10, shortlist=len(pool))  # every candidate shortlisted: exact
    assert torch.equal(whole.nodes, exact.nodes) and torch.equal(whole.scores, exact.scores)
    _rewind(p, calls)
    short = p.recommend(src, t, k=10, shortlist=30, exclude_seen=True)
    _rewind(p, calls)
    dot_top = p.recommend(src, t, k=30, shortlist=30, exclude_seen=True)  # the shortlist itself
    for row, kept in zip(short.nodes, dot_top.nodes, strict=True):
        assert set(row.tolist()) <= set(kept.tolist())
    met = {(int(s), int(d)) for s, d in zip(p.stream_src, p.stream_dst, strict=True)}
    assert not any((int(s), int(d)) in met for s, row in zip(src, short.nodes, strict=True) for d in row)
    # the partners of each source's last events join the shortlist (their pair features count)
    times = torch.full((12,), t, dtype=torch.float64)
    positions, _ = p.shortlist_scores(src, times, pool, 30, None)
    latest = {int(s): int(d) for s, d in zip(p.stream_src, p.stream_dst, strict=True)}
    assert all(latest[int(s)] in pool[row[row >= 0]].tolist() for s, row in zip(src, positions, strict=True))
    with pytest.raises(ValueError, match="shortlist must be an int >= k"):
        p.recommend(src, t, k=10, shortlist=5)
    with pytest.raises(ValueError, match="needs a dot-product decoder"):
        LinkPredictor.load(runs["tgat"]).recommend(src, t, k=10, shortlist=50)


@pytest.mark.cuda
@pytest.mark.skipif(not (torch.cuda.is_available() and ops.WITH_CUDA), reason="needs CUDA")
@pytest.mark.parametrize("model", ["dot", "head"])
def test_two_stage_on_cuda_is_score_s_top_k_there_and_the_cpu_s_ranking(runs, model):
    """On a GPU the shortlist (keys, the dot top-k, the shortlisted node rows, their distinct nodes
    and the final sort on the device; only the ``[B, k]`` top comes back) reranks with ``score``:
    every candidate shortlisted gives the exact top-k of the GPU predictor, to the bit, and the CPU
    predictor's nodes and scores (float32 rounding apart)."""
    gpu, cpu = LinkPredictor.load(runs[model], device="cuda"), LinkPredictor.load(runs[model])
    src = torch.from_numpy(gpu.stream_src[-12:])
    t = float(gpu.stream_t[-1]) + 5.0
    pool = int(gpu.destinations.sum())
    calls = _calls(gpu)
    exact = gpu.recommend(src, t, k=10)
    _rewind(gpu, calls)
    whole = gpu.recommend(src, t, k=10, shortlist=pool)
    assert torch.equal(whole.nodes, exact.nodes) and torch.equal(whole.scores, exact.scores)
    on_cpu = cpu.recommend(src, t, k=10, shortlist=pool)
    assert torch.equal(whole.nodes, on_cpu.nodes)
    torch.testing.assert_close(whole.scores, on_cpu.scores, rtol=1e-4, atol=1e-4)
    _rewind(gpu, calls)
    short = gpu.recommend(src, t, k=10, shortlist=30, exclude_seen=True)
    short_cpu = cpu.recommend(src, t, k=10, shortlist=30, exclude_seen=True)
    assert short.nodes.device.type == short.scores.device.type == "cpu"
    assert torch.equal(short.nodes, short_cpu.nodes)
    torch.testing.assert_close(short.scores, short_cpu.scores, rtol=0, atol=1e-5)
    times = torch.full((12,), t, dtype=torch.float64)
    positions, values = gpu.shortlist_scores(
        src, times, torch.from_numpy(np.flatnonzero(gpu.destinations)), 30, None
    )
    assert positions.device.type == values.device.type == "cuda"


@pytest.mark.parametrize("model", ["dot", "head"])
def test_two_stage_values_are_those_of_score_for_the_shortlisted_candidates(runs, model):
    """Stage 2 embeds only the sources and the shortlisted nodes (stage 1 reads cached pool keys),
    yet each shortlisted candidate's value is ``score``'s for it, to the bit."""
    p = LinkPredictor.load(runs[model])
    src = torch.from_numpy(p.stream_src[-12:])
    times = torch.full((12,), float(p.stream_t[-1]) + 5.0, dtype=torch.float64)
    pool = torch.from_numpy(np.flatnonzero(p.destinations))
    p.shortlist_scores(src, times, pool, 20, None)  # builds the key cache
    calls = _calls(p)
    positions, values = p.shortlist_scores(src, times, pool, 20, None)
    valid = positions >= 0
    assert (valid.sum(1) >= 20).all() and torch.equal(torch.isfinite(values), valid)
    # pads filled with a shortlisted node of the row: score embeds the same nodes as stage 2
    first = positions.max(dim=1, keepdim=True).values.expand_as(positions)
    candidates = pool[torch.where(valid, positions, first)]
    _rewind(p, calls)
    want = p.score(src, times, candidates)
    assert torch.equal(values[valid], want[valid])


def test_the_pool_key_cache_never_outlives_observe_or_reset(runs):
    """A predictor that built its key cache, then observed events (or was reset to other events
    with as many before the query time), shortlists as a fresh predictor in that state does."""
    p, fresh = LinkPredictor.load(runs["dot"]), LinkPredictor.load(runs["dot"])
    src, dst, t, feat = p.stream_src, p.stream_dst, p.stream_t, p.stream_edge_feat
    cut, stop = _at_new_time(t, 1200), _at_new_time(t, 1700)
    queries = torch.from_numpy(src[stop - 12 : stop])
    at = torch.full((12,), float(t[stop]), dtype=torch.float64)
    pool = torch.from_numpy(np.flatnonzero(p.destinations))

    def shortlist(predictor):
        _rewind(predictor, {"calls": 7})
        return predictor.shortlist_scores(queries, at, pool, 10, None)

    p.reset(until=float(t[cut]))
    before = shortlist(p)  # keys cached: the events before t[cut]
    p.observe(src[cut:stop], dst[cut:stop], t[cut:stop], feat[cut:stop])
    fresh.reset(until=float(t[stop]))  # the same events, observed by reset
    after = shortlist(p)
    want = shortlist(fresh)
    assert torch.equal(after[0], want[0]) and torch.equal(after[1], want[1])
    assert not torch.equal(before[0], after[0])  # the observed events changed the shortlist
    # reset to other events, as many of them before the query time: shortlist of a fresh predictor
    other = np.r_[dst[cut + 1 : stop], dst[cut]]  # the same times, other destinations
    p.reset(until=float(t[cut]))
    p.observe(src[cut:stop], other, t[cut:stop], feat[cut:stop])
    mixed = shortlist(p)  # keys cached: the events with other destinations
    p.reset(until=float(t[stop]))
    again = shortlist(p)
    assert torch.equal(again[0], want[0]) and torch.equal(again[1], want[1])
    assert not torch.equal(mixed[0], again[0])


def test_a_dot_head_trained_beside_an_mlp_decoder_shortlists_and_leaves_the_model_alone(runs, tmp_path):
    def final(run):
        return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["final"]

    # model.dot_head learns from detached embeddings: the link model's run is the one without it
    with_head, without = final(runs["head"]), final(runs["tgn"])
    for key in ("test_mrr", "test_ap", "test_auc"):
        assert with_head[key] == without[key], key
    p = LinkPredictor.load(runs["head"])
    assert p.config.model.decoder == "mlp" and p.model.dot_head is not None
    src = torch.from_numpy(p.stream_src[-12:])
    t = float(p.stream_t[-1]) + 5.0
    calls = _calls(p)
    exact = p.recommend(src, t, k=10)
    _rewind(p, calls)
    whole = p.recommend(src, t, k=10, shortlist=int(p.destinations.sum()))
    assert torch.equal(whole.nodes, exact.nodes) and torch.equal(whole.scores, exact.scores)
    short = p.recommend(src, t, k=10, shortlist=30)
    assert short.nodes.shape == (12, 10) and torch.isfinite(short.scores).all()
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: tgn\n  dot_head: -1\n")
    result = CliRunner().invoke(main, ["train", "--config", str(bad), "--runs-dir", str(tmp_path), *QUICK])
    assert result.exit_code != 0 and "model.dot_head must be >= 0" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_queries_share_tgn_s_memory_update_until_the_memory_changes(runs, monkeypatch):
    """Queries in a row apply TGN's pending messages once (each query applied them anew before);
    after observe they are applied again, and scores between and after observe calls equal those
    of a predictor reset to the same events."""
    from dgl_tgnn.nn.memory import Memory

    applied = []
    apply_messages = Memory._apply_messages
    monkeypatch.setattr(
        Memory, "_apply_messages", lambda self, pending: applied.append(1) or apply_messages(self, pending)
    )
    p, fresh = LinkPredictor.load(runs["tgn"]), LinkPredictor.load(runs["tgn"])
    assert not p.model.training  # its own model: in eval mode for good, not switched per query
    src, dst, t, feat = p.stream_src, p.stream_dst, p.stream_t, p.stream_edge_feat
    cut, stop = _at_new_time(t, 1200), _at_new_time(t, 1530)
    queries = torch.from_numpy(src[cut - 12 : cut])
    pool = torch.from_numpy(np.flatnonzero(p.destinations))

    def score(predictor, time):
        _rewind(predictor, {"calls": 3})
        return predictor.score(
            queries, torch.full((12,), float(time), dtype=torch.float64), pool.expand(12, -1)
        )

    p.reset(until=float(t[cut]))
    first = score(p, t[cut])  # (brings the memory up to t[cut]: applies each block as the next comes)
    applied.clear()
    assert torch.equal(score(p, t[cut]), first)
    p.recommend(queries, float(t[cut]), k=5)
    assert applied == []  # the same pending messages, memory and weights: not applied again
    p.observe(src[cut:stop], dst[cut:stop], t[cut:stop], feat[cut:stop])
    after = score(p, t[stop])
    assert applied
    fresh.reset(until=float(t[stop]))
    assert torch.equal(after, score(fresh, t[stop]))


def test_a_memory_update_shared_across_queries_is_not_reused_at_another_precision(runs):
    """A query under bf16 autocast applies TGN's pending messages in bfloat16; a float32 query
    after it applies them again in float32, as a predictor that never ran at bf16 does. (The
    memory itself advances at the precision of the query that needs it: here both predictors
    advance it in float32 first.)"""
    p, fresh = LinkPredictor.load(runs["tgn"]), LinkPredictor.load(runs["tgn"])
    t = p.stream_t
    cut = _at_new_time(t, 1500)
    queries = torch.from_numpy(p.stream_src[cut - 12 : cut])
    at = torch.full((12,), float(t[cut]), dtype=torch.float64)
    pool = torch.from_numpy(np.flatnonzero(p.destinations))
    for predictor in (p, fresh):
        predictor.reset(until=float(t[cut]))
        predictor._memory_through(float(t[cut]))  # in float32, and no forward pass yet
    _rewind(p, {"calls": 3})
    with precision("bf16", torch.device("cpu")):
        low = p.score(queries, at, pool.expand(12, -1))
    _rewind(p, {"calls": 3})
    _rewind(fresh, {"calls": 3})
    full = p.score(queries, at, pool.expand(12, -1))
    assert torch.equal(full, fresh.score(queries, at, pool.expand(12, -1)))
    assert not torch.equal(low, full)


@pytest.mark.parametrize("model", ["tgn", "tgat"])
def test_observe_of_new_events_equals_reset_on_a_stream_that_holds_them(runs, model):
    """1,000 events observed one uneven call at a time (the brief allows fewer than 10,000 on a
    2-core machine): graph, memory and scores equal those of reset(until=...)."""
    streamed, reset = LinkPredictor.load(runs[model]), LinkPredictor.load(runs[model])
    src, dst, t = streamed.stream_src, streamed.stream_dst, streamed.stream_t
    cut = _at_new_time(t, 1037)
    streamed.reset(until=float(t[cut]))
    feat = streamed.stream_edge_feat
    for lo, hi in [(cut, cut + 5), (cut + 5, cut + 333), (cut + 333, len(t))]:
        streamed.observe(src[lo:hi], dst[lo:hi], t[lo:hi], feat[lo:hi])
    reset.reset(until=float("inf"))
    for name in ("src", "dst", "t"):
        assert torch.equal(getattr(streamed.graph, name), getattr(reset.graph, name)), name
    assert torch.equal(streamed.edge_feat, reset.edge_feat)
    queries = torch.from_numpy(src[-30:])
    at = torch.full((30,), float(t[-1]) + 1.0, dtype=torch.float64)
    pool = torch.from_numpy(np.flatnonzero(reset.destinations))
    s1 = streamed.score(queries, at, pool.expand(30, -1))
    s2 = reset.score(queries, at, pool.expand(30, -1))
    assert torch.equal(s1, s2)
    if model == "tgn":
        m1, m2 = streamed.model.encoder.memory, reset.model.encoder.memory
        assert torch.equal(m1.state, m2.state) and torch.equal(m1.last_update, m2.last_update)
        assert torch.equal(m1.pending.node, m2.pending.node) and torch.equal(m1.pending.t, m2.pending.t)


def test_ten_thousand_observed_events_equal_reset_on_a_synthetic_stream():
    """An untrained TGN (equality needs no training) over 12,000 synthetic events with features:
    10,000 of them observed in uneven calls equal reset(until=...) of the whole stream."""
    rng = np.random.default_rng(3)
    n_events, n_nodes = 12_000, 300
    src, dst = rng.integers(0, 100, n_events), rng.integers(100, n_nodes, n_events)
    t = np.sort(rng.integers(0, 50_000, n_events)).astype(np.float64)
    feat = torch.from_numpy(rng.normal(size=(n_events, 4)).astype(np.float32))
    config = default_config("tgn")
    m = config.model
    m.embed_dim = m.memory_dim = m.time_dim = 16
    m.pair_history, m.node_embedding = 5, 4
    config.train.batch_size = 200
    torch.manual_seed(0)
    models = [LinkModel(m, n_nodes, 0, 4) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    predictors = [
        ModelPredictor(model, config, src, dst, t, torch.zeros(n_nodes, 0), feat, torch.device("cpu"))
        for model in models
    ]
    streamed, reset = predictors
    cut = _at_new_time(t, 2000)
    streamed.reset(until=float(t[cut]))
    for lo, hi in [(cut, cut + 1), (cut + 1, cut + 4321), (cut + 4321, cut + 9000), (cut + 9000, n_events)]:
        streamed.observe(src[lo:hi], dst[lo:hi], t[lo:hi], feat[lo:hi])
    assert streamed.graph.num_events - cut >= 10_000
    reset.reset(until=float("inf"))
    for name in ("src", "dst", "t"):
        assert torch.equal(getattr(streamed.graph, name), getattr(reset.graph, name)), name
    queries, at = torch.arange(20), float(t[-1]) + 1.0
    tops = [p.recommend(queries, at, k=10) for p in predictors]
    assert torch.equal(tops[0].nodes, tops[1].nodes) and torch.equal(tops[0].scores, tops[1].scores)
    m1, m2 = streamed.model.encoder.memory, reset.model.encoder.memory
    assert torch.equal(m1.state, m2.state) and torch.equal(m1.last_update, m2.last_update)
    assert torch.equal(m1.pending.node, m2.pending.node) and torch.equal(m1.pending.t, m2.pending.t)
    assert m1.state.abs().sum() > 0 and streamed.memory_events == n_events


@pytest.mark.parametrize("model", ["tgn", "tgat"])
def test_an_observed_event_never_changes_a_score_at_or_before_its_time(runs, model):
    p = LinkPredictor.load(runs[model])
    src, dst, t = p.stream_src, p.stream_dst, p.stream_t
    cut = _at_new_time(t, 1500)
    p.reset(until=float(t[cut]))
    queries = torch.from_numpy(src[cut : cut + 20])
    at = torch.full((20,), float(t[cut]), dtype=torch.float64)
    candidates = torch.from_numpy(dst[cut : cut + 20]).expand(20, -1)
    calls = _calls(p)
    before = p.score(queries, at, candidates)
    # later events (one at the query time itself, between the same nodes) change nothing at t[cut]
    stop = cut + 300
    p.observe(
        np.r_[src[cut:stop], src[cut]],
        np.r_[dst[cut:stop], dst[cut]],
        np.r_[t[cut:stop], t[stop]],
        p.stream_edge_feat[np.r_[cut:stop, cut]],
    )
    _rewind(p, calls)
    assert torch.equal(p.score(queries, at, candidates), before)
    _rewind(p, calls)
    later = p.score(queries, at + (t[stop] - t[cut]) + 1.0, candidates)
    assert not torch.equal(later, before)


def test_a_row_reads_the_sources_events_before_its_own_time_and_no_later_one(runs):
    """With visible_batch (the default) a row of a call at time t_i sees its source's observed events
    strictly before t_i, earlier rows' events included (what rank_stream relies on when it observes a
    batch before scoring it), and none at or after t_i."""
    p = LinkPredictor.load(runs["tgn"])
    assert p.visible_batch
    src, dst, t = p.stream_src, p.stream_dst, p.stream_t
    cut = _at_new_time(t, 1500)
    rows = np.arange(cut, cut + 100)  # a batch of queries, the stream's next events
    queries, at = torch.from_numpy(src[rows]), torch.from_numpy(t[rows])
    candidates = torch.from_numpy(np.unique(dst[:cut])[:40]).expand(100, -1)
    candidates = torch.cat([torch.from_numpy(dst[rows])[:, None], candidates], dim=1)
    calls = _calls(p)

    def scores_after(stop):
        """The call's scores once the batch's events before position ``stop`` are observed."""
        p.reset(until=float(t[cut]))
        p.observe(src[cut:stop], dst[cut:stop], t[cut:stop], p.stream_edge_feat[cut:stop])
        _rewind(p, calls)
        return p.score(queries, at, candidates)

    every = scores_after(cut + 100)
    none = scores_after(cut)
    for i in (30, 60, 99):
        before = cut + int(np.searchsorted(t[cut : cut + 100], t[cut + i]))  # events strictly before t_i
        upto = scores_after(before)
        assert torch.equal(every[: i + 1][at[: i + 1] <= at[i]], upto[: i + 1][at[: i + 1] <= at[i]])
    # rows whose source met a candidate earlier in the batch score otherwise than with the batch unseen
    assert not torch.equal(every, none)


def test_edgebank_refuses_to_score_before_its_latest_event(runs):
    p = LinkPredictor.load(runs["edgebank"])
    with pytest.raises(ValueError, match="reset"):
        p.score(p.stream_src[:1], p.stream_t[:1], p.stream_dst[None, :1])


@pytest.mark.parametrize("model", ["tgn", "edgebank"])
def test_save_and_load_restore_an_observing_predictor_exactly(runs, model, tmp_path):
    p = LinkPredictor.load(runs[model])
    src, dst, t = p.stream_src, p.stream_dst, p.stream_t
    p.reset(until=float(t[1200]))
    n = p.num_nodes
    new_src, new_dst = np.r_[src[1200:1400], n, 3], np.r_[dst[1200:1400], n + 1, n]
    times = np.r_[t[1200:1400], t[1400], t[1400] + 1]
    feat = None if model == "edgebank" else p.stream_edge_feat[np.r_[1200:1402]]
    p.observe(new_src, new_dst, times, feat)
    assert p.num_nodes == n + 2
    queries = torch.tensor([n, 3, int(src[0])])
    at = torch.full((3,), float(t[1400]) + 2.0, dtype=torch.float64)
    p.score(queries, at, torch.tensor([[n + 1, 3]] * 3))  # TGN's memory brought up to date
    p.save(tmp_path / "p.pt")
    back = LinkPredictor.load(tmp_path / "p.pt")
    calls = _calls(p)
    top = p.recommend(queries, at, k=5)
    if model == "edgebank":
        assert top.nodes[0, 0] == n + 1  # the one destination node n met
    _rewind(back, calls)
    again = back.recommend(queries, at, k=5)
    assert torch.equal(top.nodes, again.nodes) and torch.equal(top.scores, again.scores)
    if model == "tgn":
        m1, m2 = p.model.encoder.memory, back.model.encoder.memory
        assert torch.equal(m1.state, m2.state) and torch.equal(m1.last_update, m2.last_update)
    (tmp_path / "junk.pt").write_text("not a predictor")
    with pytest.raises(ValueError, match="not a saved predictor"):
        LinkPredictor.load(tmp_path / "junk.pt")


def test_new_nodes_start_empty_and_unknown_ids_fail_in_one_line(runs):
    p = LinkPredictor.load(runs["tgn"])
    n = p.num_nodes
    with pytest.raises(ValueError, match=rf"unknown node id {n} \(node ids must be in \[0, {n}\)\)"):
        p.recommend([n], 1e12)
    with pytest.raises(ValueError, match="unknown node id"):
        p.recommend([0], 1e12, candidates=[1, n])
    latest = float(p.stream_t[-1])
    p.observe([n + 5], [1], [latest + 1.0], p.stream_edge_feat[:1])
    assert p.num_nodes == n + 1 and p.node_ids.ids(torch.tensor([n])).item() == n + 5
    memory = p.model.encoder.memory
    assert memory.state[n].abs().sum() == 0 and p.node_feat[n].abs().sum() == 0
    top = p.recommend([n + 5], latest + 2.0, k=3)
    assert top.nodes.shape == (1, 3) and torch.isfinite(top.scores).all()


@pytest.mark.parametrize("model", ["tgn", "edgebank"])
def test_the_destination_pool_takes_in_observed_destinations_after_a_recommend(runs, model):
    """``recommend``'s default pool is every destination observed so far, new nodes and nodes first
    met as destinations included, however many calls came before (the pool is kept between calls)."""
    p = LinkPredictor.load(runs[model])
    n, latest = p.num_nodes, float(p.stream_t[-1])

    def pool(at):
        return set(p.recommend([0], at, k=int(p.destinations.sum())).nodes[0].tolist())

    before = pool(latest + 1.0)
    assert before == set(np.flatnonzero(p.destinations).tolist())
    never = int(np.flatnonzero(~p.destinations)[0])  # a node that was a source only
    feat = p.stream_edge_feat[:2] if model == "tgn" else None
    p.observe([0, 0], [never, n + 7], [latest + 2.0, latest + 2.0], feat)
    assert pool(latest + 3.0) == before | {never, n + 7}


def test_string_ids_in_and_out(runs):
    p = LinkPredictor.load(runs["strings"])
    assert p.node_ids.is_string
    top = p.recommend(["u1", "u2"], 1e6, k=4)
    assert top.nodes.shape == (2, 4) and top.nodes.dtype.kind == "U"
    assert set(top.nodes.ravel()) <= set(p.node_ids.values)
    assert p.score(["u1"], [1e6], np.array([top.nodes[0]])).shape == (1, 4)
    with pytest.raises(ValueError, match="unknown node id 'nobody'"):
        p.recommend(["nobody"], 1e6)
    p.observe(["newcomer"], ["item-new"], [7000.0])
    every = p.recommend(["newcomer"], 7001.0, k=int(p.destinations.sum())).nodes[0].tolist()
    assert "item-new" in every and "newcomer" not in every
    # users never vote for users: the csv loads bipartite, and only items are recommended
    assert all(node.startswith("item-") for node in every)


def test_cli_recommend_writes_the_top_k_with_string_ids(runs, tmp_path):
    queries = tmp_path / "q.csv"
    queries.write_text("src,t\nu1,7000\nu2,7000\nnewcomer,7100\n")
    events = tmp_path / "new.csv"
    events.write_text("src,dst,t\nnewcomer,item-3,7000\nnewcomer,item-new,7001\n")
    out = tmp_path / "top.csv"
    args = ["recommend", str(runs["strings"]), "--queries", str(queries), "--k", "3"]
    result = CliRunner().invoke(main, [*args, "--observe", str(events), "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "src,t,rank,dst,score" and len(lines) == 1 + 3 * 3
    rows = [line.split(",") for line in lines[1:]]
    assert [r[2] for r in rows[:3]] == ["1", "2", "3"] and rows[6][0] == "newcomer"
    p = LinkPredictor.load(runs["strings"])
    p.observe(["newcomer", "newcomer"], ["item-3", "item-new"], [7000.0, 7001.0])
    top = p.recommend(["u1", "u2"], 7000.0, k=3)
    assert [r[3] for r in rows[:3]] == top.nodes[0].tolist()
    assert [float(r[4]) for r in rows[:3]] == pytest.approx(top.scores[0].tolist(), rel=1e-6)
    # to standard output without --out
    queries.write_text("u1,7000\n")
    printed = CliRunner().invoke(main, [*args, "--no-progress"])
    assert printed.exit_code == 0 and printed.output.splitlines()[0] == "src,t,rank,dst,score"


@pytest.mark.parametrize(
    ("queries", "message"),
    [
        ("src,t\nu1,7000\nu2\n", "q.csv:3: expected 2 fields (src,t), got 1"),
        ("src,t\nu1,soon\n", "q.csv:2: t 'soon' is not a number"),
        ("src,t\nu1,7000\nnobody,7000\n", "q.csv:3: unknown node id 'nobody'"),
    ],
)
def test_cli_recommend_bad_rows_fail_in_one_line_with_the_line_number(runs, tmp_path, queries, message):
    path = tmp_path / "q.csv"
    path.write_text(queries)
    result = CliRunner().invoke(main, ["recommend", str(runs["strings"]), "--queries", str(path)])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_cli_recommend_integer_ids_and_bad_observe_rows(runs, tmp_path):
    queries = tmp_path / "q.csv"
    queries.write_text("5,1e12\n6,1e12\n")
    out = tmp_path / "top.csv"
    run = runs["edgebank"]
    result = CliRunner().invoke(main, ["recommend", str(run), "--queries", str(queries), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    top = LinkPredictor.load(run).recommend(torch.tensor([5, 6]), 1e12, k=10)
    assert [int(r[3]) for r in rows] == top.nodes.flatten().tolist()
    args = ["recommend", str(runs["dot"]), "--queries", str(queries), "--out", str(out), "--shortlist", "20"]
    assert CliRunner().invoke(main, [*args, "--exclude-seen"]).exit_code == 0
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    p = LinkPredictor.load(runs["dot"])
    top = p.recommend(torch.tensor([5, 6]), 1e12, k=10, exclude_seen=True, shortlist=20)
    assert [int(r[3]) for r in rows] == top.nodes.flatten().tolist()
    events = tmp_path / "new.csv"
    events.write_text("5,7,1e12\nx,7,1e12\n")
    args = ["recommend", str(run), "--queries", str(queries), "--observe", str(events)]
    bad = CliRunner().invoke(main, args)
    assert bad.exit_code == 1 and "new.csv:2: src 'x' is not an integer id" in bad.output
    assert len(bad.output.strip().splitlines()) == 1, bad.output


@pytest.mark.parametrize(
    ("model", "flags", "message"),
    [
        ("tgn", ["--shortlist", "20"], "--shortlist: a shortlist needs a dot-product decoder"),
        ("edgebank", ["--shortlist", "20"], "has no dot-product shortlist"),
        ("dot", ["--shortlist", "5", "--k", "10"], "--shortlist: shortlist must be an int >= k (10); got 5"),
    ],
)
def test_cli_recommend_refuses_a_shortlist_it_cannot_take_before_reading_a_query(
    runs, tmp_path, model, flags, message
):
    """Told as a usage error of the flag, not as an error of the queries file's first row."""
    queries = tmp_path / "q.csv"
    queries.write_text("5,1e12\n")
    out = tmp_path / "top.csv"
    args = ["recommend", str(runs[model]), "--queries", str(queries), "--out", str(out), *flags]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "q.csv" not in result.output and "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("model", ["edgebank", "tgn"])
def test_cli_recommend_observe_before_the_run_s_events_names_the_file_in_one_line(runs, tmp_path, model):
    queries, events = tmp_path / "q.csv", tmp_path / "old.csv"
    queries.write_text("5,1e12\n")
    events.write_text("src,dst,t\n5,7,1\n")
    args = ["recommend", str(runs[model]), "--queries", str(queries), "--observe", str(events)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert (
        "old.csv: observe: events must come in time order, none before the latest observed one"
        in result.output
    )
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("model", ["edgebank", "tgn"])
def test_a_refused_observe_changes_nothing(runs, model):
    """Events out of order, or with a time per event missing, fail before their unknown ids become
    nodes: the predictor scores as before."""
    p = LinkPredictor.load(runs[model])
    nodes, pool = p.num_nodes, p.recommend([5], 1e12, k=5)
    for t in ([1.0, 2.0], [2e12], [2e12, 1.5e12]):  # before the run's events; one short; out of order
        with pytest.raises(ValueError, match="observe: ") as error:
            p.observe(np.array([5, 5]), np.array([10**7, 10**7 + 1]), np.array(t))
        assert "\n" not in str(error.value)
        assert p.num_nodes == nodes
    again = p.recommend([5], 1e12, k=5)
    assert again.nodes.tolist() == pool.nodes.tolist() and torch.equal(again.scores, pool.scores)
