"""The .npz cache of parsed datasets: keyed by file content and loader options."""

import numpy as np
import pytest

from dgl_tgnn.data import formats, load_dataset


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("DGL_TGNN_CACHE", str(directory))
    return directory


def forbid_parsing(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("parsed again instead of using the cache")

    monkeypatch.setattr(formats.pd, "read_csv", fail)


def test_second_load_comes_from_cache(tmp_path, cache_dir, monkeypatch):
    path = tmp_path / "e.txt"
    path.write_text("1 2 30\n2 3 10\n")
    first = load_dataset(str(path))
    assert len(list(cache_dir.glob("*.npz"))) == 1
    forbid_parsing(monkeypatch)
    second = load_dataset(str(path))
    for field in ("src", "dst", "t", "node_ids", "dst_candidates"):
        np.testing.assert_array_equal(getattr(second, field), getattr(first, field))
    assert (second.name, second.num_nodes, second.bipartite, second.edge_feat) == ("e", 3, False, None)


def test_changed_file_is_parsed_again(tmp_path, cache_dir):
    path = tmp_path / "e.txt"
    path.write_text("1 2 30\n2 3 10\n")
    load_dataset(str(path))
    path.write_text("1 2 30\n2 3 10\n3 4 20\n")
    assert load_dataset(str(path)).num_events == 3
    assert len(list(cache_dir.glob("*.npz"))) == 2


def test_options_are_part_of_the_key(tmp_path, cache_dir):
    path = tmp_path / "c.csv"
    path.write_text("1,2,30,5\n2,3,10,6\n")
    a = load_dataset(str(path), src_col=0, dst_col=1, time_col=2)
    b = load_dataset(str(path), src_col=0, dst_col=1, time_col=3, feature_cols=[2])
    np.testing.assert_array_equal(a.t, [10.0, 30.0])
    np.testing.assert_array_equal(b.t, [5.0, 6.0])
    assert b.edge_dim == 1 and a.edge_dim == 0


def test_same_content_under_another_name_keeps_its_name(tmp_path, cache_dir):
    (tmp_path / "a.txt").write_text("1 2 3\n")
    (tmp_path / "b.txt").write_text("1 2 3\n")
    assert load_dataset(str(tmp_path / "a.txt")).name == "a"
    assert load_dataset(str(tmp_path / "b.txt")).name == "b"


def test_cache_false_writes_nothing(tmp_path, cache_dir):
    path = tmp_path / "e.txt"
    path.write_text("1 2 3\n")
    load_dataset(str(path), cache=False)
    assert not cache_dir.exists()


def test_damaged_cache_entry_is_replaced(tmp_path, cache_dir):
    path = tmp_path / "e.txt"
    path.write_text("1 2 30\n2 3 10\n")
    load_dataset(str(path))
    (entry,) = cache_dir.glob("*.npz")
    entry.write_bytes(b"not a zip file")
    assert load_dataset(str(path)).num_events == 2
    assert np.load(entry)["t"].tolist() == [10.0, 30.0]


def test_label_and_features_round_trip(tmp_path, cache_dir, monkeypatch):
    path = tmp_path / "w.csv"
    path.write_text("user_id,item_id,timestamp,state_label,f\n0,0,1,1,0.5,2\n1,0,2,0,0.25,3\n")
    first = load_dataset(str(path))
    forbid_parsing(monkeypatch)
    second = load_dataset(str(path))
    np.testing.assert_array_equal(second.label, first.label)
    np.testing.assert_array_equal(second.edge_feat, first.edge_feat)
    assert second.bipartite and second.edge_feat.dtype == np.float32
