"""The synthetic Zipf workload."""

import numpy as np
import pytest
from scipy import stats

from dgl_tgnn.data import load_dataset, zipf_events


def test_zipf_frequencies_follow_the_law():
    n_nodes, alpha = 30, 1.2
    ds = zipf_events(60_000, n_nodes, alpha=alpha, seed=3)
    expected = np.arange(1, n_nodes + 1, dtype=np.float64) ** -alpha
    expected /= expected.sum()
    for ends in (ds.src, ds.dst):
        counts = np.sort(np.bincount(ends, minlength=n_nodes))[::-1]  # by popularity rank
        result = stats.chisquare(counts, expected * len(ends))
        assert result.pvalue > 1e-4
        assert counts[0] / counts[1] == pytest.approx(2**alpha, rel=0.1)


def test_zipf_fields_and_determinism():
    ds = zipf_events(5_000, 200, alpha=1.0, span_seconds=1000, feat_dim=4, seed=1)
    assert ds.num_events == 5_000 and ds.num_nodes == 200 and ds.edge_dim == 4
    assert ds.edge_feat.dtype == np.float32 and not ds.bipartite
    assert np.all(ds.t == np.round(ds.t)) and ds.t.min() >= 0 and ds.t.max() < 1000
    assert np.all(np.diff(ds.t) >= 0)
    np.testing.assert_array_equal(ds.dst_candidates, np.arange(200))
    again = zipf_events(5_000, 200, alpha=1.0, span_seconds=1000, feat_dim=4, seed=1)
    np.testing.assert_array_equal(again.src, ds.src)
    np.testing.assert_array_equal(again.edge_feat, ds.edge_feat)
    other = zipf_events(5_000, 200, alpha=1.0, span_seconds=1000, feat_dim=4, seed=2)
    assert not np.array_equal(other.src, ds.src)


def test_alpha_zero_is_uniform():
    ds = zipf_events(40_000, 20, alpha=0.0, seed=0)
    assert stats.chisquare(np.bincount(ds.src, minlength=20)).pvalue > 1e-4


def test_zipf_1m_workload():
    ds = load_dataset("zipf-1m")
    assert ds.name == "zipf-1m"
    assert (ds.num_events, ds.num_nodes, ds.edge_dim) == (1_000_000, 100_000, 0)
    assert ds.t.min() >= 0 and ds.t.max() < 30 * 86400 and np.all(ds.t == np.round(ds.t))
    np.testing.assert_array_equal(ds.src[:100], load_dataset("zipf-1m").src[:100])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_events=0), "n_events"),
        (dict(n_nodes=0), "n_nodes"),
        (dict(alpha=-1.0), "alpha"),
        (dict(feat_dim=-1), "feat_dim"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(n_events=10, n_nodes=5) | kwargs
    with pytest.raises(ValueError, match=match):
        zipf_events(**args)
