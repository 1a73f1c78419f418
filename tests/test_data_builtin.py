"""Built-in datasets: the loaders must reproduce the published counts of each file."""

from pathlib import Path

import numpy as np
import pytest

import dgl_tgnn
from dgl_tgnn.data import builtin_names, load_dataset
from dgl_tgnn.data.registry import BUILTIN_DIR

# name: (events, nodes, edge feature dim, bipartite), as published (see builtin/PROVENANCE.md)
PUBLISHED = {
    "wikipedia": (157_474, 9_227, 0, True),
    "uci": (59_835, 1_899, 0, False),
    "bitcoinotc": (35_592, 5_881, 1, False),
    "enron": (125_235, 184, 0, False),
    "mathoverflow": (506_550, 24_818, 0, False),
}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DGL_TGNN_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield {name: load_dataset(name) for name in PUBLISHED}


def test_names():
    assert builtin_names() == [*PUBLISHED, "zipf-1m"]


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_counts(loaded, name):
    ds = loaded[name]
    assert (ds.num_events, ds.num_nodes, ds.edge_dim, ds.bipartite) == PUBLISHED[name]
    assert ds.name == name
    assert np.all(np.diff(ds.t) >= 0)
    assert ds.src.min() >= 0 and max(ds.src.max(), ds.dst.max()) < ds.num_nodes


def test_wikipedia_users_items_and_labels(loaded):
    ds = loaded["wikipedia"]
    np.testing.assert_array_equal(ds.node_ids, np.concatenate([np.arange(8227), np.arange(1000)]))
    np.testing.assert_array_equal(ds.dst_candidates, np.arange(8227, 9227))
    assert ds.src.max() < 8227 <= ds.dst.min()
    assert int(ds.label.sum()) == 217  # users banned after the edit
    assert (ds.src[0], ds.dst[0], ds.t[0]) == (0, 8227, 0.0)  # first line: 0,0,0.0,0


def test_mathoverflow_unsorted_file_keeps_self_loops(loaded):
    ds = loaded["mathoverflow"]
    assert int(np.sum(ds.src == ds.dst)) == 116_109


def test_bitcoinotc_rating_feature(loaded):
    rating = loaded["bitcoinotc"].edge_feat[:, 0]
    assert rating.min() == -10 and rating.max() == 10 and np.all(rating == np.round(rating))


def test_builtin_files_ship_inside_the_package():
    assert BUILTIN_DIR == Path(dgl_tgnn.__file__).resolve().parent / "data" / "builtin"
    provenance = (BUILTIN_DIR / "PROVENANCE.md").read_text()
    for file in sorted(BUILTIN_DIR.glob("*.gz")):
        assert file.name in provenance
    assert len(list(BUILTIN_DIR.glob("*.gz"))) == 5
