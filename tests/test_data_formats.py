"""Loaders of dgl_tgnn.data.formats on hand-built files, checked against hand-computed arrays and a
pure-Python reference parser."""

import gzip

import numpy as np
import pytest

from dgl_tgnn.data import DataError, TemporalDataset, load_dataset


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DGL_TGNN_CACHE", str(tmp_path / "cache"))


def write(path, text: str, compress: bool = False):
    path.write_bytes(gzip.compress(text.encode()) if compress else text.encode())
    return path


def test_jodie_bipartite_reindex_sort_and_features(tmp_path):
    # The real JODIE header names the features with one column name; rows carry 2 features here.
    path = write(
        tmp_path / "toy.csv",
        "user_id,item_id,timestamp,state_label,comma_separated_list_of_features\n"
        "5,2,10.0,0,0.1,0.2\n"
        "3,2,5.0,1,0.3,0.4\n"
        "5,0,10.0,0,0.5,0.6\n",
    )
    ds = load_dataset(str(path))
    assert ds.name == "toy"
    assert ds.bipartite and ds.num_nodes == 4 and ds.num_events == 3 and ds.edge_dim == 2
    # users 3, 5 -> 0, 1; items 0, 2 -> 2, 3; events stably sorted by time
    np.testing.assert_array_equal(ds.node_ids, [3, 5, 0, 2])
    np.testing.assert_array_equal(ds.src, [0, 1, 1])
    np.testing.assert_array_equal(ds.dst, [3, 3, 2])
    np.testing.assert_array_equal(ds.t, [5.0, 10.0, 10.0])
    np.testing.assert_array_equal(ds.label, [1, 0, 0])
    np.testing.assert_allclose(ds.edge_feat, [[0.3, 0.4], [0.1, 0.2], [0.5, 0.6]])
    np.testing.assert_array_equal(ds.dst_candidates, [2, 3])
    assert ds.src.dtype == np.int64 and ds.t.dtype == np.float64 and ds.label.dtype == np.int64
    assert ds.edge_feat.dtype == np.float32 and ds.node_feat is None


def test_jodie_without_features(tmp_path):
    path = write(tmp_path / "w.csv", "user_id,item_id,timestamp,state_label\n0,0,0.0,0\n1,0,36.0,1\n")
    ds = load_dataset(str(path))
    assert ds.edge_feat is None and ds.edge_dim == 0
    np.testing.assert_array_equal(ds.dst, [2, 2])


def test_bom_and_crlf_line_endings(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfuser_id,item_id,timestamp,state_label\r\n4,1,2.5,0\r\n2,1,1.5,1\r\n")
    ds = load_dataset(str(path))
    np.testing.assert_array_equal(ds.node_ids, [2, 4, 1])
    np.testing.assert_array_equal(ds.t, [1.5, 2.5])
    np.testing.assert_array_equal(ds.label, [1, 0])


def test_konect_four_columns_weight_is_edge_feature(tmp_path):
    path = write(
        tmp_path / "out.konect",
        "% asym positive\n% 3 2 2\n10 20 1.5 300\n20 10 -2 100\n\n10 10 1 200\n",
    )
    ds = load_dataset(str(path))
    assert not ds.bipartite and ds.num_nodes == 2
    np.testing.assert_array_equal(ds.node_ids, [10, 20])
    np.testing.assert_array_equal(ds.src, [1, 0, 0])
    np.testing.assert_array_equal(ds.dst, [0, 0, 1])
    np.testing.assert_array_equal(ds.t, [100.0, 200.0, 300.0])
    np.testing.assert_array_equal(ds.edge_feat, np.array([[-2.0], [1.0], [1.5]], dtype=np.float32))
    np.testing.assert_array_equal(ds.dst_candidates, [0, 1])


def test_snap_gzip_recognised_by_magic_bytes_not_name(tmp_path):
    text = "# Directed graph\n# FromNodeId ToNodeId Time\n7 3 50\n3 9 20\n9 9 50\n"
    path = write(tmp_path / "edges.txt", text, compress=True)
    ds = load_dataset(str(path))
    np.testing.assert_array_equal(ds.node_ids, [3, 7, 9])
    np.testing.assert_array_equal(ds.src, [0, 1, 2])  # 3->9 at 20, then 7->3 and 9->9 at 50 (stable)
    np.testing.assert_array_equal(ds.dst, [2, 0, 2])
    np.testing.assert_array_equal(ds.t, [20.0, 50.0, 50.0])
    assert ds.edge_feat is None and ds.label is None


def test_generic_csv_by_header_names_with_delimiter(tmp_path):
    path = write(tmp_path / "events.csv", "when;from;to;w;note\n5;100;7;0.5;x\n2;7;100;-1;y\n")
    ds = load_dataset(
        str(path), src_col="from", dst_col="to", time_col="when", feature_cols=["w"], delimiter=";"
    )
    np.testing.assert_array_equal(ds.node_ids, [7, 100])
    np.testing.assert_array_equal(ds.src, [0, 1])
    np.testing.assert_array_equal(ds.dst, [1, 0])
    np.testing.assert_array_equal(ds.t, [2.0, 5.0])
    np.testing.assert_array_equal(ds.edge_feat, np.array([[-1.0], [0.5]], dtype=np.float32))


def test_generic_csv_by_index_without_header(tmp_path):
    path = write(tmp_path / "b.csv", "6,2,4,1289241912\n1,15,-10,1289241000\n")
    ds = load_dataset(
        str(path), fmt="csv", src_col=0, dst_col=1, time_col=3, feature_cols=[2], bipartite=False
    )
    np.testing.assert_array_equal(ds.node_ids, [1, 2, 6, 15])
    np.testing.assert_array_equal(ds.src, [0, 2])
    np.testing.assert_array_equal(ds.dst, [3, 1])
    np.testing.assert_array_equal(ds.edge_feat[:, 0], [-10.0, 4.0])


def test_tgn_ml_format(tmp_path):
    write(
        tmp_path / "ml_toy.csv",
        ",u,i,ts,label,idx\n0,1,3,1.0,0.0,1\n1,2,3,2.0,1.0,2\n2,1,4,2.0,0.0,3\n",
    )
    edge_table = np.array([[0, 0], [1, 10], [2, 20], [3, 30]], dtype=np.float64)
    node_table = np.repeat(np.arange(5, dtype=np.float64)[:, None], 3, axis=1)
    np.save(tmp_path / "ml_toy.npy", edge_table)
    np.save(tmp_path / "ml_toy_node.npy", node_table)
    ds = load_dataset(str(tmp_path / "ml_toy.csv"))
    assert ds.name == "toy" and ds.bipartite and ds.num_nodes == 4
    np.testing.assert_array_equal(ds.node_ids, [1, 2, 3, 4])
    np.testing.assert_array_equal(ds.src, [0, 1, 0])
    np.testing.assert_array_equal(ds.dst, [2, 2, 3])
    np.testing.assert_array_equal(ds.t, [1.0, 2.0, 2.0])
    np.testing.assert_array_equal(ds.label, [0, 1, 0])
    np.testing.assert_array_equal(ds.edge_feat, [[1, 10], [2, 20], [3, 30]])
    np.testing.assert_array_equal(ds.node_feat, [[1] * 3, [2] * 3, [3] * 3, [4] * 3])
    np.testing.assert_array_equal(ds.dst_candidates, [2, 3])


def reference_edgelist(text: str):
    """Independent parse: comments and blanks skipped, ids by sorted unique, Python's stable sort by time."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#%":
            continue
        cells = line.split()
        rows.append((int(cells[0]), int(cells[1]), float(cells[2]), float(cells[3])))
    ids = sorted({r[0] for r in rows} | {r[1] for r in rows})
    rank = {v: i for i, v in enumerate(ids)}
    rows = sorted(rows, key=lambda r: r[3])
    return (
        ids,
        [rank[r[0]] for r in rows],
        [rank[r[1]] for r in rows],
        [r[3] for r in rows],
        [r[2] for r in rows],
    )


def test_edgelist_matches_reference_parser_on_random_file(tmp_path):
    rng = np.random.default_rng(7)
    lines = ["% random KONECT-style file"]
    for _ in range(500):
        if rng.random() < 0.05:
            lines.append("# a comment line")
        src, dst = rng.integers(-50, 10**12, size=2) if rng.random() < 0.1 else rng.integers(0, 60, size=2)
        lines.append(f"{src}\t{dst}  {rng.normal():.6g} {rng.integers(0, 40)}")
    text = "\n".join(lines)
    ds = load_dataset(str(write(tmp_path / "random.tsv", text)))
    ids, src, dst, t, weight = reference_edgelist(text)
    np.testing.assert_array_equal(ds.node_ids, ids)
    np.testing.assert_array_equal(ds.src, src)
    np.testing.assert_array_equal(ds.dst, dst)
    np.testing.assert_array_equal(ds.t, t)
    np.testing.assert_array_equal(ds.edge_feat[:, 0], np.array(weight, dtype=np.float32))


def test_dataset_validates_its_arrays():
    ids = np.array([0, 1], dtype=np.int64)
    common = dict(
        name="x",
        label=None,
        edge_feat=None,
        node_feat=None,
        node_ids=ids,
        num_nodes=2,
        bipartite=False,
        dst_candidates=ids,
    )
    TemporalDataset(src=ids, dst=ids, t=np.array([0.0, 1.0]), **common)
    with pytest.raises(ValueError, match="non-decreasing"):
        TemporalDataset(src=ids, dst=ids, t=np.array([1.0, 0.0]), **common)
    with pytest.raises(ValueError, match="0..1"):
        TemporalDataset(src=ids + 1, dst=ids, t=np.array([0.0, 1.0]), **common)


# --- bad input: one DataError line naming file (and line, value) --------------------------------------------


def load_error(path, **options) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(str(path), **options)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message and "tokenizing" not in message
    return message


def test_error_missing_file(tmp_path):
    message = load_error(tmp_path / "nope.txt")
    assert message.startswith(f"{tmp_path / 'nope.txt'}: no such file")


def test_error_wrong_column_count_names_file_and_line(tmp_path):
    rows = ["a,b,t,w"] + [f"{i},{i + 1},{i},0.5" for i in range(15)] + ["1,2,3"] + ["4,5,6,0.1"]
    path = write(tmp_path / "data.csv", "\n".join(rows) + "\n")
    message = load_error(path, src_col="a", dst_col="b", time_col="t", feature_cols=["w"])
    assert message == f"{path}:17: expected 4 columns, got 3"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1 2 3\n4 5 6\n7 8\n", ":3: expected 3 columns, got 2"),
        ("1 2 3\n4 5 6 7 8\n", ":2: expected 3 columns, got 5"),
        ("1 2 3\n4 5 6 7\n", ":2: expected 3 columns, got 4"),
    ],
)
def test_error_edgelist_column_count(tmp_path, text, expected):
    path = write(tmp_path / "e.txt", text)
    assert load_error(path) == f"{path}{expected}"


@pytest.mark.parametrize(
    "line, ids",
    [
        ("x 2 4", ["1", "2", "x", "5", "6"]),
        ("1 2.5 4", ["1", "2", "2.5", "5", "6"]),
        ("1 99999999999999999999 4", ["1", "2", "99999999999999999999", "5", "6"]),
    ],
)
def test_ids_that_are_not_int64_make_every_id_a_string(tmp_path, line, ids):
    path = write(tmp_path / "e.txt", f"# header comment\n1 2 3\n{line}\n5 6 7\n")
    ds = load_dataset(str(path), fmt="edgelist", bipartite=False)  # (no id is both src and dst here)
    assert ds.string_ids and ds.source["ids"] == "string"
    np.testing.assert_array_equal(ds.node_ids, ids)  # first appearance, src before dst


@pytest.mark.parametrize(
    "line, expected",
    [
        ("1 2 abc", "time is not a number: 'abc'"),
        ("1 2 nan", "time is not a finite number: 'nan'"),
        ("1 2 inf", "time is not a finite number: 'inf'"),
        ("1 2 1_000", "time is not a number: '1_000'"),
    ],
)
def test_error_bad_value_names_file_line_and_value(tmp_path, line, expected):
    path = write(tmp_path / "e.txt", f"# header comment\n1 2 3\n{line}\n5 6 7\n")
    assert load_error(path, fmt="edgelist") == f"{path}:3: {expected}"


@pytest.mark.parametrize("text", ["", "\n\n", "% only\n# comments\n"])
def test_error_empty_file(tmp_path, text):
    path = write(tmp_path / "e.txt", text)
    assert load_error(path, fmt="edgelist") == f"{path}: empty file (no events)"


def test_error_header_without_events(tmp_path):
    path = write(tmp_path / "w.csv", "user_id,item_id,timestamp,state_label\n")
    assert load_error(path) == f"{path}: no events after the header"


def test_error_features_of_inconsistent_width(tmp_path):
    path = write(
        tmp_path / "w.csv",
        "user_id,item_id,timestamp,state_label,features\n0,0,1,0,0.1,0.2\n1,0,2,0,0.3,0.4\n1,1,3,0,0.5\n",
    )
    assert load_error(path) == (f"{path}:4: expected 6 columns (4 + 2 features, as on line 2), got 5")


def test_error_non_integer_label(tmp_path):
    path = write(tmp_path / "w.csv", "user_id,item_id,timestamp,state_label\n0,0,1,0\n1,0,2,0.5\n")
    assert load_error(path) == f"{path}:3: state_label is not an integer: '0.5'"


def test_error_tgn_feature_table_too_short(tmp_path):
    write(tmp_path / "ml_x.csv", ",u,i,ts,label,idx\n0,1,2,1.0,0,1\n1,1,2,2.0,0,2\n")
    np.save(tmp_path / "ml_x.npy", np.zeros((2, 4)))
    np.save(tmp_path / "ml_x_node.npy", np.zeros((3, 4)))
    message = load_error(tmp_path / "ml_x.csv")
    assert message == f"{tmp_path / 'ml_x.npy'}: has 2 rows, the events need at least 3"


def test_error_tgn_missing_node_features(tmp_path):
    write(tmp_path / "ml_x.csv", ",u,i,ts,label,idx\n0,1,2,1.0,0,1\n")
    np.save(tmp_path / "ml_x.npy", np.zeros((2, 4)))
    assert load_error(tmp_path / "ml_x.csv") == f"{tmp_path / 'ml_x_node.npy'}: no such file"


def test_error_damaged_gzip(tmp_path):
    path = tmp_path / "e.txt"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    assert load_error(path, fmt="edgelist").startswith(f"{path}: damaged gzip data")


def test_headerless_csv_of_four_columns_is_src_dst_and_time_last(tmp_path):
    path = write(tmp_path / "b.csv", "6,2,4,1289241912\n")
    ds = load_dataset(str(path))
    assert ds.source["format"] == "csv" and ds.source["columns"]["time"] == 3
    assert ds.source["unused_columns"] == [2]
    np.testing.assert_array_equal(ds.t, [1289241912.0])


def test_error_columns_cannot_be_guessed(tmp_path):
    path = write(tmp_path / "b.csv", "6,2,4,1289241912,7\n")
    assert load_error(path) == (
        f"{path}:1: cannot tell the src, dst, time columns of 5 without a header: give --src-col, "
        "--dst-col, --time-col (0-based column indices)"
    )


def test_error_unknown_header_column(tmp_path):
    path = write(tmp_path / "c.csv", "a,b,t\n1,2,3\n")
    assert load_error(path, src_col="a", dst_col="b", time_col="time") == (
        f"{path}:1: no column named 'time' in the header ['a', 'b', 't'] (--time-col)"
    )


def test_bad_arguments_are_value_errors(tmp_path):
    path = write(tmp_path / "c.csv", "1,2,3\n")
    with pytest.raises(ValueError, match="column names need a header line"):
        load_dataset(str(path), src_col="a", dst_col=1, time_col=2, header=False)
    with pytest.raises(ValueError, match="--src-col, --dst-col and --time-col must differ"):
        load_dataset(str(path), fmt="csv", src_col=0, dst_col=0)
    with pytest.raises(ValueError, match="--format must be one of"):
        load_dataset(str(path), fmt="parquet")
    with pytest.raises(ValueError, match="--delimiter apply to --format csv"):
        load_dataset(str(path), fmt="edgelist", delimiter=";")
    with pytest.raises(ValueError, match="built-in dataset 'uci'"):
        load_dataset("uci", fmt="csv")


def test_bipartite_is_guessed_when_no_id_is_both_a_source_and_a_destination(tmp_path):
    path = write(tmp_path / "votes.csv", "user,item,t\n7,10,1\n3,11,2\n7,11,3\n")
    ds = load_dataset(str(path))
    assert (
        ds.bipartite
        and "bipartite: yes, no id is both a source and a destination (--no-bipartite)"
        in (ds.source["notes"])
    )
    np.testing.assert_array_equal(ds.node_ids, [3, 7, 10, 11])  # users, then items
    np.testing.assert_array_equal(ds.dst_candidates, [2, 3])  # negatives and recommendations: items
    one_space = load_dataset(str(path), bipartite=False)  # (a second cache entry, not the first's)
    assert not one_space.bipartite and not any("bipartite" in note for note in one_space.source["notes"])
    np.testing.assert_array_equal(one_space.node_ids, [3, 7, 10, 11])  # the same nodes
    np.testing.assert_array_equal(one_space.dst_candidates, [0, 1, 2, 3])


def test_bipartite_given_keeps_users_and_items_apart_where_their_ids_coincide(tmp_path):
    # user 1 and item 1 are different nodes in a user,item file: only --bipartite says so
    path = write(tmp_path / "e.txt", "1 1 5\n2 1 6\n1 3 7\n")
    guessed = load_dataset(str(path), fmt="edgelist")
    assert not guessed.bipartite and guessed.num_nodes == 3
    assert "bipartite: no, 1 ids are both a source and a destination (--bipartite)" in guessed.source["notes"]
    two = load_dataset(str(path), fmt="edgelist", bipartite=True)
    assert two.bipartite and two.num_nodes == 4
    np.testing.assert_array_equal(two.node_ids, [1, 2, 1, 3])
    np.testing.assert_array_equal(two.src, [0, 1, 0])
    np.testing.assert_array_equal(two.dst, [2, 2, 3])
    kept = load_dataset(str(path), fmt="edgelist", keep_ids=True)  # rows are ids: no guess
    assert not kept.bipartite and "bipartite: no, ids kept as rows (--bipartite)" in kept.source["notes"]


@pytest.mark.parametrize(
    ("where", "options", "message"),
    [
        (
            "wiki.csv",
            {"fmt": "jodie", "bipartite": False},
            "--no-bipartite applies to --format csv and edgelist",
        ),
        ("wikipedia", {"bipartite": True}, "not for the built-in dataset 'wikipedia'"),
    ],
)
def test_bipartite_is_refused_where_the_format_already_says(tmp_path, where, options, message):
    path = write(tmp_path / "wiki.csv", "user_id,item_id,timestamp,state_label\n1,2,3,0\n")
    with pytest.raises(ValueError, match=message):
        load_dataset(str(path) if where == "wiki.csv" else where, **options)
