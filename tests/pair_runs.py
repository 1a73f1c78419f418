"""Checks shared by the tests of models that score pairs themselves (TPNet, DyGFormer)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from dgl_tgnn import LinkPredictor
from dgl_tgnn.config import RunConfig
from dgl_tgnn.events import EventStream
from dgl_tgnn.ranking import NegativeSets, rank_stream
from dgl_tgnn.train import Trainer


def assert_predictor_ranks_as_the_run_did(run: Path) -> None:
    """A finished ``--protocol tgb`` run: its loaded ``LinkPredictor`` re-ranks the test split to the
    run's reported MRR and Recall@1/10, and ``recommend``'s exact path ranks by ``score``."""
    final = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["final"]
    assert 0 < final["test_mrr"] <= 1
    predictor = LinkPredictor.load(run)
    src, dst, t = predictor.stream_src, predictor.stream_dst, predictor.stream_t
    test = np.flatnonzero(t > np.quantile(t, 0.85))
    predictor.reset(until=float(t[test[0]]))
    stream = EventStream(*(torch.from_numpy(a) for a in (src, dst, t)), torch.from_numpy(test))
    got = rank_stream(predictor, stream, NegativeSets.load(run / "negatives_test.npz"), 100, [1, 10])
    for key in ("mrr", "recall@1", "recall@10"):
        assert got[key] == pytest.approx(final[f"test_{key}"], abs=1e-9), key
    predictor.reset(until=float(t[test[0]]))
    sources, at = torch.from_numpy(src[test[:3]]), torch.from_numpy(t[test[:3]])
    top = predictor.recommend(sources, at, k=5)
    pool = torch.from_numpy(np.flatnonzero(predictor.destinations))
    scores = predictor.score(sources, at, pool.expand(3, -1))
    torch.testing.assert_close(
        top.scores, scores.sort(dim=1, descending=True).values[:, :5], rtol=1e-5, atol=1e-5
    )


def assert_no_leakage(make_predictor: Callable, events: list[tuple[int, int, float]], num_nodes: int) -> None:
    """``make_predictor(src, dst, t)`` (same weights each call) over ``events``, which span times 1
    to 10: an event at time 6 never changes a score at time 6, a stream whose events from 6 on differ
    scores the same at 6, and differently at 9.8."""
    src, dst, t = (np.array(c) for c in zip(*events, strict=True))
    t = t.astype(np.float64)
    sources, targets = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    cand = torch.stack([targets, targets.flip(0)], 1)
    at = torch.full((3,), 6.0, dtype=torch.float64)
    p = make_predictor(src, dst, t)
    p.reset(until=6.0)  # events before time 6
    before = p.score(sources, at, cand)
    p.observe(torch.tensor([1]), torch.tensor([3]), torch.tensor([6.0]))  # the event at 6 itself
    torch.testing.assert_close(p.score(sources, at, cand), before, rtol=0, atol=0)
    # A stream whose later events differ scores the same before them ...
    other = make_predictor(src, np.where(t >= 6.0, (dst + 1) % num_nodes, dst), t)
    other.reset(until=6.0)
    torch.testing.assert_close(other.score(sources, at, cand), before, rtol=0, atol=0)
    # ... and the events do count once they are earlier than the query.
    later = torch.full((3,), 9.8, dtype=torch.float64)
    p.reset(until=9.8)
    other.reset(until=9.8)
    assert not torch.allclose(p.score(sources, later, cand), other.score(sources, later, cand))


def assert_trains(config: RunConfig, constant: tuple[str, ...] = ()) -> None:
    """Three training batches of ``config``: finite losses, and some weight (outside ``constant``,
    state-dict entries that are not learnt) changed."""
    trainer = Trainer(config, None, progress=False, log=lambda line: None)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert trainer.train_epoch(stop_after=3) is False  # 3 batches
    losses = trainer.partial["losses"]
    assert len(losses) == 3 and all(np.isfinite(losses))
    after = trainer.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k not in constant)
