"""Human-readable description of datasets: the table of ``dgl-tgnn datasets`` and the "what was loaded"
block (:func:`describe`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from dgl_tgnn.config import CHOOSE_BIPARTITE
from dgl_tgnn.data.dataset import TemporalDataset

_UNITS = (("years", 365.25 * 86400), ("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0))
COLUMNS = ("name", "format", "events", "nodes", "edge dim", "bipartite", "time span")


def format_span(seconds: float) -> str:
    """A duration in the largest unit it reaches, one decimal: ``2592000 -> "30.0 days"``."""
    for unit, size in _UNITS:
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} seconds"


def summary_row(ds: TemporalDataset, fmt: str) -> tuple[str, ...]:
    """Cells of ``COLUMNS`` for ``ds`` read in format ``fmt``; times are taken to be seconds."""
    span = float(ds.t[-1] - ds.t[0]) if ds.num_events else 0.0
    return (
        ds.name,
        fmt,
        f"{ds.num_events:,}",
        f"{ds.num_nodes:,}",
        str(ds.edge_dim),
        "yes" if ds.bipartite else "no",
        format_span(span),
    )


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """``COLUMNS`` and ``rows`` as aligned text: names left-aligned, other columns right-aligned."""
    table = [COLUMNS, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in table
    ]
    return "\n".join(line.rstrip() for line in lines)


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _span_text(ds: TemporalDataset) -> str:
    if not ds.num_events:
        return "no events"
    first, last = float(ds.t[0]), float(ds.t[-1])
    unit = ds.source.get("time_unit", "as in the file")
    if unit.startswith("seconds since 1970"):
        import datetime

        def date(x: float) -> str:
            return datetime.datetime.fromtimestamp(x, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

        return f"{date(first)} .. {date(last)} UTC ({format_span(last - first)}; {unit})"
    return f"{first:g} .. {last:g} ({format_span(last - first)} if in seconds; unit {unit})"


def warnings_of(ds: TemporalDataset) -> list[str]:
    """What a user should know about ``ds``: re-sorted events, duplicates, self-loops, few timestamps."""
    found = []
    if ds.source.get("resorted"):
        found.append("events were not in time order: re-sorted (stably) by time")
    if ds.num_events:
        events = pd.DataFrame({"src": ds.src, "dst": ds.dst, "t": ds.t})
        duplicates = int(events.duplicated().sum())
        if duplicates:
            found.append(f"{_count(duplicates, 'duplicate event')} (same src, dst and time)")
        loops = int(np.sum(ds.src == ds.dst))
        if loops:
            found.append(_count(loops, "self-loop"))
        distinct = int(np.unique(ds.t).size)
        if distinct < min(100, ds.num_events):
            found.append(
                f"only {_count(distinct, 'distinct timestamp')}: events sharing a time are in file order, "
                "and a batch may mix them"
            )
    return found


def describe(ds: TemporalDataset) -> str:
    """The "what was loaded" block: source, format, columns used, events, nodes, ids, bipartite or not, time
    span and unit, distinct timestamps, features, guesses made and warnings. Printed by ``dgl-tgnn datasets``
    and at the start of a run."""
    info = ds.source
    lines = [f"data: {ds.name}" + (f" ({info['path']})" if info.get("path") else "")]
    fmt = info.get("format", "in memory")
    layout = [f"format {fmt}"]
    if info.get("delimiter"):
        layout.append(
            f"delimiter {info['delimiter']!r}" if info["delimiter"] != "whitespace" else "whitespace"
        )
    if "header" in info:
        layout.append("header line" if info["header"] else "no header line")
    lines.append("  " + ", ".join(layout))
    columns = info.get("columns")
    if columns:
        used = ", ".join(
            f"{role} {columns[role]!r}" for role in ("src", "dst", "time", "label") if role in columns
        )
        features = columns.get("features") or []
        used += f", features {', '.join(map(repr, features))}" if features else ", no feature columns"
        lines.append(f"  columns: {used}")
    if info.get("unused_columns"):
        lines.append(
            f"  unused columns: {', '.join(map(repr, info['unused_columns']))} (--feature-cols to use them)"
        )
    ids = {
        "string": "string ids, rows in order of first appearance",
        "integer": "integer ids, rows in ascending id order",
        "kept": "integer ids kept as rows (--keep-ids)",
    }.get(info.get("ids", ""), "ids as given")
    side = "bipartite: yes (users then items)" if ds.bipartite else "bipartite: no"
    lines.append(f"  events {ds.num_events:,}, nodes {ds.num_nodes:,} ({ids}), {side}")
    lines.append(f"  time: {_span_text(ds)}")
    if ds.num_events:
        lines.append(f"  distinct timestamps: {int(np.unique(ds.t).size):,}")
    node_dim = 0 if ds.node_feat is None else ds.node_feat.shape[1]
    labels = "" if ds.label is None else ", event labels"
    lines.append(f"  features: edge {ds.edge_dim}, node {node_dim}{labels}")
    for note in info.get("notes", []):
        lines.append(f"  guessed: {note}")
    for warning in warnings_of(ds):
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)


def data_record(ds: TemporalDataset) -> dict[str, Any]:
    """What was read, as the ``load_dataset`` options (and config ``data`` keys) that read it again the same
    way, guesses resolved: ``path``, ``format``, ``keep_ids``, for csv and edge lists ``bipartite`` and, for
    csv, ``src_col``, ``dst_col``,
    ``time_col``, ``feature_cols``, ``delimiter`` (``" "``: whitespace) and ``header``. Columns are strings,
    as on the command line (a 0-based index as digits). Empty for built-in and in-memory datasets."""
    info = ds.source
    if info.get("dataset") or not info.get("path"):
        return {}
    record: dict[str, Any] = {
        "path": info["path"],
        "format": info["format"],
        "keep_ids": info.get("ids") == "kept",
    }
    if info["format"] in CHOOSE_BIPARTITE:
        record["bipartite"] = ds.bipartite
    if info["format"] == "csv":
        columns = info["columns"]
        record.update(
            src_col=str(columns["src"]),
            dst_col=str(columns["dst"]),
            time_col=str(columns["time"]),
            feature_cols=[str(c) for c in columns["features"]] or None,
            delimiter=" " if info["delimiter"] == "whitespace" else info["delimiter"],
            header=info["header"],
        )
    return record


def run_name(ds: TemporalDataset) -> str:
    """``ds.name`` made safe for a run directory name (letters, digits, ``.``, ``_``, ``-``; at most 40)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", ds.name).strip("._")[:40] or "data"
