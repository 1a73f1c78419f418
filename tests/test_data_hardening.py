"""Loader hardening (issue 17): float32 overflow, bounded reads, binary and bare-CR input, a fuzz test."""

import gzip
import os
import random
import time

import numpy as np
import pytest

from dgl_tgnn.data import DataError, load_dataset
from dgl_tgnn.data import cache as cache_module


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("DGL_TGNN_CACHE", str(directory))
    return directory


def entries(directory):
    return sorted(directory.glob("*")) if directory.exists() else []


def one_line_error(path, **options) -> str:
    with pytest.raises(DataError) as info:
        load_dataset(str(path), **options)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# --- float32 overflow (item 3): checked after the cast, naming file, line, column; nothing cached ----------


def test_csv_feature_overflowing_float32_names_file_line_and_column(tmp_path, cache_dir):
    path = tmp_path / "f.csv"
    path.write_text("src,dst,time,w\n1,2,3,0.5\n2,3,4,1e39\n")
    assert one_line_error(path, feature_cols=["w"]) == (
        f"{path}:3: feature 'w' overflows float32 (|x| <= 3.4e+38): '1e39' (--feature-cols)"
    )
    assert entries(cache_dir) == []


def test_jodie_and_edgelist_features_overflowing_float32(tmp_path, cache_dir):
    jodie = tmp_path / "j.csv"
    jodie.write_text("user_id,item_id,timestamp,state_label,f\n0,0,1,0,0.5,-3e38\n1,0,2,0,0.25,-4e38\n")
    assert one_line_error(jodie).startswith(f"{jodie}:3: feature 2 overflows float32")
    edges = tmp_path / "e.txt"
    edges.write_text("1 2 1e300 5\n")
    assert one_line_error(edges).startswith(f"{edges}:1: weight overflows float32")
    assert entries(cache_dir) == []


def test_tgn_npy_overflow_names_file_row_and_column(tmp_path, cache_dir):
    (tmp_path / "ml_x.csv").write_text(",u,i,ts,label,idx\n0,1,2,1.0,0,1\n1,1,2,2.0,0,2\n")
    edge_table = np.zeros((3, 2))
    edge_table[2, 1] = 1e39
    np.save(tmp_path / "ml_x.npy", edge_table)
    np.save(tmp_path / "ml_x_node.npy", np.zeros((3, 2)))
    message = one_line_error(tmp_path / "ml_x.csv")
    expected = "row 2, column 1: 1e+39 is not a finite float32 (|x| <= 3.4e+38)"
    assert message == f"{tmp_path / 'ml_x.npy'}: {expected}"
    assert entries(cache_dir) == []


def test_a_cache_entry_with_non_finite_features_is_never_used(tmp_path, cache_dir):
    path = tmp_path / "w.csv"
    path.write_text("user_id,item_id,timestamp,state_label,f\n0,0,1,0,0.5\n1,0,2,0,0.25\n")
    load_dataset(str(path))
    (entry,) = cache_dir.glob("*.npz")
    with np.load(entry) as stored:
        arrays = dict(stored)
    arrays["edge_feat"] = np.full_like(arrays["edge_feat"], np.inf)
    np.savez(entry, **arrays)
    key = entry.name.removesuffix(".npz")
    assert cache_module.load_cached(key, "w") is None
    np.testing.assert_array_equal(load_dataset(str(path)).edge_feat[:, 0], [0.5, 0.25])


# --- unbounded input (item 4) and binary / bare-CR content (item 5) ----------------------------------------


def test_dev_zero_is_refused_at_once():
    start = time.perf_counter()
    assert one_line_error("/dev/zero", fmt="edgelist") == (
        "/dev/zero: binary content (NUL bytes), not a text file of events"
    )
    assert one_line_error("/dev/zero").startswith("/dev/zero: binary content")
    assert time.perf_counter() - start < 5


def test_a_file_beyond_the_load_limit_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "e.txt"
    path.write_text("1 2 3\n" * 1000)
    monkeypatch.setenv("DGL_TGNN_MAX_LOAD_BYTES", "1000")
    message = one_line_error(path, cache=False)
    assert message.startswith(f"{path}: holds 5.9 KiB, more than the load limit of 1000 bytes")
    assert "DGL_TGNN_MAX_LOAD_BYTES" in message


def test_an_unbounded_stream_is_cut_at_the_load_limit(tmp_path, monkeypatch):
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)
    monkeypatch.setenv("DGL_TGNN_MAX_LOAD_BYTES", "100000")
    pid = os.fork()
    if pid == 0:  # the writer: more text than the limit, like `yes "1 2 3" > stream`
        try:
            with open(fifo, "w") as out:
                out.write("1 2 3\n" * 50000)
        finally:
            os._exit(0)
    try:
        message = one_line_error(fifo, fmt="edgelist", cache=False)
    finally:
        os.waitpid(pid, 0)
    assert message == (
        f"{fifo}: gives more than the load limit of 97.7 KiB (a quarter of this machine's memory; "
        "set DGL_TGNN_MAX_LOAD_BYTES to raise it)"
    )


def test_a_gzip_bomb_is_cut_at_the_load_limit(tmp_path, monkeypatch):
    path = tmp_path / "bomb.txt"
    path.write_bytes(gzip.compress(b"1 2 3\n" * 200_000))
    monkeypatch.setenv("DGL_TGNN_MAX_LOAD_BYTES", "100000")
    assert "decompresses to more than the load limit" in one_line_error(path, fmt="edgelist", cache=False)


def test_binary_content_later_in_the_file_is_one_line(tmp_path):
    path = tmp_path / "b.csv"
    path.write_bytes(b"src,dst,time\n" + b"1,2,3\n" * 20000 + b"4,\x00\xff,5\n")
    assert one_line_error(path) == f"{path}: binary content (NUL bytes), not a text file of events"


def test_bare_cr_line_ends_are_lines(tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes(b'src,dst,time\r1,2,3\r2,"3\r4",5\r')
    # a CR inside a quoted field ends the line too, and that line is then malformed: one line, no _csv.Error
    assert one_line_error(path).startswith(f"{path}:")
    path.write_bytes(b"src,dst,time\r1,2,3\r2,3,5\r")
    assert load_dataset(str(path)).num_events == 2


# --- fuzz: malformed files give a clean DataError / ValueError and leave no cache entry --------------------

BASES = {
    "header.csv": b"Source,Target,Rating,Time\nalice,bob,1,2020-01-01\nbob,carol,-1,2020-01-02T10:00:00\n"
    b"carol,alice,2,2020-01-03\n",
    "edges.txt": b"% comment\n1 2 3\n2 3 4.5\n3 1 0.25 7\n",
    "jodie.csv": b"user_id,item_id,timestamp,state_label,f\n0,0,1.0,0,0.5\n1,0,2.0,1,0.25\n",
    "semi.csv": b"a;b;t;w\n1;2;3;0.5\n2;3;4;1.5\n",
    "tgbl-x_edgelist_v2.csv": b"ts,src,dst,w\n1,0xab,0xcd,2.0\n2,0xcd,0xef,3.0\n",
}


def mutate(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:  # truncation
        return data[: rng.randrange(len(data) + 1)]
    if kind == 1:  # byte flips
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if kind == 2:  # wrong columns: a line loses or gains a field
        lines = data.split(b"\n")
        i = rng.randrange(len(lines))
        sep = b";" if b";" in data else b" " if b"," not in data else b","
        cells = lines[i].split(sep)
        cells = cells[:-1] if rng.random() < 0.5 and len(cells) > 1 else [*cells, b"9"]
        lines[i] = sep.join(cells)
        return b"\n".join(lines)
    return gzip.compress(data)[: rng.randrange(10, 40)]  # a truncated gzip stream


@pytest.mark.parametrize("name", sorted(BASES))
def test_fuzzed_files_load_or_fail_cleanly_without_a_cache_entry(tmp_path, cache_dir, name):
    rng = random.Random(name)
    path = tmp_path / name
    for _ in range(60):
        path.write_bytes(mutate(BASES[name], rng))
        before = entries(cache_dir)
        try:
            ds = load_dataset(str(path))
        except (DataError, ValueError) as error:
            message = str(error)
            assert message and "\n" not in message, message
            assert entries(cache_dir) == before, message
            assert not list(cache_dir.glob(".*partial")) if cache_dir.exists() else True
        else:
            assert np.all(np.diff(ds.t) >= 0) and ds.src.max(initial=0) < max(ds.num_nodes, 1)
            assert ds.edge_feat is None or np.isfinite(ds.edge_feat).all()
