"""The in-memory form of a temporal interaction dataset, and how raw events become one."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


class DataError(ValueError):
    """Input data that cannot be loaded; the message is one line naming the file (and line, value)."""


def max_load_bytes() -> int:
    """The most bytes one load may read or allocate: ``$DGL_TGNN_MAX_LOAD_BYTES``, else a quarter of the
    machine's physical memory (parsing needs a few times the size of the text)."""
    value = os.environ.get("DGL_TGNN_MAX_LOAD_BYTES")
    if value:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"DGL_TGNN_MAX_LOAD_BYTES must be an integer, got {value!r}") from None
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError):
        return 8 << 30


def format_bytes(size: float) -> str:
    """``1536 -> "1.5 KiB"``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError


def check_allocation(nbytes: int, what: str, fix: str) -> None:
    """Refuse (``ValueError``) to allocate ``nbytes`` for ``what`` beyond :func:`max_load_bytes`."""
    limit = max_load_bytes()
    if nbytes > limit:
        raise ValueError(
            f"{what} would take {format_bytes(nbytes)}, more than the load limit of {format_bytes(limit)} "
            f"(a quarter of this machine's memory, or $DGL_TGNN_MAX_LOAD_BYTES): {fix}"
        )


@dataclass(frozen=True, eq=False)
class TemporalDataset:
    """A stream of timestamped interactions ``src -> dst at t``, sorted by time.

    Attributes:
        name: dataset name (built-in name or file stem).
        src, dst: ``[E]`` int64 node ids in ``0..num_nodes-1``.
        t: ``[E]`` float64 event times, non-decreasing (events are stably sorted by time).
        label: ``[E]`` int64 per-event labels (e.g. JODIE ``state_label``) or None.
        edge_feat: ``[E, d]`` float32 event features or None.
        node_feat: ``[N, d]`` float32 node features or None.
        node_ids: ``[N]`` int64 original id of each node. For bipartite data users come first (their ids in
            the user id space), then items (their ids in the item id space).
        num_nodes: ``N``.
        bipartite: True when sources (users) and destinations (items) are disjoint node sets.
        dst_candidates: int64 ids of the destination pool: the items for bipartite data, all nodes otherwise.
        source: what was read, as JSON-able values (see :func:`dgl_tgnn.data.summary.describe`): ``path``,
            ``format``, ``columns`` actually used, ``delimiter``, ``header``, ``ids`` (``"integer"``,
            ``"string"`` or ``"kept"``), ``time_unit``, ``resorted``, ``notes`` (guesses made), ... ; empty
            for datasets built in memory.

    Node ids: integer ids become rows ``0..N-1`` in ascending id order; string ids (or a mix, or integers
    beyond int64) in order of first appearance in the input (``src`` before ``dst`` on each line);
    ``node_ids[row]`` is the original id (int64, or str for string ids). With ``keep_ids`` (integer ids
    only) row ``i`` is id ``i`` and ``num_nodes`` is ``max id + 1``.
    """

    name: str
    src: np.ndarray
    dst: np.ndarray
    t: np.ndarray
    label: np.ndarray | None
    edge_feat: np.ndarray | None
    node_feat: np.ndarray | None
    node_ids: np.ndarray
    num_nodes: int
    bipartite: bool
    dst_candidates: np.ndarray
    source: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        n_events = len(self.t)
        for field, array in (("src", self.src), ("dst", self.dst)):
            if array.dtype != np.int64 or array.shape != (n_events,):
                raise ValueError(
                    f"{field} must be int64 of shape ({n_events},), got {array.dtype} {array.shape}"
                )
            if n_events and (array.min() < 0 or array.max() >= self.num_nodes):
                raise ValueError(f"{field} ids must lie in 0..{self.num_nodes - 1}")
        if self.t.dtype != np.float64 or self.t.ndim != 1:
            raise ValueError(f"t must be 1-D float64, got {self.t.dtype} {self.t.shape}")
        if np.any(self.t[1:] < self.t[:-1]):
            raise ValueError("t must be non-decreasing (sort the events by time)")
        if self.label is not None and (self.label.dtype != np.int64 or self.label.shape != (n_events,)):
            raise ValueError(
                f"label must be int64 of shape ({n_events},), got {self.label.dtype} {self.label.shape}"
            )
        for field, array, rows in (
            ("edge_feat", self.edge_feat, n_events),
            ("node_feat", self.node_feat, self.num_nodes),
        ):
            if array is not None and (array.dtype != np.float32 or array.ndim != 2 or len(array) != rows):
                raise ValueError(
                    f"{field} must be float32 of shape ({rows}, d), got {array.dtype} {array.shape}"
                )
        if self.node_ids.shape != (self.num_nodes,) or self.node_ids.dtype.kind not in "iU":
            raise ValueError(
                f"node_ids must be int64 or str of shape ({self.num_nodes},), "
                f"got {self.node_ids.dtype} {self.node_ids.shape}"
            )
        if self.dst_candidates.dtype != np.int64 or self.dst_candidates.ndim != 1:
            raise ValueError("dst_candidates must be a 1-D int64 array")

    @property
    def num_events(self) -> int:
        """Number of events ``E``."""
        return len(self.t)

    @property
    def edge_dim(self) -> int:
        """Width ``d`` of the event features, 0 when there are none."""
        return 0 if self.edge_feat is None else self.edge_feat.shape[1]

    @property
    def string_ids(self) -> bool:
        """True when the original node ids are strings (``node_ids`` is a str array)."""
        return self.node_ids.dtype.kind == "U"

    def original_ids(self, rows: Any) -> np.ndarray:
        """The original ids of node ``rows`` (what the input file called them)."""
        return self.node_ids[np.asarray(rows, dtype=np.int64)]

    def rows_of(self, ids: Any) -> np.ndarray:
        """The rows of original node ``ids`` (int64); ``KeyError`` naming the first unknown id.

        For bipartite data an id may name a user and an item: the user's row is returned.
        """
        ids = np.atleast_1d(np.asarray(ids))
        if self.string_ids:
            ids = ids.astype(str)
        first = ~pd.Index(self.node_ids).duplicated(keep="first")
        position = pd.Index(self.node_ids[first]).get_indexer(ids)
        if np.any(position < 0):
            raise KeyError(f"unknown node id {ids[np.flatnonzero(position < 0)[0]]!r}")
        rows = np.flatnonzero(first)[position]
        return rows.astype(np.int64)

    @classmethod
    def from_dgl(cls, g: Any, time: str = "timestamp", **kwargs: Any) -> TemporalDataset:
        """A dataset from a DGL graph with a time edge field: see :func:`dgl_tgnn.data.convert.from_dgl`."""
        from dgl_tgnn.data.convert import from_dgl

        return from_dgl(g, time=time, **kwargs)

    @classmethod
    def from_arrays(cls, src: Any, dst: Any, t: Any, **kwargs: Any) -> TemporalDataset:
        """A dataset from arrays: see :func:`dgl_tgnn.data.convert.from_arrays`."""
        from dgl_tgnn.data.convert import from_arrays

        return from_arrays(src, dst, t, **kwargs)

    def __repr__(self) -> str:
        return (
            f"TemporalDataset(name={self.name!r}, events={self.num_events}, nodes={self.num_nodes}, "
            f"edge_dim={self.edge_dim}, bipartite={self.bipartite})"
        )


def _ids(values: np.ndarray) -> np.ndarray:
    """Node ids as int64 when they are all integers in the int64 range, else as str."""
    values = np.asarray(values)
    if values.dtype.kind == "i":
        return values.astype(np.int64, copy=False)
    if values.dtype.kind == "u" and (values.size == 0 or values.max() <= np.iinfo(np.int64).max):
        return values.astype(np.int64)
    if values.dtype.kind == "b" or values.dtype.kind == "f":
        raise ValueError(f"node ids must be integers or strings, got {values.dtype}")
    return values.astype(str)


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, uniques)``: ``uniques`` in order of first appearance, ``values == uniques[codes]``."""
    codes, uniques = pd.factorize(values)
    return codes.astype(np.int64), np.asarray(uniques, dtype=str)


def _guess_bipartite(src: np.ndarray, dst: np.ndarray, keep_ids: bool) -> tuple[bool, str]:
    """Whether ids ``src [E]`` and ``dst [E]`` look bipartite (no id is both a source and a
    destination; never with ``keep_ids``, whose rows are the ids), and the note that says so."""
    if keep_ids:
        return False, "bipartite: no, ids kept as rows (--bipartite)"
    shared = np.intersect1d(src, dst).size
    if shared == 0 and src.size:
        return True, "bipartite: yes, no id is both a source and a destination (--no-bipartite)"
    return False, f"bipartite: no, {shared:,} ids are both a source and a destination (--bipartite)"


def float32_features(feat: np.ndarray, what: str) -> np.ndarray:
    """``feat`` as float32, refusing values that are not finite after the cast (``1e39`` overflows)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(feat, dtype=np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        row, *col = np.unravel_index(int(np.flatnonzero(bad.ravel())[0]), out.shape)
        where = f"row {row}" + (f", column {col[0]}" if col else "")
        raise DataError(
            f"{what}: {where}: {np.asarray(feat)[(row, *col)].item()!r} is not a finite float32 "
            f"(|x| <= {np.finfo(np.float32).max:.3g})"
        )
    return out


def from_events(
    name: str,
    src: np.ndarray,
    dst: np.ndarray,
    t: np.ndarray,
    *,
    label: np.ndarray | None = None,
    edge_feat: np.ndarray | None = None,
    bipartite: bool | None = False,
    keep_ids: bool = False,
    source: dict[str, Any] | None = None,
) -> TemporalDataset:
    """Re-index node ids to ``0..N-1`` and stably sort the events by time.

    Args:
        src, dst: ``[E]`` original node ids: integers, or strings (any other text; a mix of both, or integers
            beyond int64, are read as strings). Integer ids become rows in ascending id order, string ids in
            order of first appearance (``src`` then ``dst`` of each event). When ``bipartite``, ``src`` are
            user ids and ``dst`` item ids, each in its own id space: users become ``0..U-1``, items
            ``U..U+I-1``. Otherwise both share one id space.
        t: ``[E]`` event times (any real dtype, stored as float64).
        label: ``[E]`` integer labels or None.
        edge_feat: ``[E, d]`` real features or None (stored as float32: values that overflow it are refused).
        bipartite: None guesses it: bipartite when no id is both a source and a destination (the
            rows are then the same nodes either way; the destination pool is the destinations only),
            and never with ``keep_ids``; the guess is noted in ``source["notes"]``.
        keep_ids: integer ids only: row ``i`` is id ``i`` (``num_nodes = max id + 1``, bounded by the load
            limit) instead of re-indexing.
        source: what was read (stored as ``ds.source``; ``ids`` and ``resorted`` are filled in here).

    Raises:
        ValueError: ``keep_ids`` with string or negative ids, or too many nodes for the load limit.
    """
    src, dst = _ids(src), _ids(dst)
    string_ids = src.dtype.kind == "U" or dst.dtype.kind == "U"
    if string_ids:
        src, dst = src.astype(str), dst.astype(str)
    info = dict(source or {})
    if bipartite is None:
        bipartite, note = _guess_bipartite(src, dst, keep_ids)
        info["notes"] = [*info.get("notes", []), note]
    if keep_ids:
        if string_ids:
            raise ValueError("--keep-ids needs integer node ids; these are strings (drop --keep-ids)")
        lowest = min(src.min(), dst.min()) if len(src) else 0
        if lowest < 0:
            raise ValueError(f"--keep-ids needs node ids >= 0, got {lowest} (drop --keep-ids)")
        users = int(src.max()) + 1 if len(src) else 0
        items = int(dst.max()) + 1 if len(dst) else 0
        num_nodes = users + items if bipartite else max(users, items)
        # node ids, and the per-node state of training (T-CSR offsets, memory, embeddings: ~1 KiB)
        check_allocation(
            num_nodes * 1024, f"--keep-ids: {num_nodes:,} nodes (max id + 1)", "drop --keep-ids to re-index"
        )
        if bipartite:
            node_ids = np.concatenate([np.arange(users), np.arange(items)]).astype(np.int64)
            src_new, dst_new = src, dst + users
            dst_candidates = np.arange(users, num_nodes, dtype=np.int64)
        else:
            node_ids = np.arange(num_nodes, dtype=np.int64)
            src_new, dst_new = src, dst
            dst_candidates = node_ids.copy()
    elif bipartite:
        if string_ids:
            src_new, users = _factorize(src)
            dst_new, items = _factorize(dst)
        else:
            users, src_new = np.unique(src, return_inverse=True)
            items, dst_new = np.unique(dst, return_inverse=True)
        node_ids = np.concatenate([users, items])
        dst_new = dst_new + len(users)
        dst_candidates = np.arange(len(users), len(node_ids), dtype=np.int64)
    else:
        if string_ids:
            codes, node_ids = _factorize(np.stack([src, dst], axis=1).ravel())
            src_new, dst_new = codes[0::2], codes[1::2]
        else:
            node_ids, inverse = np.unique(np.concatenate([src, dst]), return_inverse=True)
            src_new, dst_new = inverse[: len(src)], inverse[len(src) :]
        dst_candidates = np.arange(len(node_ids), dtype=np.int64)
    if not string_ids:
        node_ids = node_ids.astype(np.int64)
    t = np.asarray(t, dtype=np.float64)
    if edge_feat is not None:
        edge_feat = float32_features(edge_feat, "edge features")
    resorted = bool(np.any(t[1:] < t[:-1]))
    order = np.argsort(t, kind="stable")
    info.update(ids="kept" if keep_ids else "string" if string_ids else "integer", resorted=resorted)
    return TemporalDataset(
        name=name,
        src=np.asarray(src_new)[order].astype(np.int64),
        dst=np.asarray(dst_new)[order].astype(np.int64),
        t=t[order],
        label=None if label is None else np.asarray(label)[order].astype(np.int64),
        edge_feat=None if edge_feat is None else np.ascontiguousarray(edge_feat[order]),
        node_feat=None,
        node_ids=node_ids,
        num_nodes=len(node_ids),
        bipartite=bipartite,
        dst_candidates=dst_candidates,
        source=info,
    )
