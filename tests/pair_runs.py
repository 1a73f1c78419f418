"""A check shared by the tests of models that score pairs themselves (TPNet, DyGFormer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dgl_tgnn import LinkPredictor
from dgl_tgnn.events import EventStream
from dgl_tgnn.ranking import NegativeSets, rank_stream


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
