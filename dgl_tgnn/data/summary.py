"""Human-readable description of datasets (used by ``dgl-tgnn datasets``)."""

from __future__ import annotations

from collections.abc import Sequence

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
