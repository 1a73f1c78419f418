"""Files of ``dgl-tgnn recommend``: queries ``src,t`` and new events ``src,dst,t[,features...]`` in,
recommendations ``src,t,rank,dst,score`` out. A bad row is a one-line ValueError naming the file and
line."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from dgl_tgnn.node_ids import NodeIds


def _rows(path: Path, names: str, fields: int, exact: bool) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of each non-empty row of ``path``; a first row whose time field
    (the last of ``names``) is not a number is a header and skipped."""
    with open(path, newline="") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or all(not x.strip() for x in row):
                continue
            row = [x.strip() for x in row]
            if len(row) < fields or (exact and len(row) != fields):
                raise ValueError(f"{path}:{line}: expected {fields} fields ({names}), got {len(row)}")
            if line == 1 and not _is_number(row[fields - 1]):
                continue
            yield line, row


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _id(node_ids: NodeIds, text: str, what: str, where: str) -> int | str:
    try:
        return node_ids.parse(text)
    except ValueError:
        raise ValueError(f"{where}: {what} {text!r} is not an integer id") from None


def _time(text: str, where: str) -> float:
    if not _is_number(text) or not np.isfinite(float(text)):
        raise ValueError(f"{where}: t {text!r} is not a number")
    return float(text)


def read_queries(path: str | Path, node_ids: NodeIds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queries ``src,t`` of ``path``: ids ``[Q]``, times ``[Q]`` float64 and line numbers ``[Q]``;
    unknown ids are a ValueError with the line."""
    path = Path(path)
    ids, times, lines = [], [], []
    for line, row in _rows(path, "src,t", 2, exact=True):
        where = f"{path}:{line}"
        ids.append(_id(node_ids, row[0], "src", where))
        times.append(_time(row[1], where))
        lines.append(line)
    array = np.array(ids, dtype=str if node_ids.is_string else np.int64)
    unknown = np.flatnonzero(node_ids.find(array) < 0)
    if len(unknown):
        first = unknown[0]
        raise ValueError(f"{path}:{lines[first]}: unknown node id {ids[first]!r}")
    return array, np.array(times, dtype=np.float64), np.array(lines, dtype=np.int64)


def read_events(
    path: str | Path, node_ids: NodeIds, edge_dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, torch.Tensor | None]:
    """New events ``src,dst,t`` (then ``edge_dim`` feature columns) of ``path``, in time order:
    ``src``, ``dst`` ``[n]`` ids, ``t`` ``[n]`` float64 and ``[n, edge_dim]`` float32 features (None
    without)."""
    path = Path(path)
    names = "src,dst,t" + ",features..." * (edge_dim > 0)
    src, dst, times, feats = [], [], [], []
    for line, row in _rows(path, names, 3 + edge_dim, exact=True):
        where = f"{path}:{line}"
        src.append(_id(node_ids, row[0], "src", where))
        dst.append(_id(node_ids, row[1], "dst", where))
        times.append(_time(row[2], where))
        if times[-1] < times[max(len(times) - 2, 0)]:
            raise ValueError(f"{where}: events must come in time order (t {row[2]} after {times[-2]})")
        try:
            feats.append([float(x) for x in row[3:]])
        except ValueError:
            raise ValueError(f"{where}: the {edge_dim} feature columns must be numbers") from None
    kind = str if node_ids.is_string else np.int64
    feat = torch.tensor(feats, dtype=torch.float32).reshape(len(feats), edge_dim) if edge_dim else None
    return np.array(src, dtype=kind), np.array(dst, dtype=kind), np.array(times, dtype=np.float64), feat


def same_time_batches(times: np.ndarray, size: int) -> Iterator[slice]:
    """Consecutive runs of equal times, cut every ``size`` rows: the queries scored together."""
    lo = 0
    while lo < len(times):
        hi = lo + 1
        while hi < len(times) and hi - lo < size and times[hi] == times[lo]:
            hi += 1
        yield slice(lo, hi)
        lo = hi


def write_recommendations(
    out: TextIO, src: np.ndarray, times: np.ndarray, nodes: torch.Tensor | np.ndarray, scores: torch.Tensor
) -> None:
    """Rows ``src,t,rank,dst,score`` (rank from 1; padding of rows with fewer candidates left out)."""
    writer = csv.writer(out, lineterminator="\n")
    nodes = nodes.tolist()
    for i, row in enumerate(scores.tolist()):
        for rank, score in enumerate(row, start=1):
            if score != float("-inf"):
                writer.writerow([src[i], repr(float(times[i])), rank, nodes[i][rank - 1], f"{score:.9g}"])
