"""Other ecosystems in, one call each: numpy arrays, a pandas DataFrame, a DGL graph with a time edge field,
PyG's ``TemporalData``.

Each returns a :class:`TemporalDataset` (re-indexed ids, events sorted by time, ``source`` recorded), except
:func:`graph_from_dgl`, behind ``TemporalGraph.from_dgl``, which keeps DGL's node and edge ids.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from dgl_tgnn.data.dataset import DataError, TemporalDataset, float32_features, from_events


def _numpy(x: Any, what: str) -> np.ndarray:
    """A numpy array from numpy, torch (any device), pandas or a sequence."""
    if hasattr(x, "detach"):  # torch
        x = x.detach().cpu().numpy()
    elif hasattr(x, "to_numpy"):  # pandas
        x = x.to_numpy()
    array = np.asarray(x)
    if array.dtype.kind == "O" and len(array) and all(isinstance(v, str) for v in array[:1000]):
        array = array.astype(str)
    if array.ndim == 0:
        raise ValueError(f"{what}: expected an array, got a scalar")
    return array


def _times(t: Any, what: str = "t") -> tuple[np.ndarray, str]:
    """Event times as float64 seconds (datetimes) or numbers as given; refuses NaN / inf."""
    t = _numpy(t, what)
    if t.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D array, got shape {t.shape}")
    if t.dtype.kind == "M":
        seconds = (t - np.datetime64(0, "s")) / np.timedelta64(1, "s")
        return seconds.astype(np.float64), "seconds since 1970-01-01 UTC, from datetimes"
    if t.dtype.kind not in "iuf":
        raise ValueError(f"{what}: expected numbers or datetimes, got {t.dtype}")
    t = t.astype(np.float64)
    if not np.isfinite(t).all():
        raise ValueError(f"{what}: event {int(np.flatnonzero(~np.isfinite(t))[0])} has a non-finite time")
    return t, "as given"


def from_arrays(
    src: Any,
    dst: Any,
    t: Any,
    *,
    name: str = "arrays",
    label: Any = None,
    edge_feat: Any = None,
    node_feat: Any = None,
    bipartite: bool = False,
    keep_ids: bool = False,
) -> TemporalDataset:
    """A dataset from ``[E]`` arrays (numpy, torch, pandas or lists) of node ids (integers or strings), times
    (numbers, or numpy datetimes -> seconds), optional ``[E]`` integer labels and ``[E, d]`` edge features.

    ``node_feat`` (``[N, d]``) is indexed by the original integer ids (row ``i`` = id ``i``), so it needs
    integer ids.
    """
    src, dst = _numpy(src, "src"), _numpy(dst, "dst")
    t, unit = _times(t)
    if not len(src) == len(dst) == len(t):
        raise ValueError(f"src, dst, t: length mismatch {len(src)}, {len(dst)}, {len(t)}")
    for what, ids in (("src", src), ("dst", dst)):
        if ids.ndim != 1 or ids.dtype.kind not in "iuU":
            raise ValueError(f"{what}: expected 1-D integer or string node ids, got {ids.dtype} {ids.shape}")
    if label is not None:
        label = _numpy(label, "label")
        if label.shape != (len(t),) or (
            label.dtype.kind == "f" and not np.array_equal(label, np.round(label))
        ):
            raise ValueError(f"label: expected {len(t)} integers, got {label.dtype} {label.shape}")
    if edge_feat is not None:
        edge_feat = _numpy(edge_feat, "edge_feat")
        edge_feat = edge_feat[:, None] if edge_feat.ndim == 1 else edge_feat
        if edge_feat.ndim != 2 or len(edge_feat) != len(t) or edge_feat.dtype.kind not in "biuf":
            raise ValueError(
                f"edge_feat: expected [{len(t)}, d] numbers, got {edge_feat.dtype} {edge_feat.shape}"
            )
    try:
        ds = from_events(
            name,
            src,
            dst,
            t,
            label=label,
            edge_feat=edge_feat,
            bipartite=bipartite,
            keep_ids=keep_ids,
            source={"path": None, "format": "arrays", "time_unit": unit},
        )
    except DataError as error:  # from_events names "edge features"; here they are the argument edge_feat
        raise ValueError(str(error).replace("edge features", "edge_feat", 1)) from None
    if node_feat is not None:
        node_feat = _numpy(node_feat, "node_feat")
        if ds.string_ids or ds.bipartite:
            raise ValueError(
                "node_feat: rows are integer node ids; give it for non-bipartite integer ids only"
            )
        if node_feat.ndim != 2 or len(node_feat) <= int(ds.node_ids.max(initial=-1)):
            raise ValueError(
                f"node_feat: expected a [N, d] array with a row for every id up to {ds.node_ids.max()}, "
                f"got shape {node_feat.shape}"
            )
        try:
            feat = float32_features(node_feat[ds.node_ids], "node_feat")
        except DataError as error:
            raise ValueError(str(error)) from None
        ds = dataclasses.replace(ds, node_feat=feat)
    return ds


def from_dataframe(
    frame: Any,
    src: str = "src",
    dst: str = "dst",
    time: str = "t",
    *,
    features: list[str] | None = None,
    label: str | None = None,
    name: str = "dataframe",
    bipartite: bool = False,
    keep_ids: bool = False,
) -> TemporalDataset:
    """A dataset from a pandas DataFrame: ``src``, ``dst``, ``time`` name its columns (times: numbers,
    datetimes, or ISO-8601 strings), ``features`` the edge feature columns, ``label`` a label column."""
    import pandas as pd

    missing = [c for c in (src, dst, time, *(features or ()), *([label] if label else [])) if c not in frame]
    if missing:
        raise ValueError(f"no column {missing[0]!r} in the DataFrame (columns: {list(frame.columns)})")
    t = frame[time]
    if t.dtype == object or pd.api.types.is_string_dtype(t.dtype):
        try:
            t = pd.to_datetime(t, format="ISO8601", utc=True)
        except (ValueError, TypeError) as error:
            raise ValueError(f"column {time!r}: not numbers or ISO-8601 dates: {error}") from None
    if isinstance(t.dtype, pd.DatetimeTZDtype) or t.dtype.kind == "M":
        t = (pd.to_datetime(t, utc=True) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
        unit = "seconds since 1970-01-01 UTC, from datetimes"
    else:
        unit = "as given"

    def ids(column: str) -> np.ndarray:
        values = frame[column].to_numpy()
        return values.astype(str) if values.dtype.kind == "O" else values

    ds = from_arrays(
        ids(src),
        ids(dst),
        t.to_numpy(dtype=np.float64),
        name=name,
        label=None if label is None else frame[label].to_numpy(),
        edge_feat=frame[list(features)].to_numpy() if features else None,
        bipartite=bipartite,
        keep_ids=keep_ids,
    )
    source = dict(ds.source, format="dataframe", time_unit=unit)
    source["columns"] = {"src": src, "dst": dst, "time": time, "features": list(features or [])}
    return dataclasses.replace(ds, source=source)


def _dgl_edges(g: Any, time: str, edge_feat: str | None) -> tuple[np.ndarray, ...]:
    if len(g.canonical_etypes) != 1:
        raise ValueError(f"from_dgl: expected one edge type, got {g.canonical_etypes}")
    if time not in g.edata:
        raise ValueError(
            f"from_dgl: the graph has no edge field {time!r} (time=...; fields: {list(g.edata)})"
        )
    src, dst = (x.cpu().numpy() for x in g.edges(order="eid"))
    t = g.edata[time].detach().cpu()
    if t.dim() != 1 and not (t.dim() == 2 and t.shape[1] == 1):
        raise ValueError(
            f"from_dgl: edge field {time!r} must hold one time per edge, got shape {tuple(t.shape)}"
        )
    feat = None
    if edge_feat is not None:
        if edge_feat not in g.edata:
            raise ValueError(f"from_dgl: the graph has no edge field {edge_feat!r} (fields: {list(g.edata)})")
        feat = g.edata[edge_feat].detach().cpu().numpy()
    return src.astype(np.int64), dst.astype(np.int64), t.reshape(-1).numpy(), feat


def from_dgl(
    g: Any,
    time: str = "timestamp",
    *,
    edge_feat: str | None = None,
    node_feat: str | None = None,
    label: str | None = None,
    name: str = "dgl",
) -> TemporalDataset:
    """A dataset from a DGL graph whose edges are events, with their times in the edge field ``time``.

    DGL's node ids are kept (``num_nodes = g.num_nodes()``, so isolated nodes stay). A graph with one edge
    type between two node types is bipartite: source nodes first, then destination nodes. ``edge_feat``,
    ``node_feat`` and ``label`` name fields of ``g.edata`` / ``g.ndata`` / ``g.edata``.
    """
    src, dst, t, feat = _dgl_edges(g, time, edge_feat)
    utype, _, vtype = g.canonical_etypes[0]
    bipartite = utype != vtype
    users, items = g.num_nodes(utype), g.num_nodes(vtype)
    num_nodes = users + items if bipartite else users
    t, unit = _times(t, f"edge field {time!r}")
    if bipartite:
        dst = dst + users
    labels = None if label is None else g.edata[label].detach().cpu().numpy().reshape(-1)
    if feat is not None:
        feat = feat.reshape(len(feat), -1)
    order = np.argsort(t, kind="stable")
    node_ids = (
        np.concatenate([np.arange(users), np.arange(items)]) if bipartite else np.arange(num_nodes)
    ).astype(np.int64)
    nfeat = None
    if node_feat is not None:
        if bipartite:
            nfeat = np.concatenate(
                [g.nodes[utype].data[node_feat].cpu().numpy(), g.nodes[vtype].data[node_feat].cpu().numpy()]
            )
        else:
            nfeat = g.ndata[node_feat].detach().cpu().numpy()
        nfeat = float32_features(nfeat.reshape(num_nodes, -1), f"node field {node_feat!r}")
    return TemporalDataset(
        name=name,
        src=src[order],
        dst=dst[order],
        t=t[order],
        label=None if labels is None else labels[order].astype(np.int64),
        edge_feat=None if feat is None else float32_features(feat[order], f"edge field {edge_feat!r}"),
        node_feat=nfeat,
        node_ids=node_ids,
        num_nodes=num_nodes,
        bipartite=bipartite,
        dst_candidates=np.arange(users, num_nodes, dtype=np.int64) if bipartite else node_ids.copy(),
        source={
            "path": None,
            "format": "dgl",
            "columns": {
                "src": "g.edges()[0]",
                "dst": "g.edges()[1]",
                "time": time,
                "features": [edge_feat] if edge_feat else [],
            },
            "ids": "kept",
            "time_unit": unit,
            "resorted": bool(np.any(t[1:] < t[:-1])),
        },
    )


def graph_from_dgl(
    cls: type, g: Any, time: str = "timestamp", edge_feat: str | None = None, undirected: bool = True
) -> Any:
    """``TemporalGraph.from_dgl``: the events of a homogeneous DGL graph, with DGL's node ids and edge ids
    as event ids (no re-sorting: a TemporalGraph takes events in any order)."""
    if len(g.ntypes) != 1:
        raise ValueError(
            f"TemporalGraph.from_dgl: expected one node type, got {g.ntypes} "
            "(TemporalDataset.from_dgl places the node types one after another)"
        )
    src, dst, t, feat = _dgl_edges(g, time, edge_feat)
    t, _ = _times(t, f"edge field {time!r}")
    return cls(src, dst, t, edge_feat=feat, num_nodes=g.num_nodes(), undirected=undirected)


def from_pyg(data: Any, *, name: str = "pyg", keep_ids: bool = True) -> TemporalDataset:
    """A dataset from PyG's ``TemporalData`` (fields ``src``, ``dst``, ``t``, optional ``msg`` as edge
    features and ``y`` as labels). PyG's ids are kept (``keep_ids``, default) or re-indexed."""
    for field in ("src", "dst", "t"):
        if getattr(data, field, None) is None:
            raise ValueError(f"from_pyg: expected a TemporalData with src, dst and t; no {field!r}")
    msg = getattr(data, "msg", None)
    y = getattr(data, "y", None)
    if y is not None and (y.dim() != 1 or y.is_floating_point()):
        y = None
    ds = from_arrays(data.src, data.dst, data.t, name=name, edge_feat=msg, label=y, keep_ids=keep_ids)
    source = dict(ds.source, format="pyg")
    source["columns"] = {
        "src": "src",
        "dst": "dst",
        "time": "t",
        "features": ["msg"] if msg is not None else [],
    }
    return dataclasses.replace(ds, source=source)
