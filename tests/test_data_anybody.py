"""Anybody's data (issue 16): string ids, headers in any order, sniffed delimiters, ISO dates, huge ids, TGB
files, numpy / pandas / DGL / PyG inputs, and the "what was loaded" block."""

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from dgl_tgnn import TemporalGraph
from dgl_tgnn.cli import main
from dgl_tgnn.data import (
    DataError,
    TemporalDataset,
    data_record,
    describe,
    from_arrays,
    from_dataframe,
    from_dgl,
    from_pyg,
    load_dataset,
    run_name,
)


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DGL_TGNN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def write(path, text):
    path.write_text(text)
    return str(path)


def test_string_ids_are_rows_in_order_of_first_appearance_and_the_mapping_is_kept(tmp_path):
    path = write(
        tmp_path / "votes.csv",
        "Source,Target,Rating,Time\nomar-alghabra,user_42,1,30\nuser_42,bob,-1,10\nbob,omar-alghabra,1,20\n",
    )
    ds = load_dataset(path)
    assert ds.string_ids and ds.num_nodes == 3 and ds.source["ids"] == "string"
    np.testing.assert_array_equal(ds.node_ids, ["omar-alghabra", "user_42", "bob"])
    np.testing.assert_array_equal(ds.original_ids(ds.src), ["user_42", "bob", "omar-alghabra"])
    np.testing.assert_array_equal(ds.original_ids(ds.dst), ["bob", "omar-alghabra", "user_42"])
    np.testing.assert_array_equal(ds.rows_of(["bob", "omar-alghabra"]), [2, 0])
    with pytest.raises(KeyError, match="nobody"):
        ds.rows_of(["nobody"])
    assert ds.source["columns"] == {"src": "Source", "dst": "Target", "time": "Time", "features": []}
    assert ds.source["unused_columns"] == ["Rating"]
    # the cache keeps the string ids and what was read
    again = load_dataset(path)
    np.testing.assert_array_equal(again.node_ids, ds.node_ids)
    assert again.source["columns"] == ds.source["columns"]


def test_header_with_reordered_columns_and_features_by_name(tmp_path):
    path = write(tmp_path / "r.csv", "timestamp,weight,target,source\n5,0.5,b,a\n2,1.5,a,c\n")
    ds = load_dataset(path, feature_cols=["weight"])
    np.testing.assert_array_equal(ds.t, [2.0, 5.0])
    np.testing.assert_array_equal(ds.original_ids(ds.src), ["c", "a"])
    np.testing.assert_array_equal(ds.original_ids(ds.dst), ["a", "b"])
    np.testing.assert_array_equal(ds.edge_feat[:, 0], [1.5, 0.5])
    assert "columns src='source', dst='target', time='timestamp'" in " ".join(ds.source["notes"])


@pytest.mark.parametrize("sep", [";", "\t", "|", " "])
def test_delimiter_is_sniffed(tmp_path, sep):
    rows = [["from", "to", "when"], ["1", "2", "10"], ["2", "3", "20"], ["3", "1", "30"]]
    path = write(tmp_path / "d.txt", "\n".join(sep.join(row) for row in rows) + "\n")
    ds = load_dataset(path)
    assert ds.num_events == 3 and ds.num_nodes == 3
    assert ds.source["delimiter"] == ("whitespace" if sep == " " else sep)
    np.testing.assert_array_equal(ds.node_ids, [1, 2, 3])


def test_iso_dates_and_datetimes_become_seconds(tmp_path):
    path = write(
        tmp_path / "dates.csv",
        "user;item;date\na;x;1970-01-02\nb;x;1970-01-01T00:01:00Z\na;y;1970-01-01 02:00:00+01:00\n",
    )
    ds = load_dataset(path)
    np.testing.assert_array_equal(ds.t, [60.0, 3600.0, 86400.0])
    assert ds.source["time_unit"].startswith("seconds since 1970")
    assert "1970-01-01 00:01:00 .. 1970-01-02 00:00:00 UTC" in describe(ds)


def test_index_columns_on_a_file_with_a_header_skip_the_header(tmp_path):
    path = write(tmp_path / "h.csv", "Source,Target,Rating,Time\n1,2,3,40\n2,3,4,50\n")
    ds = load_dataset(path, src_col=0, dst_col=1, time_col=3)
    assert ds.num_events == 2 and ds.source["header"] is True
    assert ds.source["columns"]["time"] == "Time"


def test_ids_near_2_to_the_40_are_re_indexed_and_keep_ids_refuses_them(tmp_path):
    big = 2**40
    path = write(tmp_path / "big.txt", f"{big} {big + 7} 1\n{big + 7} {2**31 - 1} 2\n")
    ds = load_dataset(path)
    assert ds.num_nodes == 3 and not ds.string_ids
    np.testing.assert_array_equal(ds.node_ids, [2**31 - 1, big, big + 7])
    with pytest.raises(ValueError, match=r"--keep-ids: 1,099,511,627,784 nodes .* PiB.*drop --keep-ids"):
        load_dataset(path, keep_ids=True)


def test_keep_ids_keeps_small_integer_ids(tmp_path):
    path = write(tmp_path / "k.txt", "5 2 1\n2 0 2\n")
    ds = load_dataset(path, keep_ids=True)
    assert ds.num_nodes == 6 and ds.source["ids"] == "kept"
    np.testing.assert_array_equal(ds.src, [5, 2])
    np.testing.assert_array_equal(ds.dst, [2, 0])
    with pytest.raises(ValueError, match="--keep-ids needs integer node ids"):
        load_dataset(write(tmp_path / "s.txt", "a b 1\n"), keep_ids=True)


@pytest.mark.parametrize(
    "text, options, flag",
    [
        ("alpha,beta,gamma\nx,y,1\n", {"header": True}, "--src-col"),
        ("src,dst,gamma\nx,y,1\n", {}, "--time-col"),
        ("src,dst,time\nx,y,yesterday\n", {}, "--time-col"),
        ("src,dst,time\nx,,1\n", {}, "--dst-col"),
        ("src,dst,time\nx,y,1\n", {"feature_cols": ["w"]}, "--feature-cols"),
        ("a,b,c,d,e\n1,2,3,4,5\n", {}, "--src-col"),
        ("src,dst,time\nx,y,1\n", {"src_col": 7}, "--src-col"),
    ],
)
def test_every_csv_error_names_the_flag_that_fixes_it(tmp_path, text, options, flag):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(DataError) as info:
        load_dataset(path, **options)
    assert flag in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(path)


def test_tgb_time_first_edge_list_with_string_ids(tmp_path):
    path = write(
        tmp_path / "tgbl-coin_edgelist_v2.csv",
        "day,src,dst,w\n1648811421,0x27cb,0x8426,800.0\n1648811400,0x8426,0xaaaa,1.5\n",
    )
    ds = load_dataset(path)
    assert ds.name == "tgbl-coin" and ds.source["format"] == "tgb" and not ds.bipartite
    np.testing.assert_array_equal(ds.node_ids, ["0x27cb", "0x8426", "0xaaaa"])
    np.testing.assert_array_equal(ds.t, [1648811400.0, 1648811421.0])
    np.testing.assert_array_equal(ds.edge_feat[:, 0], [1.5, 800.0])


def test_tgb_wiki_layout_is_jodie(tmp_path):
    path = write(
        tmp_path / "tgbl-wiki_edgelist_v2.csv",
        "user_id,item_id,timestamp,state_label,comma_separated_list_of_features\n0,0,1.0,0,0.5\n1,0,2.0,0,0.25\n",
    )
    ds = load_dataset(path, fmt="tgb")
    assert ds.bipartite and ds.num_nodes == 3 and ds.edge_dim == 1 and ds.source["format"] == "tgb"


def test_describe_block_says_what_was_loaded_and_warns(tmp_path):
    path = write(tmp_path / "w.txt", "1 2 5\n1 2 5\n3 3 1\n2 1 5\n")
    text = describe(load_dataset(path))
    assert text.splitlines()[0] == f"data: w ({path})"
    assert "format edgelist" in text and "events 4, nodes 3" in text
    assert "distinct timestamps: 2" in text
    assert "guessed: format edgelist (--format)" in text
    assert "warning: events were not in time order" in text
    assert "warning: 1 duplicate event" in text
    assert "warning: 1 self-loop" in text
    assert "warning: only 2 distinct timestamps" in text


def test_cli_datasets_data_prints_the_block_with_the_loader_flags(tmp_path):
    path = write(tmp_path / "v.csv", "a;b;when;w\nx;y;2020-01-01;1\ny;z;2020-01-02;2\n")
    args = ["datasets", "--data", path, "--src-col", "a", "--dst-col", "b", "--feature-cols", "w"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "columns: src 'a', dst 'b', time 'when', features 'w'" in result.output
    assert "string ids" in result.output and "1.0 days" in result.output
    result = CliRunner().invoke(main, ["datasets", "--data", path, "--time-col", "nope"])
    assert result.exit_code == 1
    header = "['a', 'b', 'when', 'w']"
    assert result.output == f"Error: {path}:1: no column named 'nope' in the header {header} (--time-col)\n"


def test_from_arrays_numpy_torch_and_datetimes():
    ds = from_arrays(
        torch.tensor([10, 20]),
        np.array([20, 30]),
        np.array(["2020-01-02", "2020-01-01"], dtype="datetime64[s]"),
        edge_feat=np.array([[1.0], [2.0]]),
    )
    np.testing.assert_array_equal(ds.node_ids, [10, 20, 30])
    np.testing.assert_array_equal(ds.t, [1577836800.0, 1577923200.0])
    np.testing.assert_array_equal(ds.edge_feat[:, 0], [2.0, 1.0])
    with pytest.raises(ValueError, match="edge_feat: row 0, column 0: 1e\\+39 is not a finite float32"):
        from_arrays([1], [2], [0.0], edge_feat=[[1e39]])
    with pytest.raises(ValueError, match="length mismatch"):
        from_arrays([1, 2], [2], [0.0])


def test_from_dataframe_with_iso_strings():
    frame = pd.DataFrame({"u": ["x", "y"], "v": ["y", "z"], "when": ["2020-01-01T00:00:10", "2020-01-01"]})
    ds = from_dataframe(frame, src="u", dst="v", time="when")
    np.testing.assert_array_equal(ds.t, [1577836800.0, 1577836810.0])
    np.testing.assert_array_equal(ds.original_ids(ds.src), ["y", "x"])
    with pytest.raises(ValueError, match="no column 'src'"):
        from_dataframe(frame)


def dgl_graph():
    from dgl_tgnn._dgl import dgl

    g = dgl.graph((torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 0, 2])), num_nodes=5)
    g.edata["timestamp"] = torch.tensor([4.0, 1.0, 3.0, 2.0])
    g.edata["feat"] = torch.arange(8, dtype=torch.float32).reshape(4, 2)
    return g


def test_temporal_graph_from_dgl_keeps_node_and_edge_ids():
    tg = TemporalGraph.from_dgl(dgl_graph(), time="timestamp", edge_feat="feat")
    assert tg.num_nodes == 5 and tg.num_events == 4
    assert tg.src.tolist() == [0, 1, 2, 0] and tg.t.tolist() == [4.0, 1.0, 3.0, 2.0]
    assert tg.edge_feat[1].tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match="no edge field 'time'"):
        TemporalGraph.from_dgl(dgl_graph(), time="time")


def test_dataset_from_dgl_sorts_by_time_and_handles_bipartite_graphs():
    ds = TemporalDataset.from_dgl(dgl_graph(), time="timestamp", edge_feat="feat")
    assert ds.num_nodes == 5 and ds.source["format"] == "dgl"
    np.testing.assert_array_equal(ds.t, [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(ds.src, [1, 0, 2, 0])
    np.testing.assert_array_equal(ds.edge_feat[:, 0], [2.0, 6.0, 4.0, 0.0])
    from dgl_tgnn._dgl import dgl

    h = dgl.heterograph({("user", "clicks", "item"): (torch.tensor([0, 1]), torch.tensor([1, 0]))})
    h.edata["ts"] = torch.tensor([5, 6])
    bi = from_dgl(h, time="ts")
    assert bi.bipartite and bi.num_nodes == 4
    np.testing.assert_array_equal(bi.dst, [3, 2])
    np.testing.assert_array_equal(bi.dst_candidates, [2, 3])


class FakeTemporalData:
    """The fields of PyG's TemporalData that from_pyg reads."""

    def __init__(self):
        self.src = torch.tensor([0, 3, 1])
        self.dst = torch.tensor([3, 4, 4])
        self.t = torch.tensor([2, 1, 3])
        self.msg = torch.ones(3, 2)
        self.y = torch.tensor([0, 1, 0])


def test_from_pyg_temporal_data_fields():
    ds = from_pyg(FakeTemporalData())
    assert ds.num_nodes == 5 and ds.edge_dim == 2 and ds.source["format"] == "pyg"
    np.testing.assert_array_equal(ds.src, [3, 0, 1])
    np.testing.assert_array_equal(ds.label, [1, 0, 0])


def test_from_pyg_with_real_pyg():
    tg = pytest.importorskip("torch_geometric.data")
    data = tg.TemporalData(
        src=torch.tensor([0, 1]), dst=torch.tensor([1, 2]), t=torch.tensor([1, 2]), msg=torch.zeros(2, 3)
    )
    ds = from_pyg(data)
    assert ds.num_events == 2 and ds.edge_dim == 3


def test_tgb_node_feature_file_next_to_the_edge_list(tmp_path):
    path = write(
        tmp_path / "tgbl-flight_edgelist_v2.csv", "timestamp,src,dst,callsign\n1,AAA,BBB,X1\n2,BBB,CCC,X2\n"
    )
    write(
        tmp_path / "airport_node_feat_v2.csv",
        "airport_code,type,longitude,latitude\nBBB,small,1.5,2\nAAA,big,3,4\n",
    )
    ds = load_dataset(path)
    np.testing.assert_array_equal(ds.node_ids, ["AAA", "BBB", "CCC"])
    np.testing.assert_array_equal(ds.node_feat, [[3, 4], [1.5, 2], [0, 0]])
    assert ds.edge_feat is None and ds.source["unused_columns"] == ["callsign"]
    assert "1 nodes without a row in airport_node_feat_v2.csv: zeros" in describe(ds)


def test_data_record_reads_the_file_again_the_same_way(tmp_path):
    path = write(tmp_path / "rec.txt", "when|who|whom|w\n5|a|b|1\n6|b|c|2\n")
    ds = load_dataset(path, src_col="who", dst_col="whom", feature_cols=["w"])
    record = data_record(ds)
    assert record == {
        "path": path,
        "format": "csv",
        "keep_ids": False,
        "bipartite": False,  # (b is a source and a destination)
        "src_col": "who",
        "dst_col": "whom",
        "time_col": "when",
        "feature_cols": ["w"],
        "delimiter": "|",
        "header": True,
    }
    again = load_dataset(record.pop("path"), fmt=record.pop("format"), **record)
    np.testing.assert_array_equal(again.edge_feat, ds.edge_feat)
    assert data_record(load_dataset("uci")) == {}
    assert run_name(load_dataset(write(tmp_path / "a b&c.txt", "1 2 3\n"))) == "a_b_c"
